package relay

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// aveEvent is a stored, normalized Ave event (event.Event's JSON) with data
// as its data.
func aveEvent(data string) string {
	return `{"id":"evt_x","topic":"shipments/tracking","source":"ave","received_at":"2026-01-01T00:00:00Z","data":` + data + `}`
}

func TestParseOrderBy(t *testing.T) {
	good := []struct {
		path string
		want []string
	}{
		{"", nil}, // no ordering
		{"data.shipment_id", []string{"data", "shipment_id"}},
		{"data.order.id", []string{"data", "order", "id"}},
		{"data.items.0.id", []string{"data", "items", "0", "id"}},
		{"data", []string{"data"}},
		{"topic", []string{"topic"}},
		{"source", []string{"source"}},
		{"tenant", []string{"tenant"}},
		{"id", []string{"id"}},
		{"data.orderId", []string{"data", "orderId"}},
		{"data.envío", []string{"data", "envío"}},
		{"data." + strings.Repeat("a", maxOrderPath-len("data.")), []string{"data", strings.Repeat("a", maxOrderPath-len("data."))}},
		{"data" + strings.Repeat(".a", maxOrderPathSegments-1), append([]string{"data"}, slices.Repeat([]string{"a"}, maxOrderPathSegments-1)...)},
	}
	for _, c := range good {
		got, err := ParseOrderBy(c.path)
		if err != nil {
			t.Errorf("ParseOrderBy(%q): %v", c.path, err)
			continue
		}
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", c.want) {
			t.Errorf("ParseOrderBy(%q) = %q, want %q", c.path, got, c.want)
		}
	}

	bad := []string{
		".",
		"data.",
		".data",
		"data..shipment_id",
		"data.shipment_id.",
		"shipment_id",       // not a member of the stored event
		"received_at",       // a member, but not one to order by
		"Data.shipment_id",  // names are case-sensitive
		" data.shipment_id", // no trimming
		"topic.name",        // only data has members
		"id.x",              // idem
		"tenant.0",          // idem
		"source.x.y",        // idem
		"data." + strings.Repeat("a", maxOrderPath-len("data.")+1),   // too long
		"data" + strings.Repeat(".a", maxOrderPathSegments),          // too many segments
		strings.Repeat("data.", maxOrderPathSegments*2) + "shipment", // both
	}
	for _, p := range bad {
		segs, err := ParseOrderBy(p)
		if err == nil {
			t.Errorf("ParseOrderBy(%q) = %q, want an error", p, segs)
			continue
		}
		if !errors.Is(err, ErrInvalidOrder) {
			t.Errorf("ParseOrderBy(%q) = %v, which does not wrap ErrInvalidOrder", p, err)
		}
		if segs != nil {
			t.Errorf("ParseOrderBy(%q) returned segments %q with its error", p, segs)
		}
	}
}

