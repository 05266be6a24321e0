package ingest

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Roles are the allowed values of messages[].role. The seed's example shows customer and
// agent; system (platform notices, prompts) and tool (function/tool results) are the
// other two roles a conversational agent's transcript holds.
var Roles = []string{"customer", "agent", "system", "tool"}

var wantRole = "one of " + strings.Join(Roles, ", ")

// CSAT scores are numbers from MinCSAT to MaxCSAT inclusive: the seed's example has 4.5,
// so the scale is a five-point one that allows fractions.
const (
	MinCSAT = 0
	MaxCSAT = 5
)

const (
	wantTimestamp = "an ISO-8601 timestamp string, e.g. 2025-01-15T14:30:00Z"
	wantID        = "a non-empty string"
)

// fieldError is one problem at a JSON path inside a record.
type fieldError struct {
	path    string
	problem string
}

// recordInfo is what validation learns about a valid record.
type recordInfo struct {
	agentID, conversationID string
	activity                time.Time
}

// validator checks one parsed record against the seed's conversation format. It is
// reused across records.
type validator struct {
	r      *record
	agents map[string]struct{}
	errs   []fieldError
	info   recordInfo
	// scrub, when the source has PII validators, redacts what they detect in a value an
	// error quotes. It runs before the value is shortened: a cut value could hide a match
	// from the detectors and still show most of it.
	scrub func(string) string
}

// shorten is the package's shorten of s, scrubbed first.
func (v *validator) shorten(s string) string {
	if v.scrub != nil {
		s = v.scrub(s)
	}
	return shorten(s)
}

// quoteShort is the package's quoteShort of s, scrubbed first.
func (v *validator) quoteShort(s string) string {
	if v.scrub != nil {
		s = v.scrub(s)
	}
	return quoteShort(s)
}

// addf records a problem at prefix.key; paths are joined only when there is an error,
// so a valid record costs no path strings.
func (v *validator) addf(prefix, key, format string, args ...any) {
	v.errs = append(v.errs, fieldError{path: join(prefix, key), problem: fmt.Sprintf(format, args...)})
}

// typeErr reports a value of the wrong JSON type.
func (v *validator) typeErr(prefix, key string, i int32, want string) {
	v.addf(prefix, key, "got %s (want %s)", v.describe(i), want)
}

// describe names a value for an error message, with its text when it is short.
func (v *validator) describe(i int32) string {
	n := v.r.tape[i]
	switch n.kind {
	case kStr:
		return v.quoteShort(v.r.str(i))
	case kNum:
		return "number " + v.shorten(string(v.r.bytes(i)))
	case kTrue, kFalse:
		return "boolean " + n.kind.String()
	case kNull:
		return "null"
	case kArr:
		return "an array"
	}
	return "an object"
}

// maxShown bounds, in runes, a value or name quoted in an error message.
const maxShown = 64

// Shorten makes s, a string from a customer's file or bucket, safe to put in a message:
// control characters and bytes that are not UTF-8 are escaped as in a Go string literal
// (so a NUL never reaches a store or the API server), and the result is cut after n
// runes, "…" marking the cut.
func Shorten(s string, n int) string {
	if needsEscape(s) {
		q := strconv.Quote(s)
		s = q[1 : len(q)-1]
	}
	if len(s) <= n || utf8.RuneCountInString(s) <= n {
		return s
	}
	runes := 0
	for i := range s {
		if runes == n {
			return s[:i] + "…"
		}
		runes++
	}
	return s
}

// needsEscape reports whether s holds a control character or a byte that is not UTF-8.
func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= utf8.RuneSelf {
			return c < utf8.RuneSelf || !utf8.ValidString(s[i:])
		}
	}
	return false
}

func shorten(s string) string { return Shorten(s, maxShown) }

func quoteShort(s string) string {
	if len(s) <= maxShown {
		return strconv.Quote(s)
	}
	return strconv.Quote(shorten(s)) + fmt.Sprintf(" (%d bytes)", len(s))
}

