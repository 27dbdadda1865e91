package ave

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"time"
)

var (
	errDateFormat = errors.New("not AAAA-MM-DD HH:MM:ss")
	errDateRange  = errors.New("no such date or time")
)

// parseDate reads s, exactly "YYYY-MM-DD HH:MM:SS", as a wall-clock time in
// loc. It tells a malformed value (errDateFormat) from a well-formed one that
// names no real date or time (errDateRange), such as 2023-02-29 or 24:00:00.
func parseDate(s string, loc *time.Location) (time.Time, error) {
	if len(s) != len("2006-01-02 15:04:05") ||
		s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, errDateFormat
	}
	var v [6]int // year, month, day, hour, minute, second
	for i, pos := range [6][2]int{{0, 4}, {5, 7}, {8, 10}, {11, 13}, {14, 16}, {17, 19}} {
		for _, c := range []byte(s[pos[0]:pos[1]]) {
			if c < '0' || c > '9' {
				return time.Time{}, errDateFormat
			}
			v[i] = v[i]*10 + int(c-'0')
		}
	}
	year, month, day, hour, minute, sec := v[0], time.Month(v[1]), v[2], v[3], v[4], v[5]
	if year < 1 || month < time.January || month > time.December || day < 1 ||
		day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, errDateRange
	}
	return time.Date(year, month, day, hour, minute, sec, 0, loc), nil
}

// daysIn returns the number of days of month in year.
func daysIn(month time.Month, year int) int {
	return time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// validURL reports whether s is an absolute http or https URL with a host
// and without whitespace or control characters.
func validURL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	u, err := url.Parse(s) // lowercases the scheme
	if err != nil || u.Opaque != "" || u.Hostname() == "" {
		return false
	}
	return u.Scheme == "http" || u.Scheme == "https"
}

// mimeTypes are the accepted proof-of-delivery types and the signatures
// their content starts with.
var mimeTypes = [...]struct {
	name  string
	magic []byte
}{
	{"image/jpeg", []byte{0xFF, 0xD8, 0xFF}},
	{"image/png", []byte{0x89, 'P', 'N', 'G'}},
	{"application/pdf", []byte("%PDF")},
}

// canonicalMime returns the accepted type that m names, ignoring case.
func canonicalMime(m string) (string, bool) {
	for _, t := range mimeTypes {
		if strings.EqualFold(m, t.name) {
			return t.name, true
		}
	}
	return "", false
}

// matchesMagic reports whether head, the first bytes of a content, starts
// with the signature of the accepted type mime.
func matchesMagic(mime string, head []byte) bool {
	for _, t := range mimeTypes {
		if t.name == mime {
			return bytes.HasPrefix(head, t.magic)
		}
	}
	return false
}

// b64ChunkChars is how many base64 characters checkBase64 decodes at a
// time: a multiple of 4, so every chunk but the last decodes on its own.
const b64ChunkChars = 4 << 10

// checkBase64 validates s as standard base64 with optional padding and no
// whitespace, without decoding it whole into memory. It returns the decoded
// length and the first (up to) four decoded bytes.
func checkBase64(s string) (n int, head [4]byte, ok bool) {
	// The decoder skips \r and \n; the contract does not allow them.
	if strings.IndexByte(s, '\n') >= 0 || strings.IndexByte(s, '\r') >= 0 {
		return 0, head, false
	}
	raw := strings.TrimRight(s, "=")
	switch pad := len(s) - len(raw); {
	case pad > 2:
		return 0, head, false
	case pad > 0 && len(s)%4 != 0:
		return 0, head, false
	}
	if len(raw)%4 == 1 {
		return 0, head, false
	}
	var buf [b64ChunkChars / 4 * 3]byte
	for first := true; len(raw) > 0; first = false {
		chunk := raw[:min(len(raw), b64ChunkChars)]
		raw = raw[len(chunk):]
		m, err := base64.RawStdEncoding.Decode(buf[:], []byte(chunk))
		if err != nil {
			return 0, head, false
		}
		if first {
			copy(head[:], buf[:m])
		}
		n += m
	}
	return n, head, true
}
