// Package jsonscan holds the two byte-level steps that hookrelay's JSON
// scanners (the ave_tracking decoder and the canonical form of event data)
// share. Both work on input already known to be valid JSON.
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
