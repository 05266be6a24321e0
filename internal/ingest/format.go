package ingest

import (
	"bytes"
	"path"
	"strings"
)

// Format is how an object's bytes are read, chosen by its key's extension.
type Format string

const (
	FormatJSON  Format = "json"
	FormatJSONL Format = "jsonl"
	FormatZip   Format = "zip"
	FormatTarGz Format = "tar.gz"
)

// Extensions maps each supported extension (lower case) to its format.
var Extensions = map[string]Format{
	".json":   FormatJSON,
	".jsonl":  FormatJSONL,
	".ndjson": FormatJSONL,
	".zip":    FormatZip,
	".tar.gz": FormatTarGz,
	".tgz":    FormatTarGz,
}

// archiveExts are extensions of archives and compressed streams: inside an archive they
// are nested archives, which are refused.
var archiveExts = []string{".zip", ".tar", ".tar.gz", ".tgz", ".gz", ".bz2", ".xz", ".zst", ".7z", ".rar"}

// Ext returns key's extension in lower case, with ".tar.gz" as one extension.
func Ext(key string) string {
	base := strings.ToLower(path.Base(strings.ReplaceAll(key, `\`, "/")))
	if strings.HasSuffix(base, ".tar.gz") && base != ".tar.gz" {
		return ".tar.gz"
	}
	return path.Ext(base)
}

// FormatOf returns the format of key by its extension (case-insensitive), and false with
// the extension when it is not supported.
func FormatOf(key string) (Format, string, bool) {
	ext := Ext(key)
	f, ok := Extensions[ext]
	return f, ext, ok
}

// SupportedExtensions lists the extensions FormatOf accepts, for messages.
const SupportedExtensions = ".json, .jsonl, .ndjson, .zip, .tar.gz, .tgz"

func unsupportedMessage(ext string) string {
	if ext == "" {
		return "unsupported file type: no extension (want " + SupportedExtensions + ")"
	}
	return "unsupported extension " + quoteShort(ext) + " (want " + SupportedExtensions + ")"
}

// sniffLen is how many leading bytes sniff looks at (a tar header's magic is at 257).
const sniffLen = 512

// sniff names what content looks like from its first bytes, or "" when it cannot tell.
func sniff(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return "a gzip stream"
	case bytes.HasPrefix(b, []byte("PK\x03\x04")), bytes.HasPrefix(b, []byte("PK\x05\x06")), bytes.HasPrefix(b, []byte("PK\x07\x08")):
		return "a ZIP archive"
	case len(b) >= 262 && string(b[257:262]) == "ustar":
		return "a tar archive"
	case bytes.HasPrefix(b, []byte("BZh")):
		return "a bzip2 stream"
	case bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return "an xz stream"
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "a zstd stream"
	case bytes.HasPrefix(b, []byte{'7', 'z', 0xbc, 0xaf, 0x27, 0x1c}):
		return "a 7z archive"
	case bytes.HasPrefix(b, []byte("Rar!")):
		return "a RAR archive"
	case bytes.HasPrefix(b, []byte("%PDF")):
		return "a PDF document"
	case bytes.HasPrefix(b, []byte{0xef, 0xbb, 0xbf}):
		return "UTF-8 text with a byte-order mark"
	case bytes.HasPrefix(b, []byte{0xff, 0xfe}), bytes.HasPrefix(b, []byte{0xfe, 0xff}):
		return "UTF-16 text"
	}
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return "JSON"
	}
	return ""
}

// isCompressedOrArchive reports whether a sniff result is a binary container format.
func isCompressedOrArchive(kind string) bool {
	return strings.HasSuffix(kind, "stream") || strings.HasSuffix(kind, "archive") || kind == "a PDF document"
}
