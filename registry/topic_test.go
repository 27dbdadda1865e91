package registry

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestCheckTopic(t *testing.T) {
	valid := append(slices.Clone(KnownTopics),
		"*",
		"orders/*",
		"*/created",
		"orders/*/changed",
		"a",
		"A-Z_a-z.0-9",
		"v1.2/orders_x/item-changed",
		strings.Repeat("a", 128),
		strings.Repeat("a/", 63)+"bc",
	)
	for _, s := range valid {
		if err := CheckTopic(s); err != nil {
			t.Errorf("CheckTopic(%q) = %v, want nil", s, err)
		}
	}

	tests := []struct {
		s, want string // want: the error message
	}{
		{"", `invalid topic: empty`},
		{" ", `invalid topic " ": character " " at byte 0 is not allowed (use letters, digits, '/', '_', '-', '.', or '*' as a whole segment)`},
		{"orders//x", `invalid topic "orders//x": empty segment`},
		{"a//b", `invalid topic "a//b": empty segment`},
		{"/a", `invalid topic "/a": empty segment`},
		{"a/", `invalid topic "a/": empty segment`},
		{"/", `invalid topic "/": empty segment`},
		{"a*b", `invalid topic "a*b": '*' must be a whole segment`},
		{"a/**", `invalid topic "a/**": '*' must be a whole segment`},
		{"orders/*x", `invalid topic "orders/*x": '*' must be a whole segment`},
		{"orders/>", `invalid topic "orders/>": character ">" at byte 7 is not allowed (use letters, digits, '/', '_', '-', '.', or '*' as a whole segment)`},
		{strings.Repeat("a", 129), `invalid topic: 129 bytes, the limit is 128`},
		{"pedidos/creación", `invalid topic "pedidos/creación": character "ó" at byte 14 is not allowed (use letters, digits, '/', '_', '-', '.', or '*' as a whole segment)`},
		{"orders\xff", `invalid topic "orders\xff": character "\xff" at byte 6 is not allowed (use letters, digits, '/', '_', '-', '.', or '*' as a whole segment)`},
		{"orders/created\n", `invalid topic "orders/created\n": character "\n" at byte 14 is not allowed (use letters, digits, '/', '_', '-', '.', or '*' as a whole segment)`},
		{"orders\x00", `invalid topic "orders\x00": character "\x00" at byte 6 is not allowed (use letters, digits, '/', '_', '-', '.', or '*' as a whole segment)`},
		{"orders\tcreated", `invalid topic "orders\tcreated": character "\t" at byte 6 is not allowed (use letters, digits, '/', '_', '-', '.', or '*' as a whole segment)`},
		{"orders created", `invalid topic "orders created": character " " at byte 6 is not allowed (use letters, digits, '/', '_', '-', '.', or '*' as a whole segment)`},
		{"orders+created", `invalid topic "orders+created": character "+" at byte 6 is not allowed (use letters, digits, '/', '_', '-', '.', or '*' as a whole segment)`},
	}
	for _, tt := range tests {
		err := CheckTopic(tt.s)
		if err == nil {
			t.Errorf("CheckTopic(%q) = nil, want %s", tt.s, tt.want)
			continue
		}
		if !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("CheckTopic(%q) = %v, does not wrap ErrInvalidTopic", tt.s, err)
		}
		if err.Error() != tt.want {
			t.Errorf("CheckTopic(%q) = %s, want %s", tt.s, err, tt.want)
		}
	}
}

func TestKnownTopics(t *testing.T) {
	if len(KnownTopics) != 21 {
		t.Errorf("len(KnownTopics) = %d, want 21", len(KnownTopics))
	}
	seen := make(map[string]bool)
	for _, s := range KnownTopics {
		if seen[s] {
			t.Errorf("KnownTopics lists %q twice", s)
		}
		seen[s] = true
		if IsPattern(s) {
			t.Errorf("IsPattern(%q) = true, a known topic is no pattern", s)
		}
	}
}

