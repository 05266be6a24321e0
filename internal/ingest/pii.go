package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// PII validators look for personal data in the free text of a record and Reject, Redact or
// Flag what they find. They scan:
//
//   - messages[].content, and
//   - every string value inside user_data, at any depth (object keys are not scanned).
//
// Identifiers (conversation_id, agent_id, message_id, sender_id), timestamps,
// missing_info and messages[].logs are not scanned: identifiers are the record's identity
// (redacting them would change which conversation a record is), and logs are the agent's
// operational trace; personal data put there is not detected.
//
// Validators run in the order they are listed, each on the text as redacted by the ones
// before it. Redact replaces each match by "[REDACTED:<name>]" before the record is
// hashed and stored, so de-duplication compares what is stored. Reject makes the record
// invalid (the source's invalid-record policy applies) with one error per validator and
// JSON path that names the validator, never the matched text. Flag stores the record
// unchanged and counts it.

// PIIType is the kind of personal data a validator detects.
type PIIType string

const (
	// PIIEmail finds e-mail addresses: a loose scan around each '@', confirmed by
	// net/mail.ParseAddress. Internationalised (non-ASCII) addresses are not detected.
	PIIEmail PIIType = "Email"
	// PIIPhone finds phone numbers: a loose scan for digit groups, confirmed by
	// github.com/nyaruka/phonenumbers (Parse, then IsValidNumber). Without Regions only
	// numbers in international format (+CC ...) are considered; with Regions, national
	// numbers of those regions too, when written with a separator (space, '-', '.',
	// parentheses): a bare run of digits is taken for an identifier such as an order number.
	PIIPhone PIIType = "PhoneNumber"
	// PIICard finds payment card numbers: 13-19 digits (single spaces or dashes between
	// groups allowed) whose issuer prefix and length match a card scheme and whose Luhn
	// check digit is right.
	PIICard PIIType = "PaymentCard"
	// PIIRegex finds the matches of a customer's regular expression (RE2 syntax, as Go's
	// regexp: linear time, whatever the input).
	PIIRegex PIIType = "Regex"
)

// PIIAction is what a validator does with a match.
type PIIAction string

const (
	// ActionReject makes the record invalid.
	ActionReject PIIAction = "Reject"
	// ActionRedact replaces the match by [REDACTED:<name>] before the record is hashed and stored.
	ActionRedact PIIAction = "Redact"
	// ActionFlag stores the record unchanged and counts the match.
	ActionFlag PIIAction = "Flag"
)

// Bounds of a validator set, the same as the CRD's.
const (
	MaxValidators    = 16
	MaxPatternLength = 256
	// MaxPatternProgram bounds a pattern's compiled size: RE2 runs in time linear in the
	// text but proportional to the program, and a short pattern can compile large
	// (`\pL{1000}` is 1,000 instructions), which would make a scan of a 50 MB file take
	// minutes on the shared worker. Everyday patterns compile to well under 200.
	MaxPatternProgram   = 2000
	MaxRegionsPerPhone  = 8
	maxValidatorNameLen = 63
)

// ValidatorConfig is one validator as configured (an S3Source's spec.validators entry or a
// data-import validate --validators item).
type ValidatorConfig struct {
	// Name identifies the validator in errors, counts, metrics and the redaction token;
	// "" means the type's default name (DefaultValidatorName).
	Name   string
	Type   PIIType
	Action PIIAction
	// Pattern is the Regex validator's regular expression.
	Pattern string
	// Regions are ISO 3166-1 alpha-2 codes (e.g. "US", "DE") whose national-format
	// numbers a PhoneNumber validator also detects.
	Regions []string
}

// DefaultValidatorName is the name of a validator configured without one.
func DefaultValidatorName(t PIIType) string {
	switch t {
	case PIIEmail:
		return "email"
	case PIIPhone:
		return "phone"
	case PIICard:
		return "card"
	}
	return "regex"
}

// ErrInvalidValidator wraps every configuration error of CompileValidators.
var ErrInvalidValidator = errors.New("invalid validator")

