// Package leak finds secrets where they must never be: in what the operator shows (status,
// events, metrics) and writes (logs). Tests and the demo run it after exercising the
// operator; any finding is a bug.
//
// A Scanner looks for two things in named texts:
//   - known secret values: every value of every Secret in the cluster (see SecretsOf) and
//     whatever the caller adds (MinIO's root password, the API server's bearer token), as
//     they are and in their base64 forms;
//   - signing material by shape: JWTs (service-account and STS web-identity tokens, MinIO
//     session tokens), presigned-URL query parameters, SigV4 Authorization headers,
//     bearer tokens and PEM private keys,
//
// and reports each hit by the text's name and the kind of secret, never the secret.
//
// Access key IDs are not secret (AWS treats only the secret access key and session token
// as secret; the operator shows the ID on purpose, see bucket.StaticCredentials.String),
// so Secret keys that hold one are not scanned for; neither are external IDs, role ARNs,
// regions, certificates and a service-account token Secret's namespace (IsPublicKey).
// Values shorter than MinSecretLen bytes cannot be real keys and would match innocent
// text, so they are skipped too.
//
// Check does it all for a cluster; a program such as the demo passes an admin's client
// and what it captured:
//
//	r, err := leak.Check(ctx, adminClient, leak.Options{
//		Known: []leak.Secret{{Name: "MinIO root password", Value: pw}},
//		Logs:  leak.LogTexts("manager log", managerLog),
//	})
//	fmt.Println(r.Summary())
//	if err == nil { err = r.Err() }
package leak

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// MinSecretLen is the shortest value scanned for. bucket's own redaction uses the same bound.
const MinSecretLen = 8

// Secret is a value that must not appear, with a description that may: e.g.
// "Secret tenant-a/keys key AWS_SECRET_ACCESS_KEY" or "MinIO root password".
type Secret struct {
	Name  string
	Value string
}

// Text is something to scan, named so a finding can point at it without quoting it:
// "status of S3Source ns/name", "event ns/x", "log line 1234".
type Text struct {
	Name string
	Body string
}

// Finding is one secret found in one text. It names both and quotes neither.
type Finding struct {
	// Text is the Text's name.
	Text string
	// Kind says what matched: a known secret's name (and "base64 of" it), or a pattern
	// such as "JWT" or "presigned URL parameter X-Amz-Signature".
	Kind string
	// Offset is the byte offset of the match in the text's body.
	Offset int
}

func (f Finding) String() string {
	return fmt.Sprintf("%s: %s at byte %d", f.Text, f.Kind, f.Offset)
}

// pattern is a shape of signing material. A match whose value group is a redaction
// placeholder is not a leak: bucket's sanitizer writes "X-Amz-Signature=REDACTED".
type pattern struct {
	kind string
	re   *regexp.Regexp
	// value is the submatch holding the secret part; 0 for the whole match.
	value int
}

