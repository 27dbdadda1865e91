// Package event defines the normalized event that hookrelay queues and
// delivers, and the derivation of its stable id. It depends on the standard
// library only, so that format decoders can produce events without pulling in
// the queue.
//
// The id of a normalized event is derived from its source and its whole
// data ([IDFromData]), in a canonical form ([CanonicalJSON]: object keys
// sorted, no whitespace, escapes resolved, numbers as their canonical
// decimal strings, [CanonicalNumber]). So an identical resend, however its
// JSON is spelled, has the same id and is deduplicated, while an event whose
// data differs in anything but its spelling is a new event. What is not in
// the data, such as the time the event was received or its topic, does not
// change the id. [NewID] derives an id from any list of strings, for events
// that have no such data (raw bodies, tests).
package event

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"strings"
	"time"
)

// Event is one normalized webhook event: what the relay stores once per
// destination and, unless a template reshapes it, the JSON body it delivers.
type Event struct {
	// ID is stable: the same source event always yields the same id, which
	// makes it the dedupe key and the Standard Webhooks webhook-id. For a
	// normalized event it is IDFromData(Source, Data).
	ID         string    `json:"id"`
	Topic      string    `json:"topic"`
	Source     string    `json:"source"`
	ReceivedAt time.Time `json:"received_at"`
	// Tenant, when set, is the tenant the receiving route stamped on the
	// event: it reaches only that tenant's registered webhooks.
	Tenant string          `json:"tenant,omitempty"`
	Data   json.RawMessage `json:"data"`
}

// idEncoding is lower-case RFC 4648 base32 without padding: only [a-z2-7],
// which is safe in NATS subjects, message ids, URLs and HTTP headers.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// IDLen is the number of characters after the "evt_" prefix of an id.
const IDLen = 26

// NewID derives an event id from the parts that identify a source event:
// "evt_" followed by 26 base32 characters (130 bits) of the SHA-256 of the
// parts, each followed by a NUL byte so that ("ab","c") and ("a","bc") differ.
// IDFromData(source, data) is NewID(source, canonical form of data).
func NewID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	enc := idEncoding.EncodeToString(h.Sum(sum[:0]))
	return "evt_" + enc[:IDLen]
}

// ValidID reports whether s has the shape of an id made by NewID or
// IDFromData.
func ValidID(s string) bool {
	rest, ok := strings.CutPrefix(s, "evt_")
	if !ok || len(rest) != IDLen {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}
