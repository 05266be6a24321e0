package ingest

import (
	"crypto/sha256"
	"encoding/hex"
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

// member is one object member while its object is being sorted; its value is the
// tape node after the key.
type member struct {
	key []byte
	k   int32
}

// hasher computes the canonical hash of a parsed record, reusing its buffers.
//
// It writes the canonical form by walking the tape: the parser's output is already
// compacted, so a string without escapes, a number or a literal is copied as it is,
// and so is a whole member ("key":value, contiguous in the compacted bytes) whose key
// and value are such scalars. Only the order of members and escaped strings need work.
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
		h.str(n)
	case kArr:
		h.buf = append(h.buf, '[')
		for c := i + 1; c < n.next; c = r.tape[c].next {
			if c != i+1 {
				h.buf = append(h.buf, ',')
			}
			if !h.value(c) {
				return false
			}
		}
		h.buf = append(h.buf, ']')
	case kObj:
		return h.object(i)
	default:
		h.buf = append(h.buf, r.raw[n.start:n.end]...)
	}
	return true
}

// keyLess orders keys bytewise; most keys differ in their first byte.
func keyLess(a, b []byte) bool {
	if len(a) > 0 && len(b) > 0 && a[0] != b[0] {
		return a[0] < b[0]
	}
	return string(a) < string(b)
}

func (h *hasher) object(i int32) bool {
	r := h.r
	base := len(h.members)
	sorted := true
	end := r.tape[i].next
	for k := i + 1; k < end; k = r.tape[r.tape[k].next].next {
		m := member{k: k, key: r.raw[r.tape[k].start:r.tape[k].end]}
		if r.tape[k].esc {
			// Escaped keys are rare: decoding them into a copy is fine.
			m.key = []byte(r.str(k))
		}
		if n := len(h.members); n > base && !keyLess(h.members[n-1].key, m.key) {
			sorted = false
		}
		h.members = append(h.members, m)
	}
	ms := h.members[base:]
	if !sorted {
		// Insertion sort, stable (a member moves only past greater keys): objects have
		// few members, and the duplicate reported is the later of two equal keys.
		for j := 1; j < len(ms); j++ {
			for x := j; x > 0 && keyLess(ms[x].key, ms[x-1].key); x-- {
				ms[x], ms[x-1] = ms[x-1], ms[x]
			}
		}
	}
	for j := 1; j < len(ms); j++ {
		if string(ms[j-1].key) == string(ms[j].key) {
			h.dup = ms[j].k
			h.members = h.members[:base]
			return false
		}
	}
	h.buf = append(h.buf, '{')
	for j := 0; j < len(h.members)-base; j++ {
		// Index through h.members: nested objects may grow (and move) the slice.
		k := h.members[base+j].k
		if j > 0 {
			h.buf = append(h.buf, ',')
		}
		key, v := r.tape[k], r.tape[k].next
		val := r.tape[v]
		if !key.esc && !val.esc && val.kind < kArr {
			// "key":value is contiguous and canonical in the compacted record; a string
			// value's span ends before its closing quote.
			e := val.end
			if val.kind == kStr {
				e++
			}
			h.buf = append(h.buf, r.raw[key.start-1:e]...)
			continue
		}
		h.str(key)
		h.buf = append(h.buf, ':')
		if !h.value(v) {
			h.members = h.members[:base]
			return false
		}
	}
	h.buf = append(h.buf, '}')
	h.members = h.members[:base]
	return true
}

// str writes a string node in canonical form: without escapes, its bytes with their
// quotes as the compacted record holds them.
func (h *hasher) str(n node) {
	if !n.esc {
		h.buf = append(h.buf, h.r.raw[n.start-1:n.end+1]...)
		return
	}
	h.buf = appendCanonicalString(h.buf, h.r.strNode(n))
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
