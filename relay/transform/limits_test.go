package transform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/hookrelay/hookrelay/relay/transform"
)

// untrusted are the limits of a tenant's template in these tests.
var untrusted = transform.Limits{Time: 100 * time.Millisecond, Output: 64 << 10}

// chain returns n templates t1..tn where each calls the next twice: 2^n
// calls, without recursion.
func chain(n int) string {
	var b strings.Builder
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, `{{ define "t%d" }}{{ template "t%d" . }}{{ template "t%d" . }}{{ end }}`, i, i+1, i+1)
	}
	fmt.Fprintf(&b, `{{ define "t%d" }}{{ end }}`, n)
	return b.String()
}

const doubleList = `{{ $l := list 1 }}{{ range 60 }}{{ $l = list $l $l }}{{ end }}`

// TestRenderBounds runs templates that would loop or grow for ever: each
// stops fast with a *RenderError that says why.
func TestRenderBounds(t *testing.T) {
	big := make([]any, 100000)
	for i := range big {
		big[i] = json.Number("1")
	}
	var deep any = []any{}
	for range 25000 {
		deep = []any{deep}
	}
	data := map[string]any{"l": big, "s": strings.Repeat("x", 40<<10), "n": json.Number("3"), "deep": deep}
	const timeUp = "rendering took longer than 100ms; stopped (a range that loops too long"
	tests := []struct {
		name, tmpl string
		line       int
		want       string
	}{
		{"range without output", "{\n{{ range 100000000000 }}{{ end }}}", 2, timeUp},
		{"range with a variable", `{{ $n := 0 }}{{ range $i := 100000000000 }}{{ $n = $i }}{{ end }}{{ $n }}`, 1, timeUp},
		{"nested ranges over a big list", "[{{ range .l }}\n{{ range $.l }}{{ end }}{{ end }}0]", 2, timeUp},
		{"range in a range in a define", `{{ define "x" }}{{ range $.l }}{{ range $.l }}{{ end }}{{ end }}{{ end }}{{ template "x" . }}`, 1, timeUp},
		{"exponential template calls", chain(40) + `{{ template "t1" . }}`, 1, timeUp},
		{"string doubling with print", `{{ $s := "x" }}{{ range 60 }}{{ $s = print $s $s }}{{ end }}{{ json (len $s) }}`, 1,
			"at <print $s $s>: error calling print: the result would be larger than 65536 bytes, the output limit"},
		{"string doubling with printf", `{{ $s := "x" }}{{ range 60 }}{{ $s = printf "%s%s" $s $s }}{{ end }}{{ json (len $s) }}`, 1,
			"error calling printf: the result would be larger than 65536 bytes"},
		{"string doubling with println", `{{ $s := "x" }}{{ range 60 }}{{ $s = println $s $s }}{{ end }}{{ json (len $s) }}`, 1,
			"error calling println: the result would be larger than 65536 bytes"},
		{"escaping with html", `{{ $s := "<&>" }}{{ range 60 }}{{ $s = html $s $s }}{{ end }}{{ json (len $s) }}`, 1,
			"error calling html: the result would be larger than 65536 bytes"},
		{"escaping with js", `{{ $s := "<" }}{{ range 60 }}{{ $s = js $s $s }}{{ end }}{{ json (len $s) }}`, 1,
			"error calling js: the result would be larger than 65536 bytes"},
		{"escaping with urlquery", `{{ $s := "%" }}{{ range 60 }}{{ $s = urlquery $s $s }}{{ end }}{{ json (len $s) }}`, 1,
			"error calling urlquery: the result would be larger than 65536 bytes"},
		{"html of a big list", doubleList + `{{ json (html $l) }}`, 1, "error calling html: the result would be larger"},
		{"structure doubling with json", doubleList + `{{ json $l }}`, 1,
			"at <json $l>: error calling json: the value's JSON is larger than 65536 bytes, the output limit"},
		{"structure doubling with dict", `{{ $d := dict }}{{ range 60 }}{{ $d = dict "a" $d "b" $d }}{{ end }}{{ json $d }}`, 1,
			"error calling json: the value's JSON is larger than 65536 bytes"},
		{"structure doubling with print", doubleList + `{{ json (print $l) }}`, 1,
			"error calling print: the result would be larger than 65536 bytes"},
		{"structure doubling with printf", doubleList + `{{ json (printf "%v" $l) }}`, 1,
			"error calling printf: the result would be larger than 65536 bytes"},
		{"structure doubling as an extra printf argument", doubleList + `{{ json (printf "x" $l) }}`, 1,
			"error calling printf: the result would be larger than 65536 bytes"},
		{"structure doubling compared", doubleList + `{{ if eq $l $l }}{{ end }}`, 1,
			"error calling eq: non-comparable type []interface {}"},
		{"structure doubling compared with an object", doubleList + `{{ if eq $l (dict) }}{{ end }}`, 1,
			"error calling eq: non-comparable types []interface {} and map[string]interface {}"},
		{"printf width", `{{ json (printf "%9999999d" 1) }}`, 1, "error calling printf: the result would be larger"},
		{"printf star width", `{{ json (printf "%*d" 1000000 1) }}`, 1, "error calling printf: the result would be larger"},
		{"printf width repeated", `{{ json (printf "%[1]*[2]d%[1]*[2]d%[1]*[2]d" 30000 1) }}`, 1, "error calling printf: the result would be larger"},
		{"printf precision", `{{ json (printf "%.999999f" 1.5) }}`, 1, "error calling printf: the result would be larger"},
		{"printf width on each element", `{{ $l := list 1 }}{{ range 10 }}{{ $l = list $l $l }}{{ end }}{{ json (printf "%100d" $l) }}`, 1,
			"error calling printf: the result would be larger"},
		{"printf quoting", `{{ json (printf "%q" .s) }}`, 1, "error calling printf: the result would be larger"},
		{"values piling up in a list", `{{ $l := list }}{{ range 100000000 }}{{ $l = list $l (print $.s) }}{{ end }}`, 1,
			"the values built while rendering passed 262144 bytes (4 times the output limit); stopped (a range that accumulates values?)"},
		{"objects piling up in a list", `{{ $l := list }}{{ range 100000000 }}{{ $l = list $l (dict "a" 1) }}{{ end }}`, 1,
			"the values built while rendering passed 262144 bytes"},
		{"numbers piling up in a list", `{{ $l := list }}{{ range 100000000 }}{{ $l = list $l (add 1 1) }}{{ end }}`, 1,
			"the values built while rendering passed 262144 bytes"},
		{"output", `[{{ range 100000000000 }}"x",{{ end }}0]`, 0, "output is larger than 65536 bytes"},
		{"deep list to json", `{{ json (list .deep) }}`, 1,
			"error calling json: the value is nested more than 20000 levels deep"},
		{"deep list to print", `{{ json (print .deep) }}`, 1,
			"error calling print: the value is nested more than 20000 levels deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Only the time limit may stop the loops, and only the size
			// limits the others, even on a busy machine under -race.
			l := untrusted
			if tt.want != timeUp {
				l.Time = time.Minute
			}
			tm, err := transform.ParseLimited("t.tmpl", tt.tmpl, l)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			out, err := tm.Render(data)
			elapsed := time.Since(start)
			var re *transform.RenderError
			if !errors.As(err, &re) {
				t.Fatalf("Render = %.80q, %v; want a *RenderError", out, err)
			}
			if !strings.Contains(re.Reason, tt.want) || re.Line != tt.line {
				t.Errorf("Line, Reason = %d, %q\nwant %d and a reason containing %q", re.Line, re.Reason, tt.line, tt.want)
			}
			if errors.Unwrap(err) != nil {
				t.Errorf("Unwrap = %v, want nil: the template's fault", errors.Unwrap(err))
			}
			if elapsed > time.Second {
				t.Errorf("took %v", elapsed)
			}
		})
	}
}