// Validators is a compiled, immutable validator set, safe for concurrent use.
type Validators struct {
	list []*piiValidator
}

// Len is the number of validators.
func (vs *Validators) Len() int {
	if vs == nil {
		return 0
	}
	return len(vs.list)
}

// Order returns the position of the validator named name in the configuration, or -1.
func (vs *Validators) Order(name string) int {
	if vs == nil {
		return -1
	}
	return slices.IndexFunc(vs.list, func(v *piiValidator) bool { return v.name == name })
}

// piiValidator is one compiled validator.
type piiValidator struct {
	name   string
	typ    PIIType
	action PIIAction
	token  string
	re     *regexp.Regexp
	// literal is text every match of re contains ("" when none is known): a string
	// without it is skipped without running the regexp, which matters for patterns
	// starting with \b or a class, where Go's regexp cannot skip ahead by itself.
	literal []byte
	// regions for national phone numbers, upper case.
	regions []string
}

// CompileValidators checks and compiles cfgs. Every error wraps ErrInvalidValidator and
// names the validator by its position and name; it never quotes a pattern's text beyond
// what the customer wrote in their own spec.
func CompileValidators(cfgs []ValidatorConfig) (*Validators, error) {
	if len(cfgs) == 0 {
		return nil, nil
	}
	if len(cfgs) > MaxValidators {
		return nil, fmt.Errorf("%w: %d validators (at most %d)", ErrInvalidValidator, len(cfgs), MaxValidators)
	}
	vs := &Validators{}
	names := map[string]int{}
	for i, c := range cfgs {
		v := &piiValidator{name: c.Name, typ: c.Type, action: c.Action}
		if v.name == "" {
			v.name = DefaultValidatorName(c.Type)
		}
		where := fmt.Sprintf("validators[%d] (%s)", i, v.name)
		if len(v.name) > maxValidatorNameLen || !validName(v.name) {
			return nil, fmt.Errorf("%w: %s: the name must be lower-case letters, digits and '-', at most %d characters", ErrInvalidValidator, where, maxValidatorNameLen)
		}
		if j, dup := names[v.name]; dup {
			return nil, fmt.Errorf("%w: %s: the name is also used by validators[%d] (validators of the same type need distinct names)", ErrInvalidValidator, where, j)
		}
		names[v.name] = i
		switch c.Action {
		case ActionReject, ActionRedact, ActionFlag:
		default:
			return nil, fmt.Errorf("%w: %s: action %q (want Reject, Redact or Flag)", ErrInvalidValidator, where, c.Action)
		}
		if c.Pattern != "" && c.Type != PIIRegex {
			return nil, fmt.Errorf("%w: %s: pattern is only for type Regex", ErrInvalidValidator, where)
		}
		if len(c.Regions) > 0 && c.Type != PIIPhone {
			return nil, fmt.Errorf("%w: %s: regions are only for type PhoneNumber", ErrInvalidValidator, where)
		}
		switch c.Type {
		case PIIEmail, PIICard:
		case PIIPhone:
			if len(c.Regions) > MaxRegionsPerPhone {
				return nil, fmt.Errorf("%w: %s: %d regions (at most %d)", ErrInvalidValidator, where, len(c.Regions), MaxRegionsPerPhone)
			}
			supported := phonenumbers.GetSupportedRegions()
			for _, r := range c.Regions {
				r = strings.ToUpper(r)
				if _, ok := supported[r]; !ok {
					return nil, fmt.Errorf("%w: %s: region %q is not an ISO 3166-1 alpha-2 code phonenumbers knows (e.g. US, DE, FR)", ErrInvalidValidator, where, r)
				}
				v.regions = append(v.regions, r)
			}
		case PIIRegex:
			if c.Pattern == "" {
				return nil, fmt.Errorf("%w: %s: type Regex needs a pattern", ErrInvalidValidator, where)
			}
			if len(c.Pattern) > MaxPatternLength {
				return nil, fmt.Errorf("%w: %s: the pattern is %d bytes (at most %d)", ErrInvalidValidator, where, len(c.Pattern), MaxPatternLength)
			}
			re, err := regexp.Compile(c.Pattern)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: the pattern is not a valid RE2 regular expression: %w", ErrInvalidValidator, where, err)
			}
			if n := programSize(c.Pattern); n > MaxPatternProgram {
				return nil, fmt.Errorf("%w: %s: the pattern compiles to %d instructions (at most %d): use smaller repeat counts", ErrInvalidValidator, where, n, MaxPatternProgram)
			}
			if re.MatchString("") {
				// It would match between every two characters.
				return nil, fmt.Errorf("%w: %s: the pattern matches the empty string (want a pattern that needs at least one character)", ErrInvalidValidator, where)
			}
			v.re = re
			v.literal = requiredLiteral(c.Pattern)
		default:
			return nil, fmt.Errorf("%w: %s: type %q (want Email, PhoneNumber, PaymentCard or Regex)", ErrInvalidValidator, where, c.Type)
		}
		v.token = "[REDACTED:" + v.name + "]"
		vs.list = append(vs.list, v)
	}
	return vs, nil
}

