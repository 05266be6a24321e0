package config_test

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// floatingPin finds, in one line of YAML (comments removed), a reference that moves under
// the user: an image tagged latest or not tagged at all, a Git branch (main, master, HEAD)
// as a revision, tag or ref. It returns what it found, or "".
func floatingPin(line string) string {
	if i := strings.Index(line, "#"); i >= 0 && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
		line = line[:i]
	}
	for _, re := range floatingPatterns {
		if m := re.FindString(line); m != "" {
			return strings.TrimSpace(m)
		}
	}
	if m := imageValue.FindStringSubmatch(line); m != nil {
		ref := strings.Trim(m[1], `"'`)
		if !strings.Contains(ref, "@") && !strings.Contains(ref[strings.LastIndex(ref, "/")+1:], ":") {
			return "image " + ref + " (no tag: latest)"
		}
	}
	return ""
}

var (
	floatingPatterns = []*regexp.Regexp{
		regexp.MustCompile(`[\w.\-/]+:latest\b`),
		regexp.MustCompile(`^\s*-?\s*(newTag|tag|targetRevision|branch|ref|revision|version)\s*:\s*["']?(latest|main|master|HEAD)["']?\s*$`),
		regexp.MustCompile(`@(main|master|HEAD)\b`),
		regexp.MustCompile(`[?&]ref=(main|master|HEAD)\b`),
	}
	imageValue = regexp.MustCompile(`^\s*-?\s*image\s*:\s*(\S+)\s*$`)
)

func TestFloatingPin(t *testing.T) {
	for line, want := range map[string]bool{
		"  image: ghcr.io/avon-ai/data-import-operator:latest":   true,
		"  image: ghcr.io/avon-ai/data-import-operator":          true,
		`  - image: "busybox"`:                                   true,
		"  newTag: latest":                                       true,
		"    targetRevision: main":                               true,
		"    branch: main":                                       true,
		"  ref: HEAD":                                            true,
		"  url: https://github.com/x/y//config?ref=main":         true,
		"  - github.com/x/y/config@main":                         true,
		"  image: ghcr.io/avon-ai/data-import-operator:v0.1.0":   false,
		"  image: localhost:5000/operator@sha256:0123":           false,
		"  newTag: v0.1.0":                                       false,
		"    targetRevision: v0.1.0":                             false,
		"    tag: v0.1.0":                                        false,
		"    pod-security.kubernetes.io/enforce-version: latest": false,
		"# never :latest, never branch: main":                    false,
		"  domain: main.example.com":                             false,
	} {
		if got := floatingPin(line) != ""; got != want {
			t.Errorf("floatingPin(%q) = %q, want a finding: %v", line, floatingPin(line), want)
		}
	}
}

// TestNoFloatingPins: no manifest in the repository installs or syncs something that moves
// under the user (an image tagged latest, a branch). Releases pin tag and digest
// (make release); the examples pin a release tag.
func TestNoFloatingPins(t *testing.T) {
	root := repoPath(t, ".")
	var checked int
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch name := d.Name(); {
			case p != root && strings.HasPrefix(name, "."), name == "bin", name == "dist", name == "tmp", name == "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(p); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		checked++
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			if found := floatingPin(sc.Text()); found != "" {
				rel, _ := filepath.Rel(root, p)
				t.Errorf("%s:%d: %s: pin a release tag (or a digest)", rel, n, found)
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no YAML file found under the repository root")
	}
}

// TestManagerImageTag: config/manager's kustomization and manager.yaml name the same tag (the
// Deployment renders the kustomization's; manager.yaml alone must not say another).
func TestManagerImageTag(t *testing.T) {
	var k struct {
		Images []struct{ Name, NewName, NewTag string }
	}
	data, err := os.ReadFile(repoPath(t, "config/manager/kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	if len(k.Images) != 1 || k.Images[0].NewTag == "" {
		t.Fatalf("config/manager/kustomization.yaml: images = %+v, want one with newTag", k.Images)
	}
	if want := k.Images[0].NewName + ":" + k.Images[0].NewTag; want != image {
		t.Errorf("config/manager pins %s, config_test.go expects %s", want, image)
	}
	manager, err := os.ReadFile(repoPath(t, "config/manager/manager.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(manager), "image: "+image+"\n") {
		t.Errorf("config/manager/manager.yaml does not name %s", image)
	}
}