func TestOrderKey(t *testing.T) {
	const shipment = "data.shipment_id"
	tests := []struct {
		name, body, path string
		want             string
		ok               bool
	}{
		// Strings: their text.
		{"plain string", aveEvent(`{"shipment_id":"123","status":{"code":"4"}}`), shipment, "123", true},
		{"empty string", aveEvent(`{"shipment_id":""}`), shipment, "", true},
		{"escaped quote", aveEvent(`{"shipment_id":"a\"b"}`), shipment, `a"b`, true},
		{"escaped backslash", aveEvent(`{"shipment_id":"a\\b"}`), shipment, `a\b`, true},
		{"escaped slash", aveEvent(`{"shipment_id":"a\/b"}`), shipment, "a/b", true},
		{"escaped control", aveEvent(`{"shipment_id":"a\nb\t"}`), shipment, "a\nb\t", true},
		{"unicode escape", aveEvent(`{"shipment_id":"env\u00edo"}`), shipment, "envío", true},
		{"raw unicode", aveEvent(`{"shipment_id":"envío-7"}`), shipment, "envío-7", true},
		{"surrogate pair", aveEvent(`{"shipment_id":"\ud83d\udce6"}`), shipment, "📦", true},
		{"raw emoji", aveEvent(`{"shipment_id":"📦"}`), shipment, "📦", true},
		{"lone surrogate", aveEvent(`{"shipment_id":"\ud83d"}`), shipment, "\uFFFD", true},
		{"string is not a number", aveEvent(`{"shipment_id":"12.0"}`), shipment, "12.0", true},
		{"string keeps its spaces", aveEvent(`{"shipment_id":" 12 "}`), shipment, " 12 ", true},

		// Numbers: their canonical text.
		{"integer", aveEvent(`{"shipment_id":12}`), shipment, "12", true},
		{"point zero", aveEvent(`{"shipment_id":12.0}`), shipment, "12", true},
		{"exponent", aveEvent(`{"shipment_id":1.2e1}`), shipment, "12", true},
		{"negative exponent", aveEvent(`{"shipment_id":120E-1}`), shipment, "12", true},
		{"plus exponent", aveEvent(`{"shipment_id":1.20e+1}`), shipment, "12", true},
		{"minus zero", aveEvent(`{"shipment_id":-0.0}`), shipment, "0", true},
		{"fraction", aveEvent(`{"shipment_id":4.50}`), shipment, "4.5", true},
		{"negative", aveEvent(`{"shipment_id":-7}`), shipment, "-7", true},
		{"beyond float64", aveEvent(`{"shipment_id":12345678901234567890123}`), shipment, "12345678901234567890123", true},
		{"beyond float64 precision", aveEvent(`{"shipment_id":9007199254740993}`), shipment, "9007199254740993", true},

		// Booleans.
		{"true", aveEvent(`{"shipment_id":true}`), shipment, "true", true},
		{"false", aveEvent(`{"shipment_id":false}`), shipment, "false", true},

		// Null and missing: no key.
		{"null", aveEvent(`{"shipment_id":null}`), shipment, "", false},
		{"missing member", aveEvent(`{"guide":"123"}`), shipment, "", false},
		{"empty data", aveEvent(`{}`), shipment, "", false},
		{"null data", aveEvent(`null`), shipment, "", false},
		{"data is a string", aveEvent(`"shipment_id"`), shipment, "", false},
		{"data is an array", aveEvent(`[{"shipment_id":"1"}]`), shipment, "", false},
		{"path below a string", aveEvent(`{"shipment_id":"123"}`), "data.shipment_id.x", "", false},
		{"path below a number", aveEvent(`{"shipment_id":123}`), "data.shipment_id.0", "", false},
		{"no tenant", aveEvent(`{}`), "tenant", "", false},

		// Objects and arrays: canonical JSON (numbers as strings, members
		// sorted, no whitespace).
		{"object", aveEvent(`{"shipment_id":{"b":1, "a":"x"}}`), shipment, `{"a":"x","b":"1"}`, true},
		{"object respelled", aveEvent(`{"shipment_id":{ "a" : "\u0078" , "b" : 1.0e0 }}`), shipment, `{"a":"x","b":"1"}`, true},
		{"empty object", aveEvent(`{"shipment_id":{}}`), shipment, `{}`, true},
		{"array", aveEvent(`{"shipment_id":[1, "a", {"z":true,"y":null}]}`), shipment, `["1","a",{"y":null,"z":true}]`, true},
		{"empty array", aveEvent(`{"shipment_id":[ ]}`), shipment, `[]`, true},
		{"whole data", aveEvent(`{"status":{"code":"4"},"shipment_id":"123"}`), "data", `{"shipment_id":"123","status":{"code":"4"}}`, true},

		// Array indexes.
		{"index 0", aveEvent(`{"items":[{"id":"a"},{"id":"b"}]}`), "data.items.0.id", "a", true},
		{"index 1", aveEvent(`{"items":[{"id":"a"},{"id":"b"}]}`), "data.items.1.id", "b", true},
		{"index past the end", aveEvent(`{"items":[{"id":"a"},{"id":"b"}]}`), "data.items.2.id", "", false},
		{"index of empty array", aveEvent(`{"items":[]}`), "data.items.0", "", false},
		{"index with leading zero", aveEvent(`{"items":[{"id":"a"},{"id":"b"}]}`), "data.items.01.id", "", false},
		{"negative index", aveEvent(`{"items":["a"]}`), "data.items.-1", "", false},
		{"signed index", aveEvent(`{"items":["a","b"]}`), "data.items.+1", "", false},
		{"huge index", aveEvent(`{"items":["a"]}`), "data.items.99999999999999999999", "", false},
		{"index skips nested values", aveEvent(`{"items":[[1,[2]],{"x":"]"},"c"]}`), "data.items.2", "c", true},
		{"index into an object", aveEvent(`{"items":{"0":"zero"}}`), "data.items.0", "zero", true},
		{"name into an array", aveEvent(`{"items":["a"]}`), "data.items.id", "", false},

		// Member names are compared decoded.
		{"escaped member name", aveEvent(`{"shipment\u005fid":"9"}`), shipment, "9", true},
		{"escaped member name, all escapes", aveEvent(`{"\u0073\u0068\u0069\u0070\u006d\u0065\u006e\u0074\u005f\u0069\u0064":"9"}`), shipment, "9", true},
		{"escaped top-level name", `{"d\u0061ta":{"shipment_id":"9"}}`, shipment, "9", true},
		{"unicode member name", aveEvent(`{"gu\u00eda":"G1"}`), "data.guía", "G1", true},
		{"member name with a quote", `{"data":{"a\"b":"q"}}`, `data.a"b`, "q", true},
		{"prefix of a name is not the name", aveEvent(`{"shipment_id_old":"1","shipment":"2"}`), shipment, "", false},

		// The scan skips what comes before the member.
		{"whitespace everywhere", " \n{ \"data\" :\t{ \"shipment_id\" : 7 } } ", shipment, "7", true},
		{"brackets in a string", aveEvent(`{"note":"}{\"shipment_id\":1]","shipment_id":"2"}`), shipment, "2", true},
		{"nested member of the same name", aveEvent(`{"x":{"shipment_id":"inner"},"shipment_id":"outer"}`), shipment, "outer", true},
		{"after arrays and numbers", aveEvent(`{"a":[1,2,{"b":[]}],"n":-1.5e3,"t":true,"z":null,"shipment_id":"5"}`), shipment, "5", true},
		{"escaped backslash before the closing quote", aveEvent(`{"k":"\\","shipment_id":"6"}`), shipment, "6", true},
		// A name twice: the first counts (encoding/json would keep the
		// last); the engine stores event.Event's JSON, where data comes
		// from json.Marshal of a RawMessage, so this is only possible in a
		// provider's data. See FuzzOrderKey.
		{"duplicate member", aveEvent(`{"shipment_id":"1","shipment_id":"2"}`), shipment, "1", true},

		// The other members of a stored event.
		{"topic", aveEvent(`{}`), "topic", "shipments/tracking", true},
		{"source", aveEvent(`{}`), "source", "ave", true},
		{"id", aveEvent(`{}`), "id", "evt_x", true},
		{"tenant", `{"id":"evt_x","tenant":"acme","data":{}}`, "tenant", "acme", true},

		// Not JSON (or not an object): no key, no panic.
		{"empty body", ``, shipment, "", false},
		{"whitespace body", "  ", shipment, "", false},
		{"null body", `null`, shipment, "", false},
		{"array body", `[{"data":{"shipment_id":"1"}}]`, shipment, "", false},
		{"truncated after name", `{"data":{"shipment_id"`, shipment, "", false},
		{"truncated after colon", `{"data":{"shipment_id":`, shipment, "", false},
		{"truncated string", `{"data":{"shipment_id":"`, shipment, "", false},
		{"truncated string with escape", `{"data":{"shipment_id":"\`, shipment, "", false},
		{"truncated string with text", `{"data":{"shipment_id":"12`, shipment, "", false},
		{"truncated object", `{"data":{"shipment_id":{"a":1`, shipment, "", false},
		{"bad number", `{"data":{"shipment_id":01}}`, shipment, "", false},
		{"bad literal", `{"data":{"shipment_id":nul}}`, shipment, "", false},
		{"missing colon", `{"data":{"shipment_id" "1"}}`, shipment, "", false},
		{"missing comma", `{"data":{"a":"0" "shipment_id":"1"}}`, shipment, "", false},
		{"unquoted name", `{data:{"shipment_id":"1"}}`, shipment, "", false},
	}
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) {
			path, err := ParseOrderBy(c.path)
			if err != nil {
				path = strings.Split(c.path, ".") // lookups below data
			}
			got, ok := orderKey([]byte(c.body), path)
			if got != c.want || ok != c.ok {
				t.Errorf("orderKey(%s, %s) = %q, %v; want %q, %v", c.body, c.path, got, ok, c.want, c.ok)
			}
		})
	}
}

