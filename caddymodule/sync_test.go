package caddymodule

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/transform"
)

func TestParseSyncRelay(t *testing.T) {
	d := caddyfile.NewTestDispenser("hook_relay {\n" +
		"	mode sync\n" +
		"	max_body 1MB\n" +
		"	response_secret {env.TIP_WHSEC}\n" +
		"	allow_unauthenticated\n" +
		"	to http://127.0.0.1:9390/tip {\n" +
		"		timeout 5s\n" +
		"		sample order.json\n" +
		"		response_template tip.tmpl\n" +
		"		error_response_template `{\"error\": {{ json .error }}}`\n" +
		"		response_sample reply.json\n" +
		"		error_response_sample error.json\n" +
		"		fields order.order_id\n" +
		"		custom_fields order.custom_fields.tip\n" +
		"	}\n" +
		"}")
	var h Relay
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	dc := h.Destinations[0]
	if h.Mode != ModeSync || h.ResponseSecret != "{env.TIP_WHSEC}" || h.MaxBody != 1_000_000 || !h.AllowUnauthenticated ||
		dc.ResponseTemplateFile != "tip.tmpl" || dc.ResponseTemplate != "" ||
		dc.ErrorResponseTemplate != `{"error": {{ json .error }}}` || dc.ErrorResponseTemplateFile != "" ||
		dc.ResponseSample != "reply.json" || dc.ErrorResponseSample != "error.json" || dc.Sample != "order.json" {
		t.Fatalf("parsed %+v / %+v", h, *dc)
	}
	if err := h.checkMode(); err != nil {
		t.Fatal(err)
	}
}

func TestParseSyncRelayErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"hook_relay {\n mode fast\n}", `mode must be async or sync, not "fast"`},
		{"hook_relay {\n mode\n}", "wrong argument count"},
		{"hook_relay {\n mode sync\n allow_unauthenticated yes\n}", "wrong argument count"},
		{"hook_relay {\n to http://x/ {\n response_template\n }\n}", "wrong argument count"},
		{"hook_relay {\n to http://x/ {\n response_sample a b\n }\n}", "wrong argument count"},
	} {
		var h Relay
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestCheckMode(t *testing.T) {
	dest := func(f func(*Destination)) []*Destination {
		d := &Destination{URL: "http://127.0.0.1:9399/"}
		if f != nil {
			f(d)
		}
		return []*Destination{d}
	}
	for _, tc := range []struct {
		name string
		h    Relay
		want string // "" means valid
	}{
		{"sync minimal", Relay{Mode: ModeSync, Destinations: dest(nil)}, ""},
		{"async with sync option", Relay{Destinations: dest(func(d *Destination) { d.ResponseTemplate = "{}" })}, "response_template needs mode sync"},
		{"async with response_secret", Relay{ResponseSecret: "whsec_eA==", Destinations: dest(nil)}, "response_secret needs mode sync"},
		{"async with allow_unauthenticated", Relay{AllowUnauthenticated: true, Destinations: dest(nil)}, "allow_unauthenticated needs mode sync"},
		{"sync with allow_unauthenticated", Relay{Mode: ModeSync, AllowUnauthenticated: true, Destinations: dest(nil)}, ""},
		{"unknown mode", Relay{Mode: "later"}, `mode must be async or sync, not "later"`},
		{"two destinations", Relay{Mode: ModeSync, Destinations: append(dest(nil), dest(nil)...)}, "exactly one 'to' destination, not 2"},
		{"retry", Relay{Mode: ModeSync, Destinations: dest(nil), Retry: &RetryConfig{}}, "retries nothing"},
		{"template", Relay{Mode: ModeSync, Destinations: dest(func(d *Destination) { d.TemplateFile = "x" })}, "use response_template"},
		{"workers", Relay{Mode: ModeSync, Destinations: dest(func(d *Destination) { d.Workers = 2 })}, "no queue"},
		{"template without sample", Relay{Mode: ModeSync, Destinations: dest(func(d *Destination) { d.ResponseTemplateFile = "x" })}, "needs a response_sample"},
		{"error sample without template", Relay{Mode: ModeSync, Destinations: dest(func(d *Destination) { d.ErrorResponseSample = "x" })}, "needs an error_response_template"},
	} {
		err := tc.h.checkMode()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

const (
	tipTemplate = `{
  "order": {
    "order_id": "{{ .result.uuid }}",
    "total": {{ json .result.total }},
    "note": {{ json (default "" .request.note) }},
    "custom_fields": {"business_id": "{{ .result.business_id }}", "tip": {{ json .result.tip }}}
  }
}`
	tipErrorTemplate = `{"error": {"code": {{ json .status }}, "reason": {{ json .error }},
  "message": {{ with .result }}{{ json (default "" (index . "message")) }}{{ else }}""{{ end }}}}`
)

func writeFile(t testing.TB, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newTestSync builds a syncRelay with the tip templates, checked over
// their samples as Provision does.
func newTestSync(t testing.TB, withErrTmpl bool) *syncRelay {
	t.Helper()
	dir := t.TempDir()
	dc := &Destination{
		URL:                  "http://127.0.0.1:9399/",
		ResponseTemplateFile: writeFile(t, dir, "tip.tmpl", tipTemplate),
		ResponseSample:       writeFile(t, dir, "reply.json", `{"uuid":"u-1","business_id":"b-9","total":12000,"tip":2000}`),
		Fields:               []string{"order.order_id", "order.total"},
		CustomFields:         []string{"order.custom_fields.tip"},
	}
	if withErrTmpl {
		dc.ErrorResponseTemplate = tipErrorTemplate
		dc.ErrorResponseSample = writeFile(t, dir, "error.json", `{"message":"tip too high"}`)
	}
	s := &syncRelay{
		dest:   &relay.Destination{Name: "tip"},
		fields: append(append([]string(nil), dc.Fields...), dc.CustomFields...),
		log:    zap.NewNop(),
	}
	if err := s.loadTemplates(dc); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSyncAnswer(t *testing.T) {
	request := []byte(`{"order_id":"o-1","tip":2000}`)
	for _, tc := range []struct {
		name       string
		errTmpl    bool
		x          exchange
		wantStatus int
		wantBody   string
	}{
		{"success rendered and selected", false,
			exchange{status: 200, body: []byte(`{"uuid":"u-7","business_id":"b-1","total":14000,"tip":2000,"extra":1}`)},
			200, `{"order":{"custom_fields":{"tip":2000},"order_id":"u-7","total":14000}}`},
		{"success 201 answered 200", false,
			exchange{status: 201, body: []byte(`{"uuid":"u-7","business_id":"b-1","total":1,"tip":0}`)},
			200, `{"order":{"custom_fields":{"tip":0},"order_id":"u-7","total":1}}`},
		{"reply not JSON", false, exchange{status: 200, body: []byte(`<html>`)},
			502, `{"errors":[{"title":"Bad Gateway","detail":"The destination's reply is not JSON.","status_code":"502"}]}`},
		{"reply does not fit the template", false, exchange{status: 200, body: []byte(`{"id":"x"}`)},
			502, `{"errors":[{"title":"Bad Gateway","detail":"The destination's reply could not be transformed.","status_code":"502"}]}`},
		{"4xx JSON passed through", false, exchange{status: 409, body: []byte("{\"message\": \"conflict\"}\n")},
			409, `{"message":"conflict"}`},
		{"4xx not JSON", false, exchange{status: 404, body: []byte("not found")},
			404, `{"errors":[{"title":"Not Found","detail":"The destination answered 404 Not Found.","status_code":"404"}]}`},
		{"5xx", false, exchange{status: 503, body: []byte(`{"message":"down"}`)},
			502, `{"errors":[{"title":"Bad Gateway","detail":"The destination answered 503 Service Unavailable.","status_code":"502"}]}`},
		{"3xx", false, exchange{status: 302},
			502, `{"errors":[{"title":"Bad Gateway","detail":"The destination answered 302 Found.","status_code":"502"}]}`},
		{"unreachable", false, exchange{failed: errUnreachable, cause: errors.New("dial: refused")},
			502, `{"errors":[{"title":"Bad Gateway","detail":"The destination could not be reached.","status_code":"502"}]}`},
		{"timeout", false, exchange{failed: errTimeout, timeout: true},
			504, `{"errors":[{"title":"Gateway Timeout","detail":"The destination did not answer within 0s.","status_code":"504"}]}`},
		{"4xx rendered", true, exchange{status: 422, body: []byte(`{"message":"tip too high"}`)},
			422, `{"error":{"code":422,"reason":"HTTP 422 Unprocessable Entity","message":"tip too high"}}`},
		{"4xx without body rendered", true, exchange{status: 400},
			400, `{"error":{"code":400,"reason":"HTTP 400 Bad Request","message":""}}`},
		{"5xx rendered", true, exchange{status: 500, body: []byte(`{"message":"boom"}`)},
			502, `{"error":{"code":500,"reason":"HTTP 500 Internal Server Error","message":"boom"}}`},
		{"timeout rendered", true, exchange{failed: errTimeout, timeout: true},
			504, `{"error":{"code":0,"reason":"timeout","message":""}}`},
		{"bad reply rendered", true, exchange{status: 200, body: []byte(`[1]`)},
			502, `{"error":{"code":200,"reason":"reply does not fit the response template","message":""}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSync(t, tc.errTmpl)
			status, body := s.answer(request, tc.x)
			if status != tc.wantStatus || string(body) != tc.wantBody {
				t.Errorf("answer = %d %s\nwant     %d %s", status, body, tc.wantStatus, tc.wantBody)
			}
		})
	}
}

func TestSyncPassThrough(t *testing.T) {
	s := &syncRelay{dest: &relay.Destination{Name: "x"}, log: zap.NewNop()}
	status, body := s.answer([]byte(`{}`), exchange{status: 200, body: []byte("{ \"a\": [1, 2] }")})
	if status != 200 || string(body) != `{"a":[1,2]}` {
		t.Fatalf("answer = %d %s", status, body)
	}
}

func TestSyncTemplateCheckErrors(t *testing.T) {
	dir := t.TempDir()
	reply := writeFile(t, dir, "reply.json", `{"uuid":"u-1"}`)
	for _, tc := range []struct {
		name string
		dc   Destination
		want string
	}{
		{"missing key", Destination{ResponseTemplateFile: writeFile(t, dir, "tip.tmpl", "{\n  \"id\": \"{{ .result.order.id }}\"\n}"), ResponseSample: reply},
			`checking response_template over response_sample ` + reply + `: template "` + filepath.Join(dir, "tip.tmpl") + `" line 2: at <.result.order.id>: map has no entry for key "order"`},
		{"invalid JSON", Destination{ResponseTemplate: `{"id": {{ .result.uuid }}}`, ResponseSample: reply},
			`template "response_template": output is not valid JSON`},
		{"parse error", Destination{ErrorResponseTemplate: "{\n{{ uper .error }}}"},
			`template "error_response_template" line 2: function "uper" not defined`},
		{"error template fails when unreachable", Destination{ErrorResponseTemplate: `{"m": "{{ .result.message }}"}`},
			`checking error_response_template over an unreachable destination`},
		{"sample not JSON", Destination{ResponseTemplate: `{}`, ResponseSample: writeFile(t, dir, "bad.json", `{`)},
			`response_sample ` + filepath.Join(dir, "bad.json") + ` is not valid JSON`},
		{"request sample used", Destination{ResponseTemplate: `{"n": "{{ .request.note }}"}`, ResponseSample: reply},
			`map has no entry for key "note"`},
	} {
		s := &syncRelay{log: zap.NewNop()}
		err := s.loadTemplates(&tc.dc)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v\nwant %q", tc.name, err, tc.want)
		}
	}
}

// FuzzSyncAnswer feeds arbitrary destination replies through the tip
// templates: the answer is always JSON with an expected status, never a
// panic.
func FuzzSyncAnswer(f *testing.F) {
	for _, seed := range []struct {
		status int
		body   string
	}{
		{200, `{"uuid":"u","business_id":"b","total":1,"tip":2}`},
		{200, `{"uuid":null}`}, {201, `[]`}, {200, ``}, {422, `{"message":5}`},
		{404, `"x"`}, {503, `{"message":"a\"b\n"}`}, {302, ``}, {200, `{"uuid":"\xff"}`},
	} {
		f.Add(seed.status, []byte(seed.body), false)
		f.Add(seed.status, []byte(seed.body), true)
	}
	plain := newTestSync(f, false)
	withErr := newTestSync(f, true)
	f.Fuzz(func(t *testing.T, status int, body []byte, errTmpl bool) {
		if status < 100 || status > 999 {
			return
		}
		s := plain
		if errTmpl {
			s = withErr
		}
		got, out := s.answer([]byte(`{"note":"n"}`), exchange{status: status, body: body})
		var want int
		switch {
		case status >= 200 && status < 300:
			want = 200
			if got == http.StatusBadGateway {
				want = got
			}
		case status >= 400 && status < 500:
			want = status
		default:
			want = http.StatusBadGateway
		}
		if got != want {
			t.Fatalf("status %d for a %d reply, want %d", got, status, want)
		}
		if !json.Valid(out) {
			t.Fatalf("answer is not JSON: %q", out)
		}
		if _, err := transform.DecodeJSON(out); err != nil {
			t.Fatalf("answer does not decode: %v", err)
		}
	})
}
