package ave

import (
	"bytes"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/internal/jsonscan"
)

// This file holds a minimal, allocation-free walker over JSON that
// json.Valid has already accepted. Because the input is known to be valid,
// it only has to find where values begin and end; it never has to report a
// syntax error, and it never recurses, so nesting depth costs nothing.

// span is the position of one JSON value (or object key, quotes included) in
// the request body: b[start:end]. The zero span means "not present": no value
// can end at offset 0 because the enclosing object starts there or later.
type span struct {
	start, end int
}

// present reports whether s locates a value.
func (s span) present() bool { return s.end > 0 }

// iter walks the members of an object or the elements of an array. After
// next returns true, val locates the value and, for objects, key locates the
// member name (quotes included).
type iter struct {
	b        []byte
	i        int // start of the next key or element; -1 when done
	isObject bool
	key, val span
}

// newIter starts walking the object or array whose opening bracket is at
// b[open].
func newIter(b []byte, open int) iter {
	it := iter{b: b, i: jsonscan.SkipWS(b, open+1), isObject: b[open] == '{'}
	if c := b[it.i]; c == '}' || c == ']' {
		it.i = -1
	}
	return it
}

// next advances to the next member or element and reports whether there was
// one.
func (it *iter) next() bool {
	if it.i < 0 {
		return false
	}
	b, i := it.b, it.i
	if it.isObject {
		ke := jsonscan.SkipString(b, i)
		it.key = span{i, ke}
		i = jsonscan.SkipWS(b, jsonscan.SkipWS(b, ke)+1) // past the colon
	}
	ve := jsonscan.SkipValue(b, i)
	it.val = span{i, ve}
	i = jsonscan.SkipWS(b, ve)
	if i < len(b) && b[i] == ',' {
		it.i = jsonscan.SkipWS(b, i+1)
	} else {
		it.i = -1
	}
	return true
}

// unquote decodes the contents of a JSON string (without its quotes) the way
// encoding/json does: escapes are resolved, and invalid UTF-8 and unpaired
// surrogates become U+FFFD.
func unquote(raw []byte) string {
	var sb strings.Builder
	sb.Grow(len(raw))
	for i := 0; i < len(raw); {
		// Copy the run up to the next escape in one go when it is valid
		// UTF-8, as it nearly always is.
		if j := bytes.IndexByte(raw[i:], '\\'); j != 0 {
			if j < 0 {
				j = len(raw) - i
			}
			if run := raw[i : i+j]; utf8.Valid(run) {
				sb.Write(run)
				i += j
				continue
			}
		}
		c := raw[i]
		switch {
		case c == '\\' && i+1 < len(raw):
			e := raw[i+1]
			i += 2
			switch e {
			case 'b':
				sb.WriteByte('\b')
			case 'f':
				sb.WriteByte('\f')
			case 'n':
				sb.WriteByte('\n')
			case 'r':
				sb.WriteByte('\r')
			case 't':
				sb.WriteByte('\t')
			case 'u':
				r, ok := hex4(raw, i)
				if !ok {
					sb.WriteRune(utf8.RuneError)
					continue
				}
				i += 4
				if utf16.IsSurrogate(r) {
					r2, ok := rune(0), false
					if i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
						r2, ok = hex4(raw, i+2)
					}
					if d := utf16.DecodeRune(r, r2); ok && d != utf8.RuneError {
						r = d
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				sb.WriteRune(r)
			default: // '"', '\\', '/'
				sb.WriteByte(e)
			}
		case c < utf8.RuneSelf:
			sb.WriteByte(c)
			i++
		default:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				sb.WriteRune(utf8.RuneError)
			} else {
				sb.Write(raw[i : i+size])
			}
			i += size
		}
	}
	return sb.String()
}

// hex4 reads the four hex digits at raw[i:i+4].
func hex4(raw []byte, i int) (rune, bool) {
	if i+4 > len(raw) {
		return 0, false
	}
	var r rune
	for _, c := range raw[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
