package transform_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/relay/transform"
)

// fuzzTemplate is a realistic template that uses every function, tolerant
// conditions and required fields.
const fuzzTemplate = `{
  "id": {{ json (index . "id") }},
  "topic": {{ json (default "none" .topic) }},
  "guide": {{ json (upper (default "" (index . "data.shipment_id"))) }},
  "status": {{ with index . "data.status" }}{{ json (dict "code" (index . "code") "name" (lower (default "" .name))) }}{{ else }}null{{ end }},
  "at": {{ with index . "data.status.at" }}"{{ date "2006-01-02 15:04:05" "America/Bogota" . }}"{{ else }}null{{ end }},
  "first": {{ json (index . "data.items.0") }},
  {{- if .data.incident }}
  "incident": "{{ .data.incident.code }}",
  {{- end }}
  "tags": {{ json (list (default "?" .source) (index . "data.incident.code")) }}
}`

func FuzzRender(f *testing.F) {
	for _, seed := range []string{
		fullEvent, minimalEvent, `{}`, `[]`, `null`, `"x"`, `{"data":null}`, `{"data":{"status":"x"}}`,
		`{"data":{"status":{"at":"2022-12-11T11:04:43.5+01:00","name":5}},"source":{"a":1}}`,
		`{"data":{"items":[{"sku":"\"\n"}],"incident":{"code":"a\"b"}}}`,
		`{"id":1e999,"data":{"incident":{"code":null}}}`,
	} {
		f.Add([]byte(seed))
	}
	tm, err := transform.Parse("fuzz.tmpl", fuzzTemplate)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		data, err := transform.DecodeJSON(b)
		if err != nil {
			t.Skip()
		}
		out, err := tm.Render(data)
		if err != nil {
			var re *transform.RenderError
			if !errors.As(err, &re) || out != nil {
				t.Fatalf("Render = %q, %v (%T); want nil and a *RenderError", out, err, err)
			}
			if !strings.HasPrefix(err.Error(), `template "fuzz.tmpl"`) {
				t.Fatalf("error %q does not name the template", err)
			}
			return
		}
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("Render output is not valid JSON: %q", out)
		}
	})
}

func FuzzSelect(f *testing.F) {
	f.Add([]byte(order), "order.items.1.sku,order.custom_fields")
	f.Add([]byte(`[{"a":[1,{"b":2}]}]`), "0.a.1.b,0.a.0")
	f.Add([]byte(`{"a":{"b":null}}`), "a.b,a.b.c,a")
	f.Fuzz(func(t *testing.T, body []byte, list string) {
		paths := strings.Split(list, ",")
		for _, p := range paths {
			if p == "" {
				return
			}
		}
		if _, err := transform.DecodeJSON(body); err != nil {
			return
		}
		got, err := transform.Select(body, paths)
		if err != nil {
			return // a scalar body
		}
		checkSelected(t, body, paths, got)
	})
}

// arithOps are the templates FuzzArithmetic renders; round takes b as its
// places.
var arithOps = []string{
	`{{ add .a .b }}`, `{{ sub .a .b }}`, `{{ mul .a .b }}`, `{{ div .a .b }}`,
	`{{ round .a .b }}`, `{{ cmp .a .b }}`, `{{ min .a .b }}`, `{{ max .a .b }}`,
}