// programSize is the number of instructions pattern compiles to (it compiled already).
func programSize(pattern string) int {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return 0
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return 0
	}
	return len(prog.Inst)
}

// requiredLiteral returns the longest case-sensitive literal that is a top-level part of
// pattern's concatenation (inside captures), which every match therefore contains; ""
// when there is none (an alternation, a case-insensitive literal).
func requiredLiteral(pattern string) []byte {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	re = re.Simplify()
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	parts := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		parts = re.Sub
	}
	var best []rune
	for _, p := range parts {
		for p.Op == syntax.OpCapture {
			p = p.Sub[0]
		}
		if p.Op == syntax.OpLiteral && p.Flags&syntax.FoldCase == 0 && len(p.Rune) > len(best) {
			best = p.Rune
		}
	}
	return []byte(string(best))
}

func validName(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// PIICount is what one validator found in one file (or, summed, in a run).
type PIICount struct {
	Validator string    `json:"validator"`
	Type      PIIType   `json:"type"`
	Action    PIIAction `json:"action"`
	// Matches is how many matches were found; Records how many records had any.
	Matches int64 `json:"matches"`
	Records int64 `json:"records"`
}

// span is a match: byte offsets in the scanned text.
type span struct{ start, end int }

// find returns the matches of v in s, appended to dst.
func (v *piiValidator) find(s []byte, dst []span) []span {
	switch v.typ {
	case PIIEmail:
		return findEmails(s, dst)
	case PIIPhone:
		return findPhones(s, v.regions, dst)
	case PIICard:
		return findCards(s, dst)
	}
	if len(v.literal) > 0 && !bytes.Contains(s, v.literal) {
		return dst
	}
	for _, m := range v.re.FindAllIndex(s, -1) {
		if m[1] > m[0] {
			dst = append(dst, span{m[0], m[1]})
		}
	}
	return dst
}

// --- e-mail ---------------------------------------------------------------------------

func isLocalChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte(".!#$%&'*+/=?^_`{|}~-", c) >= 0
}

func isDomainChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-'
}

// notEmailTLDs are file extensions that follow an '@' in image names ("logo@2x.png").
var notEmailTLDs = map[string]bool{"png": true, "jpg": true, "jpeg": true, "gif": true, "svg": true, "webp": true, "pdf": true}

func findEmails(s []byte, dst []span) []span {
	from := 0
	for {
		at := bytes.IndexByte(s[from:], '@')
		if at < 0 {
			return dst
		}
		at += from
		from = at + 1
		l := at
		for l > 0 && isLocalChar(s[l-1]) {
			l--
		}
		for l < at && s[l] == '.' {
			l++
		}
		r := at + 1
		for r < len(s) && isDomainChar(s[r]) {
			r++
		}
		for r > at+1 && (s[r-1] == '.' || s[r-1] == '-') {
			r--
		}
		if l == at || r == at+1 {
			continue
		}
		domain := s[at+1 : r]
		dot := bytes.LastIndexByte(domain, '.')
		if dot <= 0 || bytes.Contains(domain, []byte("..")) {
			continue
		}
		tld := domain[dot+1:]
		if len(tld) < 2 || !allLetters(tld) || notEmailTLDs[strings.ToLower(string(tld))] {
			continue
		}
		cand := string(s[l:r])
		addr, err := mail.ParseAddress(cand)
		if err != nil || addr.Address != cand {
			continue
		}
		dst = append(dst, span{l, r})
		from = r
	}
}