// MaxIDBytes bounds agent_id and conversation_id: a conversation's identity is the
// primary key of both stores, and PostgreSQL refuses an index row over 2704 bytes.
const MaxIDBytes = 1024

func join(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	case field[0] == '[':
		return prefix + field
	}
	return prefix + "." + field
}

func index(i int) string { return "[" + strconv.Itoa(i) + "]" }

// validate checks record r; it returns false when any error was added to v.errs.
func (v *validator) validate(r *record) bool {
	v.r, v.errs, v.info = r, v.errs[:0], recordInfo{}
	if r.tape[0].kind != kObj {
		v.typeErr("", "", 0, "a JSON object holding one conversation")
		return false
	}
	var convID, agentID, ts, msgs, missing, user int32 = -1, -1, -1, -1, -1, -1
	r.each(0, func(k, val int32) bool {
		switch string(r.key(k)) {
		case "conversation_id":
			convID = val
		case "agent_id":
			agentID = val
		case "timestamp":
			ts = val
		case "messages":
			msgs = val
		case "is_resolved":
			if n := r.tape[val].kind; n != kTrue && n != kFalse && n != kNull {
				v.typeErr("", "is_resolved", val, "a boolean")
			}
		case "csat_score":
			v.csat("", "csat_score", val)
		case "missing_info":
			v.missingInfo("", "missing_info", val)
			missing = val
		case "user_data":
			v.userData("", "user_data", val)
			user = val
		}
		return true
	})
	v.withheld(missing, user)
	v.info.conversationID = v.id("", "conversation_id", convID, true)
	v.info.agentID = v.id("", "agent_id", agentID, true)
	if v.info.agentID != "" && v.agents != nil {
		if _, ok := v.agents[v.info.agentID]; !ok {
			v.addf("", "agent_id", "%s is not a known agent (not in the agent allow-list)", v.quoteShort(v.info.agentID))
		}
	}
	if ts < 0 {
		v.addf("", "timestamp", "missing (want %s)", wantTimestamp)
	} else if t, ok := v.timestamp("", "timestamp", ts); ok {
		v.info.activity = t
	}
	switch {
	case msgs < 0:
		v.addf("", "messages", "missing (want an array of messages)")
	case r.tape[msgs].kind != kArr:
		v.typeErr("", "messages", msgs, "an array of messages")
	default:
		idx := 0
		r.each(msgs, func(_, m int32) bool {
			v.message(idx, m)
			idx++
			return true
		})
	}
	v.storable()
	return len(v.errs) == 0
}

// storable checks that every string of the record, keys included, is one both stores
// hold alike: no U+0000 (PostgreSQL text cannot hold it, and jsonb refuses its escape)
// and no lone UTF-16 surrogate escape (it encodes no character). Only strings with
// escapes can hold either, so a valid record costs one pass over its tape.
func (v *validator) storable() {
	for i, n := range v.r.tape {
		if n.kind != kStr || !n.esc {
			continue
		}
		if why := unstorable(v.r.raw[n.start:n.end]); why != "" {
			v.unstorableAt(int32(i), why)
		}
	}
}

// unstorableAt reports string node i, a key or a value, naming its path.
func (v *validator) unstorableAt(i int32, why string) {
	path := v.r.pathTo(i)
	if v.r.isKey(0, i) {
		v.addf(path, "", "the key holds %s, which the store cannot hold (rename the key)", why)
		return
	}
	v.addf(path, "", "%s holds %s, which the store cannot hold (remove it)", v.quoteShort(v.r.str(i)), why)
}

// isKey reports whether node i is an object key inside container c.
func (r *record) isKey(c, i int32) bool {
	n := r.tape[c]
	if (n.kind != kObj && n.kind != kArr) || i <= c || i >= n.next {
		return false
	}
	found := false
	r.each(c, func(k, val int32) bool {
		found = k == i || r.isKey(val, i)
		return !found
	})
	return found
}