// TestOrderKeySameValue: spellings of one value are one key, hence one lane.
func TestOrderKeySameValue(t *testing.T) {
	path, _ := ParseOrderBy("data.shipment_id")
	for _, group := range [][]string{
		{`"12"`, `12`, `12.0`, `1.2e1`, `1.2E1`, `120e-1`, `0.12e2`, `12.000`},
		{`"envío"`, `"env\u00edo"`, `"env\u00EDo"`},
		{`"/a"`, `"\/a"`},
		{`{"a":1,"b":[true,"x"]}`, `{ "b" : [ true , "\u0078" ] , "a" : 1.0 }`, `{"b":[true,"x"],"a":"1"}`},
		{`true`, `"true"`},
	} {
		first, ok := orderKey([]byte(aveEvent(`{"shipment_id":`+group[0]+`}`)), path)
		if !ok {
			t.Fatalf("no key for %s", group[0])
		}
		for _, v := range group[1:] {
			k, ok := orderKey([]byte(aveEvent(`{"shipment_id":`+v+`}`)), path)
			if !ok || k != first {
				t.Errorf("key of %s = %q, %v; want %q, the key of %s", v, k, ok, first, group[0])
			}
			if laneOf(k, ok, DefaultLanes) != laneOf(first, true, DefaultLanes) {
				t.Errorf("%s and %s take different lanes", v, group[0])
			}
		}
	}
	// And different values are different keys.
	for _, pair := range [][2]string{
		{`"12.0"`, `12`}, {`"012"`, `12`}, {`12`, `12.5`}, {`"a"`, `"A"`}, {`[1,2]`, `[2,1]`}, {`""`, `null`},
	} {
		a, aok := orderKey([]byte(aveEvent(`{"shipment_id":`+pair[0]+`}`)), path)
		b, bok := orderKey([]byte(aveEvent(`{"shipment_id":`+pair[1]+`}`)), path)
		if aok == bok && a == b {
			t.Errorf("%s and %s give the same key %q", pair[0], pair[1], a)
		}
	}
}

