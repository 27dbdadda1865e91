package event

import (
	"bytes"
	"encoding/json"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestCanonicalNumber(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0", "0"}, {"-0", "0"}, {"0.0", "0"}, {"-0.000", "0"}, {"0e7", "0"}, {"0E-99999999999999999999", "0"},
		{"4", "4"}, {"4.0", "4"}, {"4.00", "4"}, {"4e0", "4"}, {"4E+0", "4"}, {"40e-1", "4"}, {"0.4e1", "4"}, {"400e-2", "4"},
		{"-4", "-4"}, {"-4.0", "-4"}, {"-4e0", "-4"},
		{"4.50", "4.5"}, {"4.5", "4.5"}, {"45e-1", "4.5"}, {"-4.50", "-4.5"},
		{"1e3", "1000"}, {"1E3", "1000"}, {"1e+3", "1000"}, {"100", "100"}, {"1.000e2", "100"},
		{"0.0010", "0.001"}, {"1e-3", "0.001"}, {"10.01", "10.01"},
		{"12345678901234567890", "12345678901234567890"},
		{"12345678901234567890.0", "12345678901234567890"},
		{"123456789012345678901234567890e-10", "12345678901234567890.123456789"},
		{"1e21", "1000000000000000000000"},
		{"1000000000000000000000", "1000000000000000000000"},
		{"1e22", "1e22"},
		{"10000000000000000000000", "1e22"},
		{"1.50e22", "15000000000000000000000"},
		{"1.5e23", "1.5e23"},
		{"150000000000000000000000", "1.5e23"},
		{"123e25", "1.23e27"},
		{"1e-22", "0.0000000000000000000001"},
		{"1e-23", "1e-23"},
		{"1.50e-30", "1.5e-30"},
		{"-1.50e-30", "-1.5e-30"},
		{"1e999999999", "1e999999999"},
		{"1e99999999999999999999", "1e99999999999999999999"},
		{"12.5e99999999999999999999", "1.25e100000000000000000000"},
		{"0.0125e-99999999999999999999", "1.25e-100000000000000000001"},
		{"1e0000000000000000000000000000000000005", "100000"},
	} {
		got, ok := CanonicalNumber(tc.in)
		if !ok || got != tc.want {
			t.Errorf("CanonicalNumber(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
		// Canonical numbers are fixed points.
		if again, ok := CanonicalNumber(got); !ok || again != got {
			t.Errorf("CanonicalNumber(%q) = %q, %v; not a fixed point", got, again, ok)
		}
	}
	for _, in := range []string{"", "-", "+1", "01", "-01", "00", ".5", "5.", "1e", "1e+", "1.e3", "0x10",
		"1_000", " 1", "1 ", "NaN", "Infinity", "1.5.5", "1e5e5", "--1", "4,0", "１"} {
		if got, ok := CanonicalNumber(in); ok {
			t.Errorf("CanonicalNumber(%q) = %q, accepted", in, got)
		}
	}
}

func TestCanonicalNumberNoAlloc(t *testing.T) {
	for _, in := range []string{"4", "-7", "12345678901234567890", "100"} {
		if n := testing.AllocsPerRun(100, func() { CanonicalNumber(in) }); n != 0 {
			t.Errorf("CanonicalNumber(%q) allocates %v times", in, n)
		}
	}
}

func TestCanonicalJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string // all alike
		want string
	}{
		{"key order and whitespace", []string{
			`{"b":1,"a":{"d":[1,2],"c":null}}`,
			` { "a" : { "c" : null , "d" : [ 1 , 2 ] } ,
			   "b" : 1 } `,
			"{\t\"b\"\r\n:1,\"a\":{\"d\":[1,2],\"c\":null}}",
		}, `{"a":{"c":null,"d":["1","2"]},"b":"1"}`},
		{"number forms", []string{
			`{"cod_estado":4}`, `{"cod_estado":4.0}`, `{"cod_estado":"4"}`, `{"cod_estado":4e0}`,
			`{"cod_estado":40E-1}`, `{"cod_estado":"\u0034"}`,
		}, `{"cod_estado":"4"}`},
		{"nested objects sorted at every level", []string{
			`{"z":{"y":{"x":1,"w":2},"v":3},"u":[{"t":1,"s":2}]}`,
			`{"u":[{"s":2,"t":1}],"z":{"v":3,"y":{"w":2,"x":1}}}`,
		}, `{"u":[{"s":"2","t":"1"}],"z":{"v":"3","y":{"w":"2","x":"1"}}}`},
		{"unicode escapes and literal characters", []string{
			`{"nota":"direcci\u00f3n \ud83d\ude9a","url":"https:\/\/x.co\/a"}`,
			`{"nota":"dirección 🚚","url":"https://x.co/a"}`,
			`{"n\u006fta":"direcci\u00F3n 🚚","url":"https:/\/x.co/a"}`,
		}, `{"nota":"dirección 🚚","url":"https://x.co/a"}`},
		{"required escapes only", []string{
			`["\"\\\/\b\f\n\r\t\u0000\u001f\u007f<>&\u2028"]`,
			"[\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001F\u007f\\u003c\\u003e\\u0026\u2028\"]",
		}, "[\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001f\u007f<>&\u2028\"]"},
		{"bad UTF-8 and lone surrogates read as U+FFFD", []string{
			"[\"a\xffb\"]", `["a\ud800b"]`, `["a\ufffdb"]`, "[\"a\xef\xbf\xbdb\"]",
		}, "[\"a\ufffdb\"]"},
		{"duplicate names: the last counts", []string{
			`{"a":1,"a":2}`, `{"a":2}`, `{"a":{"x":1},"a":2}`,
		}, `{"a":"2"}`},
		{"literals", []string{`[true,false,null]`, ` [ true , false , null ] `}, `[true,false,null]`},
		{"scalars at the top", []string{`"x"`, ` "\u0078" `}, `"x"`},
		{"empty containers", []string{`{"a":[],"b":{}}`, `{ "b" : { } , "a" : [ ] }`}, `{"a":[],"b":{}}`},
		{"keys sorted by UTF-8 bytes", []string{`{"é":1,"z":2,"A":3,"a":4,"":5}`}, `{"":"5","A":"3","a":"4","z":"2","é":"1"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ids []string
			for _, in := range tc.in {
				got, err := CanonicalJSON([]byte(in))
				if err != nil || string(got) != tc.want {
					t.Errorf("CanonicalJSON(%s) = %s, %v; want %s", in, got, err, tc.want)
				}
				id, err := IDFromData("src", []byte(in))
				if err != nil {
					t.Fatal(err)
				}
				if want := NewID("src", tc.want); id != want {
					t.Errorf("IDFromData(%s) = %s, want NewID of the canonical form %s", in, id, want)
				}
				ids = append(ids, id)
			}
			for _, id := range ids[1:] {
				if id != ids[0] {
					t.Errorf("alike values gave ids %v", ids)
				}
			}
		})
	}
}

func TestIDFromDataDistinct(t *testing.T) {
	// Every one of these differs from all the others.
	values := []string{
		`{"a":"4"}`, `{"a":"4.0"}`, `{"a":4.5}`, `{"a":"4 "}`, `{"a":["4"]}`, `{"a":{"4":null}}`,
		`{"a":null}`, `{"a":"null"}`, `{"a":true}`, `{"a":"true"}`, `{}`, `{"b":"4"}`, `{"a":"4","b":null}`,
		`[1,2]`, `[2,1]`, `[[1],2]`, `[1,[2]]`, `["1,2"]`, `"a"`, `""`, `null`,
		`{"a":"x","b":"y"}`, `{"a":"x\",\"b\":\"y"}`, `{"a\":\"x\",\"b":"y"}`,
		`{"a":1e22}`, `{"a":1e21}`, `{"a":"1E22"}`,
	}
	seen := map[string]string{}
	for _, v := range values {
		id, err := IDFromData("aveonline", []byte(v))
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if !ValidID(id) {
			t.Errorf("%s: invalid id %q", v, id)
		}
		if prev, dup := seen[id]; dup {
			t.Errorf("%s and %s gave the same id", prev, v)
		}
		seen[id] = v
	}
	// The source is part of the id.
	a, _ := IDFromData("aveonline", []byte(`{"a":1}`))
	b, _ := IDFromData("other", []byte(`{"a":1}`))
	if a == b {
		t.Error("the source does not change the id")
	}
}

func TestCanonicalJSONAsValid(t *testing.T) {
	// What json.Valid accepts, CanonicalJSON reads; including invalid UTF-8
	// and the deepest nesting.
	for _, in := range []string{" \t\r\n1 \n", `-0.0e+00`, `"\u00e9\uD83D\uDE9A\/"`, "\"\xff\xfe\"", `"\ud800"`, "\"\x7f\"",
		strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
		strings.Repeat(`{"a":`, maxDepth) + "1" + strings.Repeat("}", maxDepth),
	} {
		if !json.Valid([]byte(in)) {
			t.Fatalf("json.Valid(%.40q) = false", in)
		}
		if _, err := CanonicalJSON([]byte(in)); err != nil {
			t.Errorf("CanonicalJSON(%.40q): %v", in, err)
		}
		if !Valid([]byte(in)) {
			t.Errorf("Valid(%.40q) = false", in)
		}
	}
	deep := strings.Repeat(`{"b":2,"a":`, maxDepth) + "1" + strings.Repeat("}", maxDepth)
	want := strings.Repeat(`{"a":`, maxDepth) + `"1"` + strings.Repeat(`,"b":"2"}`, maxDepth)
	if got, err := CanonicalJSON([]byte(deep)); err != nil || string(got) != want {
		t.Errorf("deep object: %v", err)
	}
}

func TestIDFromDataPinned(t *testing.T) {
	// Pinned: changing the derivation would defeat dedupe across an
	// upgrade.
	id, err := IDFromData("aveonline", []byte(`{"shipment_id":"consecutivo123","status":{"code":"4","name":"EN ENTREGA","at":"2022-12-11T11:04:43-05:00"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if id != "evt_2h7at2q24kcnkjmtmxmgybt6sl" {
		t.Errorf("id = %s, changed", id)
	}
}

func TestCanonicalJSONErrors(t *testing.T) {
	for _, in := range []string{``, ` `, `{`, `{"a":1}}`, `{"a":1} {}`, `1 2`, `[1,]`, `{'a':1}`, `NaN`, `01`,
		`"\u12"`, `"\u12g4"`, `"\x"`, "\"a\x01\"", "\"a\tb\"", `"abc`, `"abc\"`, `-`, `-a`, `1.`, `1.e5`, `1e`, `1e+`, `+1`, `.5`,
		`tru`, `nul`, `nulll`, `True`, `{"a" 1}`, `{"a":}`, `{,}`, `{"a":1,}`, `[1 2]`, `[,1]`, `[`, `]`, `{"a":1`, `{1:2}`,
		`{"a":1 "b":2}`, `[1]]`, "\ufeff{}", "{}\x00", `[1,2`, `{"a"`, `{"a":`,
		strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
		strings.Repeat(`{"a":`, maxDepth+1) + "1" + strings.Repeat("}", maxDepth+1),
		strings.Repeat("[", 20000) + strings.Repeat("]", 20000)} {
		if json.Valid([]byte(in)) {
			t.Fatalf("json.Valid(%.40q) = true; not an error case", in)
		}
		if got, err := CanonicalJSON([]byte(in)); err == nil {
			t.Errorf("CanonicalJSON(%.40s) = %s, accepted", in, got)
		}
		if got, err := IDFromData("s", []byte(in)); err == nil {
			t.Errorf("IDFromData(%.40s) = %s, accepted", in, got)
		}
		if Valid([]byte(in)) {
			t.Errorf("Valid(%.40s) = true", in)
		}
	}
}

// canonicalSeeds are the fuzz seeds of the canonical form.
var canonicalSeeds = []string{
	`{"b":1,"a":{"d":[1,2],"c":null}}`, `{"cod_estado":4.0}`, `{"x":"direcci\u00f3n \ud83d\ude9a"}`,
	`["\"\\\/\b\f\n\r\t\u0000\u001f"]`, "[\"a\xffb\"]", `["a\ud800b"]`, `{"a":1,"a":2}`, `[true,false,null]`,
	`-0.0e-0`, `1e22`, `1e-23`, `12.5e99999999999999999999`, `""`, `{}`, `[]`, ``, `{`, `1 2`,
	`{"shipment_id":"consecutivo123","status":{"code":"4","name":"EN ENTREGA","at":"2022-12-11T11:04:43-05:00"},"proof_of_delivery":{"mime_type":"image/png","base64":"iVBORw0KGgo=","bytes":8}}`,
}

// numbersAsText replaces the json.Numbers of a decoded value by their
// canonical strings.
func numbersAsText(t *testing.T, v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = numbersAsText(t, e)
		}
	case []any:
		for i, e := range v {
			v[i] = numbersAsText(t, e)
		}
	case json.Number:
		n, ok := CanonicalNumber(string(v))
		if !ok {
			t.Fatalf("encoding/json read the number %q, CanonicalNumber refuses it", v)
		}
		return n
	}
	return v
}

func decodeNumbers(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range canonicalSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		c, err := CanonicalJSON(data)
		if !bytes.Equal(in, data) {
			t.Fatal("CanonicalJSON modified its input")
		}
		id, idErr := IDFromData("src", data)
		if (err == nil) != (idErr == nil) {
			t.Fatalf("CanonicalJSON error %v, IDFromData error %v", err, idErr)
		}
		if (err == nil) != json.Valid(data) {
			t.Fatalf("CanonicalJSON error %v, json.Valid %v", err, json.Valid(data))
		}
		if Valid(data) != json.Valid(data) {
			t.Fatalf("Valid %v, json.Valid %v", Valid(data), json.Valid(data))
		}
		if err != nil {
			return
		}
		if !json.Valid(c) {
			t.Fatalf("canonical form %q is not JSON", c)
		}
		// Idempotent.
		c2, err := CanonicalJSON(c)
		if err != nil || !bytes.Equal(c, c2) {
			t.Fatalf("canonical form not canonical:\n%q\n%q (%v)", c, c2, err)
		}
		if id != NewID("src", string(c)) || !ValidID(id) {
			t.Fatalf("IDFromData = %s, NewID of the canonical form %s", id, NewID("src", string(c)))
		}
		if id2, _ := IDFromData("src", c); id2 != id {
			t.Fatal("the canonical form has another id")
		}
		// parse(canonical) equals parse(input), numbers read as their
		// canonical strings.
		want, err := decodeNumbers(data)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeNumbers(c)
		if err != nil {
			t.Fatal(err)
		}
		if w := numbersAsText(t, want); !reflect.DeepEqual(got, w) {
			t.Fatalf("canonical form reads as %#v, input as %#v", got, w)
		}
	})
}

func FuzzCanonicalNumber(f *testing.F) {
	for _, s := range []string{"0", "-0", "4", "4.0", "4.50", "1e3", "1e22", "1e-23", "12345678901234567890",
		"0.0010", "12.5e99999999999999999999", "-1.5E-7", "01", "1.", ".1", "1e", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := CanonicalNumber(s)
		isNumber := s != "" && (s[0] == '-' || isDigit(s[0])) &&
			strings.TrimRight(s, " \t\r\n") == s && json.Valid([]byte(s))
		if ok != isNumber {
			t.Fatalf("CanonicalNumber(%q) ok=%v, JSON number %v", s, ok, isNumber)
		}
		if !ok {
			return
		}
		if again, ok := CanonicalNumber(got); !ok || again != got {
			t.Fatalf("CanonicalNumber(%q) = %q, then %q", s, got, again)
		}
		// The same value, exactly, when the exponents are small enough
		// for big.Rat.
		if smallExp(s) && smallExp(got) {
			a, okA := new(big.Rat).SetString(s)
			b, okB := new(big.Rat).SetString(got)
			if !okA || !okB || a.Cmp(b) != 0 {
				t.Fatalf("CanonicalNumber(%q) = %q, another value (%v %v)", s, got, a, b)
			}
		}
	})
}

// smallExp reports whether the number s has no exponent or one of at most
// 1000 in magnitude.
func smallExp(s string) bool {
	i := strings.IndexAny(s, "eE")
	if i < 0 {
		return true
	}
	e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
	return err == nil && e >= -1000 && e <= 1000
}

// BenchmarkIDFromData derives the id of a normalized event with an 8 KiB
// proof of delivery.
func BenchmarkIDFromData(b *testing.B) {
	data := []byte(`{"shipment_id":"900100200300","status":{"code":"4","name":"EN ENTREGA","at":"2022-12-11T11:04:43-05:00"},` +
		`"proof_of_delivery":{"mime_type":"image/jpeg","base64":"` + strings.Repeat("/9j/4AAQSkZJRgABAQ+", 8<<10/20) + `","bytes":8192},` +
		`"notes":"Entregar en portería, no se encuentra la dirección"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := IDFromData("aveonline", data); err != nil {
			b.Fatal(err)
		}
	}
}
