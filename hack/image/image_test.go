package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/avon-ai/data-import-operator/internal/testsupport"
)

const testRef = "ghcr.io/avon-ai/data-import-operator:image-test"

var (
	buildOnce   sync.Once
	buildResult *Result
	buildErr    error
	buildDir    string
	buildTook   time.Duration
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// built builds the image once per test binary, as `make image` does, into a temporary dist/.
func built(t *testing.T) *Result {
	t.Helper()
	r, err := build()
	if err != nil {
		t.Fatalf("building the image: %v", err)
	}
	t.Logf("image built in %s (shared by the tests of this package)", buildTook.Round(time.Millisecond))
	return r
}

// build is built for other goroutines than the test's: it returns the error.
func build() (*Result, error) {
	buildOnce.Do(func() {
		start := time.Now()
		defer func() { buildTook = time.Since(start) }()
		root, err := testsupport.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		if buildDir, buildErr = os.MkdirTemp("", "image-test-"); buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		buildResult, buildErr = Build(ctx, Options{Root: root, Ref: testRef, Created: time.Unix(1700000000, 0).UTC()}, buildDir)
	})
	return buildResult, buildErr
}

// entry is one file of the image as the tests compare it.
type entry struct {
	dir  bool
	mode int64 // permission and sticky bits; -1 when the Dockerfile does not set them
}

func (e entry) String() string {
	if e.dir {
		return fmt.Sprintf("dir %#o", e.mode)
	}
	return fmt.Sprintf("file %#o", e.mode)
}

// imageFiles lists the files of the image's layers (the image has one).
func imageFiles(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]entry{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Uid != 0 || h.Gid != 0 {
				t.Errorf("/%s is owned by %d:%d, want root: the manager must not be able to change its own files", h.Name, h.Uid, h.Gid)
			}
			files["/"+strings.TrimSuffix(h.Name, "/")] = entry{dir: h.Typeflag == tar.TypeDir, mode: h.Mode & 0o7777}
		}
		_ = rc.Close()
	}
	return files
}

// TestImageConfig checks what config/manager/manager.yaml relies on: the nonroot user, the
// entrypoint, no shell, and what the manager needs compiled in instead of files.
func TestImageConfig(t *testing.T) {
	r := built(t)
	cf, err := r.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("User = %q, want 65532:65532 (config/manager runs as 65532 with runAsNonRoot)", cf.Config.User)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/manager"}) || len(cf.Config.Cmd) != 0 {
		t.Errorf("Entrypoint = %q, Cmd = %q, want [/manager] and none", cf.Config.Entrypoint, cf.Config.Cmd)
	}
	if cf.OS != "linux" || cf.Architecture == "" || cf.Config.Labels["org.opencontainers.image.version"] != "image-test" {
		t.Errorf("os/arch %s/%s, labels %v", cf.OS, cf.Architecture, cf.Config.Labels)
	}
	files := imageFiles(t, r.Image)
	want := map[string]entry{
		"/etc": {dir: true, mode: 0o755}, "/etc/passwd": {mode: 0o644}, "/etc/group": {mode: 0o644},
		"/manager": {mode: 0o755}, "/tmp": {dir: true, mode: 0o1777},
	}
	if fmt.Sprint(files) != fmt.Sprint(want) {
		t.Errorf("image files = %v, want %v", files, want)
	}
	checkBinary(t, fileData(t, r.Image, strings.TrimPrefix(Binary, "/")))
	passwd, err := os.ReadFile(filepath.Join(repoRoot(t), RootfsDir, "etc", "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^nonroot:x:65532:65532:`).Match(passwd) {
		t.Errorf("etc/passwd has no nonroot user 65532:\n%s", passwd)
	}
}

