package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/zap/zaptest"

	"github.com/hookrelay/hookrelay/netguard"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/transform"
)

// dynEnv is an embedded engine and the dynamic webhooks' bucket in it.
type dynEnv struct {
	eng *relay.Engine
	kv  jetstream.KeyValue
}

// openDynEnv starts an embedded engine in a temporary directory with the
// dynamic webhooks' bucket; it stops when the test ends.
func openDynEnv(t testing.TB) *dynEnv {
	t.Helper()
	eng, err := relay.Open(relay.Options{Queue: relay.QueueConfig{Dir: t.TempDir()}, Logger: zaptest.NewLogger(t), NakMaxDelay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kv, err := eng.KeyValue(ctx, DynamicBucket, "test")
	if err != nil {
		t.Fatal(err)
	}
	return &dynEnv{eng: eng, kv: kv}
}

// node opens a Dynamic on the bucket, as one relay node would; it closes
// when the test ends (before the engine does).
func (e *dynEnv) node(t testing.TB, s Settings) *Dynamic {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := OpenDynamic(ctx, e.kv, s, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// merchant is a merchant's endpoint: it answers what reply says and
// records the requests.
type merchant struct {
	*httptest.Server
	mu     sync.Mutex
	reply  func(w http.ResponseWriter, r *http.Request)
	header []http.Header
	body   [][]byte
}

func newMerchant(t testing.TB, reply func(w http.ResponseWriter, r *http.Request)) *merchant {
	t.Helper()
	m := &merchant{reply: reply}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		m.mu.Lock()
		m.header = append(m.header, r.Header.Clone())
		m.body = append(m.body, b)
		reply := m.reply
		m.mu.Unlock()
		reply(w, r)
	}))
	t.Cleanup(m.Close)
	return m
}

func (m *merchant) set(reply func(w http.ResponseWriter, r *http.Request)) {
	m.mu.Lock()
	m.reply = reply
	m.mu.Unlock()
}

// last returns the last request the merchant got.
func (m *merchant) last(t testing.TB) (http.Header, []byte) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.body) == 0 {
		t.Fatal("the merchant got no request")
	}
	return m.header[len(m.header)-1], m.body[len(m.body)-1]
}

