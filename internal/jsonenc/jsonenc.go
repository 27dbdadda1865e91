// Package jsonenc writes JSON strings exactly as encoding/json does, for
// the hand-written encoders of hookrelay's hot paths (the stored event,
// the normalized ave_tracking data), which must write the very bytes
// encoding/json writes.
package jsonenc

import "unicode/utf8"

// hexDigits are the digits of \u escapes, lower case as encoding/json
// writes them.
const hexDigits = "0123456789abcdef"

// safe holds, for each ASCII character, whether encoding/json writes it
// as itself in a string: when escaping HTML, every character from space
// to DEL but ", \, <, > and &; otherwise <, > and & too.
var safe, htmlSafe = func() (t, h [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c], h[c] = true, true
	}
	t['"'], t['\\'] = false, false
	h['"'], h['\\'], h['<'], h['>'], h['&'] = false, false, false, false, false
	return t, h
}()

// AppendString appends s to b as a JSON string, escaped as encoding/json
// escapes a string: ", \ and the controls below U+0020 (\b, \f, \n, \r
// and \t by name, the others as \u00XX), U+2028 and U+2029 as \u2028 and
// \u2029, invalid UTF-8 as \ufffd, and with escapeHTML (json.Marshal's
// default, json.Encoder.SetEscapeHTML) <, > and & as \u003c, \u003e and
// \u0026. Every other character is written as itself.
func AppendString(b []byte, s string, escapeHTML bool) []byte {
	set := &safe
	if escapeHTML {
		set = &htmlSafe
	}
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if set[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				// The other controls, and <, > and &.
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
