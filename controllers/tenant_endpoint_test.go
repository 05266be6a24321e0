package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/controllers"
	"github.com/avon-ai/data-import-operator/internal/bucket"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
)

// Guarantee 3 of docs/multi-tenancy.md, acting as a tenant (the built-in edit role in its
// namespace): the operator connects only where the platform admin allowed. The suite's
// policy (suitePolicy) allows MinIO by its address, and two "localhost" endpoints so that
// the dial guard, not the allow-list, has to refuse them.
func TestTenantEndpointIsRefusedUnlessAllowed(t *testing.T) {
	const ns = "tenant-endpoint-a"
	ctx := context.Background()
	tenant := asTenant(t, ns, "user")
	// The admin allows this namespace the operator's identity, so what refuses the
	// operator-identity case below is the endpoint policy, not the namespace selector.
	labelNamespace(t, ns, v1.OperatorIdentityLabel, "allowed")
	createBucket(t, "tenant-endpoint")
	put(t, "tenant-endpoint", "in/a.json", jsonArray(t, conversation("agent-1", "te-1", "2025-01-15T14:30:00Z", "hello")))
	ak, sk, err := s3.CreateReadOnlyUser("tenant-endpoint", "in/")
	if err != nil {
		t.Fatal(err)
	}
	// The tenant's own keys, in its own namespace.
	if err := tenant.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "keys"},
		StringData: map[string]string{controllers.SecretAccessKeyID: ak, controllers.SecretSecretAccessKey: sk}}); err != nil {
		t.Fatal(err)
	}
	apiPort, minioPort := portOf(env.Config.Host), portOf(s3.Endpoint)
	withKeys := &v1.Credentials{Provider: v1.CredentialsSecret, SecretRef: &v1.LocalObjectReference{Name: "keys"}}
	operatorIdentity := &v1.Credentials{Provider: v1.CredentialsDefault}

	tests := []struct {
		name     string
		endpoint string
		creds    *v1.Credentials
		reason   string // "" means it works
		message  string
		dialed   bool // on the allow-list: the dial guard refuses it (one attempt, no retry)
	}{
		{"metadata", "http://169.254.169.254", withKeys, v1.ReasonEndpointNotAllowed, bucket.EndpointNotAllowedMessage, false},
		{"apiserver", "https://127.0.0.1:" + apiPort, withKeys, v1.ReasonEndpointNotAllowed, bucket.EndpointNotAllowedMessage, false},
		{"apiserver-by-name", "https://localhost:" + apiPort, withKeys, v1.ReasonEndpointNotAllowed, bucket.EndpointNotAllowedMessage, true},
		// MinIO itself, but reached through a name: the guard refuses loopback by address.
		{"loopback-name", "http://localhost:" + minioPort, withKeys, v1.ReasonEndpointNotAllowed, bucket.EndpointNotAllowedMessage, true},
		{"not-listed-port", "http://localhost:1", withKeys, v1.ReasonEndpointNotAllowed, bucket.EndpointNotAllowedMessage, false},
		{"not-listed-host", "https://s3.attacker.example", withKeys, v1.ReasonEndpointNotAllowed, bucket.EndpointNotAllowedMessage, false},
		// Allowed for sources' own keys, but not for the operator's identity.
		{"operator-identity", "http://localhost:" + minioPort, operatorIdentity, v1.ReasonOperatorIdentityEndpointNotAllowed, bucket.OperatorIdentityEndpointNotAllowedMessage, false},
		{"allowed", s3.Endpoint, withKeys, "", "", false},
	}
	for _, tt := range tests {
		src := &v1.S3Source{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: tt.name},
			Spec: v1.S3SourceSpec{
				// One bucket name per source, so the suite's transport counts its requests.
				Bucket: "te-" + tt.name, Prefix: "in/", Endpoint: tt.endpoint, ForcePathStyle: true, Region: minio.Region,
				Credentials: tt.creds,
			},
		}
		if tt.reason == "" {
			src.Spec.Bucket = "tenant-endpoint"
		}
		if err := tenant.Create(ctx, src); err != nil {
			t.Fatalf("the tenant creating %s: %v", tt.name, err)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *v1.S3Source
			if tt.reason == "" {
				got = waitReadyReason(t, ns, tt.name, v1.ReasonSucceeded)
				if got.Status.Files == nil || got.Status.Files.Ingested != 1 {
					t.Fatalf("files %+v, want 1 ingested through the allowed endpoint", got.Status.Files)
				}
				return
			}
			got = waitReadyReason(t, ns, tt.name, tt.reason)
			for _, typ := range []string{v1.ConditionReady, v1.ConditionStalled} {
				c := condition(got, typ)
				if c.Reason != tt.reason || c.Message != tt.message {
					t.Errorf("%s = %s/%s %q, want %s and exactly %q", typ, c.Status, c.Reason, c.Message, tt.reason, tt.message)
				}
			}
			wantKstatus(t, got, kstatus.FailedStatus)
			want := 0
			if tt.dialed {
				want = 1
			}
			if n := counts.of("te-" + tt.name).Count(bucket.OpListObjectsV2); n != want {
				t.Errorf("%d ListObjectsV2 attempt(s), want %d (refused before the client, or refused at dial time without retry)", n, want)
			}
			assertNoEcho(t, got, tt.endpoint)
		})
	}
}