// TestOrderKeyInvalidUTF8: a string is its decoded text, as encoding/json
// decodes it (invalid bytes read as U+FFFD), however it is spelled: with
// or without an escape elsewhere in it, the same string is the same key.
func TestOrderKeyInvalidUTF8(t *testing.T) {
	path, _ := ParseOrderBy("data.shipment_id")
	plain, ok1 := orderKey([]byte(aveEvent("{\"shipment_id\":\"\xffA\"}")), path)
	escaped, ok2 := orderKey([]byte(aveEvent("{\"shipment_id\":\"\xff\\u0041\"}")), path)
	if !ok1 || !ok2 || plain != escaped {
		t.Errorf("\"\\xffA\" gives %q, \"\\xff\\u0041\" gives %q: one string, two keys", plain, escaped)
	}
	if plain != "\uFFFDA" {
		t.Errorf("key = %q, want %q", plain, "\uFFFDA")
	}
	// Member names likewise.
	k, ok := orderKey([]byte("{\"data\":{\"\xff\":\"v\"}}"), []string{"data", "\uFFFD"})
	if !ok || k != "v" {
		t.Errorf("member \"\\xff\" looked up as U+FFFD = %q, %v; want \"v\", true", k, ok)
	}
}

func TestLaneOf(t *testing.T) {
	// The lane of a key is part of what is stored (the lane subjects):
	// pin it, so that a change of hash is a decision, not an accident.
	for _, c := range []struct {
		key   string
		lanes int
		want  int
	}{
		{"123", 32, 24}, {"123", 1024, 24}, {"123", 7, 4},
		{"shp_0001", 32, 1}, {"shp_0001", 1024, 129}, {"shp_0001", 7, 1},
		{"envío-7", 32, 13}, {"envío-7", 1024, 77}, {"envío-7", 7, 5},
		{"", 32, 6}, {"", 1024, 294}, {"", 7, 1}, // the empty string is a key
		// Keys that differ only in bits above a power of two's lanes
		// (the case of letters) do not share a lane for that.
		{"ABC", 32, 5}, {"abc", 32, 29},
	} {
		if got := laneOf(c.key, true, c.lanes); got != c.want {
			t.Errorf("laneOf(%q, %d) = %d, want %d", c.key, c.lanes, got, c.want)
		}
	}
	// Keyless events take lane 0, and one lane is lane 0.
	for _, lanes := range []int{0, 1, 2, DefaultLanes, MaxLanes} {
		if got := laneOf("123", false, lanes); got != 0 {
			t.Errorf("laneOf(keyless, %d) = %d, want 0", lanes, got)
		}
	}
	for _, key := range []string{"", "123", "x"} {
		for _, lanes := range []int{0, 1} {
			if got := laneOf(key, true, lanes); got != 0 {
				t.Errorf("laneOf(%q, %d) = %d, want 0", key, lanes, got)
			}
		}
	}
	// Stable and in range.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		key := fmt.Sprintf("%x", rng.Uint64())
		lanes := 1 + rng.IntN(MaxLanes)
		l := laneOf(key, true, lanes)
		if l < 0 || l >= lanes {
			t.Fatalf("laneOf(%q, %d) = %d, out of range", key, lanes, l)
		}
		if again := laneOf(key, true, lanes); again != l {
			t.Fatalf("laneOf(%q, %d) = %d, then %d", key, lanes, l, again)
		}
	}
}