func TestIsPattern(t *testing.T) {
	for s, want := range map[string]bool{
		"*":               true,
		"orders/*":        true,
		"*/created":       true,
		"a/*/b":           true,
		"orders/created":  false,
		"onOrderCreated":  false,
		"":                false,
		"a*b":             false, // not a valid topic; '*' inside a segment is no wildcard
		"orders/**":       false,
		"orders/created*": false,
	} {
		if got := IsPattern(s); got != want {
			t.Errorf("IsPattern(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestTopicMatches(t *testing.T) {
	tests := []struct {
		pattern, topic string
		want           bool
	}{
		{"orders/created", "orders/created", true},
		{"orders/created", "orders/updated", false},
		{"orders/created", "Orders/created", false}, // case-sensitive
		{"orders/created", "orders/created/x", false},
		{"orders/created", "orders", false},
		{"onOrderCreated", "onOrderCreated", true},
		{"onOrderCreated", "onordercreated", false},
		{"onOrderCreated", "onOrderCreatedX", false},

		{"*", "onOrderCreated", true},
		{"*", "orders/created", true},
		{"*", "a/b/c/d", true},
		{"*", "", false},

		{"orders/*", "orders/created", true},
		{"orders/*", "orders/items/changed", true}, // a final '*' takes the rest
		{"orders/*", "orders", false},
		{"orders/*", "orders/", false},
		{"orders/*", "ordersx/created", false},
		{"orders/*", "products/created", false},
		{"orders/*", "onOrderCreated", false},

		{"*/created", "orders/created", true},
		{"*/created", "bills/created", true},
		{"*/created", "orders/updated", false},
		{"*/created", "orders/items/created", false}, // a '*' that is not last takes one segment
		{"*/created", "created", false},
		{"*/created", "/created", false},

		{"orders/*/changed", "orders/items/changed", true},
		{"orders/*/changed", "orders/changed", false},
		{"orders/*/changed", "orders/a/b/changed", false},
		{"*/*", "orders/created", true},
		{"*/*", "orders/items/changed", true},
		{"*/*", "onOrderCreated", false},
	}
	for _, tt := range tests {
		if got := TopicMatches(tt.pattern, tt.topic); got != tt.want {
			t.Errorf("TopicMatches(%q, %q) = %v, want %v", tt.pattern, tt.topic, got, tt.want)
		}
	}
}

// topicMatched returns the ids x.Match passes for topic, in order.
func topicMatched(x *TopicIndex, topic string) []uint64 {
	var ids []uint64
	x.Match(topic, func(id uint64) { ids = append(ids, id) })
	return ids
}

func TestTopicIndex(t *testing.T) {
	var x TopicIndex // the zero value is ready
	if got := topicMatched(&x, "orders/created"); got != nil {
		t.Fatalf("empty index matched %v", got)
	}
	x.Remove("orders/created", 1) // nothing to remove
	x.Remove("orders/*", 1)

	x.Add("orders/created", 3)
	x.Add("orders/created", 1)
	x.Add("orders/created", 2)
	x.Add("orders/created", 1) // duplicate: no-op
	x.Add("orders/updated", 4)
	x.Add("onOrderCreated", 5)
	x.Add("orders/*", 7)
	x.Add("orders/*", 6)
	x.Add("orders/*", 6) // duplicate: no-op
	x.Add("*", 8)
	x.Add("*/created", 9)
	x.Add("orders/created", 6) // 6 also under a topic that its pattern matches
	if got, want := x.Len(), 10; got != want {
		t.Errorf("Len() = %d, want %d", got, want)
	}

	tests := []struct {
		topic string
		want  []uint64
	}{
		// exact ids first, in id order; then each matching pattern's ids,
		// patterns in byte order ("*" < "*/created" < "orders/*").
		{"orders/created", []uint64{1, 2, 3, 6, 8, 9, 6, 7}},
		{"orders/updated", []uint64{4, 8, 6, 7}},
		{"orders/items/changed", []uint64{8, 6, 7}},
		{"onOrderCreated", []uint64{5, 8}},
		{"bills/created", []uint64{8, 9}},
		{"Orders/created", []uint64{8, 9}},
	}
	for _, tt := range tests {
		if got := topicMatched(&x, tt.topic); !slices.Equal(got, tt.want) {
			t.Errorf("Match(%q) = %v, want %v", tt.topic, got, tt.want)
		}
	}

	// A clone is independent of its original, both ways.
	c := x.Clone()
	c.Remove("orders/created", 2)
	c.Remove("orders/*", 7)
	c.Add("orders/created", 10)
	c.Add("orders/*", 11)
	x.Add("orders/created", 12)
	if got, want := topicMatched(&x, "orders/created"), []uint64{1, 2, 3, 6, 12, 8, 9, 6, 7}; !slices.Equal(got, want) {
		t.Errorf("original after Clone: Match = %v, want %v", got, want)
	}
	if got, want := topicMatched(c, "orders/created"), []uint64{1, 3, 6, 10, 8, 9, 6, 11}; !slices.Equal(got, want) {
		t.Errorf("clone: Match = %v, want %v", got, want)
	}
	if x.Len() != 11 || c.Len() != 10 {
		t.Errorf("Len() = %d (original), %d (clone), want 11, 10", x.Len(), c.Len())
	}

	// Removing what is not there changes nothing.
	x.Remove("orders/created", 99)
	x.Remove("orders/*", 99)
	x.Remove("nope/*", 1)
	x.Remove("nope", 1)
	if x.Len() != 11 {
		t.Errorf("Len() after removing absent pairs = %d, want 11", x.Len())
	}

	// Removing everything empties the index.
	for _, p := range []struct {
		pattern string
		id      uint64
	}{
		{"orders/created", 1}, {"orders/created", 2}, {"orders/created", 3}, {"orders/created", 6},
		{"orders/created", 12}, {"orders/updated", 4}, {"onOrderCreated", 5},
		{"orders/*", 6}, {"orders/*", 7}, {"*", 8}, {"*/created", 9},
	} {
		x.Remove(p.pattern, p.id)
		x.Remove(p.pattern, p.id) // a second time: no-op
	}
	if x.Len() != 0 || len(x.exact) != 0 || len(x.patterns) != 0 {
		t.Errorf("after removing all: Len() = %d, %d exact topics, %d patterns", x.Len(), len(x.exact), len(x.patterns))
	}
	for _, topic := range []string{"orders/created", "onOrderCreated"} {
		if got := topicMatched(&x, topic); got != nil {
			t.Errorf("Match(%q) on an emptied index = %v", topic, got)
		}
	}
}

// TestTopicIndexAgreesWithTopicMatches checks Match against testing every
// pair with TopicMatches.
func TestTopicIndexAgreesWithTopicMatches(t *testing.T) {
	patterns := append(slices.Clone(KnownTopics), "*", "orders/*", "*/created", "products/*", "*/*", "on*")
	type pair struct {
		pattern string
		id      uint64
	}
	var x TopicIndex
	var pairs []pair
	for i := range 500 {
		p := pair{patterns[(i*7)%len(patterns)], uint64(i % 200)}
		x.Add(p.pattern, p.id)
		if !slices.Contains(pairs, p) {
			pairs = append(pairs, p)
		}
	}
	if x.Len() != len(pairs) {
		t.Errorf("Len() = %d, want %d", x.Len(), len(pairs))
	}
	for _, topic := range append(slices.Clone(KnownTopics), "orders/items/changed", "unknown", "a/b/c") {
		var want []uint64
		for _, p := range pairs {
			if TopicMatches(p.pattern, topic) {
				want = append(want, p.id)
			}
		}
		got := topicMatched(&x, topic)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("Match(%q) = %v, want %v", topic, got, want)
		}
	}
}

// BenchmarkTopicIndexMatch: 10,000 webhooks on the 21 known topics, and 100
// patterns, 50 of them distinct.
func BenchmarkTopicIndexMatch(b *testing.B) {
	var x TopicIndex
	for i := range 10_000 {
		x.Add(KnownTopics[i%len(KnownTopics)], uint64(i))
	}
	for i := range 100 {
		x.Add(fmt.Sprintf("p%d/*", i%50), uint64(10_000+i))
	}
	var n int
	fn := func(uint64) { n++ }
	b.ReportAllocs()
	for b.Loop() {
		x.Match("orders/created", fn)
	}
	if n == 0 {
		b.Fatal("no match")
	}
}