// waitReadyReason waits for the Ready condition's reason, whatever its status.
func waitReadyReason(t *testing.T, ns, name, reason string) *v1.S3Source {
	t.Helper()
	var got *v1.S3Source
	eventually(t, ns+"/"+name+" Ready reason "+reason, func() error {
		got = getSource(t, ns, name)
		if c := condition(got, v1.ConditionReady); c.Reason != reason {
			return fmt.Errorf("Ready = %s/%s %q", c.Status, c.Reason, c.Message)
		}
		return nil
	})
	return got
}

// assertNoEcho checks that nothing the tenant can read about src (its status, the events
// about it) names the target or carries what it could have answered: the API server's
// refusals, cloud metadata, addresses.
func assertNoEcho(t *testing.T, src *v1.S3Source, endpoint string) {
	t.Helper()
	status, err := json.Marshal(src.Status)
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{string(status)}
	var list corev1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(src.Namespace)); err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if e.InvolvedObject.Name == src.Name {
			texts = append(texts, e.Reason+" "+e.Message)
		}
	}
	for _, e := range events(t, src.Namespace, src.Name, "DiscoveryFailed") {
		t.Errorf("event %s %q: a refused target leaves no event, like one refused before any run", e.Reason, e.Note)
	}
	host := strings.TrimPrefix(strings.TrimPrefix(endpoint, "http://"), "https://")
	for _, text := range texts {
		for _, bait := range []string{host, "169.254", "127.0.0.1", "localhost", "attacker", "forbidden", "Forbidden",
			"Unauthorized", "anonymous", "system:", "apiVersion", "refused", "reset", "certificate", "tls", "TLS"} {
			if strings.Contains(text, bait) {
				t.Errorf("%q appears in what the tenant reads: %s", bait, text)
			}
		}
	}
}

// The bucket package's policy reasons are the API's condition reasons, unchanged.
func TestTenantEndpointReasonsAreAPIReasons(t *testing.T) {
	for bucketReason, apiReason := range map[string]string{
		bucket.ReasonEndpointNotAllowed:                 v1.ReasonEndpointNotAllowed,
		bucket.ReasonOperatorIdentityEndpointNotAllowed: v1.ReasonOperatorIdentityEndpointNotAllowed,
		bucket.ReasonInvalidResponse:                    v1.ReasonInvalidResponse,
	} {
		if bucketReason != apiReason {
			t.Errorf("bucket reason %q is API reason %q", bucketReason, apiReason)
		}
	}
}
