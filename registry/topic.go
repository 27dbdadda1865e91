package registry

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// ErrInvalidTopic is wrapped by every error of CheckTopic.
var ErrInvalidTopic = errors.New("invalid topic")

// topicMaxLen is the longest topic or topic pattern, in bytes.
const topicMaxLen = 128

// KnownTopics are the topics the relay knows of, listed by the API:
// Ventiapp's, Falabella's and the relay's own. Topics are free strings;
// a webhook may name one that is not in this list.
var KnownTopics = []string{
	// Ventiapp
	"orders/created",
	"orders/updated",
	"orders/cancelled",
	"orders/billing",
	"orders/returned",
	"orders/shipment",
	"orders/tracking",
	"orders/redeemed",
	"bills/created",
	"products/created",
	"products/updated",
	"products/deleted",
	"invoice/created",
	// Falabella
	"onFeedCompleted",
	"onFeedCreated",
	"onOrderCreated",
	"onOrderItemsStatusChanged",
	"onProductCreated",
	"onProductQcStatusChanged",
	"onProductUpdated",
	// hookrelay
	"shipments/tracking",
}

// CheckTopic returns an error wrapping ErrInvalidTopic unless s is a topic
// or a topic pattern: 1 to 128 bytes of segments separated by '/', none of
// them empty, each made of ASCII letters, digits, '_', '-' and '.', or
// being exactly "*" (see TopicMatches). Topics are case-sensitive.
func CheckTopic(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidTopic)
	}
	if len(s) > topicMaxLen {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrInvalidTopic, len(s), topicMaxLen)
	}
	for i := 0; i < len(s); i++ {
		if !topicByte(s[i]) {
			_, size := utf8.DecodeRuneInString(s[i:])
			return fmt.Errorf("%w %q: character %q at byte %d is not allowed (use letters, digits, '/', '_', '-', '.', or '*' as a whole segment)",
				ErrInvalidTopic, s, s[i:i+size], i)
		}
	}
	for rest := s; ; {
		seg, after, more := strings.Cut(rest, "/")
		if seg == "" {
			return fmt.Errorf("%w %q: empty segment", ErrInvalidTopic, s)
		}
		if seg != "*" && strings.Contains(seg, "*") {
			return fmt.Errorf("%w %q: '*' must be a whole segment", ErrInvalidTopic, s)
		}
		if !more {
			return nil
		}
		rest = after
	}
}

// topicByte reports whether c may appear in a topic.
func topicByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '/' || c == '_' || c == '-' || c == '.' || c == '*'
}

// IsPattern reports whether s has a "*" segment, which makes it a pattern
// rather than a topic.
func IsPattern(s string) bool {
	for rest := s; ; {
		seg, after, more := strings.Cut(rest, "/")
		if seg == "*" {
			return true
		}
		if !more {
			return false
		}
		rest = after
	}
}

// TopicMatches reports whether topic is selected by pattern. A "*" segment
// matches exactly one segment, except as the last segment of the pattern,
// where it matches one or more: "orders/*" matches "orders/created" and
// "orders/items/changed" but not "orders", and "*" matches every topic.
// Every other segment matches itself only, case included, so a pattern
// without "*" matches only the same topic. The topic is expected to pass
// CheckTopic; an empty segment of it is matched by no "*".
func TopicMatches(pattern, topic string) bool {
	for {
		pseg, prest, pmore := strings.Cut(pattern, "/")
		tseg, trest, tmore := strings.Cut(topic, "/")
		switch {
		case pseg == "*" && !pmore:
			return tseg != ""
		case pseg == "*":
			if tseg == "" {
				return false
			}
		case pseg != tseg:
			return false
		}
		if !pmore || !tmore {
			return pmore == tmore
		}
		pattern, topic = prest, trest
	}
}

// TopicIndex maps topics and topic patterns to webhook ids, so that the
// ids selected by an event's topic are found without testing every webhook:
// the ids under a topic without "*" are one map lookup away, and only the
// distinct patterns are scanned, each once however many ids it holds. It
// holds each (pattern, id) pair once.
//
// The zero value is an empty index, ready to use. A TopicIndex is not safe
// for concurrent use: its owner changes a copy (Clone) and publishes that,
// while readers Match on the one they have.
type TopicIndex struct {
	exact    map[string][]uint64 // ids in increasing order
	patterns []topicPattern      // in increasing order of pattern
	n        int
}

