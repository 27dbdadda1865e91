package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay/event"
)

// FuzzOrderKey feeds any bytes and any dotted path to the order key's
// lookup. On any input it must not panic and must end quickly. On valid
// JSON, the value lookupJSON finds must be the one encoding/json finds
// (decoding into any with UseNumber and walking the path), compared in
// canonical form, and orderKey must be the key of that value.
//
// Duplicate member names are the one place the two differ by design:
// lookupJSON takes the first member of a name, encoding/json keeps the
// last. Inputs with a duplicate name anywhere are only checked for panics
// and hangs. (The engine stores event.Event's JSON, whose data passes
// through json.Marshal of a RawMessage, which keeps duplicates: a
// provider's data with a repeated key is ordered by its first value.)
//
//	go test -run '^$' -fuzz '^FuzzOrderKey$' -fuzztime 3m ./relay/
func FuzzOrderKey(f *testing.F) {
	for _, s := range []struct{ body, path string }{
		{aveEvent(`{"shipment_id":"123","status":{"code":"4"}}`), "data.shipment_id"},
		{aveEvent(`{"shipment_id":"123","status":{"code":"4"}}`), "data.status.code"},
		{aveEvent(`{"shipment_id":"123","status":{"code":"4"}}`), "data.status"},
		{aveEvent(`{"shipment_id":123,"status":{"code":4}}`), "data.shipment_id"},
		{aveEvent(`{"guia":"014150050123","estado":{"id":"4","nombre":"EN TRANSITO"},"novedades":[{"codigo":"N1","fecha":"2026-01-01 08:00:00"}],"valor":12.50,"entregado":false}`), "data.guia"},
		{aveEvent(`{"guia":"014150050123","novedades":[{"codigo":"N1"},{"codigo":"N2"}]}`), "data.novedades.1.codigo"},
		{`{"id":"evt_a","topic":"orders/updated","source":"ventiapp","received_at":"2026-01-01T00:00:00Z","tenant":"acme","data":{"orderId":"V-100","items":[{"sku":"A1","qty":2}],"total":1.5e2}}`, "data.orderId"},
		{`{"id":"evt_a","topic":"orders/updated","source":"ventiapp","received_at":"2026-01-01T00:00:00Z","tenant":"acme","data":{"orderId":"V-100"}}`, "tenant"},
		{aveEvent(`{"shipment\u005fid":"env\u00edo \ud83d\udce6","x":"\"}]"}`), "data.shipment_id"},
		{aveEvent(`{"a":{"b":[[],{},null,true,-0.0e-0,"\\"]}}`), "data.a.b.5"},
		{aveEvent(`{"shipment_id":{"z":[1,2.0,"3"],"a":null}}`), "data.shipment_id"},
		{aveEvent(`{"shipment_id":"1","shipment_id":"2"}`), "data.shipment_id"},
		{aveEvent("{\"shipment_id\":\"\xff\\u0041\"}"), "data.shipment_id"},
		{"{\"data\":{\"\xff\":1}}", "data.\uFFFD"},
		{`{"data":{"shipment_id":"`, "data.shipment_id"},
		{`{"data":{"shipment_id":[1,{"a":"}`, "data.shipment_id"},
		{`[0,[1,[2]]]`, "1.1.0"},
		{` {"":{"":""}} `, "."},
		{`{"data":{"n":1e999999999999999999}}`, "data.n"},
		{`"data"`, "data"},
		{``, ``},
	} {
		f.Add([]byte(s.body), s.path)
	}
	f.Fuzz(func(t *testing.T, body []byte, dotted string) {
		path := strings.Split(dotted, ".")
		if len(path) > maxOrderPathSegments*2 {
			path = path[:maxOrderPathSegments*2]
		}
		start := time.Now()
		raw, found := lookupJSON(body, path)
		key, ok := orderKey(body, path)
		_ = laneOf(key, ok, DefaultLanes)
		_ = shownKey(key)
		_, _ = ParseOrderBy(dotted)
		// Every step is linear in the input: even under the race detector
		// a few hundred KB take milliseconds.
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("lookup of %q in %d bytes took %v", dotted, len(body), took)
		}
		if found && (len(raw) == 0 || !bytes.Contains(body, raw)) {
			t.Fatalf("lookupJSON returned %q, not a part of the input", raw)
		}

		if !json.Valid(body) || hasDuplicateNames(body) {
			return
		}
		want, wantFound := refLookup(t, body, path)
		if found != wantFound {
			t.Fatalf("lookupJSON(%q, %q) found %v (%q), encoding/json found %v (%#v)", body, path, found, raw, wantFound, want)
		}
		if !found {
			if ok {
				t.Fatalf("orderKey found %q where nothing is", key)
			}
			return
		}
		got, err := event.CanonicalJSON(raw)
		if err != nil {
			t.Fatalf("lookupJSON returned %q, not one JSON value: %v", raw, err)
		}
		wantJSON, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		wantCanon, err := event.CanonicalJSON(wantJSON)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, wantCanon) {
			t.Fatalf("lookupJSON(%q, %q) = %q (canonical %s), encoding/json finds %s", body, path, raw, got, wantCanon)
		}
		wantKey, wantOK := refKey(t, want)
		if key != wantKey || ok != wantOK {
			t.Fatalf("orderKey(%q, %q) = %q, %v; want %q, %v", body, path, key, ok, wantKey, wantOK)
		}
	})
}

