package event

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"hash"
	"math/big"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/internal/jsonscan"
)

// maxPadding is the largest number of zeros the plain notation of a
// canonical number may add to its significant digits; past it the number is
// written in scientific notation (see CanonicalNumber). It keeps a short
// number such as 1e999999999 from expanding into a gigabyte of zeros.
const maxPadding = 21

// CanonicalNumber returns the canonical decimal string of the JSON number s
// (RFC 8259 grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?), and
// false when s is not one. The canonical string is exact (no rounding
// through float64) and depends only on the value, so 4, 4.0, 4.00, 4e0 and
// 40e-1 all give "4":
//
//   - no exponent, no leading zeros, no trailing zeros after the decimal
//     point, and no point when the value is an integer: 4.50 is "4.5", 1e3
//     is "1000", 0.0010 is "0.001", 12345678901234567890 stays as it is;
//   - zero is "0", whatever its sign or form (-0, 0.0, 0e7);
//   - a negative value starts with "-";
//   - when that plain notation would need more than 21 zeros beyond the
//     significant digits, the value is written in scientific notation
//     instead: the first significant digit, then "." and the others if
//     there are any, then "e" and the exponent in decimal, with "-" when
//     negative and no "+": 1e22 is "1e22", 1.50e-30 is "1.5e-30",
//     while 1e21 is "1000000000000000000000" and 1e-22 is
//     "0.0000000000000000000001".
//
// An integer of at most 21 trailing zeros written without point or
// exponent is already canonical and is returned as it is, without
// allocating.
func CanonicalNumber(s string) (string, bool) {
	// Split s into its parts, checking the grammar.
	i := 0
	neg := false
	if i < len(s) && s[i] == '-' {
		neg = true
		i++
	}
	intStart := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	intPart := s[intStart:i]
	if intPart == "" || (len(intPart) > 1 && intPart[0] == '0') {
		return "", false
	}
	var frac, exp string
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if frac = s[start:i]; frac == "" {
			return "", false
		}
	}
	expNeg, hasExp := false, false
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		hasExp = true
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			expNeg = s[i] == '-'
			i++
		}
		start := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if exp = s[start:i]; exp == "" {
			return "", false
		}
	}
	if i != len(s) {
		return "", false
	}

	// Fast path: a plain integer is canonical unless it is -0 or has too
	// many trailing zeros.
	if frac == "" && !hasExp && !(neg && intPart == "0") &&
		len(intPart)-len(strings.TrimRight(intPart, "0")) <= maxPadding {
		return s, true
	}

	// The value is ±D × 10^q, D without leading or trailing zeros.
	digits := strings.TrimLeft(intPart+frac, "0")
	if digits == "" {
		return "0", true
	}
	trimmed := strings.TrimRight(digits, "0")
	// adj is what q adds to the written exponent.
	adj := int64(len(digits)-len(trimmed)) - int64(len(frac))
	digits = trimmed
	exp = strings.TrimLeft(exp, "0")

	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	// An exponent of 16 digits or more, at least 10^15, is far beyond what
	// any input length can bring back within maxPadding of the point.
	if len(exp) > 15 {
		e, _ := new(big.Int).SetString(exp, 10)
		if expNeg {
			e.Neg(e)
		}
		e.Add(e, big.NewInt(adj+int64(len(digits))-1))
		writeScientific(&b, digits, e.String())
		return b.String(), true
	}
	var e int64
	if exp != "" {
		e, _ = strconv.ParseInt(exp, 10, 64)
	}
	if expNeg {
		e = -e
	}
	q := e + adj
	switch point := int64(len(digits)) + q; {
	case q >= 0 && q <= maxPadding: // D followed by q zeros
		b.Grow(len(digits) + int(q))
		b.WriteString(digits)
		for range q {
			b.WriteByte('0')
		}
	case q < 0 && point > 0: // the point falls inside D
		b.WriteString(digits[:point])
		b.WriteByte('.')
		b.WriteString(digits[point:])
	case q < 0 && -point <= maxPadding: // 0.000D
		b.WriteString("0.")
		for range -point {
			b.WriteByte('0')
		}
		b.WriteString(digits)
	default:
		writeScientific(&b, digits, strconv.FormatInt(point-1, 10))
	}
	return b.String(), true
}