// unstorable names what in a string's escaped JSON text no store can hold alike, or "".
func unstorable(b []byte) string {
	for j := 0; j+5 < len(b); j++ {
		if b[j] != '\\' {
			continue
		}
		if b[j+1] != 'u' {
			j++ // skip the escaped character (it may be a backslash)
			continue
		}
		u, _ := strconv.ParseUint(string(b[j+2:j+6]), 16, 16)
		switch {
		case u == 0:
			return "U+0000 (NUL)"
		case u >= 0xD800 && u < 0xDC00:
			if j+11 < len(b) && b[j+6] == '\\' && b[j+7] == 'u' {
				if lo, _ := strconv.ParseUint(string(b[j+8:j+12]), 16, 16); lo >= 0xDC00 && lo < 0xE000 {
					j += 11
					continue
				}
			}
			return fmt.Sprintf("a lone UTF-16 surrogate \\u%04x (want a surrogate pair, or the character itself)", u)
		case u >= 0xDC00 && u < 0xE000:
			return fmt.Sprintf("a lone UTF-16 surrogate \\u%04x (want a surrogate pair, or the character itself)", u)
		}
		j += 5
	}
	return ""
}

// id checks a required non-empty string field; it returns the value when keep is set
// (the identity fields) and "" when invalid.
func (v *validator) id(prefix, key string, i int32, keep bool) string {
	if i < 0 {
		v.addf(prefix, key, "missing (want %s)", wantID)
		return ""
	}
	if v.r.tape[i].kind != kStr {
		v.typeErr(prefix, key, i, wantID)
		return ""
	}
	if len(bytes.TrimSpace(v.r.key(i))) == 0 {
		v.addf(prefix, key, "%s is blank (want %s)", strconv.Quote(v.r.str(i)), wantID)
		return ""
	}
	if len(v.r.bytes(i)) > MaxIDBytes {
		if s := v.r.str(i); len(s) > MaxIDBytes {
			v.addf(prefix, key, "%s is longer than %d bytes (want an identifier of at most %d bytes)", v.quoteShort(s), MaxIDBytes, MaxIDBytes)
			return ""
		}
	}
	if !keep {
		return ""
	}
	return v.r.str(i)
}

// timestamp checks an RFC 3339 timestamp with a time zone; fractional seconds are allowed.
func (v *validator) timestamp(prefix, key string, i int32) (time.Time, bool) {
	if v.r.tape[i].kind != kStr {
		v.typeErr(prefix, key, i, wantTimestamp)
		return time.Time{}, false
	}
	s := v.r.str(i)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err == nil {
		// Stores keep times in UTC; an offset must not carry a year past 9999 or before 0.
		if y := t.UTC().Year(); y < 0 || y > 9999 {
			v.addf(prefix, key, "%s is outside years 0000-9999 in UTC", v.quoteShort(s))
			return time.Time{}, false
		}
		return t, true
	}
	if _, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		v.addf(prefix, key, "%s has no time zone (want e.g. 2025-01-15T14:30:00Z or 2025-01-15T14:30:00+01:00)", v.quoteShort(s))
	} else {
		v.addf(prefix, key, "%s is not an ISO-8601 timestamp (want e.g. 2025-01-15T14:30:00Z)", v.quoteShort(s))
	}
	return time.Time{}, false
}

// optional reports whether an optional value is present with kind k; null counts as
// absent, another kind is an error.
func (v *validator) optional(prefix, key string, i int32, k kind, want string) bool {
	switch v.r.tape[i].kind {
	case k:
		return true
	case kNull:
		return false
	}
	v.typeErr(prefix, key, i, want)
	return false
}

var wantCSAT = fmt.Sprintf("a number from %d to %d", MinCSAT, MaxCSAT)

