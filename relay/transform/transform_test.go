package transform_test

import (
	"encoding/json"
	"errors"
	"go/parser"
	"go/token"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // the tests must not depend on the host's zone database

	"github.com/hookrelay/hookrelay/relay/transform"
)

// fullEvent is a normalized Aveonline event (CONTRACT.md section 2) with
// every group present. received_at is 03:00 UTC, the previous day in Bogota.
const fullEvent = `{
  "id": "evt_abcdefghijklmnopqrstuvwxyz",
  "topic": "shipments/tracking",
  "source": "aveonline",
  "received_at": "2026-11-22T03:00:00Z",
  "data": {
    "shipment_id": "consecutivo123",
    "status": {"code": "4", "name": "EN ENTREGA", "at": "2022-12-11T11:04:43-05:00"},
    "incident": {"code": "NOVEDAD", "name": "DIRECCION ERRONEA", "at": "2022-12-11T11:31:00-05:00", "state": "EJECUTADA"},
    "replacement": {"tracking_number": "123-444-222", "kind": "return"},
    "document_url": "https://laruta.com/docs/guia.pdf?a=1&b=<2>",
    "proof_of_delivery": {"mime_type": "image/png", "base64": "iVBORw0KGgo=", "bytes": 8},
    "notes": "no se encuentra la dirección \"portería\"\nllamar antes \\ 10:00"
  }
}`

// minimalEvent has only the required fields: shipment_id and status.
const minimalEvent = `{
  "id": "evt_zyxwvutsrqponmlkjihgfedcba",
  "topic": "shipments/tracking",
  "source": "aveonline",
  "received_at": "2026-11-22T09:00:00Z",
  "data": {
    "shipment_id": "G-1",
    "status": {"code": "1", "name": "RECIBIDO", "at": "2022-12-10T08:00:00-05:00"}
  }
}`

// erpTemplate is a typical Ave->ERP reshaping.
const erpTemplate = `{
  "event_id": {{ json .id }},
  "guide": {{ json .data.shipment_id }},
  "state": {{ json .data.status.code }},
  "state_name": {{ json (lower .data.status.name) }},
  "state_at": "{{ date "2006-01-02 15:04:05" "America/Bogota" .data.status.at }}",
  "day": "{{ date "2006-01-02" "America/Bogota" .received_at }}",
  {{- with .data.incident }}
  "incident": {{ json (dict "code" (index . "code") "name" (default "" .name) "state" (index . "state")) }},
  {{- end }}
  "replaced_by": {{ json (index . "data.replacement.tracking_number") }},
  "pod": {{ json (default "none" .data.proof_of_delivery.mime_type) }},
  "notes": {{ json (default "" .data.notes) }},
  "tags": {{ json (list .source (upper .topic)) }}
}`

func decode(t testing.TB, s string) any {
	t.Helper()
	v, err := transform.DecodeJSON([]byte(s))
	if err != nil {
		t.Fatalf("DecodeJSON: %v", err)
	}
	return v
}

func mustParse(t testing.TB, name, text string) *transform.Template {
	t.Helper()
	tm, err := transform.Parse(name, text)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return tm
}