// writeScientific writes the digits d (at least one) with the point after
// the first, and the exponent.
func writeScientific(b *strings.Builder, d, exp string) {
	b.WriteByte(d[0])
	if len(d) > 1 {
		b.WriteByte('.')
		b.WriteString(d[1:])
	}
	b.WriteByte('e')
	b.WriteString(exp)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// CanonicalJSON returns the canonical form of the JSON value data, the form
// event ids are derived from. Two values that differ only in ways JSON does
// not give a meaning to, or in the spelling of a number, have the same
// canonical form:
//
//   - no whitespace between tokens;
//   - object members sorted by name, comparing the UTF-8 bytes; when a name
//     appears twice in one object the last member counts, as with
//     encoding/json;
//   - arrays keep their order;
//   - strings written with their escapes resolved and only the escapes JSON
//     requires: \" and \\, \b \f \n \r \t, and \u00XX (lower-case hex) for
//     the other control characters below U+0020; every other character is
//     written as itself, in UTF-8 ("\u00f3" and "ó" are alike, and so are
//     "\/" and "/"). Invalid UTF-8 and unpaired surrogate escapes read as
//     U+FFFD, as with encoding/json;
//   - numbers written as JSON strings holding their CanonicalNumber, so
//     that 4, 4.0, 4e0 and "4" are alike (but "4.0", a string, is not: a
//     string is never read as a number);
//   - true, false and null as they are.
//
// The canonical form is itself canonical: CanonicalJSON of its output
// returns it unchanged. It fails when data is not a single valid JSON value
// (surrounding whitespace allowed), as json.Valid decides; this includes
// values nested more than 10000 deep.
func CanonicalJSON(data []byte) ([]byte, error) {
	c := getCanon(data)
	defer putCanon(c)
	if !c.index() {
		return nil, errInvalid
	}
	pooled := c.out
	c.out = make([]byte, 0, len(data))
	c.value(jsonscan.SkipWS(data, 0))
	out := c.out
	c.out = pooled
	return out, nil
}

// IDFromData derives the id of an event from its source and its data: the
// id NewID(source, string(c)) where c is CanonicalJSON(data), computed
// without holding c in memory. The same data, however spelled, gives the
// same id; any change to a value of it gives another. It fails when data is
// not a single valid JSON value.
func IDFromData(source string, data []byte) (string, error) {
	c := getCanon(data)
	defer putCanon(c)
	if !c.index() {
		return "", errInvalid
	}
	c.hashing = true
	c.write(source)
	c.out = append(c.out, 0)
	c.value(jsonscan.SkipWS(data, 0))
	c.out = append(c.out, 0)
	c.flush()
	var id [4 + (sha256.Size*8+4)/5]byte
	copy(id[:], "evt_")
	// The sum goes into c: a local array would escape through the
	// hash.Hash interface, an allocation per id.
	idEncoding.Encode(id[4:], c.h.Sum(c.sum[:0]))
	return string(id[:4+IDLen]), nil
}

var errInvalid = errors.New("event: data is not a single valid JSON value")

// flushAt is how much canonical output IDFromData buffers before hashing it.
const flushAt = 8 << 10

// canon checks b and writes its canonical form. Neither the check nor the
// walk recurses deeper than the nesting of b, which the check bounds.
type canon struct {
	b []byte
	// opens are the offsets of the '{' and '[' of b, in order; ends[k] is
	// the offset just past the bracket that closes opens[k]. Knowing where
	// a container ends without scanning it keeps the walk linear however
	// deep objects nest.
	opens, ends []int
	// members is a stack of the members of the objects being written.
	members []member
	out     []byte
	h       hash.Hash // SHA-256
	sum     [sha256.Size]byte
	hashing bool // out is flushed into h
}

// canons keeps the buffers of canon between calls.
var canons = sync.Pool{New: func() any {
	return &canon{h: sha256.New(), out: make([]byte, 0, flushAt+flushAt/4)}
}}

func getCanon(b []byte) *canon {
	c := canons.Get().(*canon)
	c.b = b
	return c
}

// putCanon returns c to the pool, unless it grew large.
func putCanon(c *canon) {
	if cap(c.opens) > 1024 || cap(c.members) > 1024 || cap(c.out) > 2*flushAt {
		return
	}
	c.b = nil
	c.opens, c.ends, c.members = c.opens[:0], c.ends[:0], c.members[:0]
	c.out = c.out[:0]
	c.h.Reset()
	c.hashing = false
	canons.Put(c)
}

// member is one member of an object: its decoded name and where its value
// starts.
type member struct {
	name []byte
	val  int
}

// maxDepth is the deepest nesting json.Valid accepts.
const maxDepth = 10000

// index checks that b is a single valid JSON value, surrounding whitespace
// allowed, exactly as json.Valid does (strings may hold invalid UTF-8;
// nesting deeper than 10000 is refused), and fills opens and ends.
func (c *canon) index() bool {
	i := jsonscan.SkipWS(c.b, 0)
	if i == len(c.b) {
		return false
	}
	end, ok := c.scan(i, 0)
	return ok && jsonscan.SkipWS(c.b, end) == len(c.b)
}

// scan checks the value that starts at b[i], inside depth containers, and
// returns the offset just past it.
func (c *canon) scan(i, depth int) (int, bool) {
	b := c.b
	switch b[i] {
	case '{', '[':
		if depth == maxDepth {
			return 0, false
		}
		k := len(c.opens)
		c.opens = append(c.opens, i)
		c.ends = append(c.ends, 0)
		isObject := b[i] == '{'
		closer := byte(']')
		if isObject {
			closer = '}'
		}
		i = jsonscan.SkipWS(b, i+1)
		if i < len(b) && b[i] == closer {
			c.ends[k] = i + 1
			return i + 1, true
		}
		for {
			if i == len(b) {
				return 0, false
			}
			if isObject {
				if b[i] != '"' {
					return 0, false
				}
				e, ok := scanString(b, i)
				if !ok {
					return 0, false
				}
				i = jsonscan.SkipWS(b, e)
				if i == len(b) || b[i] != ':' {
					return 0, false
				}
				if i = jsonscan.SkipWS(b, i+1); i == len(b) {
					return 0, false
				}
			}
			e, ok := c.scan(i, depth+1)
			if !ok {
				return 0, false
			}
			i = jsonscan.SkipWS(b, e)
			switch {
			case i == len(b):
				return 0, false
			case b[i] == ',':
				i = jsonscan.SkipWS(b, i+1)
			case b[i] == closer:
				c.ends[k] = i + 1
				return i + 1, true
			default:
				return 0, false
			}
		}
	case '"':
		return scanString(b, i)
	case 't':
		return literal(b, i, "true")
	case 'f':
		return literal(b, i, "false")
	case 'n':
		return literal(b, i, "null")
	}
	return scanNumber(b, i)
}

// literal checks that b holds word at i.
func literal(b []byte, i int, word string) (int, bool) {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return 0, false
	}
	return i + len(word), true
}

