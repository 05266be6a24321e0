package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/avon-ai/data-import-operator/internal/quota"
)

// window is a sliding buffer over a stream: it holds the current record and what has
// been read past it, never the whole file. Records are parsed in place.
type window struct {
	r        io.Reader
	buf      []byte
	off, end int
	eof      bool
	// base is the stream offset of buf[0]; line counts newlines before buf[off].
	base int64
	line int64
	max  int
}

// windowSize is the initial read buffer; it grows only for records larger than it.
const windowSize = 256 << 10

func newWindow(r io.Reader, maxRecord int) *window {
	return &window{r: r, buf: make([]byte, windowSize), max: maxRecord}
}

// errRecordTooLong: the record being read is longer than the window may grow.
var errRecordTooLong = errors.New("record too long")

// more reads more of the stream, keeping buf[off:end]. It returns io.EOF at the end.
func (w *window) more() error {
	if w.eof {
		return io.EOF
	}
	if w.off > 0 {
		n := copy(w.buf, w.buf[w.off:w.end])
		w.base += int64(w.off)
		w.off, w.end = 0, n
	}
	if w.end == len(w.buf) {
		if w.end >= w.max+1 {
			return errRecordTooLong
		}
		grown := make([]byte, min(2*len(w.buf), w.max+1))
		copy(grown, w.buf[:w.end])
		w.buf = grown
	}
	for range 100 {
		n, err := w.r.Read(w.buf[w.end:])
		w.end += n
		if err == io.EOF {
			w.eof = true
			if n > 0 {
				return nil
			}
			return io.EOF
		}
		if err != nil || n > 0 {
			return err
		}
	}
	return io.ErrNoProgress
}

// advance consumes n bytes, counting the lines they end.
func (w *window) advance(n int) {
	w.line += int64(bytes.Count(w.buf[w.off:w.off+n], []byte{'\n'}))
	w.off += n
}

// skipWS consumes whitespace; it returns false at the end of the stream.
func (w *window) skipWS() (bool, error) {
	for {
		i := w.off
		for i < w.end && isWS(w.buf[i]) {
			i++
		}
		w.advance(i - w.off)
		if w.off < w.end {
			return true, nil
		}
		if err := w.more(); err == io.EOF {
			return false, nil
		} else if err != nil {
			return false, err
		}
	}
}

// peek returns at least n buffered bytes when the stream has them.
func (w *window) peek(n int) ([]byte, error) {
	for w.end-w.off < n && !w.eof {
		if err := w.more(); err != nil && err != io.EOF {
			return nil, err
		}
	}
	return w.buf[w.off:min(w.end, w.off+n)], nil
}

// scanPlain marks bytes that end nothing inside a string.
var scanPlain = func() (t [256]bool) {
	for i := range t {
		t[i] = true
	}
	t['"'], t['\\'] = false, false
	return t
}()