// TestLaneSpread: 1000 keys of realistic shapes spread roughly evenly over
// the default lanes (a chi-square test at about p = 0.001) and use every
// lane.
func TestLaneSpread(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	families := map[string]func(i int) string{
		"decimal":  func(i int) string { return fmt.Sprint(i + 1) },
		"prefixed": func(i int) string { return fmt.Sprintf("SHP%06d", i+1) },
		"guide":    func(i int) string { return fmt.Sprintf("0%d0200%04d", 1+i%3, 7000+i) },
		"uuid-like": func(int) string {
			return fmt.Sprintf("%08x-%04x-4%03x", rng.Uint32(), rng.Uint32()&0xffff, rng.Uint32()&0xfff)
		},
		"order id": func(i int) string { return fmt.Sprintf("ord_%d_%s", 1700000000+i*37, "co") },
	}
	for _, lanes := range []int{DefaultLanes, 8, 100} {
		// chi-square critical values at p = 0.001 for lanes-1 degrees of
		// freedom: Wilson–Hilferty approximation.
		df := float64(lanes - 1)
		crit := df * math.Pow(1-2/(9*df)+3.09*math.Sqrt(2/(9*df)), 3)
		for name, key := range families {
			counts := make([]int, lanes)
			const n = 1000
			for i := range n {
				counts[laneOf(key(i), true, lanes)]++
			}
			exp := float64(n) / float64(lanes)
			chi := 0.0
			for _, c := range counts {
				chi += (float64(c) - exp) * (float64(c) - exp) / exp
				if c == 0 {
					t.Errorf("%s keys, %d lanes: a lane got no key: %v", name, lanes, counts)
					break
				}
			}
			if chi > crit {
				t.Errorf("%s keys, %d lanes: chi-square %.1f > %.1f: %v", name, lanes, chi, crit, counts)
			}
		}
	}
}

