package postgres

import (
	"net/url"
	"strings"
)

const redacted = "xxxxx"

// secrets returns the passwords a DSN carries, as written and decoded: in the URL's
// userinfo and in a password query parameter. It parses leniently, by hand, because a
// DSN that url.Parse rejects must still be redacted in the error that says so.
func secrets(dsn string) []string {
	var out []string
	add := func(s string) {
		if s == "" {
			return
		}
		out = append(out, s)
		if d, err := url.PathUnescape(s); err == nil && d != s {
			out = append(out, d)
		}
	}
	rest := dsn
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	authority, query, _ := strings.Cut(rest, "?")
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		if _, pw, ok := strings.Cut(authority[:at], ":"); ok {
			add(pw)
		}
	}
	for _, kv := range strings.Split(query, "&") {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.EqualFold(k, "password") {
			add(v)
		}
	}
	// Longest first, so a decoded secret that contains the raw one is replaced whole.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && len(out[j]) > len(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// Redact returns dsn with its passwords replaced by xxxxx, for messages and logs.
func Redact(dsn string) string {
	for _, s := range secrets(dsn) {
		dsn = strings.ReplaceAll(dsn, s, redacted)
	}
	return dsn
}

// scrubbedError hides a DSN's passwords from a wrapped error's text (a driver's message
// may quote the whole DSN) while errors.Is and errors.As still see the cause.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

func scrub(err error, dsn string) error {
	ss := secrets(dsn)
	if err == nil || len(ss) == 0 {
		return err
	}
	msg := err.Error()
	for _, s := range ss {
		msg = strings.ReplaceAll(msg, s, redacted)
	}
	return &scrubbedError{msg: msg, err: err}
}