func (v *validator) csat(prefix, key string, i int32) {
	if !v.optional(prefix, key, i, kNum, wantCSAT) {
		return
	}
	f, err := strconv.ParseFloat(string(v.r.bytes(i)), 64)
	if err != nil || f < MinCSAT || f > MaxCSAT {
		v.addf(prefix, key, "%s is out of range (want a number from %d to %d)", v.shorten(string(v.r.bytes(i))), MinCSAT, MaxCSAT)
	}
}

func (v *validator) missingInfo(prefix, key string, i int32) {
	path := join(prefix, key)
	if !v.optional(path, "", i, kObj, `an object with "reason" and "fields"`) {
		return
	}
	v.r.each(i, func(k, val int32) bool {
		switch string(v.r.key(k)) {
		case "reason":
			if n := v.r.tape[val].kind; n != kStr && n != kNull {
				v.typeErr(path, "reason", val, "a string")
			}
		case "fields":
			v.stringArray(path, "fields", val)
		}
		return true
	})
}

// withheld checks that no field the record lists in missing_info.fields is present with
// a value in user_data: a record that says a field was withheld and still carries it
// contradicts itself. A listed name is looked up as a top-level key of user_data first
// ("phone_number", or a key that itself holds dots), then as a dotted path through
// nested objects ("contact.phone" is user_data.contact.phone). A value is anything but
// null, a blank string, an empty array or an empty object. The error names the path,
// never the value.
func (v *validator) withheld(missing, user int32) {
	r := v.r
	if missing < 0 || user < 0 || r.tape[missing].kind != kObj || r.tape[user].kind != kObj {
		return
	}
	// Keys are indexed once per object, and each listed name is looked up once: a record
	// listing n names against an object of n keys costs O(n), not O(n²) (records may be
	// megabytes, and a file's store transaction may be open while it is checked).
	ix := keyIndex{r: r}
	seen := map[string]bool{}
	r.each(missing, func(k, fields int32) bool {
		if string(r.key(k)) != "fields" || r.tape[fields].kind != kArr {
			return true
		}
		r.each(fields, func(_, f int32) bool {
			if r.tape[f].kind != kStr {
				return true
			}
			name := r.str(f)
			if seen[name] {
				return true
			}
			seen[name] = true
			if val := ix.lookup(user, name); val >= 0 && hasValue(r, val) {
				v.addf("user_data", v.shorten(name), "listed in missing_info.fields but present (remove the value, or the field from missing_info.fields)")
			}
			return true
		})
		return true
	})
}

// keyIndex finds members of a record's objects by key, indexing each object's keys on
// first use. The first of duplicate keys wins, as a linear search would find it.
type keyIndex struct {
	r     *record
	byObj map[int32]map[string]int32
}

// lookup finds name in object obj: as a key, else as a dotted path of keys.
func (ix *keyIndex) lookup(obj int32, name string) int32 {
	if name == "" {
		return -1
	}
	if val := ix.member(obj, name); val >= 0 || !strings.Contains(name, ".") {
		return val
	}
	cur := obj
	for part := range strings.SplitSeq(name, ".") {
		if ix.r.tape[cur].kind != kObj {
			return -1
		}
		if cur = ix.member(cur, part); cur < 0 {
			return -1
		}
	}
	return cur
}

// member returns the value of key in object obj, or -1.
func (ix *keyIndex) member(obj int32, key string) int32 {
	keys, ok := ix.byObj[obj]
	if !ok {
		keys = map[string]int32{}
		ix.r.each(obj, func(k, val int32) bool {
			if _, dup := keys[string(ix.r.key(k))]; !dup {
				keys[string(ix.r.key(k))] = val
			}
			return true
		})
		if ix.byObj == nil {
			ix.byObj = map[int32]map[string]int32{}
		}
		ix.byObj[obj] = keys
	}
	if val, ok := keys[key]; ok {
		return val
	}
	return -1
}

func hasValue(r *record, i int32) bool {
	n := r.tape[i]
	switch n.kind {
	case kNull:
		return false
	case kStr:
		return strings.TrimSpace(r.str(i)) != ""
	case kArr, kObj:
		return n.next > i+1
	}
	return true
}