// TestRenderBoundsMemory measures what the growing templates allocate in
// all: a few times the output limit, not the exponential.
func TestRenderBoundsMemory(t *testing.T) {
	data := map[string]any{"s": strings.Repeat("x", 40<<10)}
	for _, tmpl := range []string{
		`{{ $s := "x" }}{{ range 60 }}{{ $s = print $s $s }}{{ end }}`,
		`{{ $s := "x" }}{{ range 60 }}{{ $s = printf "%s%s" $s $s }}{{ end }}`,
		doubleList + `{{ json $l }}`,
		doubleList + `{{ print $l }}`,
		doubleList + `{{ printf "%#v" $l }}`,
		`{{ $l := list }}{{ range 100000000 }}{{ $l = list $l (print $.s) }}{{ end }}`,
	} {
		tm, err := transform.ParseLimited("t.tmpl", tmpl, untrusted)
		if err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := tm.Render(data); err == nil {
			t.Fatalf("%s rendered", tmpl)
		}
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
			t.Errorf("%s allocated %d bytes", tmpl, alloc)
		}
	}
}

func TestRenderContext(t *testing.T) {
	tm, err := transform.ParseLimited("t.tmpl", "{\n{{ range 100000000000 }}{{ end }}}", transform.Limits{Time: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// A context that is already done stops the render before it starts.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = tm.RenderContext(ctx, nil)
	var re *transform.RenderError
	if !errors.As(err, &re) || !errors.Is(err, context.Canceled) || re.Line != 0 ||
		re.Reason != "rendering stopped: context canceled" {
		t.Errorf("err = %#v", err)
	}
	// A context that ends during the render stops it.
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = tm.RenderContext(ctx, nil)
	if !errors.As(err, &re) || !errors.Is(err, context.DeadlineExceeded) || re.Line != 2 ||
		re.Reason != "rendering stopped: context deadline exceeded" {
		t.Errorf("err = %#v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
	// The template still renders afterwards.
	ok := mustParse(t, "ok", `[{{ range 3 }}1,{{ end }}0]`)
	if out, err := ok.RenderContext(context.Background(), nil); err != nil || string(out) != `[1,1,1,0]` {
		t.Errorf("RenderContext = %s, %v", out, err)
	}
}

// TestRenderBoundsConcurrent renders one template from several goroutines,
// some over data that makes it loop past its limit: the pooled state of one
// render must not leak into another.
func TestRenderBoundsConcurrent(t *testing.T) {
	tm, err := transform.ParseLimited("t.tmpl", `[{{ range .n }}{{ end }}{{ json (add .n 1) }}]`, transform.Limits{Time: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 20 {
				n := 10 + i
				if g%3 == 0 && i%5 == 0 {
					n = math.MaxInt32
				}
				out, err := tm.Render(map[string]any{"n": n})
				if n == math.MaxInt32 {
					if err == nil || !strings.Contains(err.Error(), "took longer than 50ms") {
						t.Errorf("long render: %s, %v", out, err)
					}
					continue
				}
				if want := fmt.Sprintf("[%d]", n+1); err != nil || string(out) != want {
					t.Errorf("Render = %s, %v; want %s", out, err, want)
				}
			}
		})
	}
	wg.Wait()
}

func TestParseLimited(t *testing.T) {
	// Zero fields take the defaults.
	tm, err := transform.ParseLimited("t.tmpl", `{{ json .s }}`, transform.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tm.Render(map[string]any{"s": strings.Repeat("x", 1<<20)}); err != nil {
		t.Errorf("1 MB under the default limits: %v", err)
	}
	small, err := transform.ParseLimited("t.tmpl", `"{{ .s }}"`, transform.Limits{Output: 10})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := small.Render(map[string]any{"s": "12345678"}); err != nil || string(out) != `"12345678"` {
		t.Errorf("10 bytes: %s, %v", out, err)
	}
	if _, err := small.Render(map[string]any{"s": "123456789"}); err == nil || err.Error() != `template "t.tmpl": output is larger than 10 bytes` {
		t.Errorf("11 bytes: %v", err)
	}
	if _, err := transform.ParseLimited("t.tmpl", `{{ uper 1 }}`, untrusted); err == nil {
		t.Error("ParseLimited accepted an unknown function")
	}
	if transform.DefaultLimits != (transform.Limits{Time: time.Second, Output: transform.MaxOutput}) {
		t.Errorf("DefaultLimits = %+v", transform.DefaultLimits)
	}
}

// TestBoundedBuiltins checks that the bounded print, printf, println, html,
// js, urlquery, eq and ne give what text/template's builtins give.
func TestBoundedBuiltins(t *testing.T) {
	data := decode(t, `{"s":"a<b>&'\"=c\u0000 d/é\u2028","n":12,"f":1.5,"l":[1,"x",null,{"k":"v"}],"o":{"b":[true],"a":null},"z":null}`)
	exprs := []string{
		`print .s .n .f "x" 1 2 .l .o .z nil`, `print`, `print 1 2`, `print "a" "b"`,
		`println .s .n .l`, `println`,
		`printf "%s|%v|%d|%5.1f|%-4d|%x|%X|%q|%#v|%+q|%T" .s .l .n 3.14159 7 .s .n .s .o .s .f`,
		`printf "%[2]s %[1]s %*d %.*f %[9]v" "a" "b" 5 42 2 3.14159`,
		`printf "%d %s"`, `printf "%d" 1 2 3`, `printf "%!" 1`, `printf "%" 1`, `printf "%[x]d" 1`, `printf "%z" .l`,
		`printf "%08.3f|% x|%#x|%U|%c" 3.5 .s .n 65 66`, `printf "%v %v" .z .o`,
		`html .s`, `html .s .n .l`, `html .z`, `html`, `js .s`, `js .s .n`, `js "\u0001\u007f\u00e9\u2028"`,
		`urlquery .s`, `urlquery .s .l`, `urlquery`,
		`eq .n 12`, `eq .s "x" "y" .s`, `eq .z nil`, `eq 1 .n`, `ne .s "a"`, `eq true true`, `eq .f 1.5`, `eq .o .z`,
	}
	for _, e := range exprs {
		t.Run(e, func(t *testing.T) {
			want, wantErr := builtin(e, data)
			tm, err := transform.Parse("t", `{{ json (`+e+`) }}`)
			if err != nil {
				t.Fatal(err)
			}
			out, err := tm.Render(data)
			if wantErr != nil {
				if err == nil {
					t.Fatalf("got %s, want an error like %v", out, wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Render: %v (builtin: %q)", err, want)
			}
			var got any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != want {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
	// The builtins' errors that would print a value do not.
	for _, e := range []string{`eq .l .l`, `eq .o .l`, `ne .o .o`} {
		_, err := mustParse(t, "t", `{{ json (`+e+`) }}`).Render(data)
		if err == nil || strings.Contains(err.Error(), "map[a:") || strings.Contains(err.Error(), "[1 x") {
			t.Errorf("%s: %v", e, err)
		}
	}
}

// builtin evaluates expr with text/template's own functions.
func builtin(expr string, data any) (string, error) {
	tm, err := template.New("b").Parse(`{{ ` + expr + ` }}`)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	err = tm.Execute(&b, data)
	return b.String(), err
}

// TestJSONMatchesEncodingJSON checks json's own encoder against
// encoding/json without HTML escaping.
func TestJSONMatchesEncodingJSON(t *testing.T) {
	var all strings.Builder
	for r := rune(0); r < 0x80; r++ {
		all.WriteRune(r)
	}
	type pair struct {
		A string `json:"a"`
		B int
	}
	values := []any{
		all.String(), "é\u2028\u2029\ufffd😀", "bad \xff\xfe utf-8", "<script>&amp;</script>", "",
		json.Number("12.50"), json.Number("-1e400"), json.Number(""), true, false, nil,
		map[string]any{"b": 1, "a": []any{"x", nil, map[string]any{}}, "é": json.Number("1"), "\n": "k"},
		[]any{}, map[string]any(nil), []any(nil), 42, int64(-7), 1.5, 1e21, 1e-7, float32(0.1), uint8(3),
		time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("x", -5*3600)),
		pair{"<&>", 1}, []string{"a", "b"}, map[string]int{"z": 1, "a": 2}, []byte("hi"),
		map[string]any{"deep": []any{[]any{[]any{map[string]any{"t": time.Unix(0, 0).UTC(), "p": pair{}}}}}},
	}
	for _, v := range values {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		out, err := mustParse(t, "j", `{{ json .v }}`).Render(map[string]any{"v": v})
		if err != nil {
			t.Errorf("json %#v: %v", v, err)
			continue
		}
		// Render compacts, which encoding/json's output already is.
		if w := strings.TrimSuffix(want.String(), "\n"); string(out) != w {
			t.Errorf("json %#v\ngot  %s\nwant %s", v, out, w)
		}
	}
	for _, v := range []any{json.Number("abc"), math.NaN(), func() {}, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		_, want := json.Marshal(v)
		_, err := mustParse(t, "j", `{{ json .v }}`).Render(map[string]any{"v": v})
		if err == nil || want == nil || !strings.HasSuffix(err.Error(), want.Error()) {
			t.Errorf("json %#v: %v, want the error %v", v, err, want)
		}
	}
}