// escapeEnd checks the escape whose backslash is at b[i] (\", \\, \/, \b,
// \f, \n, \r, \t or \u and four hex digits) and returns the offset of
// its last byte.
func escapeEnd(b []byte, i int) (int, bool) {
	if i++; i == len(b) {
		return 0, false
	}
	switch b[i] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return i, true
	case 'u':
		if len(b)-i <= 4 {
			return 0, false
		}
		for _, h := range b[i+1 : i+5] {
			if !isHex(h) {
				return 0, false
			}
		}
		return i + 4, true
	}
	return 0, false
}

// scanString checks the string whose opening quote is at b[i] and returns
// the offset just past it.
func scanString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		for i < len(b) && plainByte[b[i]] {
			i++
		}
		if i == len(b) {
			break
		}
		switch ch := b[i]; {
		case ch == '"':
			return i + 1, true
		case ch < 0x20:
			return 0, false
		case ch == '\\':
			var ok bool
			if i, ok = escapeEnd(b, i); !ok {
				return 0, false
			}
		}
	}
	return 0, false
}

func isHex(ch byte) bool { return isDigit(ch) || 'a' <= ch && ch <= 'f' || 'A' <= ch && ch <= 'F' }

// scanNumber checks the number that starts at b[i] and returns the offset
// just past it.
func scanNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i == len(b) || !isDigit(b[i]):
		return 0, false
	case b[i] == '0':
		i++
	default:
		i = digits(b, i)
	}
	if i < len(b) && b[i] == '.' {
		if i++; i == len(b) || !isDigit(b[i]) {
			return 0, false
		}
		i = digits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i == len(b) || !isDigit(b[i]) {
			return 0, false
		}
		i = digits(b, i)
	}
	return i, true
}

// digits returns the offset of the first byte at or after i that is not a
// digit.
func digits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// write appends s to the output.
func (c *canon) write(s string) { c.out = append(c.out, s...) }

// writeRaw appends p to the output; with a hash, a long p goes to the hash
// without being copied.
func (c *canon) writeRaw(p []byte) {
	if c.hashing && len(p) >= flushAt/4 {
		c.flush()
		c.h.Write(p)
		return
	}
	c.out = append(c.out, p...)
	if c.hashing && len(c.out) >= flushAt {
		c.flush()
	}
}

// flush hashes the output buffered so far.
func (c *canon) flush() {
	if c.hashing {
		c.h.Write(c.out)
		c.out = c.out[:0]
	}
}

// end returns the offset just past the value that starts at b[i].
func (c *canon) end(i int) int {
	b := c.b
	switch b[i] {
	case '{', '[':
		return c.ends[sort.SearchInts(c.opens, i)]
	case '"':
		return jsonscan.SkipString(b, i)
	}
	for j := i; j < len(b); j++ {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
	}
	return len(b)
}

