package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's identity and what config/manager/manager.yaml relies on. The Dockerfile's final
// stage says the same (image_test.go parses it and compares).
const (
	// User is the distroless "nonroot" user and group; config/manager runs as it.
	User = "65532:65532"
	// Binary is where the manager is, and the entrypoint.
	Binary     = "/manager"
	WorkingDir = "/"
	// RootfsDir holds the image's files besides the binary (passwd and group entries for
	// the user), relative to the repository root. The Dockerfile copies the same directory.
	RootfsDir = "hack/image/rootfs"
	// SourceURL is the org.opencontainers.image.source label.
	SourceURL = "https://github.com/avon-ai/data-import-operator"
)

// GoBuildFlags are the flags of the manager's build, here and in the Dockerfile: no cgo (the
// binary runs on an empty base; the SQLite driver is pure Go), no local paths in the binary,
// no symbol tables. CA roots and time zones are compiled in by cmd/main.go's imports.
var GoBuildFlags = []string{"-trimpath", `-ldflags=-s -w`}

// Options say what to build.
type Options struct {
	// Root is the repository root.
	Root string
	// Ref names the image, e.g. ghcr.io/avon-ai/data-import-operator:v0.1.0.
	Ref string
	// Version is the org.opencontainers.image.version label; empty: the tag of Ref.
	Version string
	// Revision is the org.opencontainers.image.revision label (a commit); may be empty.
	Revision string
	// GOARCH of the binary and the image; empty: the host's.
	GOARCH string
	// Created is the image's and every file's timestamp: the same sources give the same
	// digest (SOURCE_DATE_EPOCH, the commit time in `make image`).
	Created time.Time
}

// File is one entry of the image's only layer, owned by root: the manager cannot change
// its own files.
type File struct {
	Name string // without a leading slash; directories end with "/"
	Mode int64
	Data []byte
}

// BuildManager compiles ./cmd for linux/goarch into dir and returns the binary's path.
func BuildManager(ctx context.Context, root, goarch, dir string) (string, error) {
	out := filepath.Join(dir, "manager")
	args := append([]string{"build"}, GoBuildFlags...)
	args = append(args, "-o", out, "./cmd")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	return out, nil
}

// Files lists the image's file system: the entries of RootfsDir, /tmp (world-writable and
// sticky, as distroless has it: the manager's default --spool-dir when no volume is mounted
// there) and the manager binary.
func Files(root string, manager []byte) ([]File, error) {
	files := []File{{Name: "tmp/", Mode: 0o1777}, {Name: strings.TrimPrefix(Binary, "/"), Mode: 0o755, Data: manager}}
	base := filepath.Join(root, filepath.FromSlash(RootfsDir))
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(base, p)
		if err != nil || rel == "." {
			return err
		}
		name := filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			files = append(files, File{Name: name + "/", Mode: 0o755})
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files = append(files, File{Name: name, Mode: 0o644, Data: data})
		default:
			return fmt.Errorf("%s: only files and directories belong in %s", p, RootfsDir)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", RootfsDir, err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, nil
}

// layerTar is the layer's uncompressed tar: sorted, owned by root, every time Created.
func layerTar(files []File, created time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.Name, Mode: f.Mode, ModTime: created, Format: tar.FormatPAX}
		if strings.HasSuffix(f.Name, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Image assembles the image: no base (scratch), one layer holding files, and the config
// config/manager/manager.yaml relies on.
func Image(o Options, files []File) (v1.Image, error) {
	tarData, err := layerTar(files, o.Created)
	if err != nil {
		return nil, fmt.Errorf("writing the layer: %w", err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarData)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("compressing the layer: %w", err)
	}
	names := make([]string, 0, len(files))
	for _, f := range files {
		names = append(names, "/"+f.Name)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer, History: v1.History{
		Created:   v1.Time{Time: o.Created},
		CreatedBy: "hack/image: " + strings.Join(names, " "),
	}})
	if err != nil {
		return nil, fmt.Errorf("adding the layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", o.GOARCH
	cf.Created = v1.Time{Time: o.Created}
	version := o.Version
	if version == "" {
		version = tagOf(o.Ref)
	}
	cf.Config = v1.Config{
		User:       User,
		Entrypoint: []string{Binary},
		WorkingDir: WorkingDir,
		Labels: map[string]string{
			"org.opencontainers.image.title":       "data-import-operator",
			"org.opencontainers.image.description": "Imports customer conversation files from S3 into a conversation store",
			"org.opencontainers.image.source":      SourceURL,
			"org.opencontainers.image.version":     version,
			"org.opencontainers.image.revision":    o.Revision,
			"org.opencontainers.image.created":     o.Created.UTC().Format(time.RFC3339),
		},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting the image config: %w", err)
	}
	return img, nil
}

// tagOf returns the tag of a reference (registry/repo:tag), or "" without one.
func tagOf(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[i+1:]
	}
	return ""
}

// WriteLayout writes img as an OCI image layout in dir (replacing it), annotated with its
// names: org.opencontainers.image.ref.name is the tag (what `umoci unpack --image dir:tag`
// and the OCI spec use), io.containerd.image.name the full reference (what `ctr import`
// and `docker load` of an OCI archive name the image by).
func WriteLayout(dir, ref string, img v1.Image) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("creating the OCI layout %s: %w", dir, err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tagOf(ref),
		"io.containerd.image.name":          ref,
	})); err != nil {
		return fmt.Errorf("writing the image into %s: %w", dir, err)
	}
	return nil
}

