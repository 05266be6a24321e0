package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
)

// sampleFiles are the YAML samples of config/samples (not its data/ directory of
// conversation files, nor the kustomization).
func sampleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(repoPath(t, "config/samples/*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		t.Fatal("no samples in config/samples")
	}
	return out
}

// decodeSample decodes every document of a sample strictly (unknown or duplicate fields
// are errors) into the Go types of the operator's scheme.
func decodeSample(t *testing.T, decoder runtime.Decoder, file string) []runtime.Object {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := decodeDocs(data)
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(file), err)
	}
	var objs []runtime.Object
	for i, doc := range docs {
		raw, err := doc.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := decoder.Decode(raw, nil, nil)
		if err != nil {
			t.Fatalf("%s, document %d: %v", filepath.Base(file), i+1, err)
		}
		objs = append(objs, obj)
	}
	return objs
}

// Each sample named dataimport_v1alpha1_<kind>[_variant].yaml holds one object of that kind
// (plus, for credentials, the Secret it names, with placeholder values only), and together
// the samples show every credentials mode.
func TestSamples(t *testing.T) {
	decoder := serializer.NewCodecFactory(newScheme(t), serializer.EnableStrict).UniversalDeserializer()
	var sources []*v1.S3Source
	secrets := map[string]*corev1.Secret{}
	serviceAccounts := map[string]*corev1.ServiceAccount{}
	var quotas []*v1.IngestionQuota
	for _, file := range sampleFiles(t) {
		base := filepath.Base(file)
		kind, ok := strings.CutPrefix(strings.TrimSuffix(base, ".yaml"), "dataimport_v1alpha1_")
		if !ok {
			t.Errorf("%s: sample names start with dataimport_v1alpha1_<kind>", base)
			continue
		}
		kind, _, _ = strings.Cut(kind, "_")
		ofItsKind := 0
		for _, obj := range decodeSample(t, decoder, file) {
			switch o := obj.(type) {
			case *v1.S3Source:
				sources = append(sources, o)
				ofItsKind += count(kind == "s3source")
			case *corev1.ServiceAccount:
				serviceAccounts[o.Name] = o
			case *v1.IngestionQuota:
				quotas = append(quotas, o)
				ofItsKind += count(kind == "ingestionquota")
			case *corev1.Secret:
				secrets[o.Name] = o
				for k, v := range o.StringData {
					if !strings.Contains(v, "REPLACE") {
						t.Errorf("%s: Secret %s key %s must hold an obvious placeholder (REPLACE-...), not a value", base, o.Name, k)
					}
				}
				if len(o.Data) != 0 {
					t.Errorf("%s: Secret %s uses data; write placeholders in stringData", base, o.Name)
				}
			default:
				t.Errorf("%s: unexpected %T in a sample", base, obj)
			}
		}
		if ofItsKind != 1 {
			t.Errorf("%s holds %d object(s) of kind %q, want 1", base, ofItsKind, kind)
		}
	}

	if len(quotas) != 1 || quotas[0].Name != "default" {
		t.Errorf("want one IngestionQuota named default (the quotaRef default), got %d", len(quotas))
	}
	modes := map[string]bool{}
	for _, s := range sources {
		c := s.Spec.Credentials
		switch {
		case c != nil && c.Provider == v1.CredentialsServiceAccount:
			if sa := serviceAccounts[c.ServiceAccountName]; sa == nil || sa.Annotations[v1.ServiceAccountRoleAnnotation] == "" {
				t.Errorf("S3Source %s refers to a ServiceAccount no sample defines with a %s annotation", s.Name, v1.ServiceAccountRoleAnnotation)
			}
			modes["service account"] = true
		case c == nil || (c.Provider != v1.CredentialsSecret && c.AssumeRole == nil):
			modes["workload identity"] = true
		case c.Provider == v1.CredentialsSecret:
			if c.SecretRef == nil || secrets[c.SecretRef.Name] == nil {
				t.Errorf("S3Source %s refers to a Secret no sample defines", s.Name)
			}
			modes["secret"] = true
		case c.AssumeRole != nil && c.AssumeRole.ExternalID == "":
			// The operator's identity assumes the role with the external ID it generates.
			modes["assume role with the operator's external ID"] = true
		}
		if s.Spec.Bucket != "my-bucket" || s.Spec.Prefix != "conversations/" || s.Spec.Region == "" {
			t.Errorf("S3Source %s reads s3://%s/%s in %q; the samples use s3://my-bucket/conversations/ with a region",
				s.Name, s.Spec.Bucket, s.Spec.Prefix, s.Spec.Region)
		}
	}
	for _, m := range []string{"workload identity", "secret", "service account", "assume role with the operator's external ID"} {
		if !modes[m] {
			t.Errorf("no S3Source sample uses credentials mode %q", m)
		}
	}
}

func count(b bool) int {
	if b {
		return 1
	}
	return 0
}

// config/samples/kustomization.yaml lists every sample: it renders as many objects as the
// sample files hold.
func TestSamplesKustomizationListsEverySample(t *testing.T) {
	want := 0
	for _, file := range sampleFiles(t) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := decodeDocs(data)
		if err != nil {
			t.Fatal(err)
		}
		want += len(docs)
	}
	if got := len(render(t, "config/samples")); got != want {
		t.Errorf("config/samples renders %d objects, the sample files hold %d: list every file in its kustomization.yaml", got, want)
	}
}