// value writes the canonical form of the value that starts at b[i].
func (c *canon) value(i int) {
	b := c.b
	switch b[i] {
	case '{':
		c.object(i)
	case '[':
		c.out = append(c.out, '[')
		j := jsonscan.SkipWS(b, i+1)
		for first := true; b[j] != ']'; first = false {
			if !first {
				c.out = append(c.out, ',')
			}
			c.value(j)
			j = jsonscan.SkipWS(b, c.end(j))
			if b[j] == ',' {
				j = jsonscan.SkipWS(b, j+1)
			}
		}
		c.out = append(c.out, ']')
	case '"':
		e := jsonscan.SkipString(b, i)
		if raw := b[i+1 : e-1]; plainRaw(raw) {
			c.writeRaw(b[i:e]) // already canonical
		} else {
			c.writeString(decodeString(b[i:e]))
		}
	case 't':
		c.write("true")
	case 'f':
		c.write("false")
	case 'n':
		c.write("null")
	default:
		// A number, valid: the grammar was checked.
		n, _ := CanonicalNumber(string(b[i:c.end(i)]))
		c.out = append(c.out, '"')
		c.write(n)
		c.out = append(c.out, '"')
	}
	if c.hashing && len(c.out) >= flushAt {
		c.flush()
	}
}

// object writes the object that starts at b[i], its members sorted by name.
func (c *canon) object(i int) {
	b := c.b
	base := len(c.members)
	for j := jsonscan.SkipWS(b, i+1); b[j] != '}'; {
		ke := jsonscan.SkipString(b, j)
		name := b[j+1 : ke-1]
		if !plainRaw(name) {
			name = []byte(decodeString(b[j:ke]))
		}
		v := jsonscan.SkipWS(b, jsonscan.SkipWS(b, ke)+1) // past the colon
		c.members = append(c.members, member{name: name, val: v})
		j = jsonscan.SkipWS(b, c.end(v))
		if b[j] == ',' {
			j = jsonscan.SkipWS(b, j+1)
		}
	}
	ms := c.members[base:]
	slices.SortStableFunc(ms, func(x, y member) int { return bytes.Compare(x.name, y.name) })
	c.out = append(c.out, '{')
	first := true
	for k, m := range ms {
		if k+1 < len(ms) && bytes.Equal(ms[k+1].name, m.name) {
			continue // a later member of the same name counts
		}
		if !first {
			c.out = append(c.out, ',')
		}
		first = false
		if plainString(m.name) {
			c.out = append(c.out, '"')
			c.writeRaw(m.name)
			c.out = append(c.out, '"')
		} else {
			c.writeString(string(m.name))
		}
		c.out = append(c.out, ':')
		c.value(m.val)
	}
	c.out = append(c.out, '}')
	clear(ms) // drop the references to decoded names
	c.members = c.members[:base]
}

// plainByte tells the bytes that a JSON string holds as they are: all but
// the control characters, the quote and the backslash.
var plainByte = func() (t [256]bool) {
	for ch := 0x20; ch < 256; ch++ {
		t[ch] = ch != '"' && ch != '\\'
	}
	return t
}()

// plainString reports whether raw, the inside of a JSON string or a decoded
// string, is written in the canonical form as it is: valid UTF-8 without
// quotes, backslashes or control characters.
func plainString(raw []byte) bool {
	for _, ch := range raw {
		if !plainByte[ch] {
			return false
		}
	}
	return utf8.Valid(raw)
}

// plainRaw is plainString for the inside of a valid JSON string, which has
// no control characters and no quote but escaped ones.
func plainRaw(raw []byte) bool {
	return bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw)
}

// decodeString decodes the JSON string q, quotes included, as encoding/json
// does.
func decodeString(q []byte) string {
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return string(utf8.RuneError) // unreachable: q is a valid string
	}
	return s
}

// hexDigits are the lower-case hex digits of \u00XX escapes.
const hexDigits = "0123456789abcdef"

// writeString writes s, valid UTF-8, as a JSON string with the fewest
// escapes.
func (c *canon) writeString(s string) {
	c.out = append(c.out, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 0x20 && ch != '"' && ch != '\\' {
			continue
		}
		c.write(s[start:i])
		switch ch {
		case '"', '\\':
			c.out = append(c.out, '\\', ch)
		case '\b':
			c.write(`\b`)
		case '\f':
			c.write(`\f`)
		case '\n':
			c.write(`\n`)
		case '\r':
			c.write(`\r`)
		case '\t':
			c.write(`\t`)
		default:
			c.out = append(c.out, '\\', 'u', '0', '0', hexDigits[ch>>4], hexDigits[ch&0xf])
		}
		start = i + 1
	}
	c.write(s[start:])
	c.out = append(c.out, '"')
}