// checkBinary reads the manager's build information: static, no local paths, for
// Linux, with the fallback CA roots linked in (the image has no certificate files).
func checkBinary(t *testing.T, manager []byte) {
	t.Helper()
	info, err := buildinfo.Read(bytes.NewReader(manager))
	if err != nil {
		t.Fatalf("reading the manager's build information: %v", err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	for k, want := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true", "GOOS": "linux"} {
		if settings[k] != want {
			t.Errorf("the manager was built with %s=%q, want %q", k, settings[k], want)
		}
	}
	if !slices.ContainsFunc(info.Deps, func(m *debug.Module) bool { return m.Path == "golang.org/x/crypto/x509roots/fallback" }) {
		t.Error("the manager does not link golang.org/x/crypto/x509roots/fallback: it could verify no TLS certificate in the image")
	}
}

// fileData returns the content of a file of the image.
func fileData(t *testing.T, img v1.Image, name string) []byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = rc.Close() }()
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Name == name {
				data, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				return data
			}
		}
	}
	t.Fatalf("the image has no %s", name)
	return nil
}

// TestImageIsReproducible: the same sources and SOURCE_DATE_EPOCH give the same digest, so a
// release's digest can be rebuilt and checked.
func TestImageIsReproducible(t *testing.T) {
	root := repoRoot(t)
	o := Options{Root: root, Ref: testRef, GOARCH: "amd64", Created: time.Unix(1700000000, 0).UTC()}
	var digests []v1.Hash
	for range 2 {
		files, err := Files(root, []byte("#!not a binary\n"))
		if err != nil {
			t.Fatal(err)
		}
		img, err := Image(o, files)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Errorf("two builds of the same files: %s and %s", digests[0], digests[1])
	}
}

// TestArchiveLoads reads image.tar both ways it is loaded: as a docker-archive (manifest.json,
// what `docker load` reads) and as an OCI layout (index.json, what `ctr import` and `kind load
// image-archive` read); both name the image and hold the same config and layers.
func TestArchiveLoads(t *testing.T) {
	r := built(t)
	docker, err := tarball.ImageFromPath(r.Archive, nil)
	if err != nil {
		t.Fatalf("reading %s as a docker archive: %v", r.Archive, err)
	}
	sameImage(t, "docker-archive", docker, r.Image)
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(r.Archive) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{testRef}) {
		t.Errorf("manifest.json = %+v, want one image tagged %s", m, testRef)
	}
	var index v1.IndexManifest
	found := map[string]bool{}
	readTar(t, r.Archive, func(name string, data []byte) {
		found[name] = true
		if name == "index.json" {
			if err := json.Unmarshal(data, &index); err != nil {
				t.Fatalf("index.json: %v", err)
			}
		}
	})
	if !found["oci-layout"] || len(index.Manifests) != 1 {
		t.Fatalf("the archive is no OCI layout: oci-layout %v, index %+v", found["oci-layout"], index)
	}
	d := index.Manifests[0]
	if d.Digest != r.Digest || d.Annotations["io.containerd.image.name"] != testRef || d.Annotations["org.opencontainers.image.ref.name"] != "image-test" {
		t.Errorf("index.json names %s %v, want %s named %s", d.Digest, d.Annotations, r.Digest, testRef)
	}
	if !found[blobPath(d.Digest)] {
		t.Errorf("the archive lacks the manifest blob %s", blobPath(d.Digest))
	}
}

func sameImage(t *testing.T, what string, got, want v1.Image) {
	t.Helper()
	gc, err := got.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	wc, err := want.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	gl, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	wl, err := want.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if gc != wc || len(gl) != len(wl) {
		t.Fatalf("%s: config %s with %d layers, want %s with %d", what, gc, len(gl), wc, len(wl))
	}
	for i := range gl {
		g, _ := gl[i].Digest()
		w, _ := wl[i].Digest()
		if g != w {
			t.Errorf("%s: layer %d is %s, want %s", what, i, g, w)
		}
	}
}

func readTar(t *testing.T, path string, fn func(name string, data []byte)) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		var data []byte
		if h.Size < 1<<20 {
			if data, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
		fn(h.Name, data)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := testsupport.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case
	args string
	line int
}

// parseDockerfile splits the Dockerfile into stages of instructions. It knows what this
// repository's Dockerfile uses: comments, line continuations, one instruction per line.
func parseDockerfile(t *testing.T, path string) [][]instruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var stages [][]instruction
	var cur strings.Builder
	start, n := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.Join(strings.Fields(args), " "), line: start}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile:%d: %s before FROM", in.line, in.cmd)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages
}

