package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// TestMakeRelease runs `make release` into a temporary directory and checks install.yaml:
// what config/default installs (CRDs, RBAC, the manager), with the image pinned by the tag
// VERSION and the digest of the image it built. A VERSION that is not a version is refused.
func TestMakeRelease(t *testing.T) {
	root := repoRoot(t)
	dist := t.TempDir()
	const version = "v0.0.1-release-test"
	mk := func(args ...string) ([]byte, error) {
		cmd := exec.Command("make", append([]string{"--no-print-directory", "-C", root}, args...)...)
		return cmd.CombinedOutput()
	}
	if out, err := mk("release", "VERSION=latest", "DIST="+dist); err == nil {
		t.Errorf("make release VERSION=latest succeeded:\n%s", out)
	}
	if out, err := mk("release", "VERSION="+version, "DIST="+dist); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}

	ref, err := os.ReadFile(filepath.Join(dist, "image.ref"))
	if err != nil {
		t.Fatal(err)
	}
	var index v1.IndexManifest
	data, err := os.ReadFile(filepath.Join(dist, "image", "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v, %d manifests", err, len(index.Manifests))
	}
	want := "ghcr.io/avon-ai/data-import-operator:" + version + "@" + index.Manifests[0].Digest.String()
	if got := strings.TrimSpace(string(ref)); got != want {
		t.Errorf("image.ref = %s, want %s", got, want)
	}

	install, err := os.ReadFile(filepath.Join(dist, "install.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	var images []string
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(install), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("install.yaml: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		u := unstructured.Unstructured{Object: m}
		kinds[u.GetKind()]++
		if u.GetKind() == "Deployment" {
			containers, _, _ := unstructured.NestedSlice(m, "spec", "template", "spec", "containers")
			for _, c := range containers {
				images = append(images, c.(map[string]any)["image"].(string))
			}
		}
	}
	if len(images) != 1 || images[0] != want {
		t.Errorf("install.yaml runs %v, want [%s]", images, want)
	}
	for _, k := range []string{"CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment"} {
		if kinds[k] == 0 {
			t.Errorf("install.yaml has no %s (kinds: %v)", k, kinds)
		}
	}
	if kinds["CustomResourceDefinition"] != 2 {
		t.Errorf("install.yaml has %d CRDs, want 2 (S3Source, IngestionQuota)", kinds["CustomResourceDefinition"])
	}
}
