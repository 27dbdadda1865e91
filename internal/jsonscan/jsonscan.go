// Package jsonscan holds the byte-level steps that hookrelay's JSON
// scanners (the ave_tracking decoder, the canonical form of event data and
// the order key's lookup) share. SkipWS and SkipString work on input
// already known to be valid JSON; SkipValue also ends on input that is not.
package jsonscan

import "bytes"

// SkipWS returns the index of the first byte at or after i that is not
// JSON whitespace.
func SkipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// SkipString returns the index just past the string whose opening quote is
// at b[i].
func SkipString(b []byte, i int) int {
	i++
	for {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return len(b) // unreachable on valid JSON
		}
		// The quote closes the string unless it is escaped, that is
		// preceded by an odd number of backslashes.
		j := i + q
		n := 0
		for k := j - 1; k >= i && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return j + 1
		}
		i = j + 1
	}
}

// SkipValue returns the index just past the value that starts at b[i]. On
// input that is not JSON it still ends, and returns an index past i (or
// len(b)), never one outside b.
func SkipValue(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return min(SkipString(b, i), len(b))
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = SkipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	default: // a number, true, false or null
		j := i
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				if j == i {
					return i + 1 // not a value: step over it
				}
				return j
			}
			j++
		}
		return j
	}
}
