package ingest

import (
	"archive/tar"
	"context"
	"io/fs"
	"strconv"
	"strings"
	"testing"

	"github.com/avon-ai/data-import-operator/internal/store"
)

func TestFiles(t *testing.T) {
	valid := seedConv(t, nil)
	valid2 := seedConv(t, func(m map[string]any) {
		m["conversation_id"] = "conv-002"
		delete(msg(m, 0), "conversation_id")
		delete(msg(m, 1), "conversation_id")
	})
	bad := seedConv(t, func(m map[string]any) { m["timestamp"] = "15/01/2025" })
	small := Limits{MaxRecordBytes: 64, MaxArchiveEntries: 3, MaxArchiveBytes: 4000, MaxEntryBytes: 2000, MaxFileBytes: 1_000_000}
	tests := []struct {
		name    string
		key     string
		body    []byte
		limits  Limits
		policy  InvalidRecordPolicy
		state   store.FileState
		reason  string
		message string   // exact Result.Message
		errs    []string // exact record errors, when listed
		valid   int64
		ignored []string
	}{
		{name: "json array", key: "a.json", body: []byte("[\n" + valid + ",\n" + valid2 + "\n]\n"),
			state: store.FileIngested, reason: ReasonIngested, message: "a.json: 2 valid records", valid: 2},
		{name: "json single object", key: "A.JSON", body: []byte(" " + valid + " "),
			state: store.FileIngested, reason: ReasonIngested, message: "A.JSON: 1 valid records", valid: 1},
		{name: "json array error names the index", key: "a.json", body: []byte("[" + valid + "," + bad + "]"),
			state: store.FileFailed, reason: ReasonInvalidRecords, valid: 1,
			message: `a.json: 1 of 2 records invalid, nothing committed (policy SkipFile): a.json[1]: timestamp: "15/01/2025" is not an ISO-8601 timestamp (want e.g. 2025-01-15T14:30:00Z)`},
		{name: "empty json array", key: "a.json", body: []byte("[ ]"),
			state: store.FileFailed, reason: ReasonNoValidRecords, message: "a.json: the file holds no conversations"},
		{name: "empty file", key: "a.jsonl", body: nil,
			state: store.FileFailed, reason: ReasonNoValidRecords, message: "a.jsonl: the file holds no conversations"},
		{name: "json top-level scalar", key: "a.json", body: []byte("\n 42"),
			state: store.FileFailed, reason: ReasonMalformed, message: "a.json: line 2: unexpected '4', want a JSON array of conversations or one conversation object"},
		{name: "json concatenated objects", key: "a.json", body: []byte(valid + "\n" + valid),
			state: store.FileFailed, reason: ReasonMalformed, message: "a.json: line 2: unexpected '{' after the top-level JSON value; a .json file holds one array or one object (use .jsonl for one conversation per line)"},
		{name: "json array missing comma", key: "a.json", body: []byte("[" + valid + "\n" + valid + "]"),
			state: store.FileFailed, reason: ReasonMalformed, message: "a.json: line 2: unexpected '{' after element 0 of the top-level array (want ',' or ']')"},
		{name: "json truncated", key: "a.json", body: []byte("[" + valid[:40]),
			state: store.FileFailed, reason: ReasonMalformed, message: "a.json: unexpected end of file inside element 0 of the top-level array starting at line 1"},
		{name: "json trailing comma is a syntax error at the comma", key: "a.json", body: []byte("[" + valid + ",\n]"),
			state: store.FileFailed, reason: ReasonMalformed, message: "a.json: line 1: trailing ',' after element 0 of the top-level array (JSON allows none: remove it)"},
		{name: "json unterminated array", key: "a.json", body: []byte("[" + valid + ","),
			state: store.FileFailed, reason: ReasonMalformed, message: "a.json: unexpected end of file inside the top-level array (want ']')"},
		{name: "json element syntax error is a record error", key: "a.json", body: []byte(`[{"a" 1}]`), policy: SkipRecord,
			state: store.FileFailed, reason: ReasonNoValidRecords,
			message: `a.json: none of 1 records is valid: a.json[0]: invalid JSON at byte 6 of the record: unexpected '1', want ':' after an object key`},
		{name: "jsonl blank lines and CRLF", key: "a.ndjson", body: []byte("\r\n" + valid + "\r\n\r\n   \n" + valid2),
			state: store.FileIngested, reason: ReasonIngested, message: "a.ndjson: 2 valid records", valid: 2},
		{name: "jsonl error names the line", key: "a.jsonl", body: []byte(valid + "\n\n" + bad + "\n"), policy: SkipRecord,
			state: store.FileIngested, reason: ReasonIngested, valid: 1,
			message: `a.jsonl: 1 valid records, 1 invalid skipped (policy SkipRecord): a.jsonl:3: timestamp: "15/01/2025" is not an ISO-8601 timestamp (want e.g. 2025-01-15T14:30:00Z)`},
		{name: "jsonl line too long", key: "a.jsonl", body: []byte(valid), limits: small,
			state: store.FileFailed, reason: ReasonLimitExceeded, message: "a.jsonl: line 1 is longer than the 64 B line limit"},
		{name: "json record too long", key: "a.json", body: []byte("[" + valid + "]"), limits: small,
			state: store.FileFailed, reason: ReasonLimitExceeded, message: "a.json: element 0 of the top-level array (starting at line 1) is larger than the 64 B record limit"},
		{name: "file too large", key: "a.jsonl", body: []byte(strings.Repeat(valid+"\n", 2000)),
			state: store.FileFailed, reason: ReasonFileTooLarge, message: "a.jsonl: the file is larger than the 1 MB limit", limits: Limits{MaxFileBytes: 1_000_000}},
		{name: "BOM", key: "a.json", body: []byte("\xef\xbb\xbf[]"),
			state: store.FileFailed, reason: ReasonInvalidEncoding, message: "a.json: the file starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without a BOM"},
		{name: "UTF-16", key: "a.jsonl", body: []byte("\xff\xfe{\x00"),
			state: store.FileFailed, reason: ReasonInvalidEncoding, message: "a.jsonl: the content looks like UTF-16 text (byte-order mark 0xFFFE); save it as UTF-8 without a BOM"},
		{name: "invalid UTF-8 position", key: "a.jsonl", body: []byte(valid + "\n{\"a\": \"b\xff\"}\n"),
			state: store.FileFailed, reason: ReasonInvalidEncoding, message: "a.jsonl: invalid UTF-8 (byte 0xFF) at byte offset " + itoa(len(valid)+9) + ", line 2, column 9; the file must be UTF-8"},
		{name: "gzip named json", key: "a.json", body: gzipBytes(t, []byte(valid)),
			state: store.FileFailed, reason: ReasonContentMismatch, message: "a.json: the content looks like a gzip stream, not JSON (by its extension)"},
		{name: "zip named jsonl", key: "a.jsonl", body: makeZip(t, entry{name: "a.json", body: valid}),
			state: store.FileFailed, reason: ReasonContentMismatch, message: "a.jsonl: the content looks like a ZIP archive, not JSON Lines (by its extension)"},
		{name: "zip named tar.gz", key: "a.tar.gz", body: makeZip(t, entry{name: "a.json", body: valid}),
			state: store.FileFailed, reason: ReasonContentMismatch, message: "a.tar.gz: the content looks like a ZIP archive, not a gzip-compressed tar archive (by its extension)"},
		{name: "tar.gz named zip", key: "a.zip", body: makeTarGz(t, entry{name: "a.json", body: valid}),
			state: store.FileFailed, reason: ReasonContentMismatch, message: "a.zip: the content looks like a gzip stream, not a ZIP archive (by its extension)"},
		{name: "json named zip", key: "a.zip", body: []byte(valid),
			state: store.FileFailed, reason: ReasonContentMismatch, message: "a.zip: the content looks like JSON, not a ZIP archive (by its extension)"},
		{name: "gzip json named tgz", key: "a.tgz", body: gzipBytes(t, []byte(valid)),
			state: store.FileFailed, reason: ReasonContentMismatch, message: "a.tgz: the gzip stream holds JSON, not a tar archive (by its extension .tar.gz)"},
		{name: "text named tar.gz", key: "a.tar.gz", body: []byte("hello"),
			state: store.FileFailed, reason: ReasonContentMismatch, message: "a.tar.gz: the content is not gzip-compressed (no gzip header); want a gzip-compressed tar archive"},
		{name: "unsupported extension", key: "notes.CSV", body: []byte("a,b"),
			state: store.FileIgnored, reason: ReasonUnsupportedFormat, message: `notes.CSV: unsupported extension ".csv" (want .json, .jsonl, .ndjson, .zip, .tar.gz, .tgz)`},
		{name: "no extension", key: "README", body: []byte("a,b"),
			state: store.FileIgnored, reason: ReasonUnsupportedFormat, message: `README: unsupported file type: no extension (want .json, .jsonl, .ndjson, .zip, .tar.gz, .tgz)`},

		{name: "zip with folders, dirs and ignored entries", key: "b.zip", body: makeZip(t,
			entry{name: "2025/", mode: fs.ModeDir | 0o755},
			entry{name: "2025/01/a.json", body: "[" + valid + "]"},
			entry{name: "2025/01/b.JSONL", body: valid2 + "\n"},
			entry{name: "readme.txt", body: "hi"},
			entry{name: "__MACOSX/2025/._a.json", body: "\x00\x05"}),
			state: store.FileIngested, reason: ReasonIngested, valid: 2, message: "b.zip: 2 valid records, 2 archive entries ignored",
			ignored: []string{`readme.txt: unsupported extension ".txt" (want .json, .jsonl, .ndjson, .zip, .tar.gz, .tgz)`, "__MACOSX/2025/._a.json: macOS metadata"}},
		{name: "zip entry error names the entry", key: "b.zip", body: makeZip(t, entry{name: "x/a.jsonl", body: valid + "\n" + bad}),
			state: store.FileFailed, reason: ReasonInvalidRecords, valid: 1,
			errs: []string{`b.zip!x/a.jsonl:2: timestamp: "15/01/2025" is not an ISO-8601 timestamp (want e.g. 2025-01-15T14:30:00Z)`}},
		{name: "zip nested archive", key: "b.zip", body: makeZip(t, entry{name: "a.json", body: valid}, entry{name: "inner/c.tar.gz", body: "x"}),
			state: store.FileFailed, reason: ReasonUnsafeArchive,
			message: `b.zip: archive entry "inner/c.tar.gz" is a nested archive (.tar.gz); put its files in the outer archive instead; the whole archive is refused`},
		{name: "zip symlink", key: "b.zip", body: makeZip(t, entry{name: "l.json", body: "/etc/passwd", mode: fs.ModeSymlink | 0o777}),
			state: store.FileFailed, reason: ReasonUnsafeArchive, message: `b.zip: archive entry "l.json" is a symbolic link; the whole archive is refused`},
		{name: "zip dot-dot", key: "b.zip", body: makeZip(t, entry{name: "a/../../x.json", body: valid}),
			state: store.FileFailed, reason: ReasonUnsafeArchive, message: `b.zip: archive entry "a/../../x.json" has a '..' path element (it would escape the archive); the whole archive is refused`},
		{name: "zip absolute", key: "b.zip", body: makeZip(t, entry{name: "/etc/x.json", body: valid}),
			state: store.FileFailed, reason: ReasonUnsafeArchive, message: `b.zip: archive entry "/etc/x.json" has an absolute path; the whole archive is refused`},
		{name: "zip too many entries", key: "b.zip", limits: small, body: makeZip(t, entry{name: "1.txt"}, entry{name: "2.txt"}, entry{name: "3.txt"}, entry{name: "4.txt"}),
			state: store.FileFailed, reason: ReasonLimitExceeded, message: "b.zip: the archive holds more than the 3-entry limit"},
		{name: "zip entry too large", key: "b.zip", limits: small, body: makeZip(t, entry{name: "a.json", body: strings.Repeat(" ", 3000)}),
			state: store.FileFailed, reason: ReasonLimitExceeded, message: "b.zip!a.json: the entry is larger than the 2 kB entry limit uncompressed"},
		{name: "zip bomb total", key: "b.zip", limits: small, body: makeZip(t, entry{name: "a.json", body: strings.Repeat(" ", 2000)}, entry{name: "b.json", body: strings.Repeat(" ", 2000)}, entry{name: "c.json", body: strings.Repeat(" ", 2000)}),
			state: store.FileFailed, reason: ReasonLimitExceeded, message: "b.zip: the archive holds more than the 4 kB limit of uncompressed data"},
		{name: "zip only ignored entries", key: "b.zip", body: makeZip(t, entry{name: "a.csv", body: "x"}),
			state: store.FileFailed, reason: ReasonNoValidRecords, message: "b.zip: the file holds no conversations (1 archive entries ignored)",
			ignored: []string{`a.csv: unsupported extension ".csv" (want .json, .jsonl, .ndjson, .zip, .tar.gz, .tgz)`}},
		{name: "zip entry with BOM", key: "b.zip", body: makeZip(t, entry{name: "d/a.json", body: "\xef\xbb\xbf[]"}),
			state: store.FileFailed, reason: ReasonInvalidEncoding, message: "b.zip!d/a.json: the file starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without a BOM"},
		{name: "zip entry that is gzip", key: "b.zip", body: makeZip(t, entry{name: "d/a.json", body: string(gzipBytes(t, []byte("[]")))}),
			state: store.FileFailed, reason: ReasonContentMismatch, message: "b.zip!d/a.json: the content looks like a gzip stream, not JSON (by its extension)"},
		{name: "text named zip", key: "a.zip", body: []byte("hello"),
			state: store.FileFailed, reason: ReasonContentMismatch, message: "a.zip: the content is not a ZIP archive (no ZIP signature)"},
		{name: "corrupt zip", key: "b.zip", body: makeZip(t, entry{name: "a.json", body: valid})[:60],
			state: store.FileFailed, reason: ReasonMalformed, message: "b.zip: not a readable ZIP archive: zip: not a valid zip file"},

		{name: "tar.gz entries", key: "c.tgz", body: makeTarGz(t,
			entry{name: "d/", tar: tar.TypeDir},
			entry{name: "d/a.json", body: valid},
			entry{name: "d/b.ndjson", body: valid2 + "\n"},
			entry{name: "d/c.md", body: "x"}),
			state: store.FileIngested, reason: ReasonIngested, valid: 2, message: "c.tgz: 2 valid records, 1 archive entries ignored",
			ignored: []string{`d/c.md: unsupported extension ".md" (want .json, .jsonl, .ndjson, .zip, .tar.gz, .tgz)`}},
		// The tar end marker comes before the gzip trailer: both must be read and checked.
		{name: "tar.gz truncated in its gzip trailer", key: "c.tar.gz", body: withoutLast(makeTarGz(t, entry{name: "a.json", body: valid}), 8),
			state: store.FileFailed, reason: ReasonMalformed, message: "c.tar.gz: the archive is corrupt: unexpected EOF"},
		{name: "tar.gz with a bad gzip checksum", key: "c.tar.gz", body: flipByte(makeTarGz(t, entry{name: "a.json", body: valid}), -6),
			state: store.FileFailed, reason: ReasonMalformed, message: "c.tar.gz: the archive is corrupt: gzip: invalid checksum"},
		{name: "tar symlink", key: "c.tar.gz", body: makeTarGz(t, entry{name: "a.json", body: valid}, entry{name: "l.json", tar: tar.TypeSymlink}),
			state: store.FileFailed, reason: ReasonUnsafeArchive, message: `c.tar.gz: archive entry "l.json" is a symbolic link; the whole archive is refused`},
		{name: "tar hard link", key: "c.tar.gz", body: makeTarGz(t, entry{name: "l.json", tar: tar.TypeLink}),
			state: store.FileFailed, reason: ReasonUnsafeArchive, message: `c.tar.gz: archive entry "l.json" is a hard link; the whole archive is refused`},
		{name: "tar device", key: "c.tar.gz", body: makeTarGz(t, entry{name: "dev/sda", tar: tar.TypeBlock}),
			state: store.FileFailed, reason: ReasonUnsafeArchive, message: `c.tar.gz: archive entry "dev/sda" is a device; the whole archive is refused`},
		{name: "tar fifo", key: "c.tar.gz", body: makeTarGz(t, entry{name: "p", tar: tar.TypeFifo}),
			state: store.FileFailed, reason: ReasonUnsafeArchive, message: `c.tar.gz: archive entry "p" is a named pipe; the whole archive is refused`},
		{name: "tar dot-dot", key: "c.tar.gz", body: makeTarGz(t, entry{name: "../x.jsonl", body: valid}),
			state: store.FileFailed, reason: ReasonUnsafeArchive, message: `c.tar.gz: archive entry "../x.jsonl" has a '..' path element (it would escape the archive); the whole archive is refused`},
		{name: "tar nested zip", key: "c.tar.gz", body: makeTarGz(t, entry{name: "x.ZIP", body: "PK"}),
			state: store.FileFailed, reason: ReasonUnsafeArchive, message: `c.tar.gz: archive entry "x.ZIP" is a nested archive (.zip); put its files in the outer archive instead; the whole archive is refused`},
		{name: "tar entry too large", key: "c.tar.gz", limits: small, body: makeTarGz(t, entry{name: "a.json", body: strings.Repeat(" ", 3000)}),
			state: store.FileFailed, reason: ReasonLimitExceeded, message: "c.tar.gz!a.json: the entry is larger than the 2 kB entry limit uncompressed"},
		{name: "tar bomb total", key: "c.tar.gz", limits: small, body: makeTarGz(t, entry{name: "a.txt", body: strings.Repeat(" ", 2000)}, entry{name: "b.txt", body: strings.Repeat(" ", 2000)}, entry{name: "c.txt", body: strings.Repeat(" ", 2000)}),
			state: store.FileFailed, reason: ReasonLimitExceeded, message: "c.tar.gz: the archive holds more than the 4 kB limit of uncompressed data",
			ignored: []string{`a.txt: unsupported extension ".txt" (want .json, .jsonl, .ndjson, .zip, .tar.gz, .tgz)`, `b.txt: unsupported extension ".txt" (want .json, .jsonl, .ndjson, .zip, .tar.gz, .tgz)`}},
		{name: "tar too many entries", key: "c.tar.gz", limits: small, body: makeTarGz(t, entry{name: "1/", tar: tar.TypeDir}, entry{name: "2/", tar: tar.TypeDir}, entry{name: "3/", tar: tar.TypeDir}, entry{name: "4/", tar: tar.TypeDir}),
			state: store.FileFailed, reason: ReasonLimitExceeded, message: "c.tar.gz: the archive holds more than the 3-entry limit"},
		{name: "truncated tar.gz", key: "c.tar.gz", body: makeTarGz(t, entry{name: "a.json", body: valid + strings.Repeat(" ", 5000)})[:50],
			state: store.FileFailed, reason: ReasonMalformed, message: "c.tar.gz: the archive is corrupt: unexpected EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &Engine{Limits: tc.limits}
			res, err := e.Process(context.Background(), ObjectRef{Key: tc.key}, bytesReader(tc.body), Options{DryRun: true, Policy: tc.policy})
			if err != nil {
				t.Fatalf("Process: %v", err)
			}
			if res.State != tc.state || res.Reason != tc.reason {
				t.Fatalf("state %s/%s, want %s/%s (message %q)", res.State, res.Reason, tc.state, tc.reason, res.Message)
			}
			if tc.message != "" && res.Message != tc.message {
				t.Fatalf("message\n got %q\nwant %q", res.Message, tc.message)
			}
			if tc.errs != nil && strings.Join(errorStrings(res), "\n") != strings.Join(tc.errs, "\n") {
				t.Fatalf("errors\n got %q\nwant %q", errorStrings(res), tc.errs)
			}
			if res.Counts.Valid != tc.valid {
				t.Fatalf("valid %d, want %d", res.Counts.Valid, tc.valid)
			}
			if strings.Join(res.Ignored, "\n") != strings.Join(tc.ignored, "\n") {
				t.Fatalf("ignored\n got %q\nwant %q", res.Ignored, tc.ignored)
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
