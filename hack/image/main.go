// Command image builds the manager's container image without a Docker daemon or any base
// image: a static binary and the nonroot user's passwd/group entries on scratch, written with
// go-containerregistry as an OCI image layout (dist/image/) and as one tarball that `docker
// load`, `kind load image-archive` and `ctr import` accept (dist/image.tar). `make image`
// runs it; dist/image.ref holds the reference pinned by digest.
//
//	go run ./hack/image --ref ghcr.io/avon-ai/data-import-operator:dev --out dist
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/avon-ai/data-import-operator/internal/testsupport"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run() error {
	var o Options
	var out string
	flag.StringVar(&o.Ref, "ref", "ghcr.io/avon-ai/data-import-operator:dev", "Name of the image, registry/repository:tag.")
	flag.StringVar(&out, "out", "dist", "Directory to write image/ (OCI layout), image.tar and image.ref into.")
	flag.StringVar(&o.GOARCH, "goarch", runtime.GOARCH, "Architecture of the binary and the image.")
	flag.StringVar(&o.Version, "version", "", "org.opencontainers.image.version label; empty: the tag of --ref.")
	flag.Parse()
	if flag.NArg() > 0 || tagOf(o.Ref) == "" {
		return fmt.Errorf("usage: image --ref registry/repository:tag [--out dir]")
	}
	root, err := testsupport.RepoRoot()
	if err != nil {
		return err
	}
	o.Root = root
	if o.Created, err = sourceDate(root); err != nil {
		return err
	}
	// The commit, marked -dirty when the working tree differs from it (not a release build).
	if o.Revision = gitOutput(root, "rev-parse", "HEAD"); o.Revision != "" && gitOutput(root, "status", "--porcelain") != "" {
		o.Revision += "-dirty"
		fmt.Fprintln(os.Stderr, "image: the working tree has uncommitted changes: the image is labelled", o.Revision)
	}
	r, err := Build(context.Background(), o, out)
	if err != nil {
		return err
	}
	fmt.Printf("%s@%s\n  OCI layout: %s\n  archive:    %s (docker load -i / kind load image-archive / ctr images import)\n",
		o.Ref, r.Digest, r.Layout, r.Archive)
	return nil
}

// sourceDate is SOURCE_DATE_EPOCH, else the time of the last commit, so rebuilding the same
// commit gives the same digest.
func sourceDate(root string) (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		s = gitOutput(root, "log", "-1", "--format=%ct")
	}
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// gitOutput runs git in root; "" when git or the repository is missing (a source tarball).
func gitOutput(root string, args ...string) string {
	cmd := exec.Command("git", args...)
	cmd.Dir = root
	b, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
