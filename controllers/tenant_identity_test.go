package controllers_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/controllers"
	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/store/sqlite"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
)

// Namespaces of the identity tests (#8, guarantees 2 and 5). Only the admin labels them.
const (
	identityDenied  = "identity-denied"  // may not use the operator's identity
	identityAllowed = "identity-allowed" // labelled by the admin: may
	identityOther   = "identity-other"   // customer B: its own keys to its own bucket
	identitySA      = "identity-sa"      // ServiceAccount mode
)

// operatorKeys stand in for the operator's own identity (the AWS default chain) against
// MinIO: they are the process's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, which the
// default chain reads first, so a source without credentials of its own signs with them
// and bucket.Config still says "the operator's identity" (Credentials nil).
// They may read every bucket named identity-op-*, as a principal granted by many bucket
// policies would.
var operatorKeys *bucket.StaticCredentials

func setupOperatorIdentity() error {
	policy := []byte(`{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::identity-op-*"]},
		{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::identity-op-*/*"]}]}`)
	ak, sk, err := s3.CreateUserWithPolicy(policy)
	if err != nil {
		return fmt.Errorf("creating the operator's MinIO identity: %w", err)
	}
	operatorKeys = &bucket.StaticCredentials{AccessKeyID: ak, SecretAccessKey: sk}
	rememberSecret("the operator's own MinIO secret key", sk)
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": ak, "AWS_SECRET_ACCESS_KEY": sk} {
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}
	for _, k := range []string{"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		if err := os.Unsetenv(k); err != nil {
			return err
		}
	}
	return nil
}

// stsCall is what the operator asked STS, without any secret: the token is reduced to its
// subject and audience.
type stsCall struct {
	Action, RoleArn, ExternalID, SessionName string
	TokenSub                                 string
	TokenAud                                 []string
}

// stsRecorder keeps the STS calls made for each bucket's source.
type stsRecorder struct {
	mu    sync.Mutex
	calls map[string][]stsCall
}

var stsCalls = &stsRecorder{calls: map[string][]stsCall{}}

func (r *stsRecorder) of(bkt string) []stsCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]stsCall(nil), r.calls[bkt]...)
}

func (r *stsRecorder) wrap(bkt string, next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method == http.MethodPost && req.Body != nil && strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			body, err := io.ReadAll(req.Body)
			if err != nil {
				return nil, err
			}
			_ = req.Body.Close()
			req.Body = io.NopCloser(bytes.NewReader(body))
			if form, err := url.ParseQuery(string(body)); err == nil && form.Get("Action") != "" {
				call := stsCall{Action: form.Get("Action"), RoleArn: form.Get("RoleArn"), ExternalID: form.Get("ExternalId"), SessionName: form.Get("RoleSessionName")}
				call.TokenSub, call.TokenAud = jwtSubject(form.Get("WebIdentityToken"))
				r.mu.Lock()
				r.calls[bkt] = append(r.calls[bkt], call)
				r.mu.Unlock()
			}
		}
		return next.RoundTrip(req)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// jwtSubject reads the sub and aud claims of a JWT (unverified: the API server issued it).
