package event

import (
	"errors"
	"time"

	"github.com/hookrelay/hookrelay/internal/jsonenc"
	"github.com/hookrelay/hookrelay/internal/jsonscan"
)

// AppendJSON appends the JSON encoding of e to b: byte for byte what
// json.Marshal(e) writes, and an error exactly when json.Marshal fails (a
// Data that is not a single valid JSON value, a ReceivedAt outside the
// years 0 to 9999 or with a zone offset of 24 hours or more). It is the
// body that the relay stores and, unless a template reshapes it,
// delivers; json.Marshal writes the same but costs several times as
// much.
//
// What json.Marshal does, and AppendJSON with it: the fields in their
// order, tenant left out when empty; strings escaped with HTML escaping
// (<, > and & as \u003c, \u003e and \u0026, U+2028 and U+2029 as \u2028
// and \u2029, invalid UTF-8 as \ufffd); received_at as
// time.Time.MarshalJSON writes it (RFC 3339 with nanoseconds, trailing
// zeros left out); data null when nil, otherwise compacted as json.Marshal
// compacts a json.RawMessage: whitespace between tokens dropped, and <, >,
// &, U+2028 and U+2029 escaped as above, nothing else changed. On error
// b is returned as it was.
func (e *Event) AppendJSON(b []byte) ([]byte, error) {
	n0 := len(b)
	b = append(b, `{"id":`...)
	b = jsonenc.AppendString(b, e.ID, true)
	b = append(b, `,"topic":`...)
	b = jsonenc.AppendString(b, e.Topic, true)
	b = append(b, `,"source":`...)
	b = jsonenc.AppendString(b, e.Source, true)
	b = append(b, `,"received_at":`...)
	var err error
	if b, err = appendTime(b, e.ReceivedAt); err != nil {
		return b[:n0], err
	}
	if e.Tenant != "" {
		b = append(b, `,"tenant":`...)
		b = jsonenc.AppendString(b, e.Tenant, true)
	}
	b = append(b, `,"data":`...)
	if e.Data == nil {
		b = append(b, "null"...)
	} else if b, err = appendCompact(b, e.Data); err != nil {
		return b[:n0], err
	}
	return append(b, '}'), nil
}

// EncodedLen is a close upper bound of the length of e's encoding when
// its strings need no escaping, to size the buffer of AppendJSON.
func (e *Event) EncodedLen() int {
	return len(`{"id":"","topic":"","source":"","received_at":"","tenant":"","data":}`) +
		len(e.ID) + len(e.Topic) + len(e.Source) + len(time.RFC3339Nano) + len(e.Tenant) + max(len(e.Data), len("null"))
}

// appendTime appends t as time.Time.MarshalJSON writes it, and fails
// where it fails.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	b = append(b, '"')
	n0 := len(b)
	b = t.AppendFormat(b, time.RFC3339Nano)
	// The checks of MarshalJSON: the year takes exactly four digits,
	// and the offset's hours are two digits below 24.
	switch {
	case len(b)-n0 < len("2006-01-02T15:04:05Z") || b[n0+len("2006")] != '-':
		return b, errBadTime
	case b[len(b)-1] != 'Z':
		c := b[len(b)-len("Z07:00")]
		h := b[len(b)-len("07:00"):]
		if '0' <= c && c <= '9' || 10*(h[0]-'0')+(h[1]-'0') >= 24 {
			return b, errBadTime
		}
	}
	return append(b, '"'), nil
}

var errBadTime = errors.New("event: received_at cannot be written in RFC 3339 (year outside 0-9999 or zone offset of 24 hours or more)")

// appendCompact appends the JSON value src compacted as json.Marshal
// compacts the output of a json.RawMessage: it fails when src is not a
// single valid JSON value (surrounding whitespace allowed, at most 10000
// levels deep), drops the whitespace between tokens and escapes <, >, &,
// U+2028 and U+2029 in strings; every other byte is copied as it is.
// Runs of bytes that need no change are copied whole.
func appendCompact(dst, src []byte) ([]byte, error) {
	c := compactor{src: src, out: dst}
	i := c.ws(0)
	if i == len(src) {
		return dst, errInvalid
	}
	end, ok := c.value(i, 0)
	if !ok || c.ws(end) != len(src) {
		return dst, errInvalid
	}
	return append(c.out, src[c.start:]...), nil
}

// compactor carries one appendCompact: out holds the compacted src up to
// start; src[start:] is not written yet.
type compactor struct {
	src   []byte
	out   []byte
	start int
}

// ws skips the whitespace at src[i:] and returns the offset past it,
// writing what came before it.
func (c *compactor) ws(i int) int {
	j := jsonscan.SkipWS(c.src, i)
	if j > i {
		c.out = append(c.out, c.src[c.start:i]...)
		c.start = j
	}
	return j
}

// value checks the value at src[i], inside depth containers, and returns
// the offset past it.
func (c *compactor) value(i, depth int) (int, bool) {
	b := c.src
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
		i = c.ws(i + 1)
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
				e, ok := c.str(i)
				if !ok {
					return 0, false
				}
				if i = c.ws(e); i == len(b) || b[i] != ':' {
					return 0, false
				}
				if i = c.ws(i + 1); i == len(b) {
					return 0, false
				}
			}
			e, ok := c.value(i, depth+1)
			if !ok {
				return 0, false
			}
			switch i = c.ws(e); {
			case i == len(b):
				return 0, false
			case b[i] == ',':
				i = c.ws(i + 1)
			case b[i] == closer:
				return i + 1, true
			default:
				return 0, false
			}
		}
	case '"':
		return c.str(i)
	case 't':
		return literal(b, i, "true")
	case 'f':
		return literal(b, i, "false")
	case 'n':
		return literal(b, i, "null")
	}
	return scanNumber(b, i)
}

// plainInString holds true for the bytes a string may hold that need
// neither a check nor an escape: not ", \, a control, <, >, & or 0xE2 (the
// first byte of U+2028 and U+2029).
var plainInString = func() (t [256]bool) {
	for i := 0x20; i < 256; i++ {
		t[i] = true
	}
	t['"'], t['\\'], t['<'], t['>'], t['&'], t[0xE2] = false, false, false, false, false, false
	return t
}()

// str checks the string whose opening quote is at src[i], escaping <, >,
// &, U+2028 and U+2029, and returns the offset past it.
func (c *compactor) str(i int) (int, bool) {
	b := c.src
	for i++; i < len(b); i++ {
		for i < len(b) && plainInString[b[i]] {
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
		case ch == 0xE2:
			if i+2 < len(b) && b[i+1] == 0x80 && b[i+2]&^1 == 0xA8 {
				c.out = append(c.out, b[c.start:i]...)
				c.out = append(c.out, '\\', 'u', '2', '0', '2', hexDigits[b[i+2]&0xF])
				i += 2
				c.start = i + 1
			}
		default: // <, > or &
			c.out = append(c.out, b[c.start:i]...)
			c.out = append(c.out, '\\', 'u', '0', '0', hexDigits[ch>>4], hexDigits[ch&0xF])
			c.start = i + 1
		}
	}
	return 0, false
}