// refLookup walks path in body decoded by encoding/json: a member of an
// object, or an index (digits without a leading zero) of an array.
func refLookup(t *testing.T, body []byte, path []string) (any, bool) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("json.Valid, yet Decode: %v", err)
	}
	for _, seg := range path {
		switch c := v.(type) {
		case map[string]any:
			m, ok := c[seg]
			if !ok {
				return nil, false
			}
			v = m
		case []any:
			n, err := strconv.Atoi(seg)
			if err != nil || n < 0 || strconv.Itoa(n) != seg || n >= len(c) {
				return nil, false
			}
			v = c[n]
		default:
			return nil, false
		}
	}
	return v, true
}

// refKey is the order key of v, a value decoded with UseNumber, as
// orderKey documents it.
func refKey(t *testing.T, v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "", false
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case json.Number:
		n, ok := event.CanonicalNumber(string(v))
		if !ok {
			t.Fatalf("number %q has no canonical form", v)
		}
		return n, true
	default:
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		c, err := event.CanonicalJSON(b)
		if err != nil {
			t.Fatal(err)
		}
		return string(c), true
	}
}

// hasDuplicateNames reports whether an object of body, valid JSON, has a
// member name twice (compared decoded, as encoding/json compares them).
func hasDuplicateNames(body []byte) bool {
	type frame struct {
		object, wantName bool
		names            map[string]bool
	}
	var stack []frame
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			return false // not reached on valid JSON
		}
		// A value (not a name) ends: its object waits for the next name.
		valueDone := func() {
			if n := len(stack); n > 0 && stack[n-1].object {
				stack[n-1].wantName = true
			}
		}
		switch tok := tok.(type) {
		case json.Delim:
			switch tok {
			case '{':
				stack = append(stack, frame{object: true, wantName: true, names: map[string]bool{}})
			case '[':
				stack = append(stack, frame{})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantName {
				if stack[n-1].names[tok] {
					return true
				}
				stack[n-1].names[tok] = true
				stack[n-1].wantName = false
				continue
			}
			valueDone()
		default:
			valueDone()
		}
	}
}

func TestHasDuplicateNames(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{
		{`{}`, false},
		{`{"a":1,"b":{"a":1}}`, false},
		{`{"a":1,"a":2}`, true},
		{`{"a":1,"\u0061":2}`, true},
		{`{"a":"b","b":"a"}`, false},
		{`{"a":["a","a"],"b":1}`, false},
		{`{"x":{"a":1,"a":1}}`, true},
		{`[{"a":1},{"a":1}]`, false},
		{`{"a":{"b":1},"a":[]}`, true},
		{`{"a":[{}],"b":{"c":[1,{"d":2,"d":3}]}}`, true},
		{`"a"`, false},
	} {
		if got := hasDuplicateNames([]byte(c.in)); got != c.want {
			t.Errorf("hasDuplicateNames(%s) = %v, want %v", c.in, got, c.want)
		}
	}
}