func (v *validator) stringArray(prefix, key string, i int32) {
	path := join(prefix, key)
	if !v.optional(path, "", i, kArr, "an array of strings") {
		return
	}
	idx := 0
	v.r.each(i, func(_, e int32) bool {
		if v.r.tape[e].kind != kStr {
			v.typeErr(path, index(idx), e, "a string")
		}
		idx++
		return true
	})
}

func (v *validator) userData(prefix, key string, i int32) {
	path := join(prefix, key)
	if !v.optional(path, "", i, kObj, "an object") {
		return
	}
	v.r.each(i, func(k, val int32) bool {
		if string(v.r.key(k)) == "last_activity" && v.r.tape[val].kind != kNull {
			v.timestamp(path, "last_activity", val)
		}
		return true
	})
}

func (v *validator) message(idx int, m int32) {
	prefix := messagePath(idx)
	if v.r.tape[m].kind != kObj {
		v.typeErr(prefix, "", m, "a message object")
		return
	}
	var msgID, role, content, ts int32 = -1, -1, -1, -1
	v.r.each(m, func(k, val int32) bool {
		switch string(v.r.key(k)) {
		case "message_id":
			msgID = val
		case "role":
			role = val
		case "content":
			content = val
		case "timestamp":
			ts = val
		case "conversation_id":
			v.messageConversation(prefix, "conversation_id", val)
		case "sender_id":
			if n := v.r.tape[val].kind; n != kStr && n != kNull {
				v.typeErr(prefix, "sender_id", val, "a string")
			}
		case "logs":
			v.logs(prefix, "logs", val)
		}
		return true
	})
	v.id(prefix, "message_id", msgID, false)
	v.role(prefix, "role", role)
	switch {
	case content < 0:
		v.addf(prefix, "content", "missing (want a string)")
	case v.r.tape[content].kind != kStr:
		v.typeErr(prefix, "content", content, "a string")
	}
	if ts < 0 {
		v.addf(prefix, "timestamp", "missing (want %s)", wantTimestamp)
	} else if t, ok := v.timestamp(prefix, "timestamp", ts); ok && t.After(v.info.activity) {
		v.info.activity = t
	}
}

func (v *validator) role(prefix, key string, i int32) {
	want := wantRole
	if i < 0 {
		v.addf(prefix, key, "missing (want %s)", want)
		return
	}
	if v.r.tape[i].kind != kStr {
		v.typeErr(prefix, key, i, want)
		return
	}
	b := v.r.key(i)
	for _, r := range Roles {
		if string(b) == r {
			return
		}
	}
	v.addf(prefix, key, "%s is not an allowed role (want %s)", v.quoteShort(v.r.str(i)), want)
}

func (v *validator) messageConversation(prefix, key string, i int32) {
	if !v.optional(prefix, key, i, kStr, "the conversation's conversation_id") {
		return
	}
	// Messages are checked after the conversation's own fields, so its id is known here.
	parent := v.info.conversationID
	if parent != "" && string(v.r.key(i)) != parent {
		v.addf(prefix, key, "%s differs from the conversation's %s (want the same conversation_id, or none)", v.quoteShort(v.r.str(i)), v.quoteShort(parent))
	}
}

func (v *validator) logs(prefix, key string, i int32) {
	if !v.optional(prefix, key, i, kArr, "an array of log objects") {
		return
	}
	idx := 0
	v.r.each(i, func(_, e int32) bool {
		if v.r.tape[e].kind != kObj {
			v.typeErr(join(prefix, key), index(idx), e, "a log object")
		}
		idx++
		return true
	})
}

// messagePaths caches "messages[i]" for the common sizes so valid records build no paths.
var messagePaths = func() (p [64]string) {
	for i := range p {
		p[i] = "messages" + index(i)
	}
	return p
}()

func messagePath(i int) string {
	if i < len(messagePaths) {
		return messagePaths[i]
	}
	return "messages" + index(i)
}
