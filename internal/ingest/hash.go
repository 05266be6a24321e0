package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"unicode/utf8"
)

// Canonical content, hashed into Conversation.ContentHash, is the record re-serialized
// with: no insignificant whitespace; every object's members sorted by key (byte order
// of the decoded UTF-8 key); strings written with the minimal escapes (\" \\ and \u00XX
// for control characters), so "\u0041" and "A" are the same; numbers exactly as written
// (4.5 and 4.50 differ: the stored Raw keeps them as sent). Two records that differ only
// in whitespace or key order therefore hash the same and are "unchanged".
//
// An object with the same key twice has no canonical form (parsers disagree on which
// value wins), so such a record is invalid.

// member is one object member while its object is being sorted.
type member struct {
	key  []byte
	k, v int32
}

// hasher computes the canonical hash of a parsed record, reusing its buffers.
type hasher struct {
	r       *record
	buf     []byte
	members []member
	dup     int32 // tape index of the duplicated key, or -1
}

// sum returns the hex SHA-256 of r's canonical form, or ok=false with h.dup set when an
// object repeats a key.
func (h *hasher) sum(r *record) (string, bool) {
	h.r, h.buf, h.dup = r, h.buf[:0], -1
	if !h.value(0) {
		return "", false
	}
	s := sha256.Sum256(h.buf)
	return hex.EncodeToString(s[:]), true
}

func (h *hasher) value(i int32) bool {
	r := h.r
	switch n := r.tape[i]; n.kind {
	case kStr:
		h.str(i)
	case kArr:
		h.buf = append(h.buf, '[')
		first := true
		ok := true
		r.each(i, func(_, c int32) bool {
			if !first {
				h.buf = append(h.buf, ',')
			}
			first = false
			ok = h.value(c)
			return ok
		})
		if !ok {
			return false
		}
		h.buf = append(h.buf, ']')
	case kObj:
		return h.object(i)
	default:
		h.buf = append(h.buf, r.raw[n.start:n.end]...)
	}
	return true
}

func (h *hasher) object(i int32) bool {
	r := h.r
	base := len(h.members)
	sorted := true
	r.each(i, func(k, v int32) bool {
		m := member{k: k, v: v, key: r.raw[r.tape[k].start:r.tape[k].end]}
		if r.tape[k].esc {
			// Escaped keys are rare: decoding them into a copy is fine.
			m.key = []byte(r.str(k))
		}
		if n := len(h.members); n > base && bytes.Compare(h.members[n-1].key, m.key) >= 0 {
			sorted = false
		}
		h.members = append(h.members, m)
		return true
	})
	ms := h.members[base:]
	if !sorted {
		slices.SortStableFunc(ms, func(a, b member) int { return bytes.Compare(a.key, b.key) })
	}
	for j := 1; j < len(ms); j++ {
		if bytes.Equal(ms[j-1].key, ms[j].key) {
			h.dup = ms[j].k
			h.members = h.members[:base]
			return false
		}
	}
	h.buf = append(h.buf, '{')
	for j := 0; j < len(h.members)-base; j++ {
		// Index through h.members: nested objects may grow (and move) the slice.
		m := h.members[base+j]
		if j > 0 {
			h.buf = append(h.buf, ',')
		}
		h.str(m.k)
		h.buf = append(h.buf, ':')
		if !h.value(m.v) {
			h.members = h.members[:base]
			return false
		}
	}
	h.buf = append(h.buf, '}')
	h.members = h.members[:base]
	return true
}

// str writes a string node in canonical form.
func (h *hasher) str(i int32) {
	n := h.r.tape[i]
	if !n.esc {
		h.buf = append(h.buf, '"')
		h.buf = append(h.buf, h.r.raw[n.start:n.end]...)
		h.buf = append(h.buf, '"')
		return
	}
	h.buf = appendCanonicalString(h.buf, h.r.str(i))
}

func appendCanonicalString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		case c < utf8.RuneSelf:
			dst = append(dst, c)
		default:
			_, size := utf8.DecodeRuneInString(s[i:])
			dst = append(dst, s[i:i+size]...)
			i += size
			continue
		}
		i++
	}
	return append(dst, '"')
}

// pathTo returns the JSON path of tape node target ("" for the root), for error messages.
func (r *record) pathTo(target int32) string {
	path := ""
	i := int32(0)
	for i != target {
		found := false
		isObj := r.tape[i].kind == kObj
		idx := 0
		r.each(i, func(k, v int32) bool {
			if target == k {
				// A key: its path is its object's, with the key named.
				target, found = v, true
			}
			if target >= v && target < r.tape[v].next {
				if isObj {
					path = join(path, shorten(r.str(k)))
				} else {
					path = join(path, index(idx))
				}
				i, found = v, true
				return false
			}
			idx++
			return true
		})
		if !found {
			return path
		}
	}
	return path
}
