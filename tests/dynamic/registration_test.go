package dynamic

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRegistrationRefused: a registration that cannot work is refused with
// a 422 in the contract's envelope, pointing at the member at fault, and
// stores nothing. The templates are rendered over response_data and
// request_data: a missing key, a division by zero, output that is not
// JSON or not a DEUNA order, a syntax error and a template that loops are
// each refused, the template errors naming their line; a loop is stopped
// quickly, never a hang.
func TestRegistrationRefused(t *testing.T) {
	shop := fixedMerchant(t, workedAnswer)
	start(t, config{})
	url := shop.URL + "/tip"
	with := func(change func(reg map[string]any)) map[string]any {
		reg := workedRegistration(url)
		change(reg)
		return reg
	}
	template := func(text string) map[string]any {
		return with(func(reg map[string]any) { reg["response_template"] = text })
	}

	cases := []struct {
		name    string
		reg     map[string]any
		pointer string
		details []string
	}{
		{"response_data missing with a template",
			with(func(reg map[string]any) { delete(reg, "response_data") }),
			"/response_data", []string{"required"}},
		{"a key the sample answer lacks",
			template("{\"order\": {\n  \"total\": \"{{ .request.order.total }}\",\n  \"custom_fields\": {\"tip\": {{ json .result.propina }}}\n}}"),
			"/response_template", []string{"line 3", "propina"}},
		{"a division by zero from the sample",
			with(func(reg map[string]any) {
				reg["response_data"] = `{"uuid":"u-1","tip":"1.20","split":"0"}`
				reg["response_template"] = "{\"order\": {\n  \"total\": \"{{ div .result.tip .result.split }}\"\n}}"
			}),
			"/response_template", []string{"line 2", "zero"}},
		{"output that is not JSON",
			template("{\"order\": {\n  \"total\": {{ .result.tip }}\n"),
			"/response_template", []string{"not valid JSON"}},
		{"output that is JSON but not an object",
			template(`"{{ .result.tip }}"`),
			"/response_template", []string{"DEUNA order"}},
		{"output without an order",
			template(`{"total": "{{ .result.tip }}"}`),
			"/response_template", []string{"DEUNA order"}},
		{"output whose order is not an object",
			template(`{"order": "{{ .result.uuid }}"}`),
			"/response_template", []string{"DEUNA order"}},
		{"a syntax error",
			template("{\"order\": {\n  {{ if }}\n}}"),
			"/response_template", []string{"line 2"}},
		{"an unknown function",
			template("{\"order\": {\n\n  \"total\": \"{{ sum .result.tip 1 }}\"\n}}"),
			"/response_template", []string{"line 3", "sum"}},
		{"request data the template uses, missing",
			with(func(reg map[string]any) { delete(reg, "request_data") }),
			"/response_template", []string{"line 3", "order"}},
		{"request_data that is not an execute body",
			with(func(reg map[string]any) { reg["request_data"] = map[string]any{"total": "1"} }),
			"/request_data", nil},
		{"an error template that fails for an unreachable merchant",
			with(func(reg map[string]any) {
				reg["error_response_template"] = "{\"errors\": [\n{\"detail\": {{ json .result.message }}}]}"
			}),
			"/error_response_template", []string{"line 2"}},
		{"a plain http url", with(func(reg map[string]any) { reg["url"] = "http://127.0.0.1:1/tip" }), "/url", []string{"https"}},
		{"a private address", with(func(reg map[string]any) { reg["url"] = "https://10.0.0.1/tip" }), "/url", nil},
		{"the metadata address", with(func(reg map[string]any) { reg["url"] = "https://169.254.169.254/latest/meta-data" }), "/url", nil},
		{"no url", with(func(reg map[string]any) { delete(reg, "url") }), "/url", nil},
		{"an unknown member", with(func(reg map[string]any) { reg["respone_template"] = "{}" }), "/respone_template", nil},
		{"an unknown member of fields_update", with(func(reg map[string]any) {
			reg["fields_update"] = map[string]any{"fields": []string{"total"}, "custom": []string{"tip"}}
		}), "/fields_update/custom", nil},
		{"a timeout over 30s", with(func(reg map[string]any) { reg["timeout"] = "31s" }), "/timeout", nil},
		{"a bad event name", with(func(reg map[string]any) { reg["event_name"] = "set tip/x" }), "/event_name", nil},
		{"response_data that is not JSON", with(func(reg map[string]any) { reg["response_data"] = "{uuid" }), "/response_data", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			refused(t, kfc.call(t, http.MethodPost, "", c.reg), http.StatusUnprocessableEntity, c.pointer, c.details...)
		})
	}

	// Loops: the render is stopped, and the registration refused at once.
	for _, c := range []struct{ name, text string }{
		{"a loop over a huge range", "{{ range 100000000000 }}{{ end }}{\"order\":{}}"},
		{"nested loops over the sample", "{{ range $a := list 1 2 3 4 5 6 7 8 9 10 }}{{ range $b := list 1 2 3 4 5 6 7 8 9 10 }}" +
			"{{ range 1000000000 }}{{ end }}{{ end }}{{ end }}{\"order\":{}}"},
		{"endless output", "{\"order\":{\"x\":\"{{ range 100000000000 }}xxxxxxxxxxxxxxxx{{ end }}\"}}"},
	} {
		t.Run(c.name, func(t *testing.T) {
			began := time.Now()
			a := kfc.call(t, http.MethodPost, "", template(c.text))
			if took := time.Since(began); took > 2*time.Second {
				t.Errorf("the registration took %v, want it stopped within 2s", took)
			}
			refused(t, a, http.StatusUnprocessableEntity, "/response_template")
		})
	}

	// The registry's limits, tighter than a config template's: 100ms and
	// 1 MiB of output per render.
	t.Run("a render over 100ms", func(t *testing.T) {
		a := kfc.call(t, http.MethodPost, "", template("{{ range 100000000000 }}{{ end }}{\"order\":{}}"))
		if a.took > 700*time.Millisecond {
			t.Errorf("the loop was stopped after %v, want about 100ms", a.took)
		}
		refused(t, a, http.StatusUnprocessableEntity, "/response_template")
	})
	t.Run("output over 1 MiB", func(t *testing.T) {
		// 2 MB of valid JSON, quickly.
		a := kfc.call(t, http.MethodPost, "", template(`{"order":{"pad":"{{ range 20000 }}`+strings.Repeat("x", 100)+`{{ end }}"}}`))
		refused(t, a, http.StatusUnprocessableEntity, "/response_template")
	})

	// Not JSON at all is a 400.
	if a := kfc.call(t, http.MethodPost, "", `{"event_name": "x",`); a.status != http.StatusBadRequest {
		t.Errorf("a body that is not JSON answered %s, want 400", a)
	}

	// Nothing was stored.
	a := kfc.call(t, http.MethodGet, "", nil)
	var list struct {
		Data []json.RawMessage `json:"data"`
	}
	if a.status != http.StatusOK || json.Unmarshal(a.body, &list) != nil || list.Data == nil || len(list.Data) != 0 {
		t.Errorf("the list after refused registrations answered %s, want 200 {\"data\":[]}", a)
	}

	// The same registration, well formed, passes.
	kfc.register(t, workedRegistration(url), http.StatusCreated)
}
