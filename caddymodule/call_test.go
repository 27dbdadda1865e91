package caddymodule

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/destination"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/call"
	"github.com/hookrelay/hookrelay/relay/transform"
)

func TestParseCall(t *testing.T) {
	d := caddyfile.NewTestDispenser("hook_call {\n" +
		"	topic checkout/tip\n" +
		"	max_body 1MB\n" +
		"	response_secret {env.TIP_WHSEC}\n" +
		"	allow_unauthenticated\n" +
		"	to http://127.0.0.1:9390/tip {\n" +
		"		timeout 5s\n" +
		"	}\n" +
		"	sample order.json\n" +
		"	response_template tip.tmpl\n" +
		"	error_response_template `{\"error\": {{ json .error }}}`\n" +
		"	response_sample reply.json\n" +
		"	error_response_sample error.json\n" +
		"	fields order.order_id\n" +
		"	custom_fields order.custom_fields.tip\n" +
		"}")
	var h Call
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	dc := h.Destination
	if h.Topic != "checkout/tip" || h.ResponseSecret != "{env.TIP_WHSEC}" || h.MaxBody != 1_000_000 || !h.AllowUnauthenticated ||
		dc == nil || dc.URL != "http://127.0.0.1:9390/tip" || dc.Timeout != destination.Duration(5*time.Second) ||
		h.ResponseTemplateFile != "tip.tmpl" || h.ResponseTemplate != "" ||
		h.ErrorResponseTemplate != `{"error": {{ json .error }}}` || h.ErrorResponseTemplateFile != "" ||
		h.ResponseSample != "reply.json" || h.ErrorResponseSample != "error.json" || h.Sample != "order.json" ||
		strings.Join(h.Fields, ",") != "order.order_id" || strings.Join(h.CustomFields, ",") != "order.custom_fields.tip" {
		t.Fatalf("parsed %+v / %+v", h, dc)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseCallErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"hook_call {\n allow_unauthenticated yes\n}", "wrong argument count"},
		{"hook_call {\n response_template\n}", "wrong argument count"},
		{"hook_call {\n response_sample a b\n}", "wrong argument count"},
		{"hook_call {\n to http://x/a\n to http://x/b\n}", "hook_call calls one destination; use one 'to'"},
		{"hook_call {\n to http://x/ {\n response_template t.tmpl\n }\n}", "response_template is an option of hook_call, beside its 'to' block"},
		{"hook_call {\n retry {\n }\n}", "hook_call retries nothing"},
		{"hook_call {\n mode sync\n}", `unknown hook_call option "mode"`},
	} {
		var h Call
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestParseRelayNoMode: the options of the former sync mode of hook_relay
// point to hook_call.
func TestParseRelayNoMode(t *testing.T) {
	for _, in := range []string{
		"hook_relay {\n mode sync\n}",
		"hook_relay {\n mode async\n}",
		"hook_relay {\n response_secret x\n}",
		"hook_relay {\n allow_unauthenticated\n}",
		"hook_relay {\n to http://x/ {\n response_sample r.json\n }\n}",
	} {
		var h RelayHandler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err == nil || !strings.Contains(err.Error(), "hook_call") {
			t.Errorf("%q: error %v, want one that points to hook_call", in, err)
		}
	}
}

func TestCallValidate(t *testing.T) {
	call := func(f func(*Call)) Call {
		c := Call{Destination: &destination.Config{URL: "http://127.0.0.1:9399/"}}
		if f != nil {
			f(&c)
		}
		return c
	}
	for _, tc := range []struct {
		name string
		h    Call
		want string // "" means valid
	}{
		{"minimal", call(nil), ""},
		{"allow_unauthenticated", call(func(c *Call) { c.AllowUnauthenticated = true }), ""},
		{"no destination", Call{}, "a 'to' destination is required"},
		{"template", call(func(c *Call) { c.Destination.TemplateFile = "x" }), "use response_template"},
		{"workers", call(func(c *Call) { c.Destination.Workers = 2 }), "no queue"},
		{"fields on the destination", call(func(c *Call) { c.Destination.Fields = []string{"a"} }), "not on its destination"},
		{"sample on the destination", call(func(c *Call) { c.Destination.Sample = "s.json" }), "not on its destination"},
		{"both response templates", call(func(c *Call) { c.ResponseTemplate, c.ResponseTemplateFile, c.ResponseSample = "{}", "x", "r" }), "not both"},
		{"template without sample", call(func(c *Call) { c.ResponseTemplateFile = "x" }), "needs a response_sample"},
		{"error sample without template", call(func(c *Call) { c.ErrorResponseSample = "x" }), "needs an error_response_template"},
	} {
		err := tc.h.Validate()
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

// newTestCall builds a caller with the tip templates, checked over their
// samples as Provision does.
func newTestCall(t testing.TB, withErrTmpl bool) *caller {
	t.Helper()
	dir := t.TempDir()
	h := &Call{
		ResponseTemplateFile: writeFile(t, dir, "tip.tmpl", tipTemplate),
		ResponseSample:       writeFile(t, dir, "reply.json", `{"uuid":"u-1","business_id":"b-9","total":12000,"tip":2000}`),
		Fields:               []string{"order.order_id", "order.total"},
		CustomFields:         []string{"order.custom_fields.tip"},
	}
	if withErrTmpl {
		h.ErrorResponseTemplate = tipErrorTemplate
		h.ErrorResponseSample = writeFile(t, dir, "error.json", `{"message":"tip too high"}`)
	}
	s := &caller{
		call: call.Caller{Dest: &relay.Destination{Name: "tip"}, Log: zap.NewNop()},
		log:  zap.NewNop(),
	}
	if fields := destination.Paths(h.Fields, h.CustomFields); len(fields) > 0 {
		s.call.Shape = func(out []byte, _ any) ([]byte, error) { return transform.Select(out, fields) }
	}
	if err := s.loadTemplates(h); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCallAnswer(t *testing.T) {
	request := []byte(`{"order_id":"o-1","tip":2000}`)
	for _, tc := range []struct {
		name       string
		errTmpl    bool
		x          call.Exchange
		wantStatus int
		wantBody   string
	}{
		{"success rendered and selected", false,
			call.Exchange{Status: 200, Body: []byte(`{"uuid":"u-7","business_id":"b-1","total":14000,"tip":2000,"extra":1}`)},
			200, `{"order":{"custom_fields":{"tip":2000},"order_id":"u-7","total":14000}}`},
		{"success 201 answered 200", false,
			call.Exchange{Status: 201, Body: []byte(`{"uuid":"u-7","business_id":"b-1","total":1,"tip":0}`)},
			200, `{"order":{"custom_fields":{"tip":0},"order_id":"u-7","total":1}}`},
		{"reply not JSON", false, call.Exchange{Status: 200, Body: []byte(`<html>`)},
			502, `{"errors":[{"title":"Bad Gateway","detail":"The destination's reply is not JSON.","status_code":"502"}]}`},
		{"reply does not fit the template", false, call.Exchange{Status: 200, Body: []byte(`{"id":"x"}`)},
			502, `{"errors":[{"title":"Bad Gateway","detail":"The destination's reply could not be transformed.","status_code":"502"}]}`},
		{"4xx JSON passed through", false, call.Exchange{Status: 409, Body: []byte("{\"message\": \"conflict\"}\n")},
			409, `{"message":"conflict"}`},
		{"4xx not JSON", false, call.Exchange{Status: 404, Body: []byte("not found")},
			404, `{"errors":[{"title":"Not Found","detail":"The destination answered 404 Not Found.","status_code":"404"}]}`},
		{"5xx", false, call.Exchange{Status: 503, Body: []byte(`{"message":"down"}`)},
			502, `{"errors":[{"title":"Bad Gateway","detail":"The destination answered 503 Service Unavailable.","status_code":"502"}]}`},
		{"3xx", false, call.Exchange{Status: 302},
			502, `{"errors":[{"title":"Bad Gateway","detail":"The destination answered 302 Found.","status_code":"502"}]}`},
		{"unreachable", false, call.Exchange{Failed: call.ErrUnreachable, Cause: errors.New("dial: refused")},
			502, `{"errors":[{"title":"Bad Gateway","detail":"The destination could not be reached.","status_code":"502"}]}`},
		{"timeout", false, call.Exchange{Failed: call.ErrTimeout, Timeout: true},
			504, `{"errors":[{"title":"Gateway Timeout","detail":"The destination did not answer within 30s.","status_code":"504"}]}`},
		{"4xx rendered", true, call.Exchange{Status: 422, Body: []byte(`{"message":"tip too high"}`)},
			422, `{"error":{"code":422,"reason":"HTTP 422 Unprocessable Entity","message":"tip too high"}}`},
		{"4xx without body rendered", true, call.Exchange{Status: 400},
			400, `{"error":{"code":400,"reason":"HTTP 400 Bad Request","message":""}}`},
		{"5xx rendered", true, call.Exchange{Status: 500, Body: []byte(`{"message":"boom"}`)},
			502, `{"error":{"code":500,"reason":"HTTP 500 Internal Server Error","message":"boom"}}`},
		{"timeout rendered", true, call.Exchange{Failed: call.ErrTimeout, Timeout: true},
			504, `{"error":{"code":0,"reason":"timeout","message":""}}`},
		{"bad reply rendered", true, call.Exchange{Status: 200, Body: []byte(`[1]`)},
			502, `{"error":{"code":200,"reason":"reply does not fit the response template","message":""}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestCall(t, tc.errTmpl)
			status, body := s.answer(t.Context(), request, tc.x)
			if status != tc.wantStatus || string(body) != tc.wantBody {
				t.Errorf("answer = %d %s\nwant     %d %s", status, body, tc.wantStatus, tc.wantBody)
			}
		})
	}
}

func TestCallPassThrough(t *testing.T) {
	s := &caller{call: call.Caller{Dest: &relay.Destination{Name: "x"}}, log: zap.NewNop()}
	status, body := s.answer(t.Context(), []byte(`{}`), call.Exchange{Status: 200, Body: []byte("{ \"a\": [1, 2] }")})
	if status != 200 || string(body) != `{"a":[1,2]}` {
		t.Fatalf("answer = %d %s", status, body)
	}
}

func TestCallTemplateCheckErrors(t *testing.T) {
	dir := t.TempDir()
	reply := writeFile(t, dir, "reply.json", `{"uuid":"u-1"}`)
	for _, tc := range []struct {
		name string
		h    Call
		want string
	}{
		{"missing key", Call{ResponseTemplateFile: writeFile(t, dir, "tip.tmpl", "{\n  \"id\": \"{{ .result.order.id }}\"\n}"), ResponseSample: reply},
			`checking response_template over response_sample ` + reply + `: template "` + filepath.Join(dir, "tip.tmpl") + `" line 2: at <.result.order.id>: map has no entry for key "order"`},
		{"invalid JSON", Call{ResponseTemplate: `{"id": {{ .result.uuid }}}`, ResponseSample: reply},
			`template "response_template": output is not valid JSON`},
		{"parse error", Call{ErrorResponseTemplate: "{\n{{ uper .error }}}"},
			`template "error_response_template" line 2: function "uper" not defined`},
		{"error template fails when unreachable", Call{ErrorResponseTemplate: `{"m": "{{ .result.message }}"}`},
			`checking error_response_template over an unreachable destination`},
		{"sample not JSON", Call{ResponseTemplate: `{}`, ResponseSample: writeFile(t, dir, "bad.json", `{`)},
			`response_sample ` + filepath.Join(dir, "bad.json") + ` is not valid JSON`},
		{"request sample used", Call{ResponseTemplate: `{"n": "{{ .request.note }}"}`, ResponseSample: reply},
			`map has no entry for key "note"`},
	} {
		s := &caller{log: zap.NewNop()}
		err := s.loadTemplates(&tc.h)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v\nwant %q", tc.name, err, tc.want)
		}
	}
}

// FuzzCallAnswer feeds arbitrary destination replies through the tip
// templates: the answer is always JSON with an expected status, never a
// panic.
func FuzzCallAnswer(f *testing.F) {
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
	plain := newTestCall(f, false)
	withErr := newTestCall(f, true)
	f.Fuzz(func(t *testing.T, status int, body []byte, errTmpl bool) {
		if status < 100 || status > 999 {
			return
		}
		s := plain
		if errTmpl {
			s = withErr
		}
		got, out := s.answer(t.Context(), []byte(`{"note":"n"}`), call.Exchange{Status: status, Body: body})
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
