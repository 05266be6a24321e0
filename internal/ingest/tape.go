package ingest

import (
	"encoding/json"
	"fmt"
)

// kind is the JSON type of one tape node.
type kind uint8

const (
	kNull kind = iota
	kFalse
	kTrue
	kNum
	kStr
	kArr
	kObj
)

func (k kind) String() string {
	return [...]string{"null", "false", "true", "number", "string", "array", "object"}[k]
}

// node is one JSON value on the tape. Spans index the compacted output, so a record is
// parsed once and its stored Raw bytes, its validation and its hash all read the same buffer.
type node struct {
	kind kind
	// esc marks a string holding backslash escapes: its span is not its value.
	esc bool
	// start, end: the value's bytes in the compacted record; strings exclude the quotes.
	start, end int32
	// next is the tape index after this value and all its descendants (its next sibling).
	next int32
}

// parser is a strict RFC 8259 parser that writes a compacted copy of its input and a
// flat tape of nodes. Objects hold key, value, key, value... as children. It is reused
// across records so a file costs a handful of allocations, not one per value.
type parser struct {
	src  []byte
	pos  int
	out  []byte
	run  int // start in src of the bytes not yet copied to out
	tape []node
	// maxDepth bounds nesting so hostile input cannot exhaust the stack.
	maxDepth int
}

// syntaxError is malformed JSON at a byte offset of the record as read.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d of the record: %s", e.off+1, e.msg)
}

// parse parses src, which must hold exactly one JSON value (surrounding whitespace allowed).
func (p *parser) parse(src []byte) error {
	p.src, p.pos, p.run = src, 0, 0
	p.out, p.tape = p.out[:0], p.tape[:0]
	p.skipWS()
	if p.pos >= len(p.src) {
		return p.fail("empty record")
	}
	if err := p.value(0); err != nil {
		return err
	}
	p.skipWS()
	if p.pos < len(p.src) {
		return p.fail(fmt.Sprintf("unexpected %s after the JSON value", quoteByte(p.src[p.pos])))
	}
	p.flush(p.pos)
	return nil
}

func (p *parser) fail(msg string) error { return &syntaxError{off: p.pos, msg: msg} }

// outPos is where src offset i lands in the compacted output.
func (p *parser) outPos(i int) int32 { return int32(len(p.out) + i - p.run) }

func (p *parser) flush(i int) {
	p.out = append(p.out, p.src[p.run:i]...)
	p.run = i
}

