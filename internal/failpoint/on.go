//go:build failpoints

package failpoint

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

var armed = struct {
	sync.Mutex
	name, match, dir string
	fired            bool
}{name: os.Getenv(EnvName), match: os.Getenv(EnvMatch), dir: os.Getenv(EnvDir)}

// arm replaces what the environment armed (tests of this package).
func arm(name, match, dir string) {
	armed.Lock()
	defer armed.Unlock()
	armed.name, armed.match, armed.dir, armed.fired = name, match, dir, false
}

// Inject fires point name when it is the armed one and detail matches: it writes the hit
// file and waits for the release file. Only the first matching hit of the process fires.
func Inject(name, detail string) {
	armed.Lock()
	if armed.fired || armed.name != name || armed.dir == "" || !strings.Contains(detail, armed.match) {
		armed.Unlock()
		return
	}
	armed.fired = true
	armed.Unlock()
	hit := filepath.Join(armed.dir, HitFile(name))
	// Written under another name and renamed, so a test never reads half a detail.
	if err := os.WriteFile(hit+".tmp", []byte(detail), 0o600); err == nil {
		_ = os.Rename(hit+".tmp", hit)
	}
	release := filepath.Join(armed.dir, ReleaseFile(name))
	for {
		if _, err := os.Stat(release); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Reader fires point name in the first Read after one that returned bytes: the bytes
// before it have reached the caller (the spool file) when the point is hit.
func Reader(name, detail string, r io.Reader) io.Reader {
	return &reader{r: r, name: name, detail: detail}
}

type reader struct {
	r            io.Reader
	name, detail string
	got          bool
}

func (r *reader) Read(p []byte) (int, error) {
	if r.got {
		Inject(r.name, r.detail)
	}
	n, err := r.r.Read(p)
	r.got = r.got || n > 0
	return n, err
}