// topicPattern holds the ids under one pattern of a TopicIndex, in
// increasing order.
type topicPattern struct {
	pattern string
	ids     []uint64
}

// Add puts id under pattern, a topic or a topic pattern. Adding a pair
// that is already there does nothing.
func (x *TopicIndex) Add(pattern string, id uint64) {
	if !IsPattern(pattern) {
		if x.exact == nil {
			x.exact = make(map[string][]uint64)
		}
		ids, added := topicInsertID(x.exact[pattern], id)
		x.exact[pattern] = ids
		if added {
			x.n++
		}
		return
	}
	i, found := slices.BinarySearchFunc(x.patterns, pattern, topicComparePattern)
	if !found {
		x.patterns = slices.Insert(x.patterns, i, topicPattern{pattern: pattern})
	}
	var added bool
	x.patterns[i].ids, added = topicInsertID(x.patterns[i].ids, id)
	if added {
		x.n++
	}
}

// Remove takes id from under pattern. Removing a pair that is not there
// does nothing.
func (x *TopicIndex) Remove(pattern string, id uint64) {
	if !IsPattern(pattern) {
		ids, removed := topicDeleteID(x.exact[pattern], id)
		if !removed {
			return
		}
		if len(ids) == 0 {
			delete(x.exact, pattern)
		} else {
			x.exact[pattern] = ids
		}
		x.n--
		return
	}
	i, found := slices.BinarySearchFunc(x.patterns, pattern, topicComparePattern)
	if !found {
		return
	}
	ids, removed := topicDeleteID(x.patterns[i].ids, id)
	if !removed {
		return
	}
	if len(ids) == 0 {
		x.patterns = slices.Delete(x.patterns, i, i+1)
	} else {
		x.patterns[i].ids = ids
	}
	x.n--
}

// Match calls fn with the id of every pair whose pattern matches topic
// (TopicMatches): first the ids under topic itself, then those of each
// matching pattern in turn, each group in increasing order of id. An id
// that is under two matching patterns is passed twice. fn must not change
// x.
func (x *TopicIndex) Match(topic string, fn func(id uint64)) {
	for _, id := range x.exact[topic] {
		fn(id)
	}
	for _, p := range x.patterns {
		if TopicMatches(p.pattern, topic) {
			for _, id := range p.ids {
				fn(id)
			}
		}
	}
}

// Len returns the number of (pattern, id) pairs in x.
func (x *TopicIndex) Len() int { return x.n }

// Clone returns a copy of x that shares no memory with it, for its owner to
// change while readers Match on x.
func (x *TopicIndex) Clone() *TopicIndex {
	c := &TopicIndex{n: x.n}
	if len(x.exact) > 0 {
		c.exact = make(map[string][]uint64, len(x.exact))
		for topic, ids := range x.exact {
			c.exact[topic] = slices.Clone(ids)
		}
	}
	if len(x.patterns) > 0 {
		c.patterns = make([]topicPattern, len(x.patterns))
		for i, p := range x.patterns {
			c.patterns[i] = topicPattern{p.pattern, slices.Clone(p.ids)}
		}
	}
	return c
}

func topicComparePattern(p topicPattern, pattern string) int {
	return strings.Compare(p.pattern, pattern)
}

// topicInsertID inserts id into the sorted ids unless it is there already.
func topicInsertID(ids []uint64, id uint64) ([]uint64, bool) {
	i, found := slices.BinarySearch(ids, id)
	if found {
		return ids, false
	}
	return slices.Insert(ids, i, id), true
}

// topicDeleteID deletes id from the sorted ids if it is there.
func topicDeleteID(ids []uint64, id uint64) ([]uint64, bool) {
	i, found := slices.BinarySearch(ids, id)
	if !found {
		return ids, false
	}
	return slices.Delete(ids, i, i+1), true
}