// scanValue returns the length of the JSON value at buf[off], reading more as needed. It
// only finds the value's end (strings and bracket depth); the parser checks the rest.
func (w *window) scanValue() (int, error) {
	first := w.buf[w.off]
	scalar := first != '{' && first != '[' && first != '"'
	i, depth := 0, 0
	inStr, esc := false, false
	if first == '"' {
		inStr, i = true, 1
	}
	for {
		b := w.buf[w.off:w.end]
		for i < len(b) {
			c := b[i]
			if inStr {
				if esc {
					esc = false
				} else {
					for i < len(b) && scanPlain[b[i]] {
						i++
					}
					if i == len(b) {
						break
					}
					if b[i] == '\\' {
						esc = true
					} else {
						inStr = false
						if depth == 0 {
							return i + 1, nil
						}
					}
				}
				i++
				continue
			}
			switch {
			case scalar:
				if c == ',' || c == ']' || c == '}' || isWS(c) {
					return i, nil
				}
			case c == '"':
				inStr = true
			case c == '{' || c == '[':
				depth++
			case c == '}' || c == ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		if i > w.max {
			return 0, errRecordTooLong
		}
		if err := w.more(); err == io.EOF {
			if scalar {
				return i, nil
			}
			return i, io.ErrUnexpectedEOF
		} else if err != nil {
			return 0, err
		}
	}
}

// readStream reads a JSON or JSONL stream (a file, or an archive entry) into c.
func (c *collector) readStream(r io.Reader, format Format, entry string) error {
	w := newWindow(r, c.lim.MaxRecordBytes)
	head, err := w.peek(sniffLen)
	if err != nil {
		return err
	}
	if fe := checkTextHead(head, format); fe != nil {
		fe.entry = entry
		return fe
	}
	if format == FormatJSONL {
		err = c.readJSONL(w, entry)
	} else {
		err = c.readJSON(w, entry)
	}
	var fe *fileError
	if errors.As(err, &fe) && fe.entry == "" {
		fe.entry = entry
	}
	return err
}

// checkTextHead refuses byte-order marks and content that is plainly another format.
func checkTextHead(head []byte, format Format) *fileError {
	what := sniff(head)
	switch {
	case what == "UTF-8 text with a byte-order mark":
		return failf(ReasonInvalidEncoding, "the file starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without a BOM")
	case what == "UTF-16 text":
		return failf(ReasonInvalidEncoding, "the content looks like UTF-16 text (byte-order mark 0x%X%X); save it as UTF-8 without a BOM", head[0], head[1])
	case isCompressedOrArchive(what):
		return failf(ReasonContentMismatch, "the content looks like %s, not %s (by its extension)", what, describeFormat(format))
	}
	return nil
}

func describeFormat(f Format) string {
	switch f {
	case FormatJSON:
		return "JSON"
	case FormatJSONL:
		return "JSON Lines"
	case FormatZip:
		return "a ZIP archive"
	}
	return "a gzip-compressed tar archive"
}

// invalidUTF8 locates the first invalid UTF-8 byte of b.
func invalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

// encodingError reports invalid UTF-8 at buf offset i of the window (in the current record).
func (w *window) encodingError(i int) *fileError {
	line := w.line + 1 + int64(bytes.Count(w.buf[w.off:i], []byte{'\n'}))
	col := 0
	// The column is known when the line's start is still in the window.
	if ls := bytes.LastIndexByte(w.buf[:i], '\n'); ls >= 0 || w.base == 0 {
		col = i - ls
	}
	msg := fmt.Sprintf("invalid UTF-8 (byte 0x%02X) at byte offset %d, line %d", w.buf[i], w.base+int64(i), line)
	if col > 0 {
		msg += fmt.Sprintf(", column %d", col)
	}
	return failf(ReasonInvalidEncoding, "%s; the file must be UTF-8", msg)
}

func (c *collector) readJSON(w *window, entry string) error {
	ok, err := w.skipWS()
	if err != nil {
		return err
	}
	if !ok {
		return nil // empty: finish reports that the file holds no conversations
	}
	switch w.buf[w.off] {
	case '{':
		if err := c.element(w, where{entry: entry, index: -1}); err != nil {
			return err
		}
	case '[':
		w.advance(1)
		if err := c.array(w, entry); err != nil {
			return err
		}
	default:
		return failf(ReasonMalformed, "line %d: unexpected %s, want a JSON array of conversations or one conversation object",
			w.line+1, quoteByte(w.buf[w.off]))
	}
	if ok, err := w.skipWS(); err != nil {
		return err
	} else if ok {
		return failf(ReasonMalformed, "line %d: unexpected %s after the top-level JSON value; a .json file holds one array or one object (use .jsonl for one conversation per line)",
			w.line+1, quoteByte(w.buf[w.off]))
	}
	return nil
}

// array reads the elements of a top-level array whose '[' was consumed.
func (c *collector) array(w *window, entry string) error {
	for idx := int64(0); ; idx++ {
		ok, err := w.skipWS()
		if err != nil {
			return err
		}
		if !ok {
			return failf(ReasonMalformed, "unexpected end of file inside the top-level array (want ']')")
		}
		if idx == 0 && w.buf[w.off] == ']' {
			w.advance(1)
			return nil
		}
		if err := c.element(w, where{entry: entry, index: idx}); err != nil {
			return err
		}
		if ok, err = w.skipWS(); err != nil {
			return err
		} else if !ok {
			return failf(ReasonMalformed, "unexpected end of file after element %d of the top-level array (want ',' or ']')", idx)
		}
		switch w.buf[w.off] {
		case ',':
			commaLine := w.line + 1
			w.advance(1)
			// `[{...},]` is a syntax error at the comma, not an extra empty record.
			if ok, err := w.skipWS(); err != nil {
				return err
			} else if ok && w.buf[w.off] == ']' {
				return failf(ReasonMalformed, "line %d: trailing ',' after element %d of the top-level array (JSON allows none: remove it)",
					commaLine, idx)
			}
		case ']':
			w.advance(1)
			return nil
		default:
			return failf(ReasonMalformed, "line %d: unexpected %s after element %d of the top-level array (want ',' or ']')",
				w.line+1, quoteByte(w.buf[w.off]), idx)
		}
	}
}

// element reads one JSON value at the window's position as a record.
func (c *collector) element(w *window, at where) error {
	startLine := w.line + 1
	n, err := w.scanValue()
	switch {
	case errors.Is(err, errRecordTooLong) || n > c.lim.MaxRecordBytes:
		return failf(ReasonLimitExceeded, "%s (starting at line %d) is larger than the %s record limit", describeAt(at), startLine, quota.FormatBytes(int64(c.lim.MaxRecordBytes)))
	case err == io.ErrUnexpectedEOF:
		return failf(ReasonMalformed, "unexpected end of file inside %s starting at line %d", describeAt(at), startLine)
	case err != nil:
		return err
	}
	src := w.buf[w.off : w.off+n]
	if bad := invalidUTF8(src); bad >= 0 {
		return w.encodingError(w.off + bad)
	}
	if err := c.record(src, at); err != nil {
		return err
	}
	w.advance(n)
	return nil
}

func describeAt(at where) string {
	if at.index >= 0 {
		return fmt.Sprintf("element %d of the top-level array", at.index)
	}
	return "the conversation object"
}

func (c *collector) readJSONL(w *window, entry string) error {
	for {
		if w.off == w.end {
			if err := w.more(); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
		}
		nl := bytes.IndexByte(w.buf[w.off:w.end], '\n')
		if nl < 0 && !w.eof {
			if w.end-w.off > c.lim.MaxRecordBytes {
				return failf(ReasonLimitExceeded, "line %d is longer than the %s line limit", w.line+1, quota.FormatBytes(int64(c.lim.MaxRecordBytes)))
			}
			if err := w.more(); errors.Is(err, errRecordTooLong) {
				return failf(ReasonLimitExceeded, "line %d is longer than the %s line limit", w.line+1, quota.FormatBytes(int64(c.lim.MaxRecordBytes)))
			} else if err != nil && err != io.EOF {
				return err
			}
			continue
		}
		n := w.end - w.off
		if nl >= 0 {
			n = nl + 1
		}
		line := w.buf[w.off : w.off+n]
		if len(line) > c.lim.MaxRecordBytes+2 {
			return failf(ReasonLimitExceeded, "line %d is longer than the %s line limit", w.line+1, quota.FormatBytes(int64(c.lim.MaxRecordBytes)))
		}
		if bad := invalidUTF8(line); bad >= 0 {
			return w.encodingError(w.off + bad)
		}
		// The parser skips surrounding whitespace, CR included; a blank line is no record.
		if len(bytes.TrimLeft(line, " \t\r\n")) > 0 {
			if err := c.record(line, where{entry: entry, line: w.line + 1, index: -1}); err != nil {
				return err
			}
		}
		w.advance(n)
	}
}