// dockerManifest is one entry of a docker-archive's manifest.json (what `docker save` writes).
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// WriteArchive writes the OCI layout in layoutDir, plus a docker-archive manifest.json naming
// the same blobs, into one tar file: the format of `docker save` since Docker 25. `docker
// load` (any version) reads manifest.json; `ctr import` and `kind load image-archive` (which
// runs containerd's import) read index.json and both names; `umoci` and other OCI tools can
// read the layout once unpacked. Entries are sorted and timestamped created.
func WriteArchive(archive, layoutDir, ref string, img v1.Image, created time.Time) error {
	cfg, err := img.ConfigName()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	m := dockerManifest{Config: blobPath(cfg), RepoTags: []string{ref}}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		m.Layers = append(m.Layers, blobPath(d))
	}
	manifestJSON, err := json.Marshal([]dockerManifest{m})
	if err != nil {
		return err
	}
	var names []string
	err = filepath.WalkDir(layoutDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			names = append(names, p)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("listing %s: %w", layoutDir, err)
	}
	sort.Strings(names)
	tmp := archive + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp) }()
	tw := tar.NewWriter(f)
	add := func(name string, size int64, r io.Reader) error {
		h := &tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: created, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	for _, p := range names {
		rel, err := filepath.Rel(layoutDir, p)
		if err != nil {
			return err
		}
		if err := addFile(add, filepath.ToSlash(rel), p); err != nil {
			return fmt.Errorf("archiving %s: %w", p, err)
		}
	}
	if err := add("manifest.json", int64(len(manifestJSON)), bytes.NewReader(manifestJSON)); err != nil {
		return err
	}
	if err := errors.Join(tw.Close(), f.Close()); err != nil {
		return fmt.Errorf("writing %s: %w", archive, err)
	}
	return os.Rename(tmp, archive)
}

func addFile(add func(string, int64, io.Reader) error, name, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return add(name, st.Size(), f)
}

func blobPath(h v1.Hash) string { return path.Join("blobs", h.Algorithm, h.Hex) }

// Result is what Build produced.
type Result struct {
	Image   v1.Image
	Digest  v1.Hash
	Layout  string // OCI image layout directory
	Archive string // docker-archive + OCI layout tarball
}

// Build compiles the manager and writes the image into outDir: image/ (OCI layout),
// image.tar (the archive) and image.ref (Ref@digest).
func Build(ctx context.Context, o Options, outDir string) (*Result, error) {
	if o.GOARCH == "" {
		o.GOARCH = runtime.GOARCH
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	binDir, err := os.MkdirTemp(outDir, "manager-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(binDir) }()
	bin, err := BuildManager(ctx, o.Root, o.GOARCH, binDir)
	if err != nil {
		return nil, err
	}
	manager, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	files, err := Files(o.Root, manager)
	if err != nil {
		return nil, err
	}
	img, err := Image(o, files)
	if err != nil {
		return nil, err
	}
	r := &Result{Image: img, Layout: filepath.Join(outDir, "image"), Archive: filepath.Join(outDir, "image.tar")}
	if r.Digest, err = img.Digest(); err != nil {
		return nil, err
	}
	if err := WriteLayout(r.Layout, o.Ref, img); err != nil {
		return nil, err
	}
	if err := WriteArchive(r.Archive, r.Layout, o.Ref, img, o.Created); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(outDir, "image.ref"), []byte(o.Ref+"@"+r.Digest.String()+"\n"), 0o644); err != nil {
		return nil, err
	}
	return r, nil
}