func (p *parser) skipWS() {
	i := p.pos
	for i < len(p.src) && isWS(p.src[i]) {
		i++
	}
	if i != p.pos {
		p.flush(p.pos)
		p.run = i
		p.pos = i
	}
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (p *parser) value(depth int) error {
	if depth > p.maxDepth {
		return p.fail(fmt.Sprintf("nesting deeper than %d levels", p.maxDepth))
	}
	c := p.src[p.pos]
	switch {
	case c == '{':
		return p.container(depth, kObj, '}')
	case c == '[':
		return p.container(depth, kArr, ']')
	case c == '"':
		return p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.num()
	case c == 't':
		return p.lit("true", kTrue)
	case c == 'f':
		return p.lit("false", kFalse)
	case c == 'n':
		return p.lit("null", kNull)
	}
	return p.fail(fmt.Sprintf("unexpected %s, want a JSON value", quoteByte(c)))
}

func (p *parser) container(depth int, k kind, closer byte) error {
	idx := len(p.tape)
	p.tape = append(p.tape, node{kind: k, start: p.outPos(p.pos)})
	p.pos++
	p.skipWS()
	if p.pos < len(p.src) && p.src[p.pos] == closer {
		p.pos++
		return p.close(idx)
	}
	for {
		if p.pos >= len(p.src) {
			return p.fail("unexpected end of record")
		}
		if k == kObj {
			if p.src[p.pos] != '"' {
				return p.fail(fmt.Sprintf("unexpected %s, want an object key string", quoteByte(p.src[p.pos])))
			}
			if err := p.str(); err != nil {
				return err
			}
			p.skipWS()
			if p.pos >= len(p.src) || p.src[p.pos] != ':' {
				return p.failAt("want ':' after an object key")
			}
			p.pos++
			p.skipWS()
			if p.pos >= len(p.src) {
				return p.fail("unexpected end of record")
			}
		}
		if err := p.value(depth + 1); err != nil {
			return err
		}
		p.skipWS()
		if p.pos >= len(p.src) {
			return p.fail("unexpected end of record")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
			p.skipWS()
		case closer:
			p.pos++
			return p.close(idx)
		default:
			return p.fail(fmt.Sprintf("unexpected %s, want ',' or '%c'", quoteByte(p.src[p.pos]), closer))
		}
	}
}

func (p *parser) failAt(msg string) error {
	if p.pos >= len(p.src) {
		return p.fail("unexpected end of record, " + msg)
	}
	return p.fail(fmt.Sprintf("unexpected %s, %s", quoteByte(p.src[p.pos]), msg))
}

func (p *parser) close(idx int) error {
	n := &p.tape[idx]
	n.end = p.outPos(p.pos)
	n.next = int32(len(p.tape))
	return nil
}

// strSafe marks bytes that need no attention inside a string.
var strSafe = func() (t [256]bool) {
	for i := 0x20; i < 256; i++ {
		t[i] = true
	}
	t['"'], t['\\'] = false, false
	return t
}()

func (p *parser) str() error {
	start := p.pos + 1
	i := start
	esc := false
	for {
		for i < len(p.src) && strSafe[p.src[i]] {
			i++
		}
		if i >= len(p.src) {
			p.pos = i
			return p.fail("unterminated string")
		}
		switch c := p.src[i]; {
		case c == '"':
			p.tape = append(p.tape, node{kind: kStr, esc: esc, start: p.outPos(start), end: p.outPos(i), next: int32(len(p.tape) + 1)})
			p.pos = i + 1
			return nil
		case c == '\\':
			esc = true
			if i+1 >= len(p.src) {
				p.pos = i
				return p.fail("unterminated string")
			}
			switch p.src[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(p.src) || !isHex4(p.src[i+2:i+6]) {
					p.pos = i
					return p.fail(`invalid \u escape, want 4 hex digits`)
				}
				i += 6
			default:
				p.pos = i
				return p.fail(fmt.Sprintf("invalid escape %s in string", quoteByte(p.src[i+1])))
			}
		default:
			p.pos = i
			return p.fail(fmt.Sprintf("control character %s in string (escape it)", quoteByte(c)))
		}
	}
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func (p *parser) num() error {
	start := p.pos
	i := p.pos
	if p.src[i] == '-' {
		i++
	}
	digits := func() int {
		j := i
		for i < len(p.src) && p.src[i] >= '0' && p.src[i] <= '9' {
			i++
		}
		return i - j
	}
	switch {
	case i < len(p.src) && p.src[i] == '0':
		i++
	case digits() == 0:
		p.pos = i
		return p.failAt("want a digit in number")
	}
	if i < len(p.src) && p.src[i] == '.' {
		i++
		if digits() == 0 {
			p.pos = i
			return p.failAt("want a digit after '.' in number")
		}
	}
	if i < len(p.src) && (p.src[i] == 'e' || p.src[i] == 'E') {
		i++
		if i < len(p.src) && (p.src[i] == '+' || p.src[i] == '-') {
			i++
		}
		if digits() == 0 {
			p.pos = i
			return p.failAt("want a digit in number exponent")
		}
	}
	p.tape = append(p.tape, node{kind: kNum, start: p.outPos(start), end: p.outPos(i), next: int32(len(p.tape) + 1)})
	p.pos = i
	return nil
}

func (p *parser) lit(word string, k kind) error {
	if len(p.src)-p.pos < len(word) || string(p.src[p.pos:p.pos+len(word)]) != word {
		return p.fail(fmt.Sprintf("unexpected %s, want %s", quoteByte(p.src[p.pos]), word))
	}
	p.tape = append(p.tape, node{kind: k, start: p.outPos(p.pos), end: p.outPos(p.pos + len(word)), next: int32(len(p.tape) + 1)})
	p.pos += len(word)
	return nil
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("'%c'", c)
	}
	return fmt.Sprintf("byte 0x%02X", c)
}

// record is a parsed record: the compacted bytes and the tape over them.
type record struct {
	raw  []byte
	tape []node
}

func (r *record) bytes(i int32) []byte { n := r.tape[i]; return r.raw[n.start:n.end] }

// str returns a string node's value, decoding escapes when there are any.
func (r *record) str(i int32) string { return r.strNode(r.tape[i]) }

// strNode is str of the string node n of r's tape.
func (r *record) strNode(n node) string {
	if !n.esc {
		return string(r.raw[n.start:n.end])
	}
	var s string
	// The parser validated the escapes, so this cannot fail.
	_ = json.Unmarshal(r.raw[n.start-1:n.end+1], &s)
	return s
}

// key returns a string node's value as bytes: the buffer itself unless it has escapes.
// Comparing string(key) does not allocate, so switching on keys is free.
func (r *record) key(i int32) []byte {
	if n := r.tape[i]; !n.esc {
		return r.raw[n.start:n.end]
	}
	return []byte(r.str(i))
}

// children calls f for each child of container i (for objects: f(key, value)).
func (r *record) each(i int32, f func(k, v int32) bool) {
	n := r.tape[i]
	if n.kind == kObj {
		for c := i + 1; c < n.next; {
			v := r.tape[c].next
			if !f(c, v) {
				return
			}
			c = r.tape[v].next
		}
		return
	}
	for c := i + 1; c < n.next; c = r.tape[c].next {
		if !f(-1, c) {
			return
		}
	}
}