func allLetters(b []byte) bool {
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// --- digits: phone numbers and cards --------------------------------------------------

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// unspaced reports whether r belongs to a script written without spaces between words
// (Chinese, Japanese, Thai...), where a number can touch the letters around it.
func unspaced(r rune) bool {
	return r >= 0x0E00 && unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Thai, unicode.Lao, unicode.Khmer, unicode.Myanmar)
}

// boundaryBefore reports whether s[:i] does not end in a letter or digit (in any script),
// nor in a character that glues identifiers together.
func boundaryBefore(s []byte, i int) bool {
	if i == 0 {
		return true
	}
	r, _ := utf8.DecodeLastRune(s[:i])
	if unspaced(r) {
		return true
	}
	if unicode.IsLetter(r) || unicode.IsDigit(r) {
		return false
	}
	switch r {
	case '_', '#', '/', '-', '.', ':', '+', '@', '$', '€', '£':
		// "#1234567", "v1.2.3", "id:..." and amounts are not phone or card numbers.
		return false
	}
	return true
}

// boundaryAfter reports whether s[i:] does not start with a letter, digit or a
// character that continues an identifier.
func boundaryAfter(s []byte, i int) bool {
	if i >= len(s) {
		return true
	}
	r, _ := utf8.DecodeRune(s[i:])
	if unspaced(r) {
		return true
	}
	if unicode.IsLetter(r) || unicode.IsDigit(r) {
		return false
	}
	switch r {
	case '_', '/', '@', '%':
		return false
	case '-', '.', ':':
		// A trailing full stop or dash ends a sentence; another digit after it continues
		// a version, a date or an identifier.
		return i+1 >= len(s) || !isDigit(s[i+1])
	}
	return true
}

// digitRun scans a candidate from i over digits and the separators allowed by sep,
// returning its end (after the last digit), its digit count and whether it had separators.
func digitRun(s []byte, i int, sep func(byte) bool, maxLen int) (end, digits int, separated bool) {
	end = i
	pending := false
	for j := i; j < len(s) && j-i < maxLen; j++ {
		c := s[j]
		if isDigit(c) {
			digits++
			end = j + 1
			separated = separated || pending
			continue
		}
		if !sep(c) {
			break
		}
		pending = digits > 0
	}
	return end, digits, separated
}

