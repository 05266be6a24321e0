package bucket

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

const (
	secretKey    = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	sessionToken = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
	jwtToken     = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YTpiIn0.c2lnbmF0dXJlLXBhcnQ"
	presigned    = "https://b.s3.amazonaws.com/conversations/a.json?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=d1e2a3d4b5e6e7f8&X-Amz-Security-Token=" + sessionToken
)

var testOp = operation{name: opReading, bucket: "b", path: "conversations/a.json", region: "us-east-1", secrets: []string{secretKey, sessionToken}}

func TestErrorsNeverCarrySecrets(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"presigned URL in a url.Error", &url.Error{Op: "Get", URL: presigned, Err: errors.New("connection reset by peer")}},
		{"presigned URL in text", fmt.Errorf("fetching %s failed", presigned)},
		{"secret echoed by a server", &smithy.GenericAPIError{Code: "InternalError", Message: "bad key " + secretKey}},
		{"authorization header", fmt.Errorf("request had Authorization: AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=d1e2a3d4b5e6e7f8")},
		{"session token in text", fmt.Errorf("token %s expired", sessionToken)},
		{"ServiceAccount token echoed", &smithy.GenericAPIError{Code: "InvalidIdentityToken", Message: "cannot verify " + jwtToken}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := classify(context.Background(), testOp, fmt.Errorf("op: %w", tc.err))
			var be *Error
			if !errors.As(err, &be) {
				t.Fatalf("%T is not *Error", err)
			}
			// Everything someone might log: the error, its message, and the raw cause.
			for _, s := range []string{err.Error(), be.Message, fmt.Sprintf("%v", be.Err)} {
				for _, leak := range []string{secretKey, sessionToken, "d1e2a3d4b5e6e7f8", "X-Amz-Credential=AKIA", "c2lnbmF0dXJlLXBhcnQ", "eyJzdWIi"} {
					if strings.Contains(s, leak) {
						t.Errorf("%q leaks %q", s, leak)
					}
				}
			}
		})
	}
}

func TestSanitizeKeepsUsefulText(t *testing.T) {
	in := `Get "http://127.0.0.1:9000/data?list-type=2&prefix=conversations%2F": dial tcp 127.0.0.1:9000: connect: connection refused`
	want := `Get "http://127.0.0.1:9000/data?REDACTED": dial tcp 127.0.0.1:9000: connect: connection refused`
	if got := sanitize(in); got != want {
		t.Errorf("sanitize = %q, want %q", got, want)
	}
}

// responseError builds the error the SDK returns for an HTTP answer with an API error code.
func responseError(status int, code string, header http.Header) error {
	resp := &http.Response{StatusCode: status, Header: header}
	var cause error = &smithy.GenericAPIError{Code: code, Message: "server says " + code}
	if code == "" {
		cause = errors.New("no body")
	}
	return &smithy.OperationError{ServiceID: "S3", OperationName: "GetObject", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: resp}, Err: cause},
	}}
}

func TestClassifyServiceAnswers(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantReason string
		wantIn     string
	}{
		{"expired token", responseError(400, "ExpiredToken", nil), ReasonInvalidCredentials, "session token is expired"},
		{"unknown key", responseError(403, "InvalidAccessKeyId", nil), ReasonInvalidCredentials, "access key ID"},
		{"bad signature", responseError(403, "SignatureDoesNotMatch", nil), ReasonInvalidCredentials, "secret access key"},
		{"access denied on get", responseError(403, "AccessDenied", nil), ReasonAccessDenied, "s3:GetObject on arn:aws:s3:::b/<prefix>*"},
		{"bare 403 (HEAD-like, no body)", responseError(403, "", nil), ReasonAccessDenied, "trailing slash"},
		{"wrong region", responseError(301, "PermanentRedirect", http.Header{"X-Amz-Bucket-Region": {"eu-west-1"}}), ReasonWrongRegion, "set the region to eu-west-1"},
		{"precondition", responseError(412, "PreconditionFailed", nil), ReasonObjectChanged, "replaced while being read"},
		{"no such key", responseError(404, "NoSuchKey", nil), ReasonObjectNotFound, "deleted after it was listed"},
		{"503 without code", responseError(503, "", nil), ReasonThrottled, "HTTP 503"},
		{"internal error", responseError(500, "InternalError", nil), ReasonS3Error, "HTTP 500"},
		{"credentials chain empty", &credentialsError{err: errors.New("no EC2 IMDS role found")}, ReasonInvalidCredentials, "workload identity"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := classify(context.Background(), testOp, tc.err)
			if got := ReasonOf(err); got != tc.wantReason {
				t.Fatalf("reason %q, want %q (%v)", got, tc.wantReason, err)
			}
			if !strings.Contains(err.Error(), tc.wantIn) {
				t.Fatalf("%q does not contain %q", err.Error(), tc.wantIn)
			}
			if !errors.Is(err, tc.err) {
				t.Error("the cause is not kept for errors.Is")
			}
		})
	}
}

func TestClassifyWebIdentity(t *testing.T) {
	op := operation{name: opListing, bucket: "b", path: "p/", region: "us-east-1", role: "arn:aws:iam::123456789012:role/r", webIdentity: "ServiceAccount ns/sa"}
	apiErr := func(code string) error {
		return &credentialsError{err: &smithy.OperationError{ServiceID: "STS", OperationName: "AssumeRoleWithWebIdentity",
			Err: &smithy.GenericAPIError{Code: code, Message: "token " + jwtToken + " refused"}}}
	}
	tests := []struct {
		name       string
		err        error
		wantReason string
		wantIn     string
	}{
		{"trust policy refuses", apiErr("AccessDenied"), ReasonAccessDenied, "role's trust policy allows this identity"},
		{"bad token", apiErr("InvalidIdentityToken"), ReasonAccessDenied, "ServiceAccount ns/sa was refused (InvalidIdentityToken)"},
		{"claims refused", apiErr("IDPRejectedClaim"), ReasonAccessDenied, "sts.amazonaws.com"},
		{"throttled", apiErr("Throttling"), ReasonThrottled, "the next run retries"},
		{"other code", apiErr("InvalidParameterValue"), ReasonInvalidCredentials, "failed (InvalidParameterValue)"},
		{"no token", &credentialsError{err: &tokenError{err: errors.New(`serviceaccounts "sa" not found`)}}, ReasonInvalidCredentials, "could not obtain a token for ServiceAccount ns/sa"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := classify(context.Background(), op, tc.err)
			if got := ReasonOf(err); got != tc.wantReason {
				t.Fatalf("reason %q, want %q (%v)", got, tc.wantReason, err)
			}
			if !strings.Contains(err.Error(), tc.wantIn) {
				t.Fatalf("%q does not contain %q", err.Error(), tc.wantIn)
			}
			var be *Error
			errors.As(err, &be)
			for _, text := range []string{err.Error(), fmt.Sprintf("%v", be.Err)} {
				if strings.Contains(text, "c2lnbmF0dXJlLXBhcnQ") {
					t.Errorf("%q carries the token", text)
				}
			}
		})
	}
}
