package leak

import (
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/avon-ai/data-import-operator/internal/bucket"
)

const (
	secretKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" // AWS's documented example secret key
	keyID     = "AKIAIOSFODNN7EXAMPLE"
	// A JWT's shape (header {"alg":"RS256","kid":"x"}, a payload, a signature).
	jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YTpiIn0.c2lnbmF0dXJlLWJ5dGVz"
	sig = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
)

func TestScan(t *testing.T) {
	known := []Secret{{Name: "Secret ns/keys key AWS_SECRET_ACCESS_KEY", Value: secretKey + "\n"}}
	for _, tc := range []struct {
		name string
		body string
		want []string // kinds, in offset order
	}{
		{"clean message", "AccessDenied: the operator may not list s3://bkt/prefix", nil},
		{"secret value", "signing with " + secretKey + " failed", []string{"Secret ns/keys key AWS_SECRET_ACCESS_KEY"}},
		{"secret value twice", secretKey + " and " + secretKey, []string{"Secret ns/keys key AWS_SECRET_ACCESS_KEY", "Secret ns/keys key AWS_SECRET_ACCESS_KEY"}},
		{"raw value with its newline", "x" + secretKey + "\ny", []string{"Secret ns/keys key AWS_SECRET_ACCESS_KEY"}},
		{"base64, padded", "data: " + base64.StdEncoding.EncodeToString([]byte(secretKey)), []string{"base64 of Secret ns/keys key AWS_SECRET_ACCESS_KEY"}},
		{"base64 url-safe", "t=" + base64.RawURLEncoding.EncodeToString([]byte(secretKey)), []string{"base64 of Secret ns/keys key AWS_SECRET_ACCESS_KEY"}},
		{"near miss: a prefix of the secret", "key " + secretKey[:20], nil},
		{"near miss: the access key ID as the operator prints it", fmt.Sprint(bucket.StaticCredentials{AccessKeyID: keyID, SecretAccessKey: secretKey}), nil},
		{"JWT", "token " + jwt + " rejected", []string{"JWT"}},
		{"near miss: two segments", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0 is not a token", nil},
		{"near miss: eyJ alone", "eyJ", nil},
		{"presigned URL", "GET https://bkt.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + keyID + "%2F20260310%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20260310T090000Z&X-Amz-Signature=" + sig,
			[]string{"presigned URL parameter X-Amz-Credential", "presigned URL parameter X-Amz-Signature"}},
		{"session token parameter", "?X-Amz-Security-Token=IQoJb3JpZ2luX2VjEJr", []string{"session token (X-Amz-Security-Token)"}},
		{"session token header", "X-Amz-Security-Token: IQoJb3JpZ2luX2VjEJr", []string{"session token (X-Amz-Security-Token)"}},
		{"near miss: redacted by bucket's sanitizer", "https://bkt/k?REDACTED X-Amz-Signature=REDACTED X-Amz-Credential=REDACTED", nil},
		{"near miss: header names only", "the request lacks X-Amz-Signature and X-Amz-Security-Token", nil},
		{"SigV4 Authorization header", "Authorization: AWS4-HMAC-SHA256 Credential=" + keyID + "/20260310/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + sig,
			[]string{"SigV4 Authorization header"}},
		{"near miss: the algorithm's name", "SignatureDoesNotMatch: expected AWS4-HMAC-SHA256", nil},
		{"near miss: Signature redacted", "Authorization: AWS4-HMAC-SHA256 Credential=REDACTED, Signature=REDACTED", nil},
		{"bearer token", `Authorization: Bearer abcdefgh12345678`, []string{"bearer token"}},
		{"near miss: bearer redacted", `Authorization: Bearer REDACTED`, nil},
		{"PEM private key", "-----BEGIN RSA PRIVATE KEY-----\nMIIE", []string{"PEM private key"}},
		{"near miss: a certificate", "-----BEGIN CERTIFICATE-----\nMIIC", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := NewScanner(known...).Scan(Text{Name: "status of S3Source ns/src", Body: tc.body})
			var kinds []string
			for _, f := range got {
				kinds = append(kinds, f.Kind)
				if f.Text != "status of S3Source ns/src" {
					t.Errorf("finding names %q", f.Text)
				}
				for _, s := range []string{secretKey, jwt, sig, "IQoJb3JpZ2luX2VjEJr", "abcdefgh12345678"} {
					if strings.Contains(f.String(), s) {
						t.Errorf("finding %q quotes the secret", f)
					}
				}
			}
			if !reflect.DeepEqual(kinds, tc.want) {
				t.Errorf("kinds = %q, want %q", kinds, tc.want)
			}
		})
	}
}

func TestScannerIgnoresShortValues(t *testing.T) {
	for _, tc := range []struct {
		value   string
		secrets int
	}{
		{"", 0},
		{"1234567", 0},
		{"  1234567\n", 0}, // long only with its white space
		{"12345678", 1},
		{secretKey, 1},
	} {
		s := NewScanner(Secret{Name: "s", Value: tc.value})
		if s.Secrets() != tc.secrets {
			t.Errorf("%q: Secrets() = %d, want %d", tc.value, s.Secrets(), tc.secrets)
		}
		if n := len(s.Scan(Text{Name: "t", Body: "value 1234567 here"})); n != 0 {
			t.Errorf("%q: %d findings in innocent text", tc.value, n)
		}
	}
}

func TestIsPublicKey(t *testing.T) {
	for _, tc := range []struct {
		typ    corev1.SecretType
		key    string
		public bool
	}{
		{corev1.SecretTypeOpaque, "AWS_ACCESS_KEY_ID", true},
		{corev1.SecretTypeOpaque, "accessKeyID", true},
		{corev1.SecretTypeOpaque, "accesskey", true},
		{corev1.SecretTypeOpaque, "AWS_REGION", true},
		{corev1.SecretTypeOpaque, "externalID", true},
		{corev1.SecretTypeOpaque, "AWS_ROLE_ARN", true},
		{corev1.SecretTypeTLS, "tls.crt", true},
		{corev1.SecretTypeTLS, "ca.crt", true},
		{corev1.SecretTypeServiceAccountToken, "namespace", true},
		{corev1.SecretTypeOpaque, "namespace", false},
		{corev1.SecretTypeOpaque, "AWS_SECRET_ACCESS_KEY", false},
		{corev1.SecretTypeOpaque, "AWS_SESSION_TOKEN", false},
		{corev1.SecretTypeOpaque, "secretkey", false},
		{corev1.SecretTypeTLS, "tls.key", false},
		{corev1.SecretTypeServiceAccountToken, "token", false},
	} {
		if got := IsPublicKey(tc.typ, tc.key); got != tc.public {
			t.Errorf("IsPublicKey(%s, %s) = %v, want %v", tc.typ, tc.key, got, tc.public)
		}
	}
}