// TestDockerfileAgrees parses the Dockerfile and checks that `docker build` produces what
// `make image` does: the same base (none), user, entrypoint, working directory and files,
// and a binary built with the same flags.
func TestDockerfileAgrees(t *testing.T) {
	root := repoRoot(t)
	stages := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	if len(stages) != 2 {
		t.Fatalf("the Dockerfile has %d stages, want 2 (builder, final)", len(stages))
	}
	builder, final := stages[0], stages[1]
	stageName := regexp.MustCompile(`(?i) AS (\S+)$`).FindStringSubmatch(builder[0].args)
	if stageName == nil {
		t.Fatalf("Dockerfile:%d: the builder stage has no name", builder[0].line)
	}

	// The final stage: scratch, the builder's /rootfs, the config.
	const rootfs = "/rootfs"
	cf, err := built(t).Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	entrypoint, err := json.Marshal(cf.Config.Entrypoint)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"FROM scratch",
		"COPY --from=" + stageName[1] + " " + rootfs + "/ /",
		"WORKDIR " + cf.Config.WorkingDir,
		"USER " + cf.Config.User,
		"ENTRYPOINT " + strings.ReplaceAll(string(entrypoint), ",", ", "),
	}
	var got []string
	for _, in := range final {
		got = append(got, in.cmd+" "+in.args)
	}
	if !slices.Equal(got, want) {
		t.Errorf("the Dockerfile's final stage is\n  %s\nwant (from the image make image builds)\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}

	// The builder stage: what lands in /rootfs.
	files := map[string]entry{}
	installDir := regexp.MustCompile(`^install -d -m (\d+) ` + rootfs + `(/\S+)$`)
	goBuild := regexp.MustCompile(`^(.*)\bgo build (.*) -o ` + rootfs + `(/\S+) \./cmd$`)
	for _, in := range builder {
		switch {
		case in.cmd == "COPY" && strings.HasSuffix(in.args, " "+rootfs+"/"):
			src := strings.TrimSuffix(strings.TrimSuffix(in.args, " "+rootfs+"/"), "/")
			if src != RootfsDir {
				t.Errorf("Dockerfile:%d copies %s into the image, make image copies %s", in.line, src, RootfsDir)
			}
			err := filepath.WalkDir(filepath.Join(root, src), func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				rel, err := filepath.Rel(filepath.Join(root, src), p)
				if rel != "." {
					files["/"+filepath.ToSlash(rel)] = entry{dir: d.IsDir(), mode: -1}
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		case in.cmd == "COPY" && strings.Contains(in.args, rootfs):
			t.Errorf("Dockerfile:%d: COPY into %s that the test does not understand: %s", in.line, rootfs, in.args)
		case in.cmd == "RUN" && installDir.MatchString(in.args):
			m := installDir.FindStringSubmatch(in.args)
			mode, err := strconv.ParseInt(m[1], 8, 64)
			if err != nil {
				t.Fatal(err)
			}
			files[m[2]] = entry{dir: true, mode: mode}
		case in.cmd == "RUN" && goBuild.MatchString(in.args):
			m := goBuild.FindStringSubmatch(in.args)
			if !strings.Contains(m[1], "CGO_ENABLED=0") {
				t.Errorf("Dockerfile:%d builds the manager with cgo", in.line)
			}
			if flags := strings.ReplaceAll(m[2], `"`, ""); flags != strings.Join(GoBuildFlags, " ") {
				t.Errorf("Dockerfile:%d builds with %q, make image with %q", in.line, flags, strings.Join(GoBuildFlags, " "))
			}
			files[m[3]] = entry{mode: -1}
		case strings.Contains(in.args, rootfs):
			t.Errorf("Dockerfile:%d: %s writes %s in a way the test does not understand: %s", in.line, in.cmd, rootfs, in.args)
		}
	}
	inImage := imageFiles(t, built(t).Image)
	for name, e := range files {
		if e.mode == -1 {
			e.mode = inImage[name].mode
		}
		files[name] = e
	}
	if fmt.Sprint(files) != fmt.Sprint(inImage) {
		t.Errorf("the Dockerfile's image holds %v, make image's %v", files, inImage)
	}
	if _, ok := files[Binary]; !ok {
		t.Errorf("the Dockerfile builds no %s", Binary)
	}
}