// FuzzArithmetic renders each function over two operands (strings, or
// json.Number when op says so) and checks the result against math/big:
// exact for add, sub, mul, cmp, min and max, within the rounding for div and
// round; results print without an exponent, re-parse to the same value and
// text, and keep the scale the functions document.
func FuzzArithmetic(f *testing.F) {
	for _, s := range [][2]string{
		{"10.10", "1.20"}, {"0.1", "0.2"}, {"1", "3"}, {"-2.345", "2"}, {"1e3", "1E-2"}, {"0", "0"},
		{"-0.00", "5"}, {"1e999999999", "1"}, {"1e256", "1e-256"}, {"98765432109876543210", "-0.000001"},
		{"abc", "1"}, {"+1", "1"}, {"1.", "1"}, {"01", "2"}, {"1e-256", "3"}, {"2.5", "0"}, {"-2.5", "-1"},
	} {
		for op := range len(arithOps) {
			f.Add(s[0], s[1], uint8(op))
		}
	}
	f.Add("1"+strings.Repeat("0", 255), "1e256", uint8(2))
	f.Add("123.456", "-32", uint8(4))
	tms := make([]*transform.Template, len(arithOps))
	for i, src := range arithOps {
		tms[i] = mustParse(f, "arith.tmpl", `"`+src+`"`)
	}
	again := mustParse(f, "again.tmpl", `"{{ add .a 0 }}"`)
	f.Fuzz(func(t *testing.T, a, b string, op uint8) {
		i := int(op) % len(arithOps)
		data := map[string]any{"a": a, "b": b}
		if op&0x80 != 0 {
			data = map[string]any{"a": json.Number(a), "b": json.Number(b)}
		}
		start := time.Now()
		out, err := tms[i].Render(data)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("%s over %q, %q took %v", arithOps[i], a, b, d)
		}
		ra, aok := operand(a)
		rb, bok := operand(b)
		if err != nil {
			var re *transform.RenderError
			if !errors.As(err, &re) || strings.Contains(re.Reason, "panic") {
				t.Fatalf("%s over %q, %q: %v", arithOps[i], a, b, err)
			}
			if aok && bok && !expectedFailure(re.Reason) {
				t.Fatalf("%s over %q, %q: unexpected %v", arithOps[i], a, b, err)
			}
			return
		}
		if !aok || !bok {
			t.Fatalf("%s over %q, %q = %s; want an error", arithOps[i], a, b, out)
		}
		var text string
		if err := json.Unmarshal(out, &text); err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(text, "eE+") || !validPlain(text) {
			t.Fatalf("%s over %q, %q printed %q", arithOps[i], a, b, text)
		}
		got, ok := new(big.Rat).SetString(text)
		if !ok {
			t.Fatalf("%q does not parse", text)
		}
		scale := func(s string) int { // decimals of an operand's value
			n, _ := new(big.Rat).SetString(s)
			d := 0
			if _, frac, ok := strings.Cut(strings.ToLower(s), "."); ok {
				frac, _, _ = strings.Cut(frac, "e")
				d = len(frac)
			}
			if _, exp, ok := strings.Cut(strings.ToLower(s), "e"); ok {
				e, _ := strconv.Atoi(exp)
				d -= e
			}
			_ = n
			return max(d, 0)
		}
		decimals := 0
		if _, frac, ok := strings.Cut(text, "."); ok {
			decimals = len(frac)
		}
		want := new(big.Rat)
		switch arithOps[i] {
		case `{{ add .a .b }}`:
			want.Add(ra, rb)
		case `{{ sub .a .b }}`:
			want.Sub(ra, rb)
		case `{{ mul .a .b }}`:
			want.Mul(ra, rb)
		case `{{ cmp .a .b }}`:
			want.SetInt64(int64(ra.Cmp(rb)))
		case `{{ min .a .b }}`:
			want.Set(ra)
			if rb.Cmp(ra) < 0 {
				want.Set(rb)
			}
		case `{{ max .a .b }}`:
			want.Set(ra)
			if rb.Cmp(ra) > 0 {
				want.Set(rb)
			}
		case `{{ div .a .b }}`:
			want.Quo(ra, rb)
			// Exact, or within half a unit of the 34th decimal.
			diff := new(big.Rat).Sub(got, want)
			if diff.Abs(diff).Cmp(big.NewRat(1, 2)) > 0 && diff.Mul(diff, pow10(34)).Cmp(big.NewRat(1, 2)) > 0 {
				t.Fatalf("div %q %q = %s, want %s", a, b, text, want.FloatString(40))
			}
			if ideal := max(0, scale(a)-scale(b)); decimals < ideal {
				t.Fatalf("div %q %q = %s has fewer than %d decimals", a, b, text, ideal)
			}
			want.Set(got)
		case `{{ round .a .b }}`:
			places := int(new(big.Int).Quo(rb.Num(), rb.Denom()).Int64()) // round refuses a fraction
			want = roundHalfAway(ra, places)
			if places >= 0 && decimals != places {
				t.Fatalf("round %q %q = %s", a, b, text)
			}
		}
		if got.Cmp(want) != 0 {
			t.Fatalf("%s over %q, %q = %s, want %s", arithOps[i], a, b, text, want.RatString())
		}
		switch arithOps[i] {
		case `{{ add .a .b }}`, `{{ sub .a .b }}`:
			if decimals != max(scale(a), scale(b)) {
				t.Fatalf("%s over %q, %q = %s: %d decimals", arithOps[i], a, b, text, decimals)
			}
		case `{{ mul .a .b }}`:
			if decimals != scale(a)+scale(b) {
				t.Fatalf("mul %q %q = %s: %d decimals", a, b, text, decimals)
			}
		}
		// The text reads back as the same Number, when it is short enough
		// to be an operand.
		if len(text) > 256 {
			return
		}
		if out2, err := again.Render(map[string]any{"a": text}); err != nil || string(out2) != string(out) {
			t.Fatalf("%s read back as %s, %v", out, out2, err)
		}
	})
}

