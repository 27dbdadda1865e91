package transform_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
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