func TestFunctions(t *testing.T) {
	full, minimal := decode(t, fullEvent), decode(t, minimalEvent)
	tests := []struct {
		name string
		tmpl string
		data any
		want string
	}{
		// json
		{"json string with quotes and newline", `{"n":{{ json .data.notes }}}`, full,
			`{"n":"no se encuentra la dirección \"portería\"\nllamar antes \\ 10:00"}`},
		{"json keeps < > & as they are", `{{ json .data.document_url }}`, full,
			`"https://laruta.com/docs/guia.pdf?a=1&b=<2>"`},
		{"json object", `{{ json .data.status }}`, full,
			`{"at":"2022-12-11T11:04:43-05:00","code":"4","name":"EN ENTREGA"}`},
		{"json number", `{{ json .data.proof_of_delivery.bytes }}`, full, `8`},
		{"json of index on a missing path is null", `{{ json (index . "data.incident") }}`, minimal, `null`},
		// default
		{"default on a missing group", `{{ json (default "none" .data.incident.code) }}`, minimal, `"none"`},
		{"default on a present value", `{{ json (default "none" .data.incident.code) }}`, full, `"NOVEDAD"`},
		{"default piped", `"{{ .data.incident.name | default "sin novedad" }}"`, minimal, `"sin novedad"`},
		{"default on a whole missing group", `{{ json (default (dict) .data.replacement) }}`, minimal, `{}`},
		{"default on an empty string", `{{ json (default "x" .s) }}`, map[string]any{"s": ""}, `"x"`},
		{"default on null", `{{ json (default "x" .s) }}`, map[string]any{"s": nil}, `"x"`},
		{"default keeps false", `{{ json (default true .b) }}`, decode(t, `{"b":false}`), `false`},
		{"default keeps 0", `{{ json (default 7 .n) }}`, decode(t, `{"n":0}`), `0`},
		{"default on an empty array", `{{ json (default (list 1) .a) }}`, decode(t, `{"a":[]}`), `[1]`},
		{"default with a variable path", `{{ $d := .data }}{{ json (default "-" $d.incident.state) }}`, minimal, `"-"`},
		// upper, lower
		{"upper", `"{{ upper .data.status.name }}-{{ upper "dirección" }}"`, full, `"EN ENTREGA-DIRECCIÓN"`},
		{"lower", `"{{ lower .data.status.name }}"`, full, `"en entrega"`},
		{"upper of a number", `"{{ upper .data.proof_of_delivery.bytes }}"`, full, `"8"`},
		// date
		{"date in Bogota crosses the day", `"{{ date "2006-01-02" "America/Bogota" .received_at }}"`, full, `"2026-11-21"`},
		{"date UTC", `"{{ date "2006-01-02T15:04:05Z07:00" "UTC" .data.status.at }}"`, full, `"2022-12-11T16:04:43Z"`},
		{"date empty zone is UTC", `"{{ date "15:04" "" .data.status.at }}"`, full, `"16:04"`},
		{"date fractional seconds", `"{{ date "05.000" "UTC" .t }}"`, map[string]any{"t": "2026-01-02T03:04:05.123Z"}, `"05.123"`},
		{"date of a time.Time", `"{{ date "2006-01-02 15:04" "America/Bogota" .t }}"`,
			map[string]any{"t": time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)}, `"2026-01-01 22:04"`},
		// dict, list
		{"dict", `{{ json (dict "guia" .data.shipment_id "estado" .data.status.code "n" 1) }}`, minimal,
			`{"estado":"1","guia":"G-1","n":1}`},
		{"empty dict", `{{ json (dict) }}`, minimal, `{}`},
		{"list", `{{ json (list .data.status.code "x" 2 true) }}`, minimal, `["1","x",2,true]`},
		{"empty list", `{{ json (list) }}`, minimal, `[]`},
		// index
		{"index dotted", `{{ json (index . "data.status.code") }}`, full, `"4"`},
		{"index missing", `{{ json (index . "data.incident.code") }}`, minimal, `null`},
		{"index through a scalar", `{{ json (index . "data.shipment_id.x") }}`, minimal, `null`},
		{"index several keys", `{{ json (index . "data" "status" "name") }}`, minimal, `"RECIBIDO"`},
		{"index array by path", `{{ json (index . "items.0.sku") }}`, decode(t, `{"items":[{"sku":"A1"},{"sku":"B2"}]}`), `"A1"`},
		{"index array path has no leading zero", `{{ json (index . "items.01.sku") }}`, decode(t, `{"items":[{"sku":"A1"},{"sku":"B2"}]}`), `null`},
		{"index array by int", `{{ json (index .items 1 "sku") }}`, decode(t, `{"items":[{"sku":"A1"},{"sku":"B2"}]}`), `"B2"`},
		{"index out of range", `[{{ json (index . "items.2.sku") }},{{ json (index .items -1) }}]`, decode(t, `{"items":[{"sku":"A1"}]}`), `[null,null]`},
		{"index with is the way to read optional groups",
			`{{ with index . "data.incident" }}{{ json .code }}{{ else }}"none"{{ end }}`, minimal, `"none"`},
		// conditions tolerate missing paths
		{"with on a missing group", `{{ with .data.incident }}1{{ else }}0{{ end }}`, minimal, `0`},
		{"if on a missing group", `{{ if .data.replacement.kind }}1{{ else if .data.status }}2{{ end }}`, minimal, `2`},
		{"range on a missing array", `[{{ range .data.items }}1{{ end }}]`, minimal, `[]`},
		{"and/or/not on missing", `[{{ json (and .data.incident .data.replacement) }},{{ or .data.notes "x" | json }},{{ not .data.notes }}]`, minimal, `[null,"x",true]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mustParse(t, "t", tt.tmpl).Render(tt.data)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestFunctionErrors(t *testing.T) {
	data := decode(t, fullEvent)
	tests := []struct {
		name string
		tmpl string
		want string // in the error
	}{
		{"unknown zone", `"{{ date "2006" "Mars/Olympus" .received_at }}"`, `unknown time zone "Mars/Olympus"`},
		{"not a time", `"{{ date "2006" "UTC" .data.shipment_id }}"`, `"consecutivo123" is not an RFC 3339 time`},
		{"date of an object", `"{{ date "2006" "UTC" .data.status }}"`, `an object is not a time`},
		{"date of null", `"{{ date "2006" "UTC" (index . "nope") }}"`, `time is null`},
		{"dict odd", `{{ json (dict "a") }}`, `odd number of arguments`},
		{"dict key not a string", `{{ json (dict 1 2) }}`, `key 1 is a number, not a string`},
		{"upper of null", `"{{ upper (index . "nope") }}"`, `value is null`},
		{"lower of an object", `"{{ lower .data }}"`, `an object is not text`},
		{"index with a bool key", `{{ json (index . true) }}`, `key is a bool; want a dotted path or an integer index`},
		{"json of a func", `{{ json (index . "x") }}{{ json .f }}`, `unsupported type`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := data
			if tt.name == "json of a func" {
				d = map[string]any{"f": func() {}}
			}
			_, err := mustParse(t, "f.tmpl", tt.tmpl).Render(d)
			var re *transform.RenderError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v (%T), want *RenderError", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), `template "f.tmpl" line 1: `) {
				t.Errorf("err = %q, want it to start with the template and line and contain %q", err, tt.want)
			}
		})
	}
}

func TestAveToERP(t *testing.T) {
	tm := mustParse(t, "erp.tmpl", erpTemplate)
	tests := []struct {
		name, event, want string
	}{
		{"full", fullEvent, `{"event_id":"evt_abcdefghijklmnopqrstuvwxyz","guide":"consecutivo123","state":"4",` +
			`"state_name":"en entrega","state_at":"2022-12-11 11:04:43","day":"2026-11-21",` +
			`"incident":{"code":"NOVEDAD","name":"DIRECCION ERRONEA","state":"EJECUTADA"},` +
			`"replaced_by":"123-444-222","pod":"image/png",` +
			`"notes":"no se encuentra la dirección \"portería\"\nllamar antes \\ 10:00",` +
			`"tags":["aveonline","SHIPMENTS/TRACKING"]}`},
		{"minimal", minimalEvent, `{"event_id":"evt_zyxwvutsrqponmlkjihgfedcba","guide":"G-1","state":"1",` +
			`"state_name":"recibido","state_at":"2022-12-10 08:00:00","day":"2026-11-22",` +
			`"replaced_by":null,"pod":"none","notes":"","tags":["aveonline","SHIPMENTS/TRACKING"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tm.Render(decode(t, tt.event))
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// deunaTip is the response_template of DEUNA's tip example (seed 001).
const deunaTip = `{
  "order": {
    "order_id": "{{ .result.uuid }}",
    "custom_fields": { "business_id": "{{ .result.business_id }}" }
  }
}`

func TestDEUNATip(t *testing.T) {
	tm := mustParse(t, "tip", deunaTip)
	request := decode(t, `{"order_token":"tok_1","tip":{"amount":1500}}`)
	// response_data: the sample DEUNA checks the template with.
	sample := map[string]any{"result": decode(t, `{"uuid":"0b6d6c9e-4c8e-4b8e-9a47-1c2b3d4e5f60","business_id":"KFC-VE"}`), "request": request}
	if err := tm.Check(sample); err != nil {
		t.Fatalf("Check: %v", err)
	}
	tests := []struct {
		name, result, want, wantErr string
	}{
		{"strings", `{"uuid":"u-1","business_id":"b-9","extra":[1,2]}`,
			`{"order":{"order_id":"u-1","custom_fields":{"business_id":"b-9"}}}`, ""},
		{"number id keeps its digits", `{"uuid":"u-1","business_id":98765432109876543210}`,
			`{"order":{"order_id":"u-1","custom_fields":{"business_id":"98765432109876543210"}}}`, ""},
		{"missing key", `{"uuid":"u-1"}`, "", `line 4: at <.result.business_id>: map has no entry for key "business_id"`},
		{"null", `{"uuid":"u-1","business_id":null}`, "", `line 4: {{.result.business_id}} is null`},
		{"object", `{"uuid":{"v":1},"business_id":"b"}`, "", `line 3: {{.result.uuid}} is an object; print it with json`},
		{"quote breaks a bare string", `{"uuid":"u\"1","business_id":"b"}`, "", `output is not valid JSON`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tm.Render(map[string]any{"result": decode(t, tt.result), "request": request})
			if tt.wantErr != "" {
				var re *transform.RenderError
				if !errors.As(err, &re) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want a *RenderError containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			sel, err := transform.Select(got, []string{"order.custom_fields.business_id"})
			if err != nil {
				t.Fatal(err)
			}
			if want := `{"order":{"custom_fields":{"business_id":` + strings.SplitAfter(tt.want, `"business_id":`)[1]; string(sel) != want {
				t.Errorf("Select = %s, want %s", sel, want)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	minimal := decode(t, minimalEvent)
	big := map[string]any{"s": strings.Repeat("x", 1<<20)}
	tests := []struct {
		name     string
		tmpl     string
		data     any
		line     int
		contains []string
	}{
		{"missing required key names the key", "{\n  \"code\": {{ json .data.incident.code }}\n}", minimal, 2,
			[]string{`at <.data.incident.code>`, `map has no entry for key "incident"`}},
		{"missing top-level key", `{"x": {{ json .nope }}}`, minimal, 1, []string{`no entry for key "nope"`}},
		{"missing key in a defined template", "{{ define \"inc\" }}\n{{ json .code }}{{ end }}{\"i\": {{ template \"inc\" .data.status }}, \"j\": {{ template \"inc\" (dict) }}}",
			minimal, 2, []string{`no entry for key "code"`}},
		{"null printed", `{"n": "{{ .n }}"}`, map[string]any{"n": nil}, 1, []string{`{{.n}} is null`}},
		{"object printed", "{\n\"s\": \"{{ .data.status }}\"}", minimal, 2, []string{`{{.data.status}} is an object`}},
		{"array printed", `{"a": {{ .a }}}`, decode(t, `{"a":[1]}`), 1, []string{`{{.a}} is an array`}},
		{"invalid JSON output", `{"guide": {{ .data.shipment_id }}}`, minimal, 0,
			[]string{`output is not valid JSON: invalid character 'G'`, `offset 10`, `near "{\"guide\": G-1}"`}},
		{"trailing garbage", `{"a":1} {"b":2}`, minimal, 0, []string{`after top-level value`}},
		{"empty output", "  {{/* nothing */}}\n", minimal, 0, []string{`output is empty`}},
		{"unterminated", `{"a": "{{ .data.shipment_id }}`, minimal, 0, []string{`unexpected end of JSON input`, `offset 10`}},
		{"invalid UTF-8", "{\"a\": \"\xff\"}", minimal, 0, []string{`not valid UTF-8 (offset 7`}},
		{"output too large", `[{{ range 11 }}{{ json $.s }},{{ end }}0]`, big, 0, []string{`output is larger than 10485760 bytes`}},
		{"comparison of a missing key", `{{ if eq .data.incident.code "X" }}1{{ end }}`, minimal, 1, []string{`no entry for key "incident"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := mustParse(t, "erp.tmpl", tt.tmpl).Render(tt.data)
			var re *transform.RenderError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v (%T), output %q; want *RenderError", err, err, out)
			}
			if out != nil {
				t.Errorf("output %q with an error", out)
			}
			if re.Template != "erp.tmpl" || re.Line != tt.line {
				t.Errorf("Template, Line = %q, %d; want erp.tmpl, %d (%v)", re.Template, re.Line, tt.line, err)
			}
			for _, c := range tt.contains {
				if !strings.Contains(re.Reason, c) {
					t.Errorf("reason %q does not contain %q", re.Reason, c)
				}
			}
			prefix := `template "erp.tmpl": `
			if tt.line > 0 {
				prefix = `template "erp.tmpl" line ` + string(rune('0'+tt.line)) + `: `
			}
			if !strings.HasPrefix(err.Error(), prefix) || strings.Contains(err.Error(), "executing") {
				t.Errorf("Error() = %q, want prefix %q and no text/template noise", err, prefix)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, tmpl string
		line       int
		contains   string
	}{
		{"unknown function", "{\n\"a\": {{ uper .x }}}", 2, `function "uper" not defined`},
		{"unclosed action", "{\n\n\"a\": {{ .x }", 3, `unexpected "}" in operand`},
		{"unexpected EOF", "{\n{{ if .x }}", 2, `unexpected EOF`},
		{"direct recursion", "{{ define \"r\" }}\n{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}", 2,
			`template calls itself ("r" -> "r"); recursion is not allowed`},
		{"indirect recursion", "{{ define \"a\" }}{{ template \"b\" . }}{{ end }}\n{{ define \"b\" }}{{ if .x }}{{ template \"a\" . }}{{ end }}{{ end }}{{ template \"a\" . }}", 2,
			`("a" -> "b" -> "a")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm, err := transform.Parse("erp.tmpl", tt.tmpl)
			var pe *transform.ParseError
			if !errors.As(err, &pe) || tm != nil {
				t.Fatalf("Parse = %v, %v (%T); want a *ParseError", tm, err, err)
			}
			if pe.Template != "erp.tmpl" || pe.Line != tt.line || !strings.Contains(pe.Reason, tt.contains) {
				t.Errorf("got %+v, want line %d and a reason containing %q", pe, tt.line, tt.contains)
			}
			if !strings.HasPrefix(err.Error(), `template "erp.tmpl" line `) {
				t.Errorf("Error() = %q", err)
			}
		})
	}
	// Reused and nested templates that do not recurse are fine.
	mustParse(t, "ok", `{{ define "s" }}{{ json . }}{{ end }}{{ define "p" }}[{{ template "s" .a }},{{ template "s" .b }}]{{ end }}{{ template "p" . }}`)
}

func TestCheck(t *testing.T) {
	sample := decode(t, `{"result":{"uuid":"u-1","business_id":"b-1"},"request":{}}`)
	if err := mustParse(t, "tip.tmpl", deunaTip).Check(sample); err != nil {
		t.Fatalf("Check(good) = %v", err)
	}
	bad := "{\n  \"order\": {\n    \"order_id\": {{ json .result.order.id }}\n  }\n}"
	err := mustParse(t, "erp.tmpl", bad).Check(sample)
	if err == nil {
		t.Fatal("Check(bad) = nil")
	}
	want := `template "erp.tmpl" line 3: at <.result.order.id>: map has no entry for key "order"`
	if err.Error() != want {
		t.Errorf("Check = %q\nwant     %q", err, want)
	}
	var re *transform.RenderError
	if !errors.As(err, &re) {
		t.Errorf("Check error is %T, want *RenderError", err)
	}
	if err := mustParse(t, "x.tmpl", `{"a": {{ .result.uuid }}}`).Check(sample); err == nil ||
		!strings.HasPrefix(err.Error(), `template "x.tmpl": output is not valid JSON`) {
		t.Errorf("Check(invalid output) = %v", err)
	}
}

func TestBigIntegers(t *testing.T) {
	const n = "123456789012345678901234567890"
	data := decode(t, `{"id":`+n+`,"f":1.50,"e":1e400,"neg":-9007199254740993}`)
	tm := mustParse(t, "big", `{"bare":{{ .id }},"json":{{ json .id }},"def":{{ json (default 0 .id) }},`+
		`"dict":{{ json (dict "v" .id) }},"idx":{{ index . "id" }},"f":{{ .f }},"e":{{ json .e }},"neg":{{ .neg }},"s":"{{ .neg }}"}`)
	got, err := tm.Render(data)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"bare":` + n + `,"json":` + n + `,"def":` + n + `,"dict":{"v":` + n + `},"idx":` + n +
		`,"f":1.50,"e":1e400,"neg":-9007199254740993,"s":"-9007199254740993"}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	sel, err := transform.Select([]byte(`{"a":{"id":`+n+`,"x":1}}`), []string{"a.id"})
	if err != nil || string(sel) != `{"a":{"id":`+n+`}}` {
		t.Errorf("Select = %s, %v", sel, err)
	}
}

// TestJSONStringsStayValid sends awkward strings through json, inside an
// object, and reads them back.
func TestJSONStringsStayValid(t *testing.T) {
	tm := mustParse(t, "s", `{"v": {{ json .v }}, "up": {{ json (upper .v) }}, "d": {{ json (dict "k" .v) }}}`)
	for _, s := range []string{
		``, `"`, `\`, `\"`, "line\nbreak\r\ttab", `{"a":1}`, `</script><!--`, "\u2028\u2029",
		"\x00\x01\x1f", "ñandú 🦤", `{{ .x }}`, "<no value>", `'single'`, "\xff", // invalid UTF-8 becomes U+FFFD when decoded
	} {
		raw, _ := json.Marshal(map[string]string{"v": s})
		data := decode(t, string(raw))
		got, err := tm.Render(data)
		if err != nil {
			t.Errorf("Render(%q): %v", s, err)
			continue
		}
		var back struct {
			V  string
			Up string
			D  map[string]string
		}
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("Render(%q) = %s: %v", s, got, err)
			continue
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if back.V != want || back.D["k"] != want || back.Up != strings.ToUpper(want) {
			t.Errorf("round trip of %q: got %+v", s, back)
		}
	}
}

func TestDecodeJSON(t *testing.T) {
	v, err := transform.DecodeJSON([]byte(" {\"n\": 18446744073709551617, \"a\": [1, \"x\", null, true]} \n"))
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if n, ok := m["n"].(json.Number); !ok || n.String() != "18446744073709551617" {
		t.Errorf("n = %#v, want json.Number", m["n"])
	}
	if a := m["a"].([]any); len(a) != 4 || a[0] != json.Number("1") || a[2] != nil {
		t.Errorf("a = %#v", a)
	}
	for _, bad := range []string{``, `{`, `{"a":1} x`, `{"a":1}{}`, `[1,]`, `nul`} {
		if _, err := transform.DecodeJSON([]byte(bad)); err == nil {
			t.Errorf("DecodeJSON(%q) = nil error", bad)
		}
	}
}

func TestTemplateName(t *testing.T) {
	if got := mustParse(t, "erp.tmpl", `{}`).Name(); got != "erp.tmpl" {
		t.Errorf("Name() = %q", got)
	}
}

// TestConcurrentRender runs one template from many goroutines (go test -race).
func TestConcurrentRender(t *testing.T) {
	tm := mustParse(t, "erp.tmpl", erpTemplate)
	events := []string{fullEvent, minimalEvent}
	want := make([]string, len(events))
	for i, e := range events {
		out, err := tm.Render(decode(t, e))
		if err != nil {
			t.Fatal(err)
		}
		want[i] = string(out)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				k := (g + i) % len(events)
				v, err := transform.DecodeJSON([]byte(events[k]))
				if err != nil {
					t.Error(err)
					return
				}
				out, err := tm.Render(v)
				if err != nil || string(out) != want[k] {
					t.Errorf("Render = %s, %v", out, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestFuncsDocumented checks that the set Funcs returns is the documented
// one, and that the package documentation shows each function in an example.
func TestFuncsDocumented(t *testing.T) {
	var names []string
	for name := range transform.Funcs() {
		names = append(names, name)
	}
	slices.Sort(names)
	want := []string{"add", "cmp", "date", "default", "dict", "div", "index", "json", "list", "lower", "max", "min", "mul", "round", "sub", "upper"}
	if !slices.Equal(names, want) {
		t.Fatalf("Funcs() = %v, want %v", names, want)
	}
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	doc := f.Doc.Text()
	for _, name := range names {
		found := false
		for _, line := range strings.Split(doc, "\n") {
			if strings.Contains(line, "{{") && (strings.Contains(line, "{{ "+name+" ") || strings.Contains(line, "("+name+" ") ||
				strings.Contains(line, "| "+name+" ")) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("the package documentation has no example of %s", name)
		}
	}
}