func jwtSubject(token string) (string, []string) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", nil
	}
	var claims struct {
		Sub string   `json:"sub"`
		Aud []string `json:"aud"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return "", nil
	}
	return claims.Sub, claims.Aud
}

// labelNamespace sets (or with value "" removes) a namespace label, as the admin.
func labelNamespace(t *testing.T, ns, key, value string) {
	t.Helper()
	var obj corev1.Namespace
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: ns}, &obj); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(obj.DeepCopy())
	if obj.Labels == nil {
		obj.Labels = map[string]string{}
	}
	if value == "" {
		delete(obj.Labels, key)
	} else {
		obj.Labels[key] = value
	}
	if err := k8s.Patch(context.Background(), &obj, patch); err != nil {
		t.Fatal(err)
	}
}

func namespaceUID(t *testing.T, ns string) string {
	t.Helper()
	var obj corev1.Namespace
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: ns}, &obj); err != nil {
		t.Fatal(err)
	}
	return string(obj.UID)
}

// tenantSource creates an S3Source as the tenant of ns.
func tenantSource(t *testing.T, tenant client.Client, ns, name, bkt string, creds *v1.Credentials) *v1.S3Source {
	t.Helper()
	src := &v1.S3Source{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.S3SourceSpec{
			Bucket: bkt, Prefix: "in/", Endpoint: s3.Endpoint, ForcePathStyle: true, Region: minio.Region,
			Credentials: creds,
		},
	}
	if err := tenant.Create(context.Background(), src); err != nil {
		t.Fatalf("creating S3Source %s/%s as the tenant: %v", ns, name, err)
	}
	return src
}

// waitReady waits for the source's Ready condition to have status and reason.
func waitReady(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) *v1.S3Source {
	t.Helper()
	var got *v1.S3Source
	eventually(t, fmt.Sprintf("%s/%s Ready=%s/%s", ns, name, status, reason), func() error {
		got = getSource(t, ns, name)
		if c := condition(got, v1.ConditionReady); c.Status != status || c.Reason != reason {
			return fmt.Errorf("Ready = %s/%s %q", c.Status, c.Reason, c.Message)
		}
		return nil
	})
	return got
}

func wantStalled(t *testing.T, src *v1.S3Source, reason string, contains ...string) {
	t.Helper()
	c := condition(src, v1.ConditionStalled)
	if c.Status != metav1.ConditionTrue || c.Reason != reason {
		t.Errorf("Stalled = %s/%s %q, want True/%s", c.Status, c.Reason, c.Message, reason)
	}
	for _, s := range contains {
		if !strings.Contains(c.Message, s) {
			t.Errorf("Stalled message %q does not say %q", c.Message, s)
		}
	}
}

// The operator's own identity (provider Default, with or without assumeRole) works only in
// namespaces the admin labelled; elsewhere the source stalls before any S3 or STS request,
// even for a bucket the operator's identity can read. A label change re-reconciles.
func TestTenantOperatorIdentityOnlyInAllowedNamespaces(t *testing.T) {
	labelNamespace(t, identityAllowed, v1.OperatorIdentityLabel, "allowed")
	role := &v1.AssumeRole{RoleARN: "arn:aws:iam::123456789012:role/avon"}
	tests := []struct {
		name, ns, bucket string
		creds            *v1.Credentials
		allowed          bool
	}{
		{"default-denied", identityDenied, "identity-op-denied", nil, false},
		{"assume-role-denied", identityDenied, "identity-op-denied-role", &v1.Credentials{Provider: v1.CredentialsDefault, AssumeRole: role.DeepCopy()}, false},
		{"default-allowed", identityAllowed, "identity-op-allowed", &v1.Credentials{Provider: v1.CredentialsDefault}, true},
		{"assume-role-allowed", identityAllowed, "identity-op-allowed-role", &v1.Credentials{Provider: v1.CredentialsDefault, AssumeRole: role.DeepCopy()}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			createBucket(t, tt.bucket)
			put(t, tt.bucket, "in/a.json", jsonArray(t, conversation("agent-1", "id-"+tt.name, "2025-01-15T14:30:00Z", "x")))
			tenant := asTenant(t, tt.ns, "tenant-"+tt.ns)
			tenantSource(t, tenant, tt.ns, tt.name, tt.bucket, tt.creds)
			if !tt.allowed {
				got := waitReady(t, tt.ns, tt.name, metav1.ConditionFalse, v1.ReasonOperatorIdentityNotAllowed)
				wantStalled(t, got, v1.ReasonOperatorIdentityNotAllowed, "ServiceAccount", "Secret", "admin")
				if n := counts.of(tt.bucket).Total(); n != 0 || len(stsCalls.of(tt.bucket)) != 0 {
					t.Errorf("%d S3 request(s) and %d STS call(s) for a refused identity, want none", n, len(stsCalls.of(tt.bucket)))
				}
				if got.Status.ExternalID != "" {
					t.Errorf("status.externalID %q for a refused identity", got.Status.ExternalID)
				}
				return
			}
			got := waitReady(t, tt.ns, tt.name, metav1.ConditionTrue, v1.ReasonSucceeded)
			if got.Status.Files == nil || got.Status.Files.Ingested != 1 {
				t.Errorf("files %+v, want 1 ingested", got.Status.Files)
			}
			calls := stsCalls.of(tt.bucket)
			if tt.creds.AssumeRole == nil {
				if len(calls) != 0 || got.Status.ExternalID != "" {
					t.Errorf("no role: STS calls %+v, externalID %q; want none", calls, got.Status.ExternalID)
				}
				return
			}
			want := controllers.ExternalIDFor(namespaceUID(t, tt.ns))
			if got.Status.ExternalID != want {
				t.Errorf("status.externalID = %q, want %q", got.Status.ExternalID, want)
			}
			if len(calls) == 0 || calls[0].Action != "AssumeRole" || calls[0].ExternalID != want || calls[0].RoleArn != role.RoleARN {
				t.Errorf("STS calls %+v: want AssumeRole of %s with ExternalId %s", calls, role.RoleARN, want)
			}
		})
	}

	// The admin allows the denied namespace: its sources run, without a poke.
	labelNamespace(t, identityDenied, v1.OperatorIdentityLabel, "allowed")
	waitReady(t, identityDenied, "default-denied", metav1.ConditionTrue, v1.ReasonSucceeded)
	// And withdraws it again: the sources stall before their next run.
	labelNamespace(t, identityDenied, v1.OperatorIdentityLabel, "")
	waitReady(t, identityDenied, "default-denied", metav1.ConditionFalse, v1.ReasonOperatorIdentityNotAllowed)
}

// The external ID of a role assumed with the operator's identity is the operator's: the
// tenant cannot set it (the API server refuses the tenant's create and update), and the
// generated one is stable across reconciles.
func TestTenantCannotChooseExternalID(t *testing.T) {
	labelNamespace(t, identityAllowed, v1.OperatorIdentityLabel, "allowed")
	tenant := asTenant(t, identityAllowed, "tenant-"+identityAllowed)
	ctx := context.Background()
	const bkt = "identity-op-external-id"
	createBucket(t, bkt)
	put(t, bkt, "in/a.json", jsonArray(t, conversation("agent-1", "ext-1", "2025-01-15T14:30:00Z", "x")))

	chosen := &v1.S3Source{
		ObjectMeta: metav1.ObjectMeta{Namespace: identityAllowed, Name: "chosen-external-id"},
		Spec: v1.S3SourceSpec{Bucket: bkt, Prefix: "in/", Endpoint: s3.Endpoint, ForcePathStyle: true, Region: minio.Region,
			Credentials: &v1.Credentials{Provider: v1.CredentialsDefault,
				AssumeRole: &v1.AssumeRole{RoleARN: "arn:aws:iam::123456789012:role/avon", ExternalID: "dataimport-" + namespaceUID(t, identityOther)}}},
	}
	err := tenant.Create(ctx, chosen)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "the operator generates the external ID") {
		t.Fatalf("tenant's create with its own external ID: %v, want Invalid saying the operator generates it", err)
	}

	src := tenantSource(t, tenant, identityAllowed, "generated-external-id", bkt,
		&v1.Credentials{Provider: v1.CredentialsDefault, AssumeRole: &v1.AssumeRole{RoleARN: "arn:aws:iam::123456789012:role/avon"}})
	got := waitReady(t, identityAllowed, src.Name, metav1.ConditionTrue, v1.ReasonSucceeded)
	first := got.Status.ExternalID
	if first != controllers.ExternalIDFor(namespaceUID(t, identityAllowed)) {
		t.Fatalf("status.externalID = %q, want the namespace's", first)
	}

	// The tenant's update that adds an external ID is refused too.
	got.Spec.Credentials.AssumeRole.ExternalID = "chosen"
	if err := tenant.Update(ctx, got); !apierrors.IsInvalid(err) {
		t.Fatalf("tenant's update with its own external ID: %v, want Invalid", err)
	}

	// Reconciles (a poke, a refresh) keep the same external ID and send it again.
	before := len(stsCalls.of(bkt))
	poke(t, identityAllowed, src.Name)
	clk.Step(2 * time.Minute) // past the refresh cooldown
	start := clk.Now()
	setAnnotation(t, identityAllowed, src.Name, v1.RefreshAnnotation, "again")
	got = waitRun(t, identityAllowed, src.Name, start)
	if got.Status.ExternalID != first {
		t.Errorf("status.externalID changed from %q to %q", first, got.Status.ExternalID)
	}
	calls := stsCalls.of(bkt)
	if len(calls) <= before || calls[len(calls)-1].ExternalID != first {
		t.Errorf("the second run's STS calls %+v do not carry %q", calls[before:], first)
	}
}

// A bucket readable only through namespace B's identity (B's keys in B's Secret) stays out
// of reach of namespace A: references resolve in A, and the operator's identity is refused.
func TestTenantCannotReachAnotherNamespacesIdentity(t *testing.T) {
	ctx := context.Background()
	const bkt = "identity-b-only"
	createBucket(t, bkt)
	put(t, bkt, "in/b.json", jsonArray(t, conversation("agent-b", "b-1", "2025-01-15T14:30:00Z", "secret of B")))
	ak, sk, err := s3.CreateReadOnlyUser(bkt, "in/")
	if err != nil {
		t.Fatal(err)
	}
	tenantB := asTenant(t, identityOther, "tenant-"+identityOther)
	if err := tenantB.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: identityOther, Name: "b-keys"},
		StringData: map[string]string{controllers.SecretAccessKeyID: ak, controllers.SecretSecretAccessKey: sk}}); err != nil {
		t.Fatal(err)
	}
	if err := tenantB.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: identityOther, Name: "b-reader",
		Annotations: map[string]string{v1.ServiceAccountRoleAnnotation: "arn:aws:iam::123456789012:role/b-reader"}}}); err != nil {
		t.Fatal(err)
	}
	// B itself reads its bucket.
	tenantSource(t, tenantB, identityOther, "own", bkt, &v1.Credentials{Provider: v1.CredentialsSecret, SecretRef: &v1.LocalObjectReference{Name: "b-keys"}})
	waitReady(t, identityOther, "own", metav1.ConditionTrue, v1.ReasonSucceeded)
	bRequests := counts.of(bkt).Total()

	tenantA := asTenant(t, identityDenied, "tenant-"+identityDenied)
	if err := tenantA.Get(ctx, client.ObjectKey{Namespace: identityOther, Name: "b-keys"}, &corev1.Secret{}); !apierrors.IsForbidden(err) {
		t.Errorf("tenant A reading B's Secret: %v, want Forbidden", err)
	}
	tests := []struct {
		name   string
		creds  *v1.Credentials
		reason string
	}{
		{"b-secret", &v1.Credentials{Provider: v1.CredentialsSecret, SecretRef: &v1.LocalObjectReference{Name: "b-keys"}}, v1.ReasonSecretNotFound},
		{"b-service-account", &v1.Credentials{Provider: v1.CredentialsServiceAccount, ServiceAccountName: "b-reader"}, v1.ReasonServiceAccountNotFound},
		{"operator-identity", nil, v1.ReasonOperatorIdentityNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tenantSource(t, tenantA, identityDenied, tt.name, bkt, tt.creds)
			got := waitReady(t, identityDenied, tt.name, metav1.ConditionFalse, tt.reason)
			wantStalled(t, got, tt.reason, identityDenied) // the source's own namespace
		})
	}
	if n := counts.of(bkt).Total(); n != bRequests {
		t.Errorf("namespace A's sources made %d request(s) to B's bucket, want none", n-bRequests)
	}
	for _, c := range stsCalls.of(bkt) {
		t.Errorf("STS call for B's bucket: %+v", c)
	}
}

// A quotaRef is a local name too: namespace A naming B's IngestionQuota gets A's own
// (here none: the defaults), never B's limits or usage.
func TestTenantQuotaRefStaysInItsNamespace(t *testing.T) {
	ctx := context.Background()
	createQuota(t, identityOther, "b-quota", v1.IngestionQuotaSpec{}) // as the admin
	tenantA := asTenant(t, identityDenied, "tenant-"+identityDenied)
	if err := tenantA.Get(ctx, client.ObjectKey{Namespace: identityOther, Name: "b-quota"}, &v1.IngestionQuota{}); !apierrors.IsForbidden(err) {
		t.Errorf("tenant A reading B's IngestionQuota: %v, want Forbidden", err)
	}
	const bkt = "identity-quota-ref"
	createBucket(t, bkt)
	ak, sk, err := s3.CreateReadOnlyUser(bkt, "in/")
	if err != nil {
		t.Fatal(err)
	}
	if err := tenantA.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: identityDenied, Name: "quota-ref-keys"},
		StringData: map[string]string{controllers.SecretAccessKeyID: ak, controllers.SecretSecretAccessKey: sk}}); err != nil {
		t.Fatal(err)
	}
	src := &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: identityDenied, Name: "quota-ref"},
		Spec: v1.S3SourceSpec{Bucket: bkt, Prefix: "in/", Endpoint: s3.Endpoint, ForcePathStyle: true, Region: minio.Region, QuotaRef: "b-quota",
			Credentials: &v1.Credentials{Provider: v1.CredentialsSecret, SecretRef: &v1.LocalObjectReference{Name: "quota-ref-keys"}}}}
	if err := tenantA.Create(ctx, src); err != nil {
		t.Fatal(err)
	}
	// The name resolves in A, where it does not exist: the source stalls (a quota other
	// than "default" never falls back to the defaults), B's quota is never read.
	eventually(t, "Stalled=True/QuotaNotFound", func() error {
		c := condition(getSource(t, identityDenied, src.Name), v1.ConditionStalled)
		if c.Reason != v1.ReasonQuotaNotFound || !strings.Contains(c.Message, "IngestionQuota "+identityDenied+"/b-quota named by spec.quotaRef does not exist") {
			return fmt.Errorf("Stalled = %s/%s %q", c.Status, c.Reason, c.Message)
		}
		return nil
	})
}

// The operator does not watch Secrets (it may only get them): a source stalled on a
// missing Secret looks again on its own and runs once the tenant created it.
func TestTenantSecretFixedWithoutWatch(t *testing.T) {
	ctx := context.Background()
	const bkt = "identity-secret-later"
	createBucket(t, bkt)
	put(t, bkt, "in/a.json", jsonArray(t, conversation("agent-1", "later-1", "2025-01-15T14:30:00Z", "x")))
	tenant := asTenant(t, identityOther, "tenant-"+identityOther)
	tenantSource(t, tenant, identityOther, "secret-later", bkt, &v1.Credentials{Provider: v1.CredentialsSecret, SecretRef: &v1.LocalObjectReference{Name: "later-keys"}})
	got := waitReady(t, identityOther, "secret-later", metav1.ConditionFalse, v1.ReasonSecretNotFound)
	wantStalled(t, got, v1.ReasonSecretNotFound, "checks again every")

	ak, sk, err := s3.CreateReadOnlyUser(bkt, "in/")
	if err != nil {
		t.Fatal(err)
	}
	if err := tenant.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: identityOther, Name: "later-keys"},
		StringData: map[string]string{controllers.SecretAccessKeyID: ak, controllers.SecretSecretAccessKey: sk}}); err != nil {
		t.Fatal(err)
	}
	// No poke, no clock step, no watch: the re-check finds it.
	got = waitReady(t, identityOther, "secret-later", metav1.ConditionTrue, v1.ReasonSucceeded)
	if c := condition(got, v1.ConditionStalled); c.Status != "Absent" {
		t.Errorf("still stalled: %s", c.Message)
	}
	// The re-checks queued while it was stalled do not start a second discovery from a
	// cached status that still says SecretNotFound.
	time.Sleep(2 * time.Second) // two re-check periods of the suite
	if n := counts.of(bkt).Count(bucket.OpListObjectsV2); n != 1 {
		t.Errorf("%d listings, want the one discovery", n)
	}
}

// ServiceAccount mode up to STS on real parts: the reconciler checks the ServiceAccount
// and its role annotation in the source's namespace, requests a real token (TokenRequest
// on the envtest API server) for that ServiceAccount and audience sts.amazonaws.com, and
// sends it to STS AssumeRoleWithWebIdentity. MinIO's STS trusts the issuer but no policy
// is named by this ServiceAccount's subject, as an IAM role whose trust policy names
// another ServiceAccount: STS refuses, and the refusal lands in status without the token.
func TestTenantServiceAccountUpToSTS(t *testing.T) {
	ctx := context.Background()
	tenant := asTenant(t, identitySA, "tenant-"+identitySA)
	for name, arn := range map[string]string{"no-annotation": "", "bad-annotation": "not-an-arn", "reader": "arn:aws:iam::123456789012:role/sa-reader"} {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: identitySA, Name: name}}
		if arn != "" {
			sa.Annotations = map[string]string{v1.ServiceAccountRoleAnnotation: arn}
		}
		if err := tenant.Create(ctx, sa); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, sa, reason string
		contains         string
		toSTS            bool
	}{
		{"missing-sa", "nobody", v1.ReasonServiceAccountNotFound, "ServiceAccount " + identitySA + "/nobody", false},
		{"sa-without-role", "no-annotation", v1.ReasonInvalidServiceAccount, "has no " + v1.ServiceAccountRoleAnnotation, false},
		{"sa-with-bad-role", "bad-annotation", v1.ReasonInvalidServiceAccount, "is not an IAM role ARN", false},
		{"sa-refused-by-sts", "reader", "", "AssumeRoleWithWebIdentity", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bkt := "identity-sa-" + tt.name
			createBucket(t, bkt)
			tenantSource(t, tenant, identitySA, tt.name, bkt, &v1.Credentials{Provider: v1.CredentialsServiceAccount, ServiceAccountName: tt.sa})
			var got *v1.S3Source
			eventually(t, "Ready=False", func() error {
				got = getSource(t, identitySA, tt.name)
				c := condition(got, v1.ConditionReady)
				if c.Status != metav1.ConditionFalse || (tt.reason != "" && c.Reason != tt.reason) || !strings.Contains(c.Message, tt.contains) {
					return fmt.Errorf("Ready = %s/%s %q", c.Status, c.Reason, c.Message)
				}
				return nil
			})
			msg := condition(got, v1.ConditionReady).Message
			if strings.Contains(msg, "eyJ") {
				t.Errorf("status carries a token: %q", msg)
			}
			calls := stsCalls.of(bkt)
			if !tt.toSTS {
				if len(calls) != 0 || counts.of(bkt).Total() != 0 {
					t.Errorf("STS calls %+v and %d request(s) before the ServiceAccount is usable", calls, counts.of(bkt).Total())
				}
				return
			}
			if len(calls) == 0 {
				t.Fatal("no STS call")
			}
			c := calls[0]
			wantSub := "system:serviceaccount:" + identitySA + ":" + tt.sa
			if c.Action != "AssumeRoleWithWebIdentity" || c.RoleArn != "arn:aws:iam::123456789012:role/sa-reader" ||
				c.TokenSub != wantSub || len(c.TokenAud) != 1 || c.TokenAud[0] != controllers.DefaultSTSAudience ||
				c.SessionName != "dataimport@"+identitySA+"."+tt.name {
				t.Errorf("STS call %+v: want AssumeRoleWithWebIdentity of the annotated role with a token of %s for audience %s", c, wantSub, controllers.DefaultSTSAudience)
			}
			for _, e := range events(t, identitySA, tt.name, "DiscoveryFailed") {
				if strings.Contains(e.Note, "eyJ") {
					t.Errorf("event carries a token: %q", e.Note)
				}
			}
		})
	}
}

// ServiceAccount mode end to end: MinIO's STS verifies the API server's token against the
// issuer's published keys and maps its subject to a policy, as an IAM trust policy on
// system:serviceaccount:<namespace>:<name> does. Namespace identity-sa's ServiceAccount
// reads its own bucket and nothing of namespace identity-other's; no Secret and not the
// operator's identity is involved.
func TestTenantServiceAccountReadsOnlyItsOwnBucket(t *testing.T) {
	ctx := context.Background()
	const role = "arn:aws:iam::123456789012:role/data-import-reader"
	buckets := map[string]string{identitySA: "identity-wi-a", identityOther: "identity-wi-b"}
	for ns, bkt := range buckets {
		createBucket(t, bkt)
		put(t, bkt, "in/a.json", jsonArray(t, conversation("agent-1", "wi-"+ns, "2025-01-15T14:30:00Z", "x")))
		// The admin's trust: this namespace's ServiceAccount may read this bucket.
		if err := s3.AddPolicy("system:serviceaccount:"+ns+":wi-reader", minio.ReadOnlyPolicy(bkt, "in/")); err != nil {
			t.Fatal(err)
		}
		tenant := asTenant(t, ns, "tenant-"+ns)
		if err := tenant.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wi-reader",
			Annotations: map[string]string{v1.ServiceAccountRoleAnnotation: role}}}); err != nil {
			t.Fatal(err)
		}
	}
	tenantA := asTenant(t, identitySA, "tenant-"+identitySA)
	sa := &v1.Credentials{Provider: v1.CredentialsServiceAccount, ServiceAccountName: "wi-reader"}
	tests := []struct {
		name, bucket, reason string
	}{
		{"wi-own-bucket", buckets[identitySA], v1.ReasonSucceeded},
		{"wi-other-bucket", buckets[identityOther], v1.ReasonAccessDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counts.of(tt.bucket).Count(bucket.OpGetObject)
			tenantSource(t, tenantA, identitySA, tt.name, tt.bucket, sa.DeepCopy())
			if tt.reason == v1.ReasonSucceeded {
				got := waitReady(t, identitySA, tt.name, metav1.ConditionTrue, v1.ReasonSucceeded)
				if got.Status.Files == nil || got.Status.Files.Ingested != 1 {
					t.Errorf("files %+v, want 1 ingested", got.Status.Files)
				}
			} else {
				got := waitReady(t, identitySA, tt.name, metav1.ConditionFalse, tt.reason)
				if strings.Contains(condition(got, v1.ConditionReady).Message, "eyJ") {
					t.Errorf("status carries a token")
				}
				if n := counts.of(tt.bucket).Count(bucket.OpGetObject) - before; n != 0 {
					t.Errorf("%d object(s) of namespace B's bucket read with A's ServiceAccount", n)
				}
			}
			calls := stsCalls.of(tt.bucket)
			if len(calls) == 0 || calls[0].Action != "AssumeRoleWithWebIdentity" || calls[0].TokenSub != "system:serviceaccount:"+identitySA+":wi-reader" {
				t.Errorf("STS calls %+v: want AssumeRoleWithWebIdentity with identity-sa's token", calls)
			}
		})
	}
}

// Whatever the identity tests above did, no status or event of their namespaces carries a
// token, the operator's keys or another tenant's keys.
func TestTenantIdentityStatusAndEventsCarryNoSecret(t *testing.T) {
	secrets := []string{"eyJ", operatorKeys.SecretAccessKey}
	for _, ns := range []string{identityDenied, identityAllowed, identityOther, identitySA} {
		var keys corev1.SecretList
		if err := k8s.List(context.Background(), &keys, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys.Items {
			if v := string(k.Data[controllers.SecretSecretAccessKey]); v != "" {
				secrets = append(secrets, v)
			}
		}
	}
	for _, ns := range []string{identityDenied, identityAllowed, identityOther, identitySA} {
		var sources v1.S3SourceList
		if err := k8s.List(context.Background(), &sources, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		var texts []string
		for _, src := range sources.Items {
			b, err := json.Marshal(src.Status)
			if err != nil {
				t.Fatal(err)
			}
			texts = append(texts, string(b))
		}
		for _, e := range eventsIn(t, ns) {
			texts = append(texts, e)
		}
		for _, text := range texts {
			for _, secret := range secrets {
				if strings.Contains(text, secret) {
					t.Errorf("namespace %s: status or event carries a secret (%.3s...): %s", ns, secret, text)
				}
			}
		}
		if len(sources.Items) > 0 && testing.Verbose() {
			for _, src := range sources.Items {
				t.Logf("%s/%s: %s", ns, src.Name, condition(&src, v1.ConditionReady).Message)
			}
		}
	}
}

func eventsIn(t *testing.T, ns string) []string {
	t.Helper()
	var list eventsv1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Reason+" "+e.Note)
	}
	return out
}

// The operator works with exactly the permissions config/rbac gives it: a second manager
// acts as a user bound only to the generated manager-role (secrets and ServiceAccounts:
// get; serviceaccounts/token: create; no list/watch on either) and runs a source of each
// identity mode, including a Secret created after its source.
func TestTenantManagerNeedsNoListOrWatchOnSecrets(t *testing.T) {
	const ns = "identity-rbac"
	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{v1.OperatorIdentityLabel: "allowed"}}}); err != nil {
		t.Fatal(err)
	}
	tenant := asTenant(t, ns, "tenant-"+ns) // also installs config/rbac's ClusterRoles
	const operator = "data-import-manager"
	if err := k8s.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "test-" + operator},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "manager-role"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: operator}}}); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: operator, Groups: []string{"system:authenticated"}}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stop, err := startManagerWith(ctx, cfg, st, []string{ns}, suiteCeilings)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	buckets := map[string]string{"rbac-secret": "identity-rbac-secret", "rbac-sa": "identity-rbac-sa", "rbac-default": "identity-op-rbac"}
	for name, bkt := range buckets {
		createBucket(t, bkt)
		put(t, bkt, "in/a.json", jsonArray(t, conversation("agent-1", name, "2025-01-15T14:30:00Z", "x")))
	}
	if err := s3.AddPolicy("system:serviceaccount:"+ns+":reader", minio.ReadOnlyPolicy(buckets["rbac-sa"], "in/")); err != nil {
		t.Fatal(err)
	}
	if err := tenant.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reader",
		Annotations: map[string]string{v1.ServiceAccountRoleAnnotation: "arn:aws:iam::123456789012:role/reader"}}}); err != nil {
		t.Fatal(err)
	}
	tenantSource(t, tenant, ns, "rbac-secret", buckets["rbac-secret"], &v1.Credentials{Provider: v1.CredentialsSecret, SecretRef: &v1.LocalObjectReference{Name: "keys"}})
	tenantSource(t, tenant, ns, "rbac-sa", buckets["rbac-sa"], &v1.Credentials{Provider: v1.CredentialsServiceAccount, ServiceAccountName: "reader"})
	tenantSource(t, tenant, ns, "rbac-default", buckets["rbac-default"], nil)
	waitReady(t, ns, "rbac-secret", metav1.ConditionFalse, v1.ReasonSecretNotFound)
	ak, sk, err := s3.CreateReadOnlyUser(buckets["rbac-secret"], "in/")
	if err != nil {
		t.Fatal(err)
	}
	if err := tenant.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "keys"},
		StringData: map[string]string{controllers.SecretAccessKeyID: ak, controllers.SecretSecretAccessKey: sk}}); err != nil {
		t.Fatal(err)
	}
	for name := range buckets {
		got := waitReady(t, ns, name, metav1.ConditionTrue, v1.ReasonSucceeded)
		if got.Status.Files == nil || got.Status.Files.Ingested != 1 {
			t.Errorf("%s: files %+v, want 1 ingested", name, got.Status.Files)
		}
	}
}
