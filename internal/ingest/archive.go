package ingest

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/avon-ai/data-import-operator/internal/quota"
)

// Errors of the bounded readers under archive entries.
var (
	errArchiveTooLarge = errors.New("archive too large uncompressed")
	errEntryTooLarge   = errors.New("entry too large uncompressed")
)

// capReader fails with err once more than n bytes were read: a lying header or a
// bomb stops at the limit instead of filling memory or disk.
type capReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n < 0 {
		return 0, c.err
	}
	if int64(len(p)) > c.n+1 {
		p = p[:c.n+1]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	if c.n < 0 {
		return n, c.err
	}
	return n, err
}

// entryKind is what the ingester does with an archive entry.
type entryKind int

const (
	entryProcess entryKind = iota
	entryIgnore
	entryRefuse
)

// classifyEntry decides an entry by its name: records, ignored (with why) or refused
// (with why: the whole archive fails).
func classifyEntry(name string) (entryKind, Format, string) {
	n := strings.ReplaceAll(name, `\`, "/")
	if strings.HasPrefix(n, "/") || len(n) >= 2 && n[1] == ':' && (n[0]|0x20 >= 'a' && n[0]|0x20 <= 'z') {
		return entryRefuse, "", "has an absolute path"
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return entryRefuse, "", "has a '..' path element (it would escape the archive)"
		}
	}
	if strings.HasPrefix(n, "__MACOSX/") || strings.HasPrefix(path.Base(n), "._") {
		return entryIgnore, "", "macOS metadata"
	}
	ext := Ext(n)
	for _, a := range archiveExts {
		if ext == a {
			return entryRefuse, "", fmt.Sprintf("is a nested archive (%s); put its files in the outer archive instead", ext)
		}
	}
	switch f := Extensions[ext]; f {
	case FormatJSON, FormatJSONL:
		return entryProcess, f, ""
	}
	return entryIgnore, "", unsupportedMessage(ext)
}

func refuse(name, why string) *fileError {
	return failf(ReasonUnsafeArchive, "archive entry %s %s; the whole archive is refused", quoteShort(name), why)
}

// archiveErr maps an error met while reading an archive entry: file-level problems
// keep their reason, the stream's own and the context's errors pass through, anything
// else is corrupt content.
func (c *collector) archiveErr(err error, entry string, b *body) error {
	var fe *fileError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		if fe.entry == "" {
			fe.entry = entry
		}
		return fe
	case errors.Is(err, errTooLarge), b.err != nil, errors.Is(err, errStopped),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, errArchiveTooLarge):
		return failf(ReasonLimitExceeded, "the archive holds more than the %s limit of uncompressed data", quota.FormatBytes(c.lim.MaxArchiveBytes))
	case errors.Is(err, errEntryTooLarge):
		return &fileError{reason: ReasonLimitExceeded, entry: entry, msg: fmt.Sprintf("the entry is larger than the %s entry limit uncompressed", quota.FormatBytes(c.lim.MaxEntryBytes))}
	}
	return &fileError{reason: ReasonMalformed, entry: entry, msg: "the archive is corrupt: " + err.Error()}
}

func (c *collector) tooManyEntries() *fileError {
	return failf(ReasonLimitExceeded, "the archive holds more than the %d-entry limit", c.lim.MaxArchiveEntries)
}

// ZipSpoolPattern names the copy of a ZIP archive in Engine.TempDir (os.CreateTemp): a
// manager killed while reading one leaves it behind, and the next one removes it.
const ZipSpoolPattern = "ingest-*.zip"

// readZip spools the object to a temporary file (ZIP needs random access; the body is
// already bounded by MaxFileBytes), checks every entry, then reads the record entries.
func (c *collector) readZip(b *body, tempDir string) error {
	head := make([]byte, sniffLen)
	n, err := io.ReadFull(b, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return err
	}
	head = head[:n]
	if what := sniff(head); what != "a ZIP archive" {
		if what == "" {
			return failf(ReasonContentMismatch, "the content is not a ZIP archive (no ZIP signature)")
		}
		return failf(ReasonContentMismatch, "the content looks like %s, not a ZIP archive (by its extension)", what)
	}
	f, err := os.CreateTemp(tempDir, ZipSpoolPattern)
	if err != nil {
		return fmt.Errorf("spool zip: %w", err)
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	written, err := io.Copy(f, io.MultiReader(bytes.NewReader(head), b))
	if err != nil {
		if errors.Is(err, errTooLarge) || b.err != nil {
			return err
		}
		return fmt.Errorf("spool zip: %w", err)
	}
	// Counted before zip.NewReader, which would allocate every entry first.
	if zipEntriesOver(f, written, c.lim.MaxArchiveEntries) {
		return c.tooManyEntries()
	}
	zr, err := zip.NewReader(f, written)
	if err != nil {
		return failf(ReasonMalformed, "not a readable ZIP archive: %v", err)
	}
	if len(zr.File) > c.lim.MaxArchiveEntries {
		return c.tooManyEntries()
	}
	// Check every entry before reading any: an unsafe archive fails as a whole.
	var total uint64
	for _, zf := range zr.File {
		mode := zf.Mode()
		if mode.IsDir() {
			continue
		}
		if why := irregular(mode); why != "" {
			return refuse(zf.Name, why)
		}
		kind, _, why := classifyEntry(zf.Name)
		if kind == entryRefuse {
			return refuse(zf.Name, why)
		}
		if kind != entryProcess {
			continue
		}
		if zf.UncompressedSize64 > uint64(c.lim.MaxEntryBytes) {
			return &fileError{reason: ReasonLimitExceeded, entry: zf.Name, msg: fmt.Sprintf("the entry is larger than the %s entry limit uncompressed", quota.FormatBytes(c.lim.MaxEntryBytes))}
		}
		if total += zf.UncompressedSize64; total > uint64(c.lim.MaxArchiveBytes) {
			return c.archiveErr(errArchiveTooLarge, "", b)
		}
	}
	remaining := &capReader{n: c.lim.MaxArchiveBytes, err: errArchiveTooLarge}
	for _, zf := range zr.File {
		if zf.Mode().IsDir() {
			continue
		}
		kind, format, why := classifyEntry(zf.Name)
		if kind == entryIgnore {
			c.ignore(zf.Name, why)
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			return c.archiveErr(err, zf.Name, b)
		}
		// Declared sizes were checked; these bound what the entry really inflates to.
		remaining.r = &capReader{r: rc, n: c.lim.MaxEntryBytes, err: errEntryTooLarge}
		err = c.readStream(remaining, format, zf.Name)
		_ = rc.Close()
		if err != nil {
			return c.archiveErr(err, zf.Name, b)
		}
	}
	return nil
}

// irregular names a file mode that is not a regular file or directory.
func irregular(mode fs.FileMode) string {
	switch {
	case mode&fs.ModeSymlink != 0:
		return "is a symbolic link"
	case mode&(fs.ModeDevice|fs.ModeCharDevice) != 0:
		return "is a device"
	case mode&fs.ModeNamedPipe != 0:
		return "is a named pipe"
	case mode&fs.ModeSocket != 0:
		return "is a socket"
	case !mode.IsRegular() && !mode.IsDir():
		return "is not a regular file"
	}
	return ""
}

// readTarGz streams a gzip-compressed tar archive: entries are checked as they come,
// and a bad one fails the archive (nothing is committed before the end).
func (c *collector) readTarGz(b *body) error {
	br := bufio.NewReaderSize(b, 64<<10)
	head, err := br.Peek(sniffLen)
	if err != nil && err != io.EOF {
		return err
	}
	if what := sniff(head); what != "a gzip stream" {
		if what == "" {
			return failf(ReasonContentMismatch, "the content is not gzip-compressed (no gzip header); want a gzip-compressed tar archive")
		}
		return failf(ReasonContentMismatch, "the content looks like %s, not a gzip-compressed tar archive (by its extension)", what)
	}
	gz, err := gzip.NewReader(br)
	if err != nil {
		return c.archiveErr(err, "", b)
	}
	defer func() { _ = gz.Close() }()
	tbr := bufio.NewReaderSize(&capReader{r: gz, n: c.lim.MaxArchiveBytes, err: errArchiveTooLarge}, 64<<10)
	inner, err := tbr.Peek(sniffLen)
	if err != nil && err != io.EOF {
		return c.archiveErr(err, "", b)
	}
	if what := sniff(inner); what != "" && what != "a tar archive" {
		return failf(ReasonContentMismatch, "the gzip stream holds %s, not a tar archive (by its extension .tar.gz)", what)
	}
	tr := tar.NewReader(tbr)
	var total int64
	for entries := 0; ; entries++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			// The tar end marker is not the end of the gzip stream: read on to its
			// trailer, so a truncated or corrupt archive (CRC, length) fails even when
			// its entries looked complete. capReader bounds what this inflates.
			if _, err := io.Copy(io.Discard, tbr); err != nil {
				return c.archiveErr(err, "", b)
			}
			return nil
		}
		if err != nil {
			if entries == 0 && !errors.Is(err, errTooLarge) && b.err == nil {
				return failf(ReasonContentMismatch, "the gzip stream does not hold a tar archive: %v", err)
			}
			return c.archiveErr(err, "", b)
		}
		if entries >= c.lim.MaxArchiveEntries {
			return c.tooManyEntries()
		}
		switch hdr.Typeflag {
		case tar.TypeDir, tar.TypeXGlobalHeader:
			continue
		case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old tar writers still emit '\x00'
		case tar.TypeSymlink:
			return refuse(hdr.Name, "is a symbolic link")
		case tar.TypeLink:
			return refuse(hdr.Name, "is a hard link")
		case tar.TypeChar, tar.TypeBlock:
			return refuse(hdr.Name, "is a device")
		case tar.TypeFifo:
			return refuse(hdr.Name, "is a named pipe")
		default:
			return refuse(hdr.Name, fmt.Sprintf("has an unsupported tar entry type %s", quoteByte(hdr.Typeflag)))
		}
		kind, format, why := classifyEntry(hdr.Name)
		if kind == entryRefuse {
			return refuse(hdr.Name, why)
		}
		// Ignored entries are inflated too (to be skipped), so they count.
		if total += hdr.Size; total > c.lim.MaxArchiveBytes {
			return c.archiveErr(errArchiveTooLarge, hdr.Name, b)
		}
		if kind == entryIgnore {
			c.ignore(hdr.Name, why)
			continue
		}
		if hdr.Size > c.lim.MaxEntryBytes {
			return c.archiveErr(errEntryTooLarge, hdr.Name, b)
		}
		if err := c.readStream(tr, format, hdr.Name); err != nil {
			return c.archiveErr(err, hdr.Name, b)
		}
	}
}