// answerJSON replies status with body.
func answerJSON(status int, body string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// execute runs merchant's webhook of event over body.
func execute(t testing.TB, d *Dynamic, merchant, event, body string) (*Execution, error) {
	t.Helper()
	v, err := transform.DecodeJSON([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return d.Execute(context.Background(), merchant, event, "msg_test", []byte(body), v.(map[string]any))
}

// mustExecute runs it and fails the test on an error.
func mustExecute(t testing.TB, d *Dynamic, merchant, event, body string) *Execution {
	t.Helper()
	ex, err := execute(t, d, merchant, event, body)
	if err != nil {
		t.Fatalf("execute %s/%s: %v", merchant, event, err)
	}
	return ex
}

// verifyAnswer checks that ex's answer, signed as the API signs it,
// verifies with secret.
func verifyAnswer(t testing.TB, ex *Execution, secret string) {
	t.Helper()
	if ex.Signer == nil {
		t.Fatal("the execution has no signer")
	}
	body := ex.Body
	ts, sig := ex.Signer.Sign(ex.ID, time.Now(), body)
	h := http.Header{}
	h.Set("webhook-id", ex.ID)
	h.Set("webhook-timestamp", ts)
	h.Set("webhook-signature", sig)
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(body, h); err != nil {
		t.Fatalf("the answer does not verify with the webhook's secret: %v", err)
	}
}

// The seed's tip example: the order, the merchant's answer and a
// template that sets order_id, total and custom_fields.tip.
const (
	tipOrder    = `{"order":{"order_id":"A1","total":"10.10","payment_method":"CARD","custom_fields":{}}}`
	tipReply    = `{"uuid":"u-1","tip":"1.20","total":"11.30"}`
	tipTemplate = `{
  "order": {
    "order_id": "{{ .result.uuid }}",
    "total": "{{ .result.total }}",
    "payment_method": "CASH",
    "custom_fields": { "tip": "{{ .result.tip }}", "business_id": "b-9" }
  }
}`
)

func tipInput(url string) DynamicInput {
	return DynamicInput{
		EventName:        "tip",
		URL:              url,
		FieldsUpdate:     FieldSet{Fields: []string{"total"}, CustomFields: []string{"tip"}},
		ResponseBody:     FieldSet{Fields: []string{"order_id", "total"}, CustomFields: []string{"tip"}},
		ResponseTemplate: tipTemplate,
		ResponseData:     json.RawMessage(tipReply),
		RequestData:      json.RawMessage(tipOrder),
	}
}

// TestDynamicCheck: every member of a registration is checked, each
// problem named by its JSON pointer with a message that says what is
// wrong; templates are rendered over the samples, and their failures name
// the template's line.
func TestDynamicCheck(t *testing.T) {
	s := testSettings(t, newSealKey(t))
	s.AllowHTTP = false
	s.Guard = netguard.New(nil)
	s = s.withDefaults()
	ok := func(change func(in *DynamicInput)) DynamicInput {
		in := DynamicInput{EventName: "tip", URL: "https://merchant.example.com/tip"}
		change(&in)
		return in
	}
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	paths := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("f%d", i)
		}
		return out
	}
	type want struct{ ptr, msg string }
	cases := []struct {
		name string
		in   DynamicInput
		want []want // pointers in order, each message holding msg
	}{
		{"minimal", ok(func(*DynamicInput) {}), nil},
		{"the seed's example", tipInput("https://merchant.example.com/tip"), nil},
		{"nothing", DynamicInput{}, []want{{"/event_name", "must be 1 to 128 characters"}, {"/url", "is required"}}},
		{"event name with a space", ok(func(in *DynamicInput) { in.EventName = "add tip" }),
			[]want{{"/event_name", "may hold only letters, digits, '_', '-' and '.'"}}},
		{"event name too long", ok(func(in *DynamicInput) { in.EventName = strings.Repeat("e", 129) }),
			[]want{{"/event_name", "must be 1 to 128 characters"}}},
		{"event name of 128", ok(func(in *DynamicInput) { in.EventName = strings.Repeat("e", 128) }), nil},
		{"http url", ok(func(in *DynamicInput) { in.URL = "http://merchant.example.com/" }), []want{{"/url", "must be an https:// URL"}}},
		{"url with user info", ok(func(in *DynamicInput) { in.URL = "https://u:p@merchant.example.com/" }),
			[]want{{"/url", "without user info or fragment"}}},
		{"relative url", ok(func(in *DynamicInput) { in.URL = "/tip" }), []want{{"/url", "absolute https URL"}}},
		{"private url", ok(func(in *DynamicInput) { in.URL = "https://10.0.0.1/" }), []want{{"/url", "10.0.0.1"}}},
		{"localhost url", ok(func(in *DynamicInput) { in.URL = "https://localhost/" }), []want{{"/url", "loopback"}}},
		{"url too long", ok(func(in *DynamicInput) { in.URL = "https://merchant.example.com/" + strings.Repeat("a", 2048) }),
			[]want{{"/url", "is longer than 2048 bytes"}}},
		{"empty field path", ok(func(in *DynamicInput) { in.FieldsUpdate.Fields = []string{"total", ""} }),
			[]want{{"/fields_update/fields/1", "is empty"}}},
		{"empty segment", ok(func(in *DynamicInput) { in.FieldsUpdate.CustomFields = []string{"a..b"} }),
			[]want{{"/fields_update/custom_fields/0", `"a..b" has an empty segment`}}},
		{"trailing dot", ok(func(in *DynamicInput) { in.ResponseBody.Fields = []string{"total."} }),
			[]want{{"/response_body/fields/0", "has an empty segment"}}},
		{"path too long", ok(func(in *DynamicInput) { in.ResponseBody.CustomFields = []string{strings.Repeat("p", 257)} }),
			[]want{{"/response_body/custom_fields/0", "is longer than 256 bytes"}}},
		{"too many paths", ok(func(in *DynamicInput) { in.FieldsUpdate.Fields = paths(65) }),
			[]want{{"/fields_update/fields", "has more than 64 paths"}}},
		{"64 paths", ok(func(in *DynamicInput) { in.ResponseBody.Fields = paths(64) }), nil},
		{"nested paths", ok(func(in *DynamicInput) {
			in.FieldsUpdate.Fields = []string{"shipping.address.city"}
			in.ResponseBody.CustomFields = []string{"loyalty.points"}
		}), nil},
		{"reserved header", ok(func(in *DynamicInput) { in.Headers = Pairs{{"X-Shop", "1"}, {"webhook-signature", "v1,x"}} }),
			[]want{{"/headers/1", "is set by the relay"}}},
		{"bad header", ok(func(in *DynamicInput) { in.Headers = Pairs{{"bad name", "v"}} }), []want{{"/headers/0", "not a valid header"}}},
		{"bad secret", ok(func(in *DynamicInput) { in.Secret = "nope" }), []want{{"/secret", `"whsec_" followed by base64`}}},
		{"negative timeout", ok(func(in *DynamicInput) { in.Timeout = -1 }), []want{{"/timeout", "must be between 1ms and 30s"}}},
		{"timeout too long", ok(func(in *DynamicInput) { in.Timeout = 31 * time.Second }), []want{{"/timeout", "must be between 1ms and 30s"}}},
		{"timeout of 30s", ok(func(in *DynamicInput) { in.Timeout = 30 * time.Second }), nil},
		{"timeout of 1ms", ok(func(in *DynamicInput) { in.Timeout = time.Millisecond }), nil},
		{"timeout below 1ms", ok(func(in *DynamicInput) { in.Timeout = time.Microsecond }), []want{{"/timeout", "must be between 1ms and 30s"}}},
		{"auth type", ok(func(in *DynamicInput) { in.Authorization = &Authorization{AuthType: "basic"} }),
			[]want{{"/authorization/authType", `must be "oauth" or "api-key"`}}},
		{"api-key without headers", ok(func(in *DynamicInput) { in.Authorization = &Authorization{AuthType: AuthAPIKey} }),
			[]want{{"/authorization/headers", "api-key needs at least one header"}}},
		{"oauth to a private login", ok(func(in *DynamicInput) {
			in.Authorization = &Authorization{AuthType: AuthOAuth, AddressLogin: "https://192.168.1.1/token"}
		}), []want{{"/authorization/addressLogin", "192.168.1.1"}}},
		{"request_data not JSON", ok(func(in *DynamicInput) { in.RequestData = raw(`{"order":`) }),
			[]want{{"/request_data", "is not JSON"}}},
		{"request_data an array", ok(func(in *DynamicInput) { in.RequestData = raw(`[{"order":{}}]`) }),
			[]want{{"/request_data", `must be an execute body, {"order": {...}}`}}},
		{"request_data without order", ok(func(in *DynamicInput) { in.RequestData = raw(`{"order_id":"A1"}`) }),
			[]want{{"/request_data", "must be an execute body"}}},
		{"request_data's order a string", ok(func(in *DynamicInput) { in.RequestData = raw(`{"order":"A1"}`) }),
			[]want{{"/request_data", "must be an execute body"}}},
		{"request_data a string holding JSON", ok(func(in *DynamicInput) { in.RequestData = raw(`"{\"order\":{}}"`) }),
			[]want{{"/request_data", "must be an execute body"}}},
		{"request_data with trailing data", ok(func(in *DynamicInput) { in.RequestData = raw(`{"order":{}} {}`) }),
			[]want{{"/request_data", "is not JSON"}}},
		{"response_data not JSON", ok(func(in *DynamicInput) { in.ResponseData = raw(`{uuid}`) }),
			[]want{{"/response_data", "is not JSON"}}},
		{"response_data not an order, no template", ok(func(in *DynamicInput) { in.ResponseData = raw(`{"uuid":"u-1"}`) }),
			[]want{{"/response_data", `must be a DEUNA order, {"order": {...}}, when there is no response_template`}}},
		{"response_data an order, no template", ok(func(in *DynamicInput) { in.ResponseData = raw(`{"order":{"total":"1"}}`) }), nil},
		{"response_data a string holding an order, no template", ok(func(in *DynamicInput) { in.ResponseData = raw(`"{\"order\":{}}"`) }),
			[]want{{"/response_data", "must be a DEUNA order"}}},
		{"response_data null, no template", ok(func(in *DynamicInput) { in.ResponseData = raw(`null`) }), nil},
		{"template without response_data", ok(func(in *DynamicInput) { in.ResponseTemplate = `{"order":{}}` }),
			[]want{{"/response_data", "is required with response_template"}}},
		{"template does not parse, line 3", ok(func(in *DynamicInput) {
			in.ResponseTemplate = "{\n  \"order\": {\n    \"order_id\": \"{{ .result.uuid }\"\n  }\n}"
			in.ResponseData = raw(tipReply)
		}), []want{{"/response_template", "does not parse: line 3: "}}},
		{"template calls an unknown function, line 2", ok(func(in *DynamicInput) {
			in.ResponseTemplate = "{\"order\": {\n\"x\": \"{{ uper .result.uuid }}\"}}"
			in.ResponseData = raw(tipReply)
		}), []want{{"/response_template", `does not parse: line 2: function "uper" not defined`}}},
		{"template misses a key of response_data, line 4", ok(func(in *DynamicInput) {
			in.ResponseTemplate = "{\n\"order\": {\n\"order_id\": \"{{ .result.uuid }}\",\n\"tip\": \"{{ .result.propina }}\"}}"
			in.ResponseData = raw(tipReply)
		}), []want{{"/response_template", `does not render over response_data: line 4: `}, {"/response_template", "propina"}}},
		{"template renders no JSON", ok(func(in *DynamicInput) {
			in.ResponseTemplate = `{"order": {"order_id": {{ .result.uuid }}}}`
			in.ResponseData = raw(tipReply)
		}), []want{{"/response_template", "does not render over response_data: "}, {"/response_template", "JSON"}}},
		{"template renders no order", ok(func(in *DynamicInput) {
			in.ResponseTemplate = `{"order_id": "{{ .result.uuid }}"}`
			in.ResponseData = raw(tipReply)
		}), []want{{"/response_template", `renders over response_data to {"order_id":"u-1"}, not a DEUNA order {"order": {...}}`}}},
		{"template renders an order that is not an object", ok(func(in *DynamicInput) {
			in.ResponseTemplate = `{"order": "{{ .result.uuid }}"}`
			in.ResponseData = raw(tipReply)
		}), []want{{"/response_template", "not a DEUNA order"}}},
		{"long render output excerpted", ok(func(in *DynamicInput) {
			in.ResponseTemplate = `{"x": "` + strings.Repeat("y", 100) + `"}`
			in.ResponseData = raw(tipReply)
		}), []want{{"/response_template", `renders over response_data to {"x":"yyyyyyyyyyyyyyyyyyyyyyyyyyy`}, {"/response_template", `yyy…, not a DEUNA order`}}},
		{"template too long", ok(func(in *DynamicInput) {
			in.ResponseTemplate = `{"order":{}}` + strings.Repeat(" ", 32<<10)
			in.ResponseData = raw(tipReply)
		}), []want{{"/response_template", "is longer than 32768 bytes"}}},
		{"template over a sample string holding JSON", ok(func(in *DynamicInput) {
			// The registry takes the sample as the JSON value it is; the
			// API's decoder is what unwraps a string holding JSON.
			in.ResponseTemplate = `{"order": {"order_id": "{{ .result.uuid }}"}}`
			in.ResponseData = raw(`"{\"uuid\":\"u-1\"}"`)
		}), []want{{"/response_template", "does not render over response_data: line 1: "}}},
		{"template reads request_data", ok(func(in *DynamicInput) {
			in.ResponseTemplate = `{"order": {"total": "{{ .request.order.total }}", "tip": "{{ .result.tip }}"}}`
			in.ResponseData = raw(tipReply)
			in.RequestData = raw(tipOrder)
		}), nil},
		{"template reads the request, no request_data", ok(func(in *DynamicInput) {
			in.ResponseTemplate = `{"order": {"total": "{{ .request.order.total }}"}}`
			in.ResponseData = raw(tipReply)
		}), []want{{"/response_template", `does not render over response_data: line 1: `}, {"/response_template", `"order"`}}},
		{"template reads the request optionally, no request_data", ok(func(in *DynamicInput) {
			in.ResponseTemplate = `{"order": {"total": {{ json (index . "request.order.total") }}}}`
			in.ResponseData = raw(tipReply)
		}), nil},
		{"template reads the status", ok(func(in *DynamicInput) {
			in.ResponseTemplate = `{"order": {"status": {{ .status }}}}`
			in.ResponseData = raw(tipReply)
		}), nil},
		{"error template does not parse, line 2", ok(func(in *DynamicInput) {
			in.ErrorResponseTemplate = "{\"order\": {\n\"error\": \"{{ .error \"}}"
		}), []want{{"/error_response_template", "does not parse: line 2: "}}},
		{"error template needs a result", ok(func(in *DynamicInput) {
			in.ErrorResponseTemplate = "{\"order\": {\n\n\"code\": \"{{ .result.code }}\"}}"
		}), []want{{"/error_response_template", "does not render for a merchant that cannot be reached (.result null, .status 0): line 3: "}}},
		{"error template over the error", ok(func(in *DynamicInput) {
			in.ErrorResponseTemplate = `{"order": {"error": "{{ .error }}", "status": {{ .status }}, "code": {{ json (index . "result.code") }}}}`
		}), nil},
		{"error template reads request_data", ok(func(in *DynamicInput) {
			in.ErrorResponseTemplate = `{"order": {"order_id": "{{ .request.order.order_id }}"}}`
			in.RequestData = raw(tipOrder)
		}), nil},
		{"error template too long", ok(func(in *DynamicInput) { in.ErrorResponseTemplate = strings.Repeat("x", 32<<10+1) }),
			[]want{{"/error_response_template", "is longer than 32768 bytes"}}},
		{"several members at once", DynamicInput{
			EventName: "a/b", URL: "ftp://merchant.example.com/", Secret: "x", Timeout: time.Hour,
			FieldsUpdate: FieldSet{Fields: []string{""}}, ResponseBody: FieldSet{CustomFields: []string{"."}},
			RequestData: raw(`1`), ResponseData: raw(`{`), ResponseTemplate: `{{`, ErrorResponseTemplate: `{{ end }}`,
		}, []want{
			{"/event_name", ""}, {"/url", ""}, {"/fields_update/fields/0", ""}, {"/response_body/custom_fields/0", ""},
			{"/secret", ""}, {"/timeout", ""}, {"/request_data", ""}, {"/response_data", ""},
			{"/response_template", "does not parse"}, {"/error_response_template", "does not parse"},
		}},
		{"a fields_update path that cannot be merged into request_data", ok(func(in *DynamicInput) {
			in.RequestData = raw(`{"order":{"total":"10.10"}}`)
			in.ResponseData = raw(tipReply)
			in.ResponseTemplate = `{"order":{"total":{"amount":"11.30"}}}`
			in.FieldsUpdate = FieldSet{Fields: []string{"total.amount"}}
		}), []want{{"/fields_update", "cannot be merged into request_data: total is not an object"}}},
		{"templates are rendered only once the members are valid", ok(func(in *DynamicInput) {
			in.EventName = ""
			in.ResponseTemplate = `{"x": 1}`
			in.ResponseData = raw(tipReply)
		}), []want{{"/event_name", ""}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ct, ve := s.checkDynamic(&c.in)
			if len(c.want) == 0 {
				if ve != nil {
					t.Fatalf("refused: %v", ve)
				}
				if ct == nil {
					t.Fatal("no templates returned")
				}
				if (ct.response != nil) != (c.in.ResponseTemplate != "") || (ct.errors != nil) != (c.in.ErrorResponseTemplate != "") {
					t.Errorf("templates %+v for %q and %q", ct, c.in.ResponseTemplate, c.in.ErrorResponseTemplate)
				}
				return
			}
			if ve == nil {
				t.Fatalf("accepted, want %v", c.want)
			}
			if ct != nil {
				t.Error("templates returned with a validation error")
			}
			var got []string
			for _, f := range ve.Fields {
				got = append(got, f.Pointer)
				if f.Message == "" || strings.ContainsAny(f.Message, "\r\n") {
					t.Errorf("%s: message %q", f.Pointer, f.Message)
				}
			}
			var ptrs []string
			for _, w := range c.want {
				if len(ptrs) == 0 || ptrs[len(ptrs)-1] != w.ptr {
					ptrs = append(ptrs, w.ptr)
				}
			}
			if !slices.Equal(got, ptrs) {
				t.Fatalf("pointers %q, want %q (%v)", got, ptrs, ve)
			}
			for _, w := range c.want {
				i := slices.Index(got, w.ptr)
				if !strings.Contains(ve.Fields[i].Message, w.msg) {
					t.Errorf("%s: message %q, want it to hold %q", w.ptr, ve.Fields[i].Message, w.msg)
				}
			}
		})
	}
}

// TestDynamicTemplatesBounded: a merchant's templates are not trusted as
// the operator's are (docs/dynamic.md, Safety: "each render stops after
// 100 ms or 1 MiB of output ... never a hung request"). A template that
// loops without output is refused at registration within a bounded time,
// one whose output is larger than 1 MiB is refused, and one that loops
// over the merchant's answer fails that execution (502) instead of
// holding the request and a CPU for as long as it loops.
func TestDynamicTemplatesBounded(t *testing.T) {
	s := testSettings(t, newSealKey(t))
	// within runs f and fails the test when it has not returned after d:
	// a hang, not a slow run.
	within := func(t *testing.T, d time.Duration, what string, f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() {
			defer close(done)
			f()
		}()
		select {
		case <-done:
		case <-time.After(d):
			t.Fatalf("%s did not end within %v: a merchant's template holds a CPU of every node for as long as it loops "+
				"(registry/dynamic.go TemplateLimits)", what, d)
		}
	}
	check := func(t *testing.T, tmpl, what string) {
		t.Helper()
		in := DynamicInput{EventName: "tip", URL: "https://merchant.example.com/tip",
			ResponseTemplate: tmpl, ResponseData: json.RawMessage(`{"items":[1]}`)}
		var ve *ValidationError
		within(t, 5*time.Second, "checking "+what, func() { _, ve = s.checkDynamic(&in) })
		if ve == nil || ve.Fields[0].Pointer != "/response_template" {
			t.Fatalf("%s: %v, want a 422 on /response_template", what, ve)
		}
	}
	t.Run("loop without output", func(t *testing.T) {
		check(t, `{"order":{}}{{ range 1000000000000 }}{{ end }}`, "a template that loops 10^12 times")
	})
	t.Run("output over 1 MiB", func(t *testing.T) {
		check(t, `{"order":{"x":"{{ range 120000 }}0123456789{{ end }}"}}`, "a template whose output is 1.2 MB")
	})
	t.Run("loop over the merchant's answer", func(t *testing.T) {
		e := openDynEnv(t)
		d := e.node(t, s)
		items := strings.Repeat("1,", 4000) + "1"
		m := newMerchant(t, answerJSON(200, `{"items":[`+items+`]}`))
		in := DynamicInput{EventName: "loop", URL: m.URL, ResponseData: json.RawMessage(`{"items":[1]}`),
			ResponseTemplate: `{"order":{}}{{ range .result.items }}{{ range $.result.items }}{{ range $.result.items }}{{ end }}{{ end }}{{ end }}`}
		if _, _, _, err := d.Register(context.Background(), "kfc-web", in); err != nil {
			t.Fatal(err)
		}
		var ex *Execution
		within(t, 5*time.Second, "an execution looping 6.4*10^10 times over the merchant's answer", func() {
			ex = mustExecute(t, d, "kfc-web", "loop", tipOrder)
		})
		if ex.Status != http.StatusBadGateway {
			t.Fatalf("status %d, want 502", ex.Status)
		}
	})
}

// TestMergeOrder: only the paths of fields_update are merged into the
// request's order, fields relative to the order and custom_fields to its
// custom_fields; whatever else the rendered order holds is dropped.
func TestMergeOrder(t *testing.T) {
	cases := []struct {
		name              string
		order, rendered   string
		update            FieldSet
		want              string // the order after the merge
		err               string // held by the error, when it fails
		renderedUnchanged bool
	}{
		{name: "listed path set, others dropped",
			order:    `{"order_id":"A1","total":"10.10","payment_method":"CARD"}`,
			rendered: `{"order_id":"X","total":"11.30","payment_method":"CASH","extra":true}`,
			update:   FieldSet{Fields: []string{"total"}},
			want:     `{"order_id":"A1","total":"11.30","payment_method":"CARD"}`},
		{name: "nothing listed",
			order: `{"total":"10.10"}`, rendered: `{"total":"1","custom_fields":{"tip":"1"}}`,
			want: `{"total":"10.10"}`},
		{name: "listed path the rendered order does not have is skipped",
			order: `{"total":"10.10"}`, rendered: `{"order_id":"X"}`,
			update: FieldSet{Fields: []string{"total", "order_id"}},
			want:   `{"total":"10.10","order_id":"X"}`},
		{name: "listed path null in the rendered order is set null",
			order: `{"total":"10.10","coupon":"C1"}`, rendered: `{"coupon":null}`,
			update: FieldSet{Fields: []string{"coupon"}},
			want:   `{"total":"10.10","coupon":null}`},
		{name: "a new member",
			order: `{}`, rendered: `{"discount":{"amount":"1.00"}}`,
			update: FieldSet{Fields: []string{"discount"}},
			want:   `{"discount":{"amount":"1.00"}}`},
		{name: "nested path keeps its siblings",
			order:    `{"shipping":{"address":{"city":"Quito","street":"Av. 1"},"cost":"2"}}`,
			rendered: `{"shipping":{"address":{"city":"Guayaquil","street":"X"},"cost":"9"}}`,
			update:   FieldSet{Fields: []string{"shipping.address.city"}},
			want:     `{"shipping":{"address":{"city":"Guayaquil","street":"Av. 1"},"cost":"2"}}`},
		{name: "nested path makes the objects missing on the way",
			order: `{"shipping":null}`, rendered: `{"shipping":{"address":{"city":"Quito"}}}`,
			update: FieldSet{Fields: []string{"shipping.address.city"}},
			want:   `{"shipping":{"address":{"city":"Quito"}}}`},
		{name: "nested path through a scalar of the order",
			order: `{"shipping":"none"}`, rendered: `{"shipping":{"address":{"city":"Quito"}}}`,
			update: FieldSet{Fields: []string{"shipping.address.city"}},
			err:    "shipping is not an object"},
		{name: "nested path through a scalar of the rendered order is skipped",
			order: `{"shipping":{"cost":"2"}}`, rendered: `{"shipping":"x"}`,
			update: FieldSet{Fields: []string{"shipping.cost"}},
			want:   `{"shipping":{"cost":"2"}}`},
		{name: "an array is replaced whole, not indexed",
			order: `{"items":[{"sku":"A"}]}`, rendered: `{"items":[{"sku":"B"}]}`,
			update: FieldSet{Fields: []string{"items.0.sku"}},
			want:   `{"items":[{"sku":"A"}]}`},
		{name: "custom field set",
			order:    `{"total":"10.10","custom_fields":{"note":"n"}}`,
			rendered: `{"total":"11.30","custom_fields":{"tip":"1.20","business_id":"b"}}`,
			update:   FieldSet{Fields: []string{"total"}, CustomFields: []string{"tip"}},
			want:     `{"total":"11.30","custom_fields":{"note":"n","tip":"1.20"}}`},
		{name: "custom field, custom_fields absent in the order",
			order: `{"total":"10.10"}`, rendered: `{"custom_fields":{"tip":"1.20"}}`,
			update: FieldSet{CustomFields: []string{"tip"}},
			want:   `{"total":"10.10","custom_fields":{"tip":"1.20"}}`},
		{name: "custom field, custom_fields null in the order",
			order: `{"custom_fields":null}`, rendered: `{"custom_fields":{"tip":"1.20"}}`,
			update: FieldSet{CustomFields: []string{"tip"}},
			want:   `{"custom_fields":{"tip":"1.20"}}`},
		{name: "custom field, custom_fields not an object in the order",
			order: `{"custom_fields":"x"}`, rendered: `{"custom_fields":{"tip":"1.20"}}`,
			update: FieldSet{CustomFields: []string{"tip"}},
			err:    "the order's custom_fields is not an object"},
		{name: "custom field the rendered order does not have leaves custom_fields absent",
			order: `{"total":"10.10"}`, rendered: `{"custom_fields":{"other":"1"}}`,
			update: FieldSet{CustomFields: []string{"tip"}},
			want:   `{"total":"10.10"}`},
		{name: "custom field, rendered without custom_fields",
			order: `{"custom_fields":"x"}`, rendered: `{"tip":"1.20"}`,
			update: FieldSet{CustomFields: []string{"tip"}},
			want:   `{"custom_fields":"x"}`},
		{name: "custom field, rendered custom_fields not an object",
			order: `{"custom_fields":{}}`, rendered: `{"custom_fields":["tip"]}`,
			update: FieldSet{CustomFields: []string{"tip"}},
			want:   `{"custom_fields":{}}`},
		{name: "a field is not a custom field",
			order: `{"custom_fields":{}}`, rendered: `{"tip":"1.20","custom_fields":{"total":"9"}}`,
			update: FieldSet{Fields: []string{"tip"}, CustomFields: []string{"total"}},
			want:   `{"tip":"1.20","custom_fields":{"total":"9"}}`},
		{name: "nested custom field",
			order:    `{"custom_fields":{"loyalty":{"points":10,"tier":"gold"}}}`,
			rendered: `{"custom_fields":{"loyalty":{"points":25,"tier":"none"}}}`,
			update:   FieldSet{CustomFields: []string{"loyalty.points"}},
			want:     `{"custom_fields":{"loyalty":{"points":25,"tier":"gold"}}}`},
		{name: "nested custom field through a scalar",
			order: `{"custom_fields":{"loyalty":5}}`, rendered: `{"custom_fields":{"loyalty":{"points":25}}}`,
			update: FieldSet{CustomFields: []string{"loyalty.points"}},
			err:    "custom_fields: loyalty is not an object"},
		{name: "custom_fields listed as a field",
			order: `{"custom_fields":{"a":"1"}}`, rendered: `{"custom_fields":{"b":"2"}}`,
			update: FieldSet{Fields: []string{"custom_fields.b"}},
			want:   `{"custom_fields":{"a":"1","b":"2"}}`},
		{name: "big numbers kept as written",
			order: `{"total":1}`, rendered: `{"total":123456789012345678901234567890.10}`,
			update: FieldSet{Fields: []string{"total"}},
			want:   `{"total":123456789012345678901234567890.10}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			order := decodeObject(t, c.order)
			rendered := decodeObject(t, c.rendered)
			err := MergeOrder(order, rendered, c.update)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one holding %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(order, decodeObject(t, c.want)) {
				got, _ := json.Marshal(order)
				t.Fatalf("merged order %s, want %s", got, c.want)
			}
		})
	}
}

func decodeObject(t testing.TB, s string) map[string]any {
	t.Helper()
	v, err := transform.DecodeJSON([]byte(s))
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is not an object", s)
	}
	return m
}

// TestReduceOrder: the answer holds only the paths of response_body, or
// the whole order when it lists none.
func TestReduceOrder(t *testing.T) {
	const order = `{"order_id":"A1","total":"11.30","payment_method":"CARD","shipping":{"city":"Quito","cost":"2"},` +
		`"items":[{"sku":"A"},{"sku":"B"}],"custom_fields":{"tip":"1.20","note":"n","loyalty":{"points":25}}}`
	cases := []struct {
		name    string
		order   string
		respond FieldSet
		want    string
	}{
		{"empty: the whole order", order, FieldSet{}, `{"order":` + compactJSON(t, order) + `}`},
		{"empty lists: the whole order", `{"b":1,"a":2}`, FieldSet{Fields: []string{}, CustomFields: []string{}}, `{"order":{"a":2,"b":1}}`},
		{"the seed's answer", order, FieldSet{Fields: []string{"order_id", "total"}, CustomFields: []string{"tip"}},
			`{"order":{"custom_fields":{"tip":"1.20"},"order_id":"A1","total":"11.30"}}`},
		{"nested paths", order, FieldSet{Fields: []string{"shipping.city"}, CustomFields: []string{"loyalty.points"}},
			`{"order":{"custom_fields":{"loyalty":{"points":25}},"shipping":{"city":"Quito"}}}`},
		{"an array element", order, FieldSet{Fields: []string{"items.1.sku"}}, `{"order":{"items":[null,{"sku":"B"}]}}`},
		{"a path missing is skipped", order, FieldSet{Fields: []string{"total", "discount", "shipping.zip"}},
			`{"order":{"total":"11.30"}}`},
		{"every path missing", order, FieldSet{Fields: []string{"discount"}, CustomFields: []string{"nope"}}, `{"order":{}}`},
		{"custom field, no custom_fields", `{"total":"1"}`, FieldSet{Fields: []string{"total"}, CustomFields: []string{"tip"}},
			`{"order":{"total":"1"}}`},
		{"custom field, custom_fields null", `{"custom_fields":null}`, FieldSet{CustomFields: []string{"tip"}}, `{"order":{}}`},
		{"null kept", `{"coupon":null}`, FieldSet{Fields: []string{"coupon"}}, `{"order":{"coupon":null}}`},
		{"a whole custom_fields as a field", order, FieldSet{Fields: []string{"custom_fields"}, CustomFields: []string{"tip"}},
			`{"order":{"custom_fields":{"loyalty":{"points":25},"note":"n","tip":"1.20"}}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := ReduceOrder(decodeObject(t, c.order), c.respond)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != c.want {
				t.Fatalf("answer %s, want %s", out, c.want)
			}
		})
	}
}

// compactJSON is s as the answers write it: compact, keys sorted.
func compactJSON(t testing.TB, s string) string {
	t.Helper()
	b, err := json.Marshal(decodeObject(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestShapeOrderSeedExample: CONTRACT.md's worked example, from the
// template's output to the answer.
func TestShapeOrderSeedExample(t *testing.T) {
	shape := shapeOrder(FieldSet{Fields: []string{"total"}, CustomFields: []string{"tip"}},
		FieldSet{Fields: []string{"order_id", "total"}, CustomFields: []string{"tip"}})
	request, _ := transform.DecodeJSON([]byte(tipOrder))
	out, err := shape([]byte(`{"order":{"order_id":"A1","total":"11.30","payment_method":"CASH","custom_fields":{"tip":"1.20","business_id":"b"}}}`), request)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"order":{"custom_fields":{"tip":"1.20"},"order_id":"A1","total":"11.30"}}`; string(out) != want {
		t.Fatalf("answer %s, want %s", out, want)
	}
	for _, bad := range []string{`{"x":1}`, `{"order":[1]}`, `[]`, `nope`} {
		if _, err := shape([]byte(bad), request); err == nil {
			t.Errorf("the rendered %s was shaped", bad)
		}
	}
	if _, err := shape([]byte(`{"order":{}}`), map[string]any{"x": 1}); err == nil {
		t.Error("a request without an order was shaped")
	}
}

// TestDynamicRegister: registration, replacement (by event name, the
// signing secret kept), reading, listing, deletion and the per-merchant
// limit, over a real bucket; merchants never see each other's webhooks.
func TestDynamicRegister(t *testing.T) {
	s := testSettings(t, newSealKey(t))
	s.MaxPerTenant = 2
	e := openDynEnv(t)
	d := e.node(t, s)
	m := newMerchant(t, answerJSON(200, tipReply))
	ctx := context.Background()

	in := tipInput(m.URL + "/tip")
	in.Authorization = &Authorization{AuthType: AuthAPIKey, Headers: Pairs{{"API-KEY", "merchant-api-key-never-stored-in-clear"}}}
	in.Headers = Pairs{{"X-Shop", "shop-header-never-stored-in-clear"}}
	w, secret, created, err := d.Register(ctx, "kfc-web", in)
	if err != nil {
		t.Fatal(err)
	}
	if !created || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("created %v, secret %q", created, secret)
	}
	if w.Merchant != "kfc-web" || w.EventName != "tip" || w.URL != in.URL || time.Duration(w.Timeout) != DefaultDynamicTimeout ||
		w.Auth == nil || w.Auth.AuthType != AuthAPIKey || !slices.Equal(w.Auth.HeaderNames, []string{"API-KEY"}) ||
		!slices.Equal(w.HeaderNames, []string{"X-Shop"}) || w.CreatedAt.IsZero() || !w.CreatedAt.Equal(w.UpdatedAt) {
		t.Fatalf("registered %+v", w)
	}
	got, err := d.Get("kfc-web", "tip")
	if err != nil || got.URL != in.URL || !slices.Equal(got.FieldsUpdate.Fields, []string{"total"}) {
		t.Fatalf("get: %+v, %v", got, err)
	}
	// Stored sealed: the bucket holds no credential nor the secret.
	entry, err := e.kv.Get(ctx, dynKey("kfc-web", "tip"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"merchant-api-key-never-stored-in-clear", "shop-header-never-stored-in-clear", secret} {
		if bytes.Contains(entry.Value(), []byte(v)) {
			t.Errorf("the bucket holds %q in clear", v)
		}
	}
	// The merchant is called with the credentials, signed with the secret.
	ex := mustExecute(t, d, "kfc-web", "tip", tipOrder)
	if ex.Status != 200 {
		t.Fatalf("execute: %d %s %s", ex.Status, ex.Body, ex.Detail)
	}
	verifyAnswer(t, ex, secret)
	h, body := m.last(t)
	if h.Get("API-KEY") != "merchant-api-key-never-stored-in-clear" || h.Get("X-Shop") != "shop-header-never-stored-in-clear" {
		t.Errorf("the merchant's call lacks its credentials: %v", h)
	}
	if string(body) != tipOrder {
		t.Errorf("the merchant got %s, want the execute body %s", body, tipOrder)
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	if err := wh.Verify(body, h); err != nil {
		t.Errorf("the merchant's call does not verify with the secret: %v", err)
	}

	// The same event name replaces it, keeping the secret and created_at.
	in2 := tipInput(m.URL + "/tip-v2")
	in2.ResponseBody = FieldSet{Fields: []string{"total"}}
	w2, secret2, created, err := d.Register(ctx, "kfc-web", in2)
	if err != nil {
		t.Fatal(err)
	}
	if created || secret2 != "" {
		t.Fatalf("a replacement: created %v, secret %q", created, secret2)
	}
	if !w2.CreatedAt.Equal(w.CreatedAt) || w2.UpdatedAt.Before(w.UpdatedAt) || w2.URL != in2.URL || w2.Auth != nil || len(w2.HeaderNames) != 0 {
		t.Fatalf("replaced: %+v (was %+v)", w2, w)
	}
	ex = mustExecute(t, d, "kfc-web", "tip", tipOrder)
	if ex.Status != 200 || string(ex.Body) != `{"order":{"total":"11.30"}}` {
		t.Fatalf("after the replacement: %d %s", ex.Status, ex.Body)
	}
	verifyAnswer(t, ex, secret)
	if h, _ := m.last(t); h.Get("API-KEY") != "" {
		t.Errorf("the replacement without authorization still sends the old one")
	}
	// A replacement with its own secret signs with it.
	own := "whsec_" + strings.Repeat("QUJD", 8)
	in2.Secret = own
	if _, shown, _, err := d.Register(ctx, "kfc-web", in2); err != nil || shown != "" {
		t.Fatalf("replacing with a secret: %q %v", shown, err)
	}
	verifyAnswer(t, mustExecute(t, d, "kfc-web", "tip", tipOrder), own)

	// Another merchant, same event name: its own webhook.
	if _, _, created, err := d.Register(ctx, "kfc-ve", tipInput(m.URL+"/ve")); err != nil || !created {
		t.Fatalf("another merchant's tip: %v %v", created, err)
	}
	if got, _ := d.Get("kfc-web", "tip"); got.URL != in2.URL {
		t.Errorf("another merchant's registration changed this one's: %s", got.URL)
	}

	// The limit: 2 per merchant; a replacement at the limit is fine.
	other := tipInput(m.URL)
	other.EventName = "tax"
	if _, _, _, err := d.Register(ctx, "kfc-web", other); err != nil {
		t.Fatal(err)
	}
	other.EventName = "points"
	if _, _, _, err := d.Register(ctx, "kfc-web", other); !errors.Is(err, ErrLimit) {
		t.Fatalf("a third webhook: %v, want ErrLimit", err)
	}
	other.EventName = "tax"
	if _, _, created, err := d.Register(ctx, "kfc-web", other); err != nil || created {
		t.Fatalf("a replacement at the limit: %v %v", created, err)
	}
	if l := eventNames(d.List("kfc-web")); !slices.Equal(l, []string{"tax", "tip"}) {
		t.Fatalf("list %v", l)
	}
	if l := eventNames(d.List("kfc-ve")); !slices.Equal(l, []string{"tip"}) {
		t.Fatalf("the other merchant lists %v", l)
	}
	if l := d.List("nobody"); len(l) != 0 {
		t.Fatalf("a merchant without webhooks lists %v", l)
	}
	if d.Len() != 3 {
		t.Errorf("Len %d, want 3", d.Len())
	}

	// Delete: gone for this merchant only, and room for another one.
	if _, err := d.Delete(ctx, "kfc-ve", "tax"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting another merchant's event name: %v", err)
	}
	dw, err := d.Delete(ctx, "kfc-web", "tip")
	if err != nil || dw.EventName != "tip" {
		t.Fatalf("delete: %v %v", dw, err)
	}
	if _, err := d.Get("kfc-web", "tip"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := execute(t, d, "kfc-web", "tip", tipOrder); !errors.Is(err, ErrNotFound) {
		t.Fatalf("execute after delete: %v", err)
	}
	if _, err := d.Delete(ctx, "kfc-web", "tip"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
	if _, err := d.Get("kfc-ve", "tip"); err != nil {
		t.Fatalf("the other merchant's tip went with it: %v", err)
	}
	other.EventName = "points"
	if _, _, created, err := d.Register(ctx, "kfc-web", other); err != nil || !created {
		t.Fatalf("after a delete there is room: %v %v", created, err)
	}
	if _, _, _, err := d.Register(ctx, "kfc-web", tipInput(m.URL)); !errors.Is(err, ErrLimit) {
		t.Fatalf("at the limit again: %v", err)
	}

	// Refusals.
	var ve *ValidationError
	if _, _, _, err := d.Register(ctx, "a/b", tipInput(m.URL)); !errors.As(err, &ve) || ve.Fields[0].Pointer != "/merchant_id" {
		t.Fatalf("merchant a/b: %v", err)
	}
	if _, _, _, err := d.Register(ctx, "", tipInput(m.URL)); !errors.As(err, &ve) || ve.Fields[0].Pointer != "/merchant_id" {
		t.Fatalf("merchant \"\": %v", err)
	}
	bad := tipInput(m.URL)
	bad.EventName = "no spaces"
	if _, _, _, err := d.Register(ctx, "kfc-web", bad); !errors.As(err, &ve) || ve.Fields[0].Pointer != "/event_name" {
		t.Fatalf("bad event name: %v", err)
	}
}

func eventNames(l []*DynamicWebhook) []string {
	out := make([]string, len(l))
	for i, w := range l {
		out[i] = w.EventName
	}
	return out
}

// TestDynamicExecute: executions against a real merchant, every way it
// can answer.
func TestDynamicExecute(t *testing.T) {
	s := testSettings(t, newSealKey(t))
	e := openDynEnv(t)
	d := e.node(t, s)
	m := newMerchant(t, answerJSON(200, tipReply))
	ctx := context.Background()
	register := func(in DynamicInput) string {
		t.Helper()
		_, secret, _, err := d.Register(ctx, "kfc-web", in)
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	const errTemplate = `{"order": {"error": "{{ .error }}", "status": {{ .status }}, "code": {{ json (index . "result.code") }}, "order_id": "{{ .request.order.order_id }}"}}`
	withErr := tipInput(m.URL)
	withErr.ErrorResponseTemplate = errTemplate
	secret := register(withErr)
	plain := tipInput(m.URL)
	plain.EventName = "plain"
	plainSecret := register(plain)
	bare := DynamicInput{EventName: "bare", URL: m.URL, FieldsUpdate: FieldSet{Fields: []string{"total"}},
		ResponseBody: FieldSet{Fields: []string{"total"}}}
	register(bare)
	short := tipInput(m.URL)
	short.EventName = "short"
	short.Timeout = 200 * time.Millisecond
	register(short)

	hang := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}
	cases := []struct {
		name   string
		event  string
		reply  func(w http.ResponseWriter, r *http.Request)
		body   string
		status int
		answer string // the body; "" with detail: the envelope's detail
		detail string
	}{
		{"success", "tip", answerJSON(200, tipReply), tipOrder, 200,
			`{"order":{"custom_fields":{"tip":"1.20"},"order_id":"A1","total":"11.30"}}`, ""},
		{"success, 201", "tip", answerJSON(201, tipReply), tipOrder, 200,
			`{"order":{"custom_fields":{"tip":"1.20"},"order_id":"A1","total":"11.30"}}`, ""},
		{"success, custom_fields absent in the order", "tip", answerJSON(200, tipReply), `{"order":{"order_id":"B2","total":"1"}}`, 200,
			`{"order":{"custom_fields":{"tip":"1.20"},"order_id":"B2","total":"11.30"}}`, ""},
		{"reply misses a key of the template", "tip", answerJSON(200, `{"uuid":"u-1"}`), tipOrder, 502,
			`{"order":{"error":"reply does not fit the response template","status":200,"code":null,"order_id":"A1"}}`, ""},
		{"reply misses a key, no error template", "plain", answerJSON(200, `{"uuid":"u-1"}`), tipOrder, 502, "",
			"The destination's reply could not be transformed."},
		{"merchant 4xx through the error template", "tip", answerJSON(422, `{"code":"NO_TIP"}`), tipOrder, 422,
			`{"order":{"error":"HTTP 422 Unprocessable Entity","status":422,"code":"NO_TIP","order_id":"A1"}}`, ""},
		{"merchant 4xx, no error template: its JSON", "plain", answerJSON(409, `{ "code" : "TAKEN" }`), tipOrder, 409,
			`{"code":"TAKEN"}`, ""},
		{"merchant 4xx, no error template, not JSON", "plain", answerJSON(404, `not found`), tipOrder, 404, "",
			"The destination answered 404 Not Found."},
		{"merchant 5xx through the error template", "tip", answerJSON(500, `{"code":"DOWN"}`), tipOrder, 502,
			`{"order":{"error":"HTTP 500 Internal Server Error","status":500,"code":"DOWN","order_id":"A1"}}`, ""},
		{"merchant 5xx, no error template", "plain", answerJSON(503, `{"code":"DOWN"}`), tipOrder, 502, "",
			"The destination answered 503 Service Unavailable."},
		{"merchant 3xx", "plain", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(304) }, tipOrder, 502, "",
			"The destination answered 304 Not Modified."},
		{"reply not JSON", "tip", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "<html>ok</html>") }, tipOrder, 502,
			`{"order":{"error":"invalid JSON reply","status":200,"code":null,"order_id":"A1"}}`, ""},
		{"reply not JSON, no error template", "plain", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }, tipOrder, 502, "",
			"The destination's reply is not JSON."},
		{"empty reply", "plain", func(w http.ResponseWriter, r *http.Request) {}, tipOrder, 502, "",
			"The destination's reply is not JSON."},
		{"no template: the merchant answers an order", "bare", answerJSON(200, `{"order":{"total":"12.00","order_id":"Z"}}`), tipOrder, 200,
			`{"order":{"total":"12.00"}}`, ""},
		{"no template: the merchant answers no order", "bare", answerJSON(200, tipReply), tipOrder, 502, "",
			"The destination's reply could not be transformed."},
		{"the request's custom_fields not an object", "tip", answerJSON(200, tipReply), `{"order":{"order_id":"A1","custom_fields":"x"}}`, 502,
			`{"order":{"error":"reply does not fit the response template","status":200,"code":null,"order_id":"A1"}}`, ""},
		{"merchant hangs: 504 after the webhook's timeout", "short", hang, tipOrder, 504, "",
			"The destination did not answer within 200ms."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m.set(c.reply)
			start := time.Now()
			ex := mustExecute(t, d, "kfc-web", c.event, c.body)
			if ex.Status != c.status {
				t.Fatalf("status %d, want %d (%s %s)", ex.Status, c.status, ex.Body, ex.Detail)
			}
			if c.answer != "" {
				if string(ex.Body) != c.answer {
					t.Fatalf("answer %s, want %s", ex.Body, c.answer)
				}
				if !json.Valid(ex.Body) {
					t.Fatalf("answer %s is not JSON", ex.Body)
				}
			} else if ex.Body != nil || ex.Detail != c.detail {
				t.Fatalf("answer %s, detail %q; want the envelope with %q", ex.Body, ex.Detail, c.detail)
			}
			if c.status == 504 && time.Since(start) > 5*time.Second {
				t.Errorf("the 504 took %v, the webhook's timeout is 200ms", time.Since(start))
			}
			if ex.ID != "msg_test" {
				t.Errorf("execution id %q", ex.ID)
			}
			switch c.event {
			case "plain":
				if ex.Body != nil {
					verifyAnswer(t, ex, plainSecret)
				}
			case "tip":
				verifyAnswer(t, ex, secret)
			}
		})
	}

	if _, err := execute(t, d, "kfc-web", "unknown", tipOrder); !errors.Is(err, ErrNotFound) {
		t.Errorf("an unknown event name: %v", err)
	}
	if _, err := execute(t, d, "kfc-ve", "tip", tipOrder); !errors.Is(err, ErrNotFound) {
		t.Errorf("another merchant's event name: %v", err)
	}

	// A merchant that cannot be reached: 502.
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	down := tipInput(gone.URL)
	down.EventName = "down"
	register(down)
	ex := mustExecute(t, d, "kfc-web", "down", tipOrder)
	if ex.Status != 502 || ex.Detail != "The destination could not be reached." {
		t.Errorf("unreachable: %d %s %q", ex.Status, ex.Body, ex.Detail)
	}
	// The caller gone: Execute returns without waiting for the merchant.
	m.set(hang)
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	v, _ := transform.DecodeJSON([]byte(tipOrder))
	start := time.Now()
	if _, err := d.Execute(cctx, "kfc-web", "tip", "msg_gone", []byte(tipOrder), v.(map[string]any)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("an execution whose caller left took %v", took)
	}
}

// TestDynamicSeedExamples: CONTRACT.md's worked example (KFC Web adds the
// tip to the total) and KFC Venezuela's 3% tax on cash, registered and
// executed against a merchant, with the templates' decimal arithmetic.
func TestDynamicSeedExamples(t *testing.T) {
	const tipTmpl = `{
  "order": {
    "order_id": {{ json .request.order.order_id }},
    "total": "{{ add .request.order.total .result.tip }}",
    "custom_fields": {"tip": {{ json .result.tip }}}
  }
}`
	const taxTmpl = `{{- $order := .request.order -}}
{{- $total := $order.total -}}
{{- $tax := "0.00" -}}
{{- if eq (default "" $order.payment_method) "CASH" -}}
  {{- $tax = round (mul $order.total 0.03) 2 -}}
  {{- $total = add $order.total $tax -}}
{{- end -}}
{"order": {"order_id": {{ json $order.order_id }}, "total": "{{ $total }}", "custom_fields": {"tax": "{{ $tax }}"}}}`
	s := testSettings(t, newSealKey(t))
	d := openDynEnv(t).node(t, s)
	m := newMerchant(t, answerJSON(200, `{"uuid":"u-1","tip":"1.20"}`))
	ctx := context.Background()
	_, tipSecret, _, err := d.Register(ctx, "kfc-web", DynamicInput{EventName: "tip", URL: m.URL,
		FieldsUpdate:     FieldSet{Fields: []string{"total"}, CustomFields: []string{"tip"}},
		ResponseBody:     FieldSet{Fields: []string{"order_id", "total"}, CustomFields: []string{"tip"}},
		ResponseTemplate: tipTmpl, ResponseData: json.RawMessage(`{"uuid":"u-1","tip":"1.20"}`), RequestData: json.RawMessage(tipOrder)})
	if err != nil {
		t.Fatal(err)
	}
	ex := mustExecute(t, d, "kfc-web", "tip", `{"order":{"order_id":"A1","total":"10.10","payment_method":"CARD","custom_fields":{}}}`)
	if want := `{"order":{"custom_fields":{"tip":"1.20"},"order_id":"A1","total":"11.30"}}`; ex.Status != 200 || string(ex.Body) != want {
		t.Fatalf("KFC Web: %d %s %s, want %s", ex.Status, ex.Body, ex.Detail, want)
	}
	verifyAnswer(t, ex, tipSecret)

	if _, _, _, err := d.Register(ctx, "kfc-ve", DynamicInput{EventName: "tax", URL: m.URL,
		FieldsUpdate:     FieldSet{Fields: []string{"total"}, CustomFields: []string{"tax"}},
		ResponseBody:     FieldSet{Fields: []string{"order_id", "total"}, CustomFields: []string{"tax"}},
		ResponseTemplate: taxTmpl, ResponseData: json.RawMessage(`{}`), RequestData: json.RawMessage(tipOrder)}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ order, want string }{
		{`{"order":{"order_id":"V1","total":"100.00","payment_method":"CASH"}}`,
			`{"order":{"custom_fields":{"tax":"3.00"},"order_id":"V1","total":"103.00"}}`},
		{`{"order":{"order_id":"V2","total":"10.55","payment_method":"CASH","custom_fields":{"note":"n"}}}`,
			`{"order":{"custom_fields":{"tax":"0.32"},"order_id":"V2","total":"10.87"}}`},
		{`{"order":{"order_id":"V3","total":"100.00","payment_method":"CARD"}}`,
			`{"order":{"custom_fields":{"tax":"0.00"},"order_id":"V3","total":"100.00"}}`},
	} {
		ex := mustExecute(t, d, "kfc-ve", "tax", c.order)
		if ex.Status != 200 || string(ex.Body) != c.want {
			t.Errorf("KFC Venezuela over %s: %d %s %s, want %s", c.order, ex.Status, ex.Body, ex.Detail, c.want)
		}
	}
}

// TestDynamicTwoNodes: two nodes on one bucket. A webhook registered on
// one runs on the other within a second; deleted on the other, it is gone
// from the first within a second.
func TestDynamicTwoNodes(t *testing.T) {
	s := testSettings(t, newSealKey(t))
	e := openDynEnv(t)
	a, b := e.node(t, s), e.node(t, s)
	m := newMerchant(t, answerJSON(200, tipReply))
	ctx := context.Background()

	_, secret, _, err := a.Register(ctx, "kfc-web", tipInput(m.URL))
	if err != nil {
		t.Fatal(err)
	}
	registered := time.Now()
	var ex *Execution
	waitFor(t, 10*time.Second, "node b to run the webhook registered on node a", func() bool {
		ex, err = execute(t, b, "kfc-web", "tip", tipOrder)
		return err == nil
	})
	if took := time.Since(registered); took > time.Second {
		t.Errorf("node b ran the webhook %v after node a registered it; the registry promises a second", took)
	}
	if ex.Status != 200 {
		t.Fatalf("node b: %d %s", ex.Status, ex.Body)
	}
	verifyAnswer(t, ex, secret)
	if l := eventNames(b.List("kfc-web")); !slices.Equal(l, []string{"tip"}) {
		t.Errorf("node b lists %v", l)
	}

	// Replaced on b: a runs the replacement, with the same secret.
	in := tipInput(m.URL)
	in.ResponseBody = FieldSet{Fields: []string{"order_id"}}
	w, _, created, err := b.Register(ctx, "kfc-web", in)
	if err != nil || created {
		t.Fatalf("replace on node b: %v %v", created, err)
	}
	waitFor(t, 10*time.Second, "node a to run the replacement", func() bool {
		got, err := a.Get("kfc-web", "tip")
		return err == nil && got.UpdatedAt.Equal(w.UpdatedAt) && slices.Equal(got.ResponseBody.Fields, []string{"order_id"})
	})
	ex = mustExecute(t, a, "kfc-web", "tip", tipOrder)
	if string(ex.Body) != `{"order":{"order_id":"A1"}}` {
		t.Errorf("node a after the replacement: %s", ex.Body)
	}
	verifyAnswer(t, ex, secret)

	// Deleted on b: gone from a.
	if _, err := b.Delete(ctx, "kfc-web", "tip"); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	waitFor(t, 10*time.Second, "node a to drop the webhook deleted on node b", func() bool {
		_, err := execute(t, a, "kfc-web", "tip", tipOrder)
		return errors.Is(err, ErrNotFound)
	})
	if took := time.Since(deleted); took > time.Second {
		t.Errorf("node a dropped the webhook %v after node b deleted it", took)
	}
	if a.Len() != 0 || b.Len() != 0 {
		t.Errorf("Len %d and %d after the delete", a.Len(), b.Len())
	}

	// A node that opens later loads what is stored.
	if _, _, _, err := a.Register(ctx, "kfc-web", tipInput(m.URL)); err != nil {
		t.Fatal(err)
	}
	c := e.node(t, s)
	if _, err := c.Get("kfc-web", "tip"); err != nil {
		t.Fatalf("a node opened after the registration: %v", err)
	}
}

// TestDynamicConcurrentFirstRegistration: the same new event name
// registered at once on two nodes: one registration makes it (201, its
// secret shown), the other replaces it (200), keeping that secret.
func TestDynamicConcurrentFirstRegistration(t *testing.T) {
	s := testSettings(t, newSealKey(t))
	e := openDynEnv(t)
	a, b := e.node(t, s), e.node(t, s)
	m := newMerchant(t, answerJSON(200, tipReply))
	type result struct {
		secret  string
		created bool
		err     error
	}
	results := make(chan result, 2)
	start := make(chan struct{})
	for _, d := range []*Dynamic{a, b} {
		go func() {
			<-start
			_, secret, created, err := d.Register(context.Background(), "kfc-web", tipInput(m.URL))
			results <- result{secret, created, err}
		}()
	}
	close(start)
	var shown []string
	created := 0
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatalf("a concurrent registration failed: %v", r.err)
		}
		if r.created {
			created++
		}
		if r.secret != "" {
			shown = append(shown, r.secret)
		}
	}
	if created != 1 || len(shown) != 1 {
		t.Fatalf("%d registrations made the webhook and %d secrets were shown, want 1 and 1", created, len(shown))
	}
	waitFor(t, 10*time.Second, "both nodes to hold the same registration", func() bool {
		wa, errA := a.Get("kfc-web", "tip")
		wb, errB := b.Get("kfc-web", "tip")
		return errA == nil && errB == nil && wa.UpdatedAt.Equal(wb.UpdatedAt) && bytes.Equal(wa.Sealed, wb.Sealed)
	})
	for _, d := range []*Dynamic{a, b} {
		verifyAnswer(t, mustExecute(t, d, "kfc-web", "tip", tipOrder), shown[0])
	}
}

// TestDynamicBrokenSeal: a webhook whose sealed credentials do not open
// with the configured seal keys is listed but does not run (ErrBroken);
// with the old key back among the keys it runs again.
func TestDynamicBrokenSeal(t *testing.T) {
	key := newSealKey(t)
	s := testSettings(t, key)
	e := openDynEnv(t)
	d := e.node(t, s)
	m := newMerchant(t, answerJSON(200, tipReply))
	_, secret, _, err := d.Register(context.Background(), "kfc-web", tipInput(m.URL))
	if err != nil {
		t.Fatal(err)
	}

	other := testSettings(t, newSealKey(t))
	if err := d.Configure(other); err != nil {
		t.Fatal(err)
	}
	if _, err := execute(t, d, "kfc-web", "tip", tipOrder); !errors.Is(err, ErrBroken) {
		t.Fatalf("with another seal key: %v, want ErrBroken", err)
	}
	if _, err := d.Get("kfc-web", "tip"); err != nil {
		t.Fatalf("a broken webhook is still registered: %v", err)
	}
	if l := d.List("kfc-web"); len(l) != 1 {
		t.Fatalf("a broken webhook is still listed: %v", l)
	}
	// A node started with the other key sees it broken too.
	if _, err := execute(t, e.node(t, other), "kfc-web", "tip", tipOrder); !errors.Is(err, ErrBroken) {
		t.Fatalf("a node with another seal key: %v, want ErrBroken", err)
	}

	// The old key second: it opens again, and signs with the same secret.
	rotated := testSettings(t, key)
	rotated.Sealer, _ = NewSealer(newSealKey(t), key)
	if err := d.Configure(rotated); err != nil {
		t.Fatal(err)
	}
	verifyAnswer(t, mustExecute(t, d, "kfc-web", "tip", tipOrder), secret)
}

// TestDynamicRegisterAgainRepairsBroken: the 503 a broken webhook answers
// says "register it again"; registering it again, without a secret (the
// merchant cannot know the old one is unreadable), must repair it: a new
// secret is made and shown, and the webhook runs.
func TestDynamicRegisterAgainRepairsBroken(t *testing.T) {
	s := testSettings(t, newSealKey(t))
	e := openDynEnv(t)
	d := e.node(t, s)
	m := newMerchant(t, answerJSON(200, tipReply))
	ctx := context.Background()
	if _, _, _, err := d.Register(ctx, "kfc-web", tipInput(m.URL)); err != nil {
		t.Fatal(err)
	}
	if err := d.Configure(testSettings(t, newSealKey(t))); err != nil {
		t.Fatal(err)
	}
	if _, err := execute(t, d, "kfc-web", "tip", tipOrder); !errors.Is(err, ErrBroken) {
		t.Fatalf("with another seal key: %v", err)
	}
	_, secret, _, err := d.Register(ctx, "kfc-web", tipInput(m.URL))
	if err != nil {
		t.Fatalf("registering a broken webhook again: %v; the API answers this as a 500, "+
			"and tells the merchant to do exactly this", err)
	}
	if secret == "" {
		t.Fatal("the broken webhook's secret cannot be read, yet no new one was shown")
	}
	ex := mustExecute(t, d, "kfc-web", "tip", tipOrder)
	verifyAnswer(t, ex, secret)
}

// conflictKV answers the next Updates and Deletes with a revision
// conflict, as the bucket does when another node changed the key
// meanwhile, with the error code of a bucket of replicas (code).
type conflictKV struct {
	jetstream.KeyValue
	code             jetstream.ErrorCode
	updates, deletes atomic.Int32 // conflicts still to answer
}

// mismatch is the error nats.go returns for a revision conflict: the API
// error wrapped with ErrKeyRevisionMismatch (jetstream/kv.go
// mapRevisionMismatch). A replicated (R>1) stream answers code 10164,
// which matches ErrKeyRevisionMismatch but not ErrKeyExists.
func (kv *conflictKV) mismatch() error {
	return fmt.Errorf("%w: %w", &jetstream.APIError{Code: 400, ErrorCode: kv.code, Description: "wrong last sequence"},
		jetstream.ErrKeyRevisionMismatch)
}

func (kv *conflictKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if kv.updates.Add(-1) >= 0 {
		return 0, kv.mismatch()
	}
	return kv.KeyValue.Update(ctx, key, value, rev)
}

func (kv *conflictKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	if kv.deletes.Add(-1) >= 0 {
		return kv.mismatch()
	}
	return kv.KeyValue.Delete(ctx, key, opts...)
}

// TestDynamicRevisionConflict: a replacement that finds the webhook
// changed meanwhile (another node replaced it) tries again, and a delete
// that does answers ErrConflict (409), on a single server's bucket and on
// a cluster's (R3) alike. On R3 nats.go reports the conflict as
// ErrKeyRevisionMismatch (code 10164), which registry/dynamic.go does not
// recognise: it checks only ErrKeyExists, so the replacement fails as
// ErrUnavailable (503) and the delete too.
func TestDynamicRevisionConflict(t *testing.T) {
	for _, c := range []struct {
		name string
		code jetstream.ErrorCode
	}{
		{"R1", jetstream.JSErrCodeStreamWrongLastSequence},
		{"R3", jetstream.JSErrCodeStreamWrongLastSequenceConstant},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := openDynEnv(t)
			kv := &conflictKV{KeyValue: e.kv, code: c.code}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			d, err := OpenDynamic(ctx, kv, testSettings(t, newSealKey(t)), zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if _, _, _, err := d.Register(ctx, "kfc-web", tipInput("https://merchant.example.com/tip")); err != nil {
				t.Fatal(err)
			}
			kv.updates.Store(1)
			in := tipInput("https://merchant.example.com/tip-v2")
			if _, _, created, err := d.Register(ctx, "kfc-web", in); err != nil || created {
				t.Errorf("a replacement that met a conflict once: created %v, %v; want it replaced on the next try", created, err)
			}
			kv.deletes.Store(1)
			if _, err := d.Delete(ctx, "kfc-web", "tip"); !errors.Is(err, ErrConflict) {
				t.Errorf("a delete that met a conflict: %v, want ErrConflict (409)", err)
			}
		})
	}
}