func phoneSep(c byte) bool { return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' }

// isoDate matches the start of YYYY-MM-DD, which phone scanning must skip.
func isoDate(s []byte) bool {
	return len(s) >= 10 && isDigit(s[0]) && isDigit(s[1]) && isDigit(s[2]) && isDigit(s[3]) && s[4] == '-' &&
		isDigit(s[5]) && isDigit(s[6]) && s[7] == '-' && isDigit(s[8]) && isDigit(s[9])
}

// Phone numbers have 7 to 15 digits (E.164 allows 15; national numbers are rarely under 7).
const (
	minPhoneDigits = 7
	maxPhoneDigits = 15
	maxPhoneLen    = 24
)

func findPhones(s []byte, regions []string, dst []span) []span {
	for i := 0; i < len(s); i++ {
		c := s[i]
		intl := c == '+' && i+1 < len(s) && (isDigit(s[i+1]) || s[i+1] == '(')
		national := len(regions) > 0 && (isDigit(c) || c == '(' && i+1 < len(s) && isDigit(s[i+1]))
		if !intl && !national {
			continue
		}
		if !boundaryBefore(s, i) {
			// Skip the rest of this word or number.
			for i+1 < len(s) && (isDigit(s[i+1]) || s[i+1] == '+') {
				i++
			}
			continue
		}
		start := i
		from := i
		if intl {
			from++
		}
		end, digits, separated := digitRun(s, from, phoneSep, maxPhoneLen)
		next := end
		switch {
		case digits < minPhoneDigits || digits > maxPhoneDigits, !boundaryAfter(s, end), isoDate(s[start:]):
		case intl:
			num, err := phonenumbers.Parse(string(s[start:end]), "")
			if err == nil && phonenumbers.IsValidNumber(num) {
				dst = append(dst, span{start, end})
			}
		case separated:
			cand := string(s[start:end])
			for _, region := range regions {
				num, err := phonenumbers.Parse(cand, region)
				if err == nil && phonenumbers.IsValidNumberForRegion(num, region) {
					dst = append(dst, span{start, end})
					break
				}
			}
		}
		if next > i {
			i = next - 1
		}
	}
	return dst
}

// Card numbers have 13 to 19 digits.
const (
	minCardDigits = 13
	maxCardDigits = 19
	maxCardLen    = 19 + 18
)

func cardSep(c byte) bool { return c == ' ' || c == '-' }

func findCards(s []byte, dst []span) []span {
	var digits [maxCardDigits]byte
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			continue
		}
		if !boundaryBefore(s, i) {
			for i+1 < len(s) && isDigit(s[i+1]) {
				i++
			}
			continue
		}
		end, n, _ := digitRun(s, i, cardSep, maxCardLen)
		if n >= minCardDigits && n <= maxCardDigits && boundaryAfter(s, end) && singleSeparators(s[i:end]) {
			k := 0
			for _, c := range s[i:end] {
				if isDigit(c) {
					digits[k] = c
					k++
				}
			}
			if cardScheme(digits[:k]) && luhn(digits[:k]) {
				dst = append(dst, span{i, end})
			}
		}
		i = end - 1
	}
	return dst
}

// singleSeparators rejects two separators in a row ("1234 - 5678" reads as a range).
func singleSeparators(b []byte) bool {
	for j := 1; j < len(b); j++ {
		if !isDigit(b[j]) && !isDigit(b[j-1]) {
			return false
		}
	}
	return true
}

