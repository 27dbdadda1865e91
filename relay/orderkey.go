package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/internal/jsonscan"
	"github.com/hookrelay/hookrelay/relay/event"
)

// Lanes of ordered destinations.
const (
	// DefaultLanes is an ordered destination's number of lanes unless
	// Destination.Lanes says otherwise.
	DefaultLanes = 32
	// MaxLanes is the most lanes a destination may have: each is a
	// consumer of the queue and a pull loop on every node.
	MaxLanes = 1024
	// maxOrderPath bounds an order_by path: its length and its segments.
	maxOrderPath         = 256
	maxOrderPathSegments = 32
	// maxShownKey is how much of a blocked key the status shows.
	maxShownKey = 128
)

// ErrInvalidOrder is wrapped by the errors of ParseOrderBy and of a
// destination's lanes.
var ErrInvalidOrder = errors.New("invalid ordering")

// orderFields are the members of a stored event an order_by path may
// start with; only data has members of its own.
var orderFields = map[string]bool{"data": true, "topic": true, "source": true, "tenant": true, "id": true}

// ParseOrderBy checks an order_by path and returns its segments. A path is
// dotted names of the stored event's JSON (see event.Event), starting with
// data, topic, source, tenant or id; below data, a segment of digits also
// indexes an array. Examples: data.shipment_id, data.order.id, tenant.
func ParseOrderBy(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	if len(path) > maxOrderPath {
		return nil, fmt.Errorf("%w: order_by is longer than %d bytes", ErrInvalidOrder, maxOrderPath)
	}
	segs := strings.Split(path, ".")
	if len(segs) > maxOrderPathSegments {
		return nil, fmt.Errorf("%w: order_by %q has more than %d segments", ErrInvalidOrder, path, maxOrderPathSegments)
	}
	for _, s := range segs {
		if s == "" {
			return nil, fmt.Errorf("%w: order_by %q has an empty segment", ErrInvalidOrder, path)
		}
	}
	if !orderFields[segs[0]] {
		return nil, fmt.Errorf("%w: order_by %q must start with data, topic, source, tenant or id (such as data.shipment_id)", ErrInvalidOrder, path)
	}
	if segs[0] != "data" && len(segs) > 1 {
		return nil, fmt.Errorf("%w: order_by %q: only data has members", ErrInvalidOrder, path)
	}
	return segs, nil
}

// orderKey reads the order key at path in a stored event's JSON: a
// string's text, a number's canonical text (so "12" and 12 are one key),
// true or false, or the canonical JSON of an object or array. It reports
// false when the value is missing or null, or body is not JSON.
func orderKey(body []byte, path []string) (string, bool) {
	raw, ok := lookupJSON(body, path)
	if !ok || len(raw) == 0 {
		return "", false
	}
	switch raw[0] {
	case 'n':
		return "", false
	case '"':
		// On input that is not JSON, raw may be a string without its
		// closing quote.
		if len(raw) < 2 || raw[len(raw)-1] != '"' {
			return "", false
		}
		// The text as encoding/json decodes it, so that one string is one
		// key however it is spelled (invalid UTF-8 reads as U+FFFD, with
		// or without an escape elsewhere in the string).
		if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
			return string(raw[1 : len(raw)-1]), true
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	case 't', 'f':
		return string(raw), true
	case '{', '[':
		c, err := event.CanonicalJSON(raw)
		if err != nil {
			return "", false
		}
		return string(c), true
	default:
		if n, ok := event.CanonicalNumber(string(raw)); ok {
			return n, true
		}
		return "", false
	}
}

// laneOf is the lane of key among lanes; keyless events take lane 0.
// The hash is FNV-1a (64 bits) mixed by MurmurHash3's finalizer, so that
// every bit of the key counts even when lanes is a power of two (FNV-1a's
// low bits depend only on the keys' low bits: "ABC" and "abc" would
// share a lane). It is fixed: every node, and every restart, must put a
// key in the same lane.
func laneOf(key string, ok bool, lanes int) int {
	if !ok || lanes <= 1 {
		return 0
	}
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return int(h % uint64(lanes))
}

// shownKey is a key as the status shows it: at most maxShownKey bytes of
// it, whole UTF-8 characters, followed by "…" when it was cut.
func shownKey(k string) string {
	if len(k) <= maxShownKey {
		return k
	}
	// Do not cut a UTF-8 sequence in two: cut before the character that
	// byte maxShownKey belongs to (looking back no further than a
	// character's length, in case k is not UTF-8).
	n := maxShownKey
	for n > maxShownKey-(utf8.UTFMax-1) && !utf8.RuneStart(k[n]) {
		n--
	}
	if !utf8.RuneStart(k[n]) {
		n = maxShownKey
	}
	return k[:n] + "…"
}

// lookupJSON returns the raw JSON value at path in b, an object. It does
// not validate b: on input that is not JSON it returns false or some
// bytes, never panics, and always ends.
func lookupJSON(b []byte, path []string) ([]byte, bool) {
	i := jsonscan.SkipWS(b, 0)
	for _, seg := range path {
		if i >= len(b) {
			return nil, false
		}
		var ok bool
		switch b[i] {
		case '{':
			i, ok = member(b, i, seg)
		case '[':
			n, err := strconv.Atoi(seg)
			if err != nil || n < 0 || strconv.Itoa(n) != seg {
				return nil, false
			}
			i, ok = element(b, i, n)
		default:
			return nil, false
		}
		if !ok {
			return nil, false
		}
	}
	if i >= len(b) {
		return nil, false
	}
	end := jsonscan.SkipValue(b, i)
	if end <= i || end > len(b) {
		return nil, false
	}
	return b[i:end], true
}

// member returns the index of the value of the member named name of the
// object at b[i].
func member(b []byte, i int, name string) (int, bool) {
	i = jsonscan.SkipWS(b, i+1)
	for i < len(b) && b[i] == '"' {
		kEnd := jsonscan.SkipString(b, i)
		if kEnd > len(b) || kEnd < i+2 {
			return 0, false
		}
		match := keyIs(b[i:kEnd], name)
		i = jsonscan.SkipWS(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return 0, false
		}
		i = jsonscan.SkipWS(b, i+1)
		if match {
			return i, i < len(b)
		}
		next := jsonscan.SkipValue(b, i)
		if next <= i {
			return 0, false
		}
		i = jsonscan.SkipWS(b, next)
		if i >= len(b) || b[i] != ',' {
			return 0, false
		}
		i = jsonscan.SkipWS(b, i+1)
	}
	return 0, false
}

// keyIs reports whether the quoted JSON string q is name, decoded as
// encoding/json decodes it.
func keyIs(q []byte, name string) bool {
	if bytes.IndexByte(q, '\\') < 0 && utf8.Valid(q) {
		return string(q[1:len(q)-1]) == name
	}
	var s string
	return json.Unmarshal(q, &s) == nil && s == name
}

// element returns the index of the n-th element of the array at b[i].
func element(b []byte, i, n int) (int, bool) {
	i = jsonscan.SkipWS(b, i+1)
	for k := 0; i < len(b) && b[i] != ']'; k++ {
		if k == n {
			return i, true
		}
		next := jsonscan.SkipValue(b, i)
		if next <= i {
			return 0, false
		}
		i = jsonscan.SkipWS(b, next)
		if i >= len(b) || b[i] != ',' {
			return 0, false
		}
		i = jsonscan.SkipWS(b, i+1)
	}
	return 0, false
}