func TestShownKey(t *testing.T) {
	for _, c := range []struct {
		name, key, want string
	}{
		{"short", "123", "123"},
		{"empty", "", ""},
		{"exactly the limit", strings.Repeat("a", maxShownKey), strings.Repeat("a", maxShownKey)},
		{"one byte over", strings.Repeat("a", maxShownKey+1), strings.Repeat("a", maxShownKey) + "…"},
		{"long ascii", strings.Repeat("a", 1000), strings.Repeat("a", maxShownKey) + "…"},
		// 2-byte characters: 64 of them fill the 128 bytes exactly.
		{"two-byte boundary", strings.Repeat("é", 100), strings.Repeat("é", 64) + "…"},
		// 3-byte characters: the 43rd would cross byte 128.
		{"three-byte", strings.Repeat("€", 100), strings.Repeat("€", 42) + "…"},
		{"three-byte after one ascii", "a" + strings.Repeat("€", 100), "a" + strings.Repeat("€", 42) + "…"},
		{"three-byte after two ascii", "ab" + strings.Repeat("€", 100), "ab" + strings.Repeat("€", 42) + "…"},
		// 4-byte characters: 32 fill 128 bytes.
		{"four-byte boundary", strings.Repeat("📦", 40), strings.Repeat("📦", 32) + "…"},
		{"four-byte split", "x" + strings.Repeat("📦", 40), "x" + strings.Repeat("📦", 31) + "…"},
		{"exact multibyte key", strings.Repeat("é", 64), strings.Repeat("é", 64)},
	} {
		got := shownKey(c.key)
		if got != c.want {
			t.Errorf("%s: shownKey = %q (%d bytes), want %q (%d bytes)", c.name, got, len(got), c.want, len(c.want))
		}
	}
	// Whatever the key, the shown part is a prefix of at most maxShownKey
	// bytes, valid UTF-8 when the key is, and an ellipsis marks a cut.
	rng := rand.New(rand.NewPCG(5, 6))
	alphabet := []rune{'a', 'é', '€', '📦', 'ñ', '0'}
	for range 2000 {
		var b strings.Builder
		for n := rng.IntN(100); n > 0; n-- {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		k := b.String()
		got := shownKey(k)
		body, cut := strings.CutSuffix(got, "…")
		if !cut {
			body = got
		}
		if len(body) > maxShownKey || !strings.HasPrefix(k, body) || !utf8.ValidString(got) {
			t.Fatalf("shownKey(%q) = %q", k, got)
		}
		if cut != (len(k) > maxShownKey) {
			t.Fatalf("shownKey(%q) = %q: cut %v", k, got, cut)
		}
		// No more than one character's bytes are lost to the cut.
		if cut && len(body) < maxShownKey-(utf8.UTFMax-1) {
			t.Fatalf("shownKey(%q) = %q: only %d bytes kept", k, got, len(body))
		}
	}
	// Not UTF-8: still at most the limit, never a panic.
	for _, k := range []string{strings.Repeat("\x80", 300), strings.Repeat("\xff", 300), "\xe2" + strings.Repeat("\x82", 300)} {
		got := shownKey(k)
		if body, _ := strings.CutSuffix(got, "…"); len(body) > maxShownKey {
			t.Errorf("shownKey of %d invalid bytes kept %d bytes", len(k), len(body))
		}
	}
}
