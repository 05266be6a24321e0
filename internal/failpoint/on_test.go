//go:build failpoints

package failpoint

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// An armed point fires once, on a matching detail, after the reader's first bytes, and
// holds the caller until the release file exists.
func TestArmedPointHoldsUntilReleased(t *testing.T) {
	dir := t.TempDir()
	arm(Download, "b.json", dir)
	t.Cleanup(func() { arm("", "", "") })

	// Another object passes.
	if b, err := io.ReadAll(Reader(Download, "a.json", strings.NewReader("abc"))); err != nil || string(b) != "abc" {
		t.Fatalf("unmatched reader: %q, %v", b, err)
	}
	var got bytes.Buffer
	done := make(chan error, 1)
	r := Reader(Download, "s3/b.json", io.MultiReader(strings.NewReader("first"), strings.NewReader("second")))
	go func() {
		_, err := io.CopyBuffer(&got, r, make([]byte, 5))
		done <- err
	}()
	hit := filepath.Join(dir, HitFile(Download))
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(hit)
		if err == nil {
			if string(b) != "s3/b.json" {
				t.Fatalf("hit file holds %q, want the detail", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the point was not hit")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("the reader went on before the release: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := os.WriteFile(filepath.Join(dir, ReleaseFile(Download)), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || got.String() != "firstsecond" {
		t.Fatalf("after the release: %q, %v", got.String(), err)
	}
	// Fired once: a second matching hit passes.
	Inject(Download, "b.json")
}