var patterns = []pattern{
	// Three base64url segments, the first a JSON header ("{" encodes as "eyJ"): a JWT,
	// such as a service-account token, a web-identity token or a MinIO STS session token.
	{kind: "JWT", re: regexp.MustCompile(`eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}`)},
	// A presigned URL carries its signature, credential scope and session token in the query.
	{kind: "presigned URL parameter X-Amz-Signature", re: regexp.MustCompile(`(?i)x-amz-signature\s*[=:]\s*([^\s&,;"'<>]+)`), value: 1},
	{kind: "presigned URL parameter X-Amz-Credential", re: regexp.MustCompile(`(?i)x-amz-credential\s*[=:]\s*([^\s&,;"'<>]+)`), value: 1},
	{kind: "session token (X-Amz-Security-Token)", re: regexp.MustCompile(`(?i)x-amz-security-token\s*[=:]\s*([^\s&,;"'<>]+)`), value: 1},
	// A SigV4 Authorization header: "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=<hex>".
	{kind: "SigV4 Authorization header", re: regexp.MustCompile(`(?i)AWS4-HMAC-SHA256\s+Credential=[^\n]{0,400}?Signature=([0-9a-f]{16,})`), value: 1},
	{kind: "bearer token", re: regexp.MustCompile(`(?i)authorization\s*[=:]\s*"?bearer\s+([A-Za-z0-9._~+/-]{8,}=*)`), value: 1},
	{kind: "PEM private key", re: regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`)},
}

// placeholders are what redaction leaves behind; a "secret" equal to one is not a leak.
var placeholders = map[string]bool{"redacted": true, "[redacted]": true, "<redacted>": true, "***": true, "xxxxx": true}

type needle struct {
	kind  string
	value string
}

// Scanner scans texts for the secrets it was given and for the patterns above.
// Its zero value scans for patterns only. It is not safe for concurrent Add.
type Scanner struct {
	needles []needle
	seen    map[string]bool
	secrets int
}

// NewScanner returns a scanner for secrets (and the patterns).
func NewScanner(secrets ...Secret) *Scanner {
	s := &Scanner{}
	s.Add(secrets...)
	return s
}

// Add adds secrets: each value with surrounding white space trimmed (as the operator
// uses it), and the standard and URL-safe base64 forms of the trimmed and the raw value,
// without padding so that a padded encoding matches too. Values shorter than
// MinSecretLen once trimmed are ignored.
func (s *Scanner) Add(secrets ...Secret) {
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	for _, sec := range secrets {
		v := strings.TrimSpace(sec.Value)
		if len(v) < MinSecretLen {
			continue
		}
		s.secrets++
		// The trimmed value is inside the raw one, so it finds both; their base64 forms differ.
		s.add(needle{kind: sec.Name, value: v})
		for _, raw := range uniq(v, sec.Value) {
			for _, b := range uniq(base64.RawStdEncoding.EncodeToString([]byte(raw)), base64.RawURLEncoding.EncodeToString([]byte(raw))) {
				s.add(needle{kind: "base64 of " + sec.Name, value: b})
			}
		}
	}
}

func (s *Scanner) add(n needle) {
	if s.seen[n.value] {
		return
	}
	s.seen[n.value] = true
	s.needles = append(s.needles, n)
}

// Secrets is how many secret values the scanner looks for (base64 forms not counted).
func (s *Scanner) Secrets() int { return s.secrets }

// Scan returns every finding in texts, in text order then offset order. A trimmed
// value and the raw value it came from can both match at one place: one finding is kept
// per text, offset and kind.
func (s *Scanner) Scan(texts ...Text) []Finding {
	var out []Finding
	for _, t := range texts {
		out = append(out, s.scanOne(t)...)
	}
	return out
}

func (s *Scanner) scanOne(t Text) []Finding {
	type key struct {
		kind   string
		offset int
	}
	found := map[key]bool{}
	var out []Finding
	report := func(kind string, offset int) {
		k := key{kind, offset}
		if !found[k] {
			found[k] = true
			out = append(out, Finding{Text: t.Name, Kind: kind, Offset: offset})
		}
	}
	for _, n := range s.needles {
		for from := 0; ; {
			i := strings.Index(t.Body[from:], n.value)
			if i < 0 {
				break
			}
			report(n.kind, from+i)
			from += i + len(n.value)
		}
	}
	for _, p := range patterns {
		for _, m := range p.re.FindAllStringSubmatchIndex(t.Body, -1) {
			start, end := m[2*p.value], m[2*p.value+1]
			if start < 0 || placeholders[strings.ToLower(strings.Trim(t.Body[start:end], `"'`))] {
				continue
			}
			report(p.kind, m[0])
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Offset < out[j].Offset })
	return out
}

func uniq(values ...string) []string {
	var out []string
	for _, v := range values {
		dup := false
		for _, o := range out {
			dup = dup || o == v
		}
		if !dup {
			out = append(out, v)
		}
	}
	return out
}
