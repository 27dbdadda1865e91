package caddymodule

import (
	"bytes"
	"fmt"
)

// lenientJSON returns a copy of body in which what ASP.NET's JSON reader
// accepts beyond JSON is blanked out, so that a strict decoder reads what
// Ventiapp's API reads: a leading UTF-8 byte order mark, // line comments,
// /* block */ comments, and a comma after the last member of an object or
// the last element of an array. Ventiapp's own published examples carry
// trailing commas and comments (seed 000), and its integrators' clients
// send what those examples show.
//
// Nothing inside a string is touched (escapes are followed), and the copy
// has the length of body: every blanked byte becomes a space, except the
// line breaks of a block comment, which stay. Offsets, lines and columns
// of the copy are those of body, so a decoder's syntax error points into
// what the client sent. A comma is trailing only when a value precedes it:
// "[,]" and "{,}" stay invalid. A block comment left open is an error, at
// its offset; whatever else is not JSON is left for the decoder to refuse.
func lenientJSON(body []byte) ([]byte, error) {
	out := bytes.Clone(body)
	i := 0
	if bytes.HasPrefix(out, []byte("\xef\xbb\xbf")) {
		out[0], out[1], out[2] = ' ', ' ', ' '
		i = 3
	}
	comma := -1   // offset of a comma that may be trailing
	var last byte // the last significant byte outside strings and comments
	for i < len(out) {
		c := out[i]
		switch {
		case c == '"':
			// Skip the string, its escapes included.
			i++
			for i < len(out) && out[i] != '"' {
				if out[i] == '\\' {
					i++
				}
				i++
			}
			i++ // the closing quote, if any
			comma, last = -1, '"'
			continue
		case c == '/' && i+1 < len(out) && out[i+1] == '/':
			for i < len(out) && out[i] != '\n' && out[i] != '\r' {
				out[i] = ' '
				i++
			}
			continue
		case c == '/' && i+1 < len(out) && out[i+1] == '*':
			end := bytes.Index(out[i+2:], []byte("*/"))
			if end < 0 {
				return nil, &lenientError{Offset: int64(i)}
			}
			end += i + 4
			for ; i < end; i++ {
				if out[i] != '\n' && out[i] != '\r' {
					out[i] = ' '
				}
			}
			continue
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		case c == '}' || c == ']':
			if comma >= 0 {
				out[comma] = ' '
			}
			comma, last = -1, c
		case c == ',':
			// Trailing only after a value: not after '[', '{', ':' or ','.
			if comma < 0 && last != 0 && last != '[' && last != '{' && last != ':' && last != ',' {
				comma = i
			} else {
				comma = -1
			}
			last = c
		default:
			comma, last = -1, c
		}
		i++
	}
	return out, nil
}

// lenientError is a block comment that is not closed.
type lenientError struct {
	Offset int64
}

func (e *lenientError) Error() string {
	return fmt.Sprintf("a /* comment starting at byte %d is not closed", e.Offset)
}