// operand parses s as the arithmetic does: JSON number grammar, at most 256
// bytes, exponent within ±256.
func operand(s string) (*big.Rat, bool) {
	if len(s) > 256 || !json.Valid([]byte(s)) || s == "" || !(s[0] == '-' || s[0] >= '0' && s[0] <= '9') {
		return nil, false
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return nil, false
	}
	mant, exp := strings.ToLower(s), 0
	if m, e, ok := strings.Cut(mant, "e"); ok {
		n, err := strconv.Atoi(e)
		if err != nil || n > 1000 || n < -1000 {
			return nil, false
		}
		mant, exp = m, n
	}
	if _, frac, ok := strings.Cut(mant, "."); ok {
		exp -= len(frac)
	}
	if exp < -256 || exp > 256 {
		return nil, false
	}
	r, ok := new(big.Rat).SetString(s)
	return r, ok
}

func expectedFailure(reason string) bool {
	for _, s := range []string{"result is too large", "division by zero", "places is"} {
		if strings.Contains(reason, s) {
			return true
		}
	}
	return false
}

func validPlain(s string) bool {
	return json.Valid([]byte(s)) && (s == "0" || !strings.HasPrefix(s, "-0") || strings.Trim(s, "-0.") != "")
}

func pow10(n int) *big.Rat {
	return new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil))
}

// roundHalfAway rounds r to places decimals, half away from zero.
func roundHalfAway(r *big.Rat, places int) *big.Rat {
	scale := pow10(max(places, -places))
	x := new(big.Rat).Set(r)
	if places >= 0 {
		x.Mul(x, scale)
	} else {
		x.Quo(x, scale)
	}
	neg := x.Sign() < 0
	x.Abs(x)
	x.Add(x, big.NewRat(1, 2))
	n := new(big.Int).Quo(x.Num(), x.Denom())
	if neg {
		n.Neg(n)
	}
	out := new(big.Rat).SetInt(n)
	if places >= 0 {
		return out.Quo(out, scale)
	}
	return out.Mul(out, scale)
}

// fuzzOrder is the data of FuzzUntrustedTemplate: a response_template's.
const fuzzOrder = `{"result":{"uuid":"u-1","tip":"1.20","points_available":"1500","point_value":"0.01","list":[1,"a",null,{"k":"v"}]},
  "request":{"order":{"order_id":"A1","total":"10.10","payment_method":"CASH","custom_fields":{},
  "items":[{"sku":"A1","qty":1,"price":"4.05"},{"sku":"B2","qty":2,"price":"3.025"}]}}}`