func luhn(d []byte) bool {
	sum := 0
	double := false
	for j := len(d) - 1; j >= 0; j-- {
		n := int(d[j] - '0')
		if double {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
		double = !double
	}
	return sum%10 == 0
}

// cardSchemes are issuer prefixes (IIN ranges, inclusive, compared on as many leading
// digits as lo has) and the lengths each scheme issues.
var cardSchemes = []struct {
	lo, hi  string
	lengths []int
}{
	{"4", "4", []int{13, 16, 19}},                 // Visa
	{"51", "55", []int{16}},                       // Mastercard
	{"2221", "2720", []int{16}},                   // Mastercard 2-series
	{"34", "34", []int{15}},                       // American Express
	{"37", "37", []int{15}},                       // American Express
	{"6011", "6011", []int{16, 17, 18, 19}},       // Discover
	{"644", "649", []int{16, 17, 18, 19}},         // Discover
	{"65", "65", []int{16, 17, 18, 19}},           // Discover
	{"3528", "3589", []int{16, 17, 18, 19}},       // JCB
	{"300", "305", []int{14, 15, 16, 17, 18, 19}}, // Diners Club
	{"36", "36", []int{14, 15, 16, 17, 18, 19}},   // Diners Club
	{"38", "39", []int{16, 17, 18, 19}},           // Diners Club
	{"62", "62", []int{16, 17, 18, 19}},           // UnionPay
	{"2200", "2204", []int{16, 17, 18, 19}},       // Mir
	{"6304", "6304", []int{16, 17, 18, 19}},       // Maestro
	{"6759", "6759", []int{13, 16, 17, 18, 19}},   // Maestro UK
	{"6761", "6763", []int{13, 16, 17, 18, 19}},   // Maestro
	{"5018", "5018", []int{13, 16, 17, 18, 19}},   // Maestro
	{"5020", "5020", []int{13, 16, 17, 18, 19}},   // Maestro
	{"5038", "5038", []int{13, 16, 17, 18, 19}},   // Maestro
	{"5893", "5893", []int{13, 16, 17, 18, 19}},   // Maestro
	{"3088", "3094", []int{16}},                   // JCB legacy
}

func cardScheme(d []byte) bool {
	for _, s := range cardSchemes {
		if len(d) < len(s.lo) {
			continue
		}
		p := string(d[:len(s.lo)])
		if p >= s.lo && p <= s.hi && slices.Contains(s.lengths, len(d)) {
			return true
		}
	}
	return false
}

// --- scanning a record ----------------------------------------------------------------

// replacement is the redacted text of one string node.
type replacement struct {
	node int32
	text []byte
}

// piiScanner applies a validator set to the records of one file, reusing its buffers.
type piiScanner struct {
	vs *Validators
	// counts are the file's, one per validator; rec are the current record's matches.
	counts []PIICount
	rec    []int64
	spans  []span
	repl   []replacement
	errs   []fieldError
	// finds are the current record's Redact and Flag matches, located like errs.
	finds []fieldError
	// errPaths and findPaths are how many more errs and finds get a path: the file keeps
	// only MaxErrorsPerFile of each, and locating a node walks the record from its root,
	// so locating every match of a record with many would cost the square of its size.
	errPaths, findPaths int
	out                 []byte
	p                   parser
}

// located returns node i's path while *budget lasts, else "" (a match the file does not
// keep the location of).
func located(r *record, i int32, budget *int) string {
	if *budget <= 0 {
		return ""
	}
	*budget--
	return r.pathTo(i)
}

func newPIIScanner(vs *Validators, maxDepth int) *piiScanner {
	s := &piiScanner{vs: vs, rec: make([]int64, len(vs.list)), counts: make([]PIICount, len(vs.list))}
	for i, v := range vs.list {
		s.counts[i] = PIICount{Validator: v.name, Type: v.typ, Action: v.action}
	}
	s.p.maxDepth = maxDepth
	return s
}

// scan applies the validators to r. It returns ok=false with s.errs set when a Reject
// validator matched; otherwise the record to hash and store: r itself, or (when a Redact
// validator matched) the redacted record, backed by s's buffers until the next scan.
func (s *piiScanner) scan(r *record) (out *record, ok bool) {
	clear(s.rec)
	s.repl, s.errs, s.finds = s.repl[:0], s.errs[:0], s.finds[:0]
	if r.tape[0].kind != kObj {
		return r, true
	}
	r.each(0, func(k, val int32) bool {
		switch string(r.key(k)) {
		case "messages":
			if r.tape[val].kind != kArr {
				return true
			}
			r.each(val, func(_, m int32) bool {
				if r.tape[m].kind == kObj {
					r.each(m, func(mk, mv int32) bool {
						if r.tape[mv].kind == kStr && string(r.key(mk)) == "content" {
							s.text(r, mv)
						}
						return true
					})
				}
				return true
			})
		case "user_data":
			s.walk(r, val)
		}
		return true
	})
	if len(s.errs) > 0 {
		for i, v := range s.vs.list {
			if v.action == ActionReject && s.rec[i] > 0 {
				s.counts[i].Matches += s.rec[i]
				s.counts[i].Records++
			}
		}
		return nil, false
	}
	for i, n := range s.rec {
		if n > 0 {
			s.counts[i].Matches += n
			s.counts[i].Records++
		}
	}
	if len(s.repl) == 0 {
		return r, true
	}
	// Rewrite the record with the redacted strings and parse it again, so its tape, hash
	// and stored Raw are all of the redacted record.
	s.out = s.out[:0]
	last := int32(0)
	for _, rp := range s.repl {
		n := r.tape[rp.node]
		s.out = append(s.out, r.raw[last:n.start-1]...)
		s.out = appendCanonicalString(s.out, string(rp.text))
		last = n.end + 1
	}
	s.out = append(s.out, r.raw[last:]...)
	if err := s.p.parse(s.out); err != nil {
		// Unreachable: the input was valid JSON and only string contents changed.
		s.errs = append(s.errs, fieldError{problem: "redaction produced invalid JSON: " + err.Error()})
		return nil, false
	}
	return &record{raw: s.p.out, tape: s.p.tape}, true
}

// walk scans every string value under node i (object keys are not scanned).
func (s *piiScanner) walk(r *record, i int32) {
	switch r.tape[i].kind {
	case kStr:
		s.text(r, i)
	case kArr, kObj:
		r.each(i, func(_, v int32) bool {
			s.walk(r, v)
			return true
		})
	}
}

// text runs every validator on string node i.
func (s *piiScanner) text(r *record, i int32) {
	n := r.tape[i]
	cur := r.raw[n.start:n.end]
	if n.esc {
		cur = []byte(r.str(i))
	}
	changed := false
	for vi, v := range s.vs.list {
		s.spans = v.find(cur, s.spans[:0])
		if len(s.spans) == 0 {
			continue
		}
		s.rec[vi] += int64(len(s.spans))
		switch v.action {
		case ActionReject:
			// Name the validator and where, never what matched.
			s.errs = append(s.errs, fieldError{path: located(r, i, &s.errPaths),
				problem: fmt.Sprintf("matched validator %s (%s, action Reject) %d time(s); the matched text is not shown", v.name, v.typ, len(s.spans))})
		case ActionRedact:
			cur = redact(cur, s.spans, v.token)
			changed = true
			s.finds = append(s.finds, fieldError{path: located(r, i, &s.findPaths), problem: fmt.Sprintf("validator %s (%s, action Redact) redacted %d match(es)", v.name, v.typ, len(s.spans))})
		case ActionFlag:
			s.finds = append(s.finds, fieldError{path: located(r, i, &s.findPaths), problem: fmt.Sprintf("validator %s (%s, action Flag) flagged %d match(es)", v.name, v.typ, len(s.spans))})
		}
	}
	if changed {
		s.repl = append(s.repl, replacement{node: i, text: cur})
	}
}

// redact returns a new slice: text with each span replaced by token.
func redact(text []byte, spans []span, token string) []byte {
	out := make([]byte, 0, len(text)+len(spans)*len(token))
	last := 0
	for _, sp := range spans {
		out = append(out, text[last:sp.start]...)
		out = append(out, token...)
		last = sp.end
	}
	return append(out, text[last:]...)
}

// Scrub replaces whatever any validator of vs detects in s by [REDACTED:<name>],
// whatever the validators' actions: error messages quote short values (an unknown
// agent_id, a malformed timestamp), and none may carry personal data a source chose to
// keep out of its store.
func (vs *Validators) Scrub(s string) string {
	if vs.Len() == 0 || s == "" {
		return s
	}
	b := []byte(s)
	changed := false
	for _, v := range vs.list {
		if spans := v.find(b, nil); len(spans) > 0 {
			b = redact(b, spans, v.token)
			changed = true
		}
	}
	if !changed {
		return s
	}
	return string(b)
}

// fileCounts returns the validators that matched in the file, in the configured order.
func (s *piiScanner) fileCounts() []PIICount {
	var out []PIICount
	for _, c := range s.counts {
		if c.Matches > 0 {
			out = append(out, c)
		}
	}
	return out
}

// SummarizePII describes counts for a ledger message, e.g.
// "PII: phone redacted in 2 record(s) (3 matches); email flagged in 1 record(s) (1 match)".
// It names validators and numbers only.
func SummarizePII(counts []PIICount) string {
	if len(counts) == 0 {
		return ""
	}
	verb := map[PIIAction]string{ActionReject: "rejected", ActionRedact: "redacted", ActionFlag: "flagged"}
	parts := make([]string, 0, len(counts))
	for _, c := range counts {
		parts = append(parts, fmt.Sprintf("%s %s in %d record(s) (%d match(es))", c.Validator, verb[c.Action], c.Records, c.Matches))
	}
	return "PII: " + strings.Join(parts, "; ")
}
