package ingest

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"testing"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// entry is one archive member for the test builders.
type entry struct {
	name string
	body string
	mode fs.FileMode // zero: a regular file
	tar  byte        // tar typeflag override
}

func makeZip(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func makeTarGz(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.tar != 0 {
			h.Typeflag, h.Size = e.tar, 0
			if e.tar == tar.TypeSymlink || e.tar == tar.TypeLink {
				h.Linkname = "target.json"
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return gzipBytes(t, buf.Bytes())
}

// withoutLast returns b without its last n bytes (a truncated upload).
func withoutLast(b []byte, n int) []byte { return b[:len(b)-n] }

// flipByte returns a copy of b with the byte at i (from the end when negative) inverted.
func flipByte(b []byte, i int) []byte {
	out := append([]byte(nil), b...)
	if i < 0 {
		i += len(out)
	}
	out[i] ^= 0xff
	return out
}
