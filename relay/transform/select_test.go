package transform_test

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/relay/transform"
)

// order is a DEUNA-like order, as a merchant reply rendered into an order.
const order = `{
  "order": {
    "order_id": "u-1",
    "total": 12345678901234567890,
    "status": null,
    "custom_fields": {"business_id": "KFC-VE", "tip": {"amount": 1500, "currency": "VES"}},
    "items": [
      {"sku": "A1", "qty": 1, "tags": ["x", "y"]},
      {"sku": "B2", "qty": 2},
      {"sku": "C3", "qty": 3}
    ]
  },
  "meta": {"a.b": 1}
}`

func TestSelect(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		paths []string
		want  string
	}{
		{"nested", order, []string{"order.order_id", "order.custom_fields.tip.amount"},
			`{"order":{"custom_fields":{"tip":{"amount":1500}},"order_id":"u-1"}}`},
		{"a whole object", order, []string{"order.custom_fields"},
			`{"order":{"custom_fields":{"business_id":"KFC-VE","tip":{"amount":1500,"currency":"VES"}}}}`},
		{"missing paths are skipped", order, []string{"order.nope", "order.custom_fields.nope.x", "nope", "order.order_id.x", "order.items.9.sku"},
			`{}`},
		{"some missing", order, []string{"order.nope", "order.order_id"}, `{"order":{"order_id":"u-1"}}`},
		{"a null is kept", order, []string{"order.status"}, `{"order":{"status":null}}`},
		{"array element", order, []string{"order.items.0"}, `{"order":{"items":[{"qty":1,"sku":"A1","tags":["x","y"]}]}}`},
		{"array paths keep their indexes", order, []string{"order.items.2.sku", "order.items.0.sku", "order.items.0.tags.1"},
			`{"order":{"items":[{"sku":"A1","tags":[null,"y"]},null,{"sku":"C3"}]}}`},
		{"array index must be digits", order, []string{"order.items.+1", "order.items.-1", "order.items.01x", "order.items."}, `{}`},
		{"array index has no leading zero", order, []string{"order.items.01", "order.items.00", "order.items.00.sku"}, `{}`},
		{"shorter path wins, short first", order, []string{"order.custom_fields", "order.custom_fields.tip.amount"},
			`{"order":{"custom_fields":{"business_id":"KFC-VE","tip":{"amount":1500,"currency":"VES"}}}}`},
		{"shorter path wins, long first", order, []string{"order.custom_fields.tip.amount", "order.custom_fields"},
			`{"order":{"custom_fields":{"business_id":"KFC-VE","tip":{"amount":1500,"currency":"VES"}}}}`},
		{"duplicates", order, []string{"order.order_id", "order.order_id"}, `{"order":{"order_id":"u-1"}}`},
		{"big numbers kept", order, []string{"order.total"}, `{"order":{"total":12345678901234567890}}`},
		{"a key with a dot is not addressable", order, []string{"meta.a.b"}, `{}`},
		{"top-level array", `[{"id":1,"x":2},{"id":3}]`, []string{"1.id", "0.x"}, `[{"x":2},{"id":3}]`},
		{"no paths: body as is", " {\"b\": 1, \"a\" : [1, 2]}\n", nil, `{"b":1,"a":[1,2]}`},
		{"html not escaped", `{"u":"a<b>&c","v":1}`, []string{"u"}, `{"u":"a<b>&c"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := transform.Select([]byte(tt.body), tt.paths)
			if err != nil {
				t.Fatalf("Select: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			checkSelected(t, []byte(tt.body), tt.paths, got)
		})
	}
}

func TestSelectErrors(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		paths []string
		want  string
	}{
		{"not JSON", `{"a":`, []string{"a"}, "body is not JSON"},
		{"not JSON without paths", `{"a":`, nil, "body is not JSON"},
		{"trailing data", `{"a":1} 2`, []string{"a"}, "body is not JSON"},
		{"scalar body", `"x"`, []string{"a"}, `body is a string, not an object or an array`},
		{"empty path", `{"a":1}`, []string{"a", ""}, "empty path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := transform.Select([]byte(tt.body), tt.paths)
			if err == nil || !strings.Contains(err.Error(), tt.want) || got != nil {
				t.Errorf("Select = %s, %v; want an error containing %q", got, err, tt.want)
			}
		})
	}
}

// TestSelectKeepsSource checks that Select does not change what it reads:
// selecting a subtree and then paths inside it aliases the source.
func TestSelectKeepsSource(t *testing.T) {
	paths := []string{"order", "order.items.1.sku", "order.items.0", "order.custom_fields.tip"}
	a, err := transform.Select([]byte(order), paths)
	if err != nil {
		t.Fatal(err)
	}
	b, err := transform.Select([]byte(order), []string{"order"})
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("with nested paths %s\nwhole %s", a, b)
	}
}

// checkSelected asserts Select's contract: every path present in the body
// reads the same in the result, and the result holds nothing that no path
// selected (apart from null fillers in arrays).
func checkSelected(t testing.TB, body []byte, paths []string, got []byte) {
	t.Helper()
	if !json.Valid(got) {
		t.Fatalf("Select output is not JSON: %s", got)
	}
	src, err := transform.DecodeJSON(body)
	if err != nil {
		t.Fatal(err)
	}
	out, err := transform.DecodeJSON(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		sv, sok := lookup(src, p)
		ov, ook := lookup(out, p)
		if sok != ook || !reflect.DeepEqual(sv, ov) {
			t.Errorf("path %q: source %v (%v), result %v (%v)", p, sv, sok, ov, ook)
		}
	}
	if len(paths) == 0 {
		return
	}
	var walk func(v any, prefix string)
	walk = func(v any, prefix string) {
		covered := false
		for _, p := range paths {
			if p == prefix || strings.HasPrefix(prefix, p+".") {
				covered = true
			}
		}
		if covered {
			return
		}
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				walk(e, join(prefix, k))
			}
		case []any:
			for i, e := range v {
				walk(e, join(prefix, strconv.Itoa(i)))
			}
		case nil:
			// an array filler, or a selected null
		default:
			t.Errorf("result holds %v at %q, which no path selected", v, prefix)
		}
	}
	walk(out, "")
}

func lookup(v any, path string) (any, bool) {
	for _, k := range strings.Split(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[k]; !ok {
				return nil, false
			}
		case []any:
			i := -1
			if k != "" && strings.Trim(k, "0123456789") == "" && (k == "0" || k[0] != '0') {
				i, _ = strconv.Atoi(k)
			}
			if i < 0 || i >= len(c) {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}