// FuzzUntrustedTemplate parses arbitrary text as a tenant's template and
// renders it within tight limits: it must never panic nor run long, and
// must give valid JSON or a *ParseError / *RenderError.
func FuzzUntrustedTemplate(f *testing.F) {
	for _, name := range []string{"kfc-web-tip.tmpl", "kfc-venezuela-tax.tmpl", "wow-points.tmpl"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	for _, seed := range []string{
		deunaTip, erpTemplate, fuzzTemplate, `{}`, `[{{ range .request.order.items }}{{ json .sku }},{{ end }}0]`,
		`{{ range 100000000000 }}{{ end }}`, `{{ range $i := 100000000000 }}{{ $i }}{{ end }}`,
		`{{ $s := "x" }}{{ range 60 }}{{ $s = print $s $s }}{{ end }}{{ json (len $s) }}`,
		`{{ $s := "x" }}{{ range 60 }}{{ $s = printf "%s%s%[1]s" $s $s }}{{ end }}{{ json $s }}`,
		`{{ $l := list 1 }}{{ range 60 }}{{ $l = list $l $l }}{{ end }}{{ json $l }}`,
		`{{ $l := list 1 }}{{ range 60 }}{{ $l = list $l $l }}{{ end }}{{ json (print $l) }}`,
		`{{ $l := list 1 }}{{ range 30 }}{{ $l = list $l $l }}{{ end }}{{ json (printf "%5v|%x|%#v" $l $l $l) }}`,
		`{{ $d := dict }}{{ range 60 }}{{ $d = dict "a" $d "b" $d }}{{ end }}{{ if eq $d $d }}{{ end }}`,
		`{{ $l := list }}{{ range 1000000 }}{{ $l = list $l (print $.request) }}{{ end }}`,
		`{{ json (html (list .result .request) (js .result) (urlquery .request)) }}`,
		`{{ json (printf "%*d|%.*f|%[1]*[2]d" 5 3 2 1.5) }}`, `{{ json (println .result.list 1 2.5 nil) }}`,
		chain(30) + `{{ template "t1" . }}`,
		`{"t":"{{ add .request.order.total .result.tip }}","d":{{ json (div .request.order.total 3) }},"r":"{{ round (mul .request.order.total 0.03) 2 }}"}`,
		`{{ $t := 0 }}{{ range .request.order.items }}{{ $t = add $t (mul .price .qty) }}{{ end }}{{ json $t }}`,
		`{{ if gt (cmp .request.order.total "10") 0 }}{{ json (max .result.tip (min 1 2 3)) }}{{ else }}null{{ end }}`,
		`{{ with index . "request.order.items.1" }}{{ json (dict "sku" .sku "n" (sub .qty "0.5")) }}{{ end }}`,
		`{{ define "a" }}{{ range . }}{{ json . }},{{ end }}{{ end }}[{{ template "a" .result.list }}0]`,
		`{{ block "b" . }}{{ json (len .result.list) }}{{ end }}`,
	} {
		f.Add(seed)
	}
	data, err := transform.DecodeJSON([]byte(fuzzOrder))
	if err != nil {
		f.Fatal(err)
	}
	limits := transform.Limits{Time: 50 * time.Millisecond, Output: 64 << 10}
	f.Fuzz(func(t *testing.T, text string) {
		start := time.Now()
		// A render that never returns would only stall the fuzzer: crash
		// instead, so that it keeps the input.
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("render of %q hangs", text)) })
		defer watchdog.Stop()
		tm, err := transform.ParseLimited("tenant.tmpl", text, limits)
		if err != nil {
			var pe *transform.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseLimited: %v (%T)", err, err)
			}
			return
		}
		out, err := tm.Render(data)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("took %v", d)
		}
		if err != nil {
			var re *transform.RenderError
			if !errors.As(err, &re) || out != nil {
				t.Fatalf("Render = %q, %v (%T)", out, err, err)
			}
			if strings.Contains(re.Reason, "render panicked") {
				t.Fatalf("panic: %v", err)
			}
			return
		}
		if !json.Valid(out) || len(out) > limits.Output {
			t.Fatalf("output %.100q", out)
		}
	})
}
