package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookrelay/hookrelay/registry"
)

// TestDecodeDynamic: a registration body is one strict JSON object (400
// otherwise); every member of the wrong shape, and every unknown one, is
// a 422 naming it by its JSON pointer. response_data and request_data are
// any JSON value or, as the seed types response_data, a string that holds
// JSON.
func TestDecodeDynamic(t *testing.T) {
	const seed = `{
	"event_name": "tip",
	"url": "https://kfc.example.com/tip",
	"fields_update": {"fields": ["total"], "custom_fields": ["tip"]},
	"response_body": {"fields": ["order_id", "total"], "custom_fields": ["tip"]},
	"response_template": "{\"order\": {\"order_id\": \"{{ .result.uuid }}\", \"custom_fields\": {\"tip\": \"{{ .result.tip }}\"}}}",
	"response_data": "{\"uuid\": \"u-1\", \"tip\": \"1.20\"}"
}`
	type want struct {
		status   int      // 0: decoded
		pointers []string // of a 422
		detail   string   // held by the first problem's detail
		check    func(t *testing.T, in registry.DynamicInput)
	}
	cases := []struct {
		name, body string
		want       want
	}{
		{"the seed's body", seed, want{check: func(t *testing.T, in registry.DynamicInput) {
			if in.EventName != "tip" || in.URL != "https://kfc.example.com/tip" ||
				!slices.Equal(in.FieldsUpdate.Fields, []string{"total"}) || !slices.Equal(in.FieldsUpdate.CustomFields, []string{"tip"}) ||
				!slices.Equal(in.ResponseBody.Fields, []string{"order_id", "total"}) || !slices.Equal(in.ResponseBody.CustomFields, []string{"tip"}) ||
				!strings.HasPrefix(in.ResponseTemplate, `{"order": {"order_id": "{{ .result.uuid }}"`) {
				t.Errorf("decoded %+v", in)
			}
			if string(in.ResponseData) != `{"uuid": "u-1", "tip": "1.20"}` {
				t.Errorf("response_data %s: the string's JSON is the sample", in.ResponseData)
			}
			if in.RequestData != nil || in.Timeout != 0 || in.Authorization != nil || in.Headers != nil || in.Secret != "" {
				t.Errorf("absent members decoded as %+v", in)
			}
		}}},
		{"every member", `{"event_name":"tip","url":"https://kfc.example.com/tip","fields_update":null,"response_body":{"fields":null},
			"response_template":null,"error_response_template":"{\"order\":{}}","response_data":{"uuid":"u"},"request_data":{"order":{"total":"1"}},
			"authorization":{"authType":"api-key","headers":[{"API-KEY":"k"}]},"headers":[{"X-Shop":7}],"timeout":"2.5s","secret":null}`,
			want{check: func(t *testing.T, in registry.DynamicInput) {
				if in.ErrorResponseTemplate != `{"order":{}}` || string(in.ResponseData) != `{"uuid":"u"}` ||
					string(in.RequestData) != `{"order":{"total":"1"}}` || in.Timeout != 2500*time.Millisecond ||
					in.Authorization == nil || in.Authorization.AuthType != "api-key" || len(in.Headers) != 1 || in.Headers[0].Value != "7" {
					t.Errorf("decoded %+v", in)
				}
			}}},
		{"request_data a string holding JSON", `{"request_data":"{\"order\":{}}","response_data":"[1, 2]"}`, want{check: func(t *testing.T, in registry.DynamicInput) {
			if string(in.RequestData) != `{"order":{}}` || string(in.ResponseData) != `[1, 2]` {
				t.Errorf("samples %s and %s", in.RequestData, in.ResponseData)
			}
		}}},
		{"a string holding a JSON string", `{"response_data":"\"ok\""}`, want{check: func(t *testing.T, in registry.DynamicInput) {
			if string(in.ResponseData) != `"ok"` {
				t.Errorf("response_data %s", in.ResponseData)
			}
		}}},
		{"samples of every kind", `{"response_data":12.5,"request_data":[true]}`, want{check: func(t *testing.T, in registry.DynamicInput) {
			if string(in.ResponseData) != `12.5` || string(in.RequestData) != `[true]` {
				t.Errorf("samples %s and %s", in.ResponseData, in.RequestData)
			}
		}}},
		{"null samples are absent", `{"response_data":null,"request_data":null}`, want{check: func(t *testing.T, in registry.DynamicInput) {
			if in.ResponseData != nil || in.RequestData != nil {
				t.Errorf("samples %s and %s", in.ResponseData, in.RequestData)
			}
		}}},
		{"timeout in nanoseconds", `{"timeout":1500000000}`, want{check: func(t *testing.T, in registry.DynamicInput) {
			if in.Timeout != 1500*time.Millisecond {
				t.Errorf("timeout %v", in.Timeout)
			}
		}}},
		{"timeout in days", `{"timeout":"1d"}`, want{check: func(t *testing.T, in registry.DynamicInput) {
			if in.Timeout != 24*time.Hour {
				t.Errorf("timeout %v", in.Timeout)
			}
		}}},
		{"timeout 0 is refused later", `{"timeout":"0s"}`, want{check: func(t *testing.T, in registry.DynamicInput) {
			if in.Timeout >= 0 {
				t.Errorf("timeout %v: a zero timeout must not become the default", in.Timeout)
			}
		}}},
		{"negative timeout is refused later", `{"timeout":"-5s"}`, want{check: func(t *testing.T, in registry.DynamicInput) {
			if in.Timeout >= 0 {
				t.Errorf("timeout %v", in.Timeout)
			}
		}}},
		{"null timeout is the default", `{"timeout":null}`, want{check: func(t *testing.T, in registry.DynamicInput) {
			if in.Timeout != 0 {
				t.Errorf("timeout %v", in.Timeout)
			}
		}}},
		{"empty object", `{}`, want{}},

		{"empty body", ``, want{status: 400, detail: "empty"}},
		{"not JSON", `{"event_name": }`, want{status: 400, detail: "line 1, column 16"}},
		{"trailing comma", "{\"event_name\": \"tip\",\n}", want{status: 400, detail: "line 2"}},
		{"comment", "// Ventiapp's lenience is not the seed's\n{}", want{status: 400}},
		{"an array", `[{"event_name":"tip"}]`, want{status: 400, detail: "must be a JSON object"}},
		{"null", `null`, want{status: 400, detail: "must be a JSON object"}},
		{"a string holding the body", `"{\"event_name\":\"tip\"}"`, want{status: 400, detail: "must be a JSON object"}},
		{"two values", `{} {}`, want{status: 400}},

		{"unknown member", `{"event_name":"tip","evento":"x"}`, want{status: 422, pointers: []string{"/evento"}, detail: "not a member"}},
		{"read-only members", `{"merchant_id":"kfc","created_at":"x","updated_at":"y","header_names":[]}`,
			want{status: 422, pointers: []string{"/created_at", "/header_names", "/merchant_id", "/updated_at"}, detail: "read-only"}},
		{"event_name not a string", `{"event_name":5}`, want{status: 422, pointers: []string{"/event_name"}, detail: "must be a string"}},
		{"url not a string", `{"url":["https://x"]}`, want{status: 422, pointers: []string{"/url"}, detail: "must be a string"}},
		{"template not a string", `{"response_template":{"order":{}}}`, want{status: 422, pointers: []string{"/response_template"}, detail: "must be a string"}},
		{"error template not a string", `{"error_response_template":1}`, want{status: 422, pointers: []string{"/error_response_template"}}},
		{"secret not a string", `{"secret":true}`, want{status: 422, pointers: []string{"/secret"}}},
		{"fields_update not an object", `{"fields_update":["total"]}`, want{status: 422, pointers: []string{"/fields_update"}, detail: "must be an object"}},
		{"fields a string", `{"fields_update":{"fields":"total"}}`, want{status: 422, pointers: []string{"/fields_update/fields"}, detail: "must be an array of strings"}},
		{"fields of numbers", `{"response_body":{"custom_fields":[1]}}`, want{status: 422, pointers: []string{"/response_body/custom_fields"}, detail: "must be an array of strings"}},
		{"unknown member of a field set", `{"response_body":{"field":["total"]}}`, want{status: 422, pointers: []string{"/response_body/field"}, detail: "not a member"}},
		{"response_data a string without JSON", `{"response_data":"u-1"}`, want{status: 422, pointers: []string{"/response_data"}, detail: "must be JSON, or a string that holds JSON"}},
		{"response_data an empty string", `{"response_data":""}`, want{status: 422, pointers: []string{"/response_data"}}},
		{"request_data a string with broken JSON", `{"request_data":"{\"order\":"}`, want{status: 422, pointers: []string{"/request_data"}}},
		{"timeout not a duration", `{"timeout":"soon"}`, want{status: 422, pointers: []string{"/timeout"}, detail: `must be a duration such as "1m"`}},
		{"timeout a bool", `{"timeout":true}`, want{status: 422, pointers: []string{"/timeout"}}},
		{"timeout an object", `{"timeout":{"s":1}}`, want{status: 422, pointers: []string{"/timeout"}}},
		{"headers an object", `{"headers":{"X-Shop":"1"}}`, want{status: 422, pointers: []string{"/headers"}, detail: "array"}},
		{"authorization a string", `{"authorization":"Bearer x"}`, want{status: 422, pointers: []string{"/authorization"}, detail: "must be an object"}},
		{"unknown member of authorization", `{"authorization":{"authType":"api-key","header":[]}}`, want{status: 422, pointers: []string{"/authorization/header"}}},
		{"several", `{"event_name":1,"fields_update":{"fields":"x"},"response_data":"nope","timeout":"x","extra":0}`,
			want{status: 422, pointers: []string{"/event_name", "/fields_update/fields", "/response_data", "/timeout", "/extra"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, f := decodeDynamic([]byte(c.body))
			if c.want.status == 0 {
				if f != nil {
					t.Fatalf("refused %d: %v", f.status, f)
				}
				if c.want.check != nil {
					c.want.check(t, in)
				}
				return
			}
			if f == nil {
				t.Fatalf("decoded %+v, want %d", in, c.want.status)
			}
			checkFailure(t, f)
			if f.status != c.want.status {
				t.Fatalf("status %d, want %d: %v", f.status, c.want.status, f)
			}
			var got []string
			for _, p := range f.problems {
				if p.pointer != "" {
					got = append(got, p.pointer)
				}
			}
			want := c.want.pointers
			if c.want.status == 422 && !slices.Equal(sortedCopy(got), sortedCopy(want)) {
				t.Errorf("pointers %q, want %q", got, want)
			}
			if !strings.Contains(f.problems[0].detail, c.want.detail) {
				t.Errorf("detail %q, want it to hold %q", f.problems[0].detail, c.want.detail)
			}
		})
	}
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// dynAPI is a running Caddy with hook_webhooks behind two merchants'
// tokens (the tenants kfc-web and kfc-ve), and a merchant's endpoint on
// 127.0.0.2 that answers what the test says.
type dynAPI struct {
	base         string
	web, ve      string // the merchants' tokens
	client       *http.Client
	check        *openAPICheck
	merchantURL  string // http://127.0.0.2:<port>
	merchantMu   sync.Mutex
	merchantFunc func(w http.ResponseWriter, r *http.Request)
	calls        []merchantCallSeen
}

type merchantCallSeen struct {
	header http.Header
	body   []byte
}

// dynAPICaddyfile is the test's config; underscore allows the
// merchant_token header through Caddy.
func dynAPICaddyfile(storage string, underscore bool) string {
	servers := ""
	if underscore {
		servers = "\tservers {\n\t\texpected_underscore_headers merchant_token\n\t}\n"
	}
	return apiCaddy.Globals(servers+fmt.Sprintf(`	hookrelay {
		storage embedded %s
		webhooks {
			seal_key {env.HOOKRELAY_TEST_SEAL_KEY}
			allow_network 127.0.0.2/32
			allow_http
			max_per_tenant 4
		}
	}`, storage)) + `
:9680 {
	route /hooks/* {
		hook_webhooks {
			prefix /hooks
			token {env.HOOKRELAY_TEST_TOKEN_KFC_WEB} kfc-web
			token {env.HOOKRELAY_TEST_TOKEN_KFC_VE} kfc-ve
		}
	}
}
`
}

// startDynamicAPI runs the API with the merchant_token header allowed
// through Caddy (expected_underscore_headers), every exchange checked
// against the OpenAPI document the API serves.
func startDynamicAPI(t *testing.T) (*dynAPI, string) {
	t.Helper()
	e := &dynAPI{base: apiCaddy.BaseURL() + apiPrefix, web: randomToken(t, 24), ve: randomToken(t, 24)}
	t.Setenv("HOOKRELAY_TEST_SEAL_KEY", randomToken(t, 32))
	t.Setenv("HOOKRELAY_TEST_TOKEN_KFC_WEB", e.web)
	t.Setenv("HOOKRELAY_TEST_TOKEN_KFC_VE", e.ve)
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("listening on 127.0.0.2: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		e.merchantMu.Lock()
		e.calls = append(e.calls, merchantCallSeen{header: r.Header.Clone(), body: b})
		f := e.merchantFunc
		e.merchantMu.Unlock()
		if f == nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		f(w, r)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	e.merchantURL = srv.URL
	storage := t.TempDir()
	apiCaddy.Load(t, apiCaddy.NewTester(t), dynAPICaddyfile(storage, true))
	e.client = &http.Client{Timeout: 30 * time.Second}
	doc := e.do(t, "GET", "/openapi.json", "", nil).want(t, http.StatusOK)
	e.check = newOpenAPICheck(t, doc.body, http.DefaultTransport)
	e.client.Transport = e.check
	return e, storage
}

// merchantReplies sets what the merchant answers.
func (e *dynAPI) merchantReplies(f func(w http.ResponseWriter, r *http.Request)) {
	e.merchantMu.Lock()
	e.merchantFunc = f
	e.merchantMu.Unlock()
}

// lastCall returns the last request the merchant got.
func (e *dynAPI) lastCall(t *testing.T) merchantCallSeen {
	t.Helper()
	e.merchantMu.Lock()
	defer e.merchantMu.Unlock()
	if len(e.calls) == 0 {
		t.Fatal("the merchant got no call")
	}
	return e.calls[len(e.calls)-1]
}

func (e *dynAPI) callCount() int {
	e.merchantMu.Lock()
	defer e.merchantMu.Unlock()
	return len(e.calls)
}

// do sends a request, path relative to the prefix, with token in the
// merchant_token header ("" for none); hdr are more header names and
// values.
func (e *dynAPI) do(t *testing.T, method, path, token string, body []byte, hdr ...string) apiResponse {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header["merchant_token"] = []string{token}
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return apiResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

// replyJSON answers status with body.
func replyJSON(status int, body string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// dynView is a dynamic webhook as the API shows it.
type dynView struct {
	MerchantID            string                `json:"merchant_id"`
	EventName             string                `json:"event_name"`
	URL                   string                `json:"url"`
	FieldsUpdate          registry.FieldSet     `json:"fields_update"`
	ResponseBody          registry.FieldSet     `json:"response_body"`
	ResponseTemplate      string                `json:"response_template"`
	ErrorResponseTemplate string                `json:"error_response_template"`
	ResponseData          json.RawMessage       `json:"response_data"`
	RequestData           json.RawMessage       `json:"request_data"`
	Timeout               string                `json:"timeout"`
	Authorization         *registry.AuthSummary `json:"authorization"`
	HeaderNames           []string              `json:"header_names"`
	CreatedAt             time.Time             `json:"created_at"`
	UpdatedAt             time.Time             `json:"updated_at"`
	Secret                string                `json:"secret"`
}

// verifySigned checks r's signature headers with secret.
func verifySigned(t *testing.T, r apiResponse, secret string) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(r.body, r.header); err != nil {
		t.Fatalf("the answer %d %s does not verify with the webhook's secret: %v (headers %v)", r.status, r.body, err, r.header)
	}
	if !strings.HasPrefix(r.header.Get("webhook-id"), "msg_") {
		t.Errorf("webhook-id %q", r.header.Get("webhook-id"))
	}
}

// Secrets given to the dynamic API, which no answer may hold.
const (
	dynAPIKey      = "kfc-api-key-4f5e6d-never-shown"
	dynHeaderValue = "kfc-header-value-1a2b3c-never-shown"
)

const (
	dynOrder    = `{"order":{"order_id":"A1","total":"10.10","payment_method":"CARD","custom_fields":{}}}`
	dynReply    = `{"uuid":"u-1","tip":"1.20","total":"11.30"}`
	dynTemplate = `{"order": {"order_id": "{{ .result.uuid }}", "total": "{{ .result.total }}", "custom_fields": {"tip": "{{ .result.tip }}"}}}`
	dynErrors   = `{"order": {"error": "{{ .error }}", "status": {{ .status }}, "code": {{ json (index . "result.code") }}}}`
)

// dynRegistration is the seed's registration body, for the merchant url,
// with more members.
func dynRegistration(t *testing.T, event, url string, more map[string]any) []byte {
	t.Helper()
	body := map[string]any{
		"event_name":              event,
		"url":                     url,
		"fields_update":           map[string]any{"fields": []string{"total"}, "custom_fields": []string{"tip"}},
		"response_body":           map[string]any{"fields": []string{"order_id", "total"}, "custom_fields": []string{"tip"}},
		"response_template":       dynTemplate,
		"error_response_template": dynErrors,
		"response_data":           dynReply, // a string holding JSON, as the seed types it
		"request_data":            json.RawMessage(dynOrder),
	}
	for k, v := range more {
		if v == nil {
			delete(body, k)
		} else {
			body[k] = v
		}
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWebhooksAPIDynamic: DEUNA's dynamic webhooks through the API as a
// merchant uses it (merchant_token, with Caddy told to let it through):
// registration, replacement, reading, listing, execution (signed, every
// outcome) and deletion; the routes, methods and credentials refused;
// every exchange checked against the OpenAPI document.
func TestWebhooksAPIDynamic(t *testing.T) {
	e, storage := startDynamicAPI(t)
	const hooks = "/api/v1/merchants/kfc-web/webhooks"

	var secret string
	var tip dynView
	t.Run("register", func(t *testing.T) {
		body := dynRegistration(t, "tip", e.merchantURL+"/tip", map[string]any{
			"authorization": map[string]any{"authType": "api-key", "headers": []map[string]string{{"API-KEY": dynAPIKey}}},
			"headers":       []map[string]string{{"X-Shop": dynHeaderValue}},
			"timeout":       "5s",
		})
		r := e.do(t, "POST", hooks, e.web, body).want(t, http.StatusCreated)
		r.decode(t, &tip)
		if !strings.HasPrefix(tip.Secret, "whsec_") {
			t.Fatalf("no secret shown: %s", r.body)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("the answer showing the secret has Cache-Control %q", cc)
		}
		secret = tip.Secret
		if tip.MerchantID != "kfc-web" || tip.EventName != "tip" || tip.URL != e.merchantURL+"/tip" || tip.Timeout != "5s" ||
			tip.Authorization == nil || !slices.Equal(tip.Authorization.HeaderNames, []string{"API-KEY"}) ||
			!slices.Equal(tip.HeaderNames, []string{"X-Shop"}) || tip.ResponseTemplate != dynTemplate ||
			string(tip.ResponseData) != dynReply || tip.CreatedAt.IsZero() {
			t.Errorf("registered %s", r.body)
		}
		// A bare registration: the field sets answered as empty lists,
		// the default timeout.
		bare := []byte(`{"event_name":"bare","url":"` + e.merchantURL + `/bare"}`)
		var v dynView
		e.do(t, "POST", hooks, e.web, bare).want(t, http.StatusCreated).decode(t, &v)
		if v.FieldsUpdate.Fields == nil || v.ResponseBody.CustomFields == nil || v.Timeout != "10s" {
			t.Errorf("bare registration %+v", v)
		}
	})
	if secret == "" {
		t.Fatal("no webhook registered")
	}

	t.Run("replace", func(t *testing.T) {
		body := dynRegistration(t, "tip", e.merchantURL+"/tip", map[string]any{
			"authorization": map[string]any{"authType": "api-key", "headers": []map[string]string{{"API-KEY": dynAPIKey}}},
			"headers":       []map[string]string{{"X-Shop": dynHeaderValue}},
			"timeout":       "300ms",
		})
		r := e.do(t, "POST", hooks, e.web, body).want(t, http.StatusOK)
		var v dynView
		r.decode(t, &v)
		if v.Secret != "" || bytes.Contains(r.body, []byte(`"secret"`)) {
			t.Errorf("a replacement shows a secret: %s", r.body)
		}
		if !v.CreatedAt.Equal(tip.CreatedAt) || v.Timeout != "300ms" {
			t.Errorf("replaced: %s", r.body)
		}
	})

	t.Run("read and list", func(t *testing.T) {
		var v dynView
		e.do(t, "GET", hooks+"/tip", e.web, nil).want(t, http.StatusOK).decode(t, &v)
		if v.EventName != "tip" || v.Timeout != "300ms" || v.Secret != "" {
			t.Errorf("read %+v", v)
		}
		var l struct {
			Data []dynView `json:"data"`
		}
		e.do(t, "GET", hooks, e.web, nil).want(t, http.StatusOK).decode(t, &l)
		var names []string
		for _, w := range l.Data {
			names = append(names, w.EventName)
		}
		if !slices.Equal(names, []string{"bare", "tip"}) {
			t.Errorf("listed %v", names)
		}
		r := e.do(t, "GET", "/api/v1/merchants/kfc-ve/webhooks", e.ve, nil).want(t, http.StatusOK)
		if string(r.body) != `{"data":[]}` {
			t.Errorf("another merchant lists %s", r.body)
		}
		// A Bearer credential works as well as merchant_token.
		req := e.do(t, "GET", hooks, "", nil, "Authorization", "Bearer "+e.web).want(t, http.StatusOK)
		if !bytes.Equal(req.body, e.do(t, "GET", hooks, e.web, nil).body) {
			t.Error("Bearer and merchant_token list differently")
		}
	})

	t.Run("execute", func(t *testing.T) {
		const path = hooks + "/tip/execute"
		hang := func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}
		for _, c := range []struct {
			name   string
			reply  func(w http.ResponseWriter, r *http.Request)
			status int
			body   string // "" with detail: the envelope's detail
			detail string
		}{
			{"success", replyJSON(200, dynReply), 200, `{"order":{"custom_fields":{"tip":"1.20"},"order_id":"A1","total":"11.30"}}`, ""},
			{"merchant 4xx through the error template", replyJSON(422, `{"code":"NO_TIP"}`), 422,
				`{"order":{"error":"HTTP 422 Unprocessable Entity","status":422,"code":"NO_TIP"}}`, ""},
			{"merchant 409 through the error template", replyJSON(409, `{"code":"TAKEN"}`), 409,
				`{"order":{"error":"HTTP 409 Conflict","status":409,"code":"TAKEN"}}`, ""},
			{"merchant 5xx", replyJSON(500, `{"code":"DOWN"}`), 502,
				`{"order":{"error":"HTTP 500 Internal Server Error","status":500,"code":"DOWN"}}`, ""},
			{"reply not JSON", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "<html>") }, 502,
				`{"order":{"error":"invalid JSON reply","status":200,"code":null}}`, ""},
			{"merchant hangs", hang, 504, `{"order":{"error":"timeout","status":0,"code":null}}`, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				e.merchantReplies(c.reply)
				r := e.do(t, "POST", path, e.web, []byte(dynOrder)).want(t, c.status)
				if c.body != "" && string(r.body) != c.body {
					t.Errorf("answer %s, want %s", r.body, c.body)
				}
				if ct := r.header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				verifySigned(t, r, secret)
				call := e.lastCall(t)
				if string(call.body) != dynOrder {
					t.Errorf("the merchant got %s", call.body)
				}
				if call.header.Get("API-KEY") != dynAPIKey || call.header.Get("X-Shop") != dynHeaderValue {
					t.Errorf("the merchant's call lacks its credentials: %v", call.header)
				}
				wh, _ := standardwebhooks.NewWebhook(secret)
				if err := wh.Verify(call.body, call.header); err != nil {
					t.Errorf("the merchant's call is not signed with the secret: %v", err)
				}
			})
		}

		// Without an error template: the merchant's 4xx JSON as it is,
		// and the envelope for the rest, signed all the same.
		var plain dynView
		e.do(t, "POST", hooks, e.web, dynRegistration(t, "plain", e.merchantURL+"/plain",
			map[string]any{"error_response_template": nil, "timeout": "300ms"})).want(t, http.StatusCreated).decode(t, &plain)
		plainSecret := plain.Secret
		for _, c := range []struct {
			name   string
			reply  func(w http.ResponseWriter, r *http.Request)
			status int
			body   string
			detail string
		}{
			{"merchant 4xx JSON", replyJSON(400, `{ "code": "BAD" }`), 400, `{"code":"BAD"}`, ""},
			{"merchant 5xx", replyJSON(503, `{"code":"DOWN"}`), 502, "", "The destination answered 503 Service Unavailable."},
			{"reply does not fit the template", replyJSON(200, `{"uuid":"u"}`), 502, "", "The destination's reply could not be transformed."},
			{"merchant hangs", hang, 504, "", "The destination did not answer within 300ms."},
		} {
			t.Run("without error template: "+c.name, func(t *testing.T) {
				e.merchantReplies(c.reply)
				r := e.do(t, "POST", hooks+"/plain/execute", e.web, []byte(dynOrder))
				if c.body != "" {
					r.want(t, c.status)
					if string(r.body) != c.body {
						t.Errorf("answer %s, want %s", r.body, c.body)
					}
				} else if entries := r.errors(t, c.status); entries[0].Detail != c.detail {
					t.Errorf("detail %q, want %q", entries[0].Detail, c.detail)
				}
				verifySigned(t, r, plainSecret)
			})
		}

		// Refused execute bodies never reach the merchant, and are not
		// signed: the relay answers them, not the webhook.
		e.merchantReplies(replyJSON(200, dynReply))
		before := e.callCount()
		for _, c := range []struct {
			body    string
			status  int
			pointer string
		}{
			{``, 400, ""},
			{`{"order":`, 400, ""},
			{`[{"order":{}}]`, 400, ""},
			{`"x"`, 400, ""},
			{`{}`, 422, "/order"},
			{`{"order":null}`, 422, "/order"},
			{`{"order":"A1"}`, 422, "/order"},
			{`{"order":[]}`, 422, "/order"},
		} {
			r := e.do(t, "POST", path, e.web, []byte(c.body))
			entries := r.errors(t, c.status)
			if got := pointers(entries); c.pointer != "" && !slices.Equal(got, []string{c.pointer}) {
				t.Errorf("%s: pointers %q", c.body, got)
			}
			if r.header.Get("webhook-signature") != "" {
				t.Errorf("%s: the relay's refusal is signed", c.body)
			}
		}
		big := []byte(`{"order":{"note":"` + strings.Repeat("x", MaxExecuteBody) + `"}}`)
		e.do(t, "POST", path, e.web, big).errors(t, http.StatusRequestEntityTooLarge)
		if n := e.callCount(); n != before {
			t.Errorf("refused execute bodies made %d calls to the merchant", n-before)
		}
		// Members beside the order reach the merchant as they are.
		body := `{"order":{"order_id":"A1","total":"1"},"meta":{"channel":"web"}}`
		e.do(t, "POST", path, e.web, []byte(body)).want(t, http.StatusOK)
		if got := e.lastCall(t).body; string(got) != body {
			t.Errorf("the merchant got %s", got)
		}
		// A second execution is signed with another id.
		r1 := e.do(t, "POST", path, e.web, []byte(dynOrder)).want(t, http.StatusOK)
		r2 := e.do(t, "POST", path, e.web, []byte(dynOrder)).want(t, http.StatusOK)
		if r1.header.Get("webhook-id") == r2.header.Get("webhook-id") {
			t.Error("two executions answered with the same webhook-id")
		}
	})

	t.Run("registration refused", func(t *testing.T) {
		for _, c := range []struct {
			name     string
			body     []byte
			status   int
			pointers []string
			detail   string
		}{
			{"template that does not render, line 2", dynRegistration(t, "t1", e.merchantURL, map[string]any{
				"response_template": "{\"order\": {\n\"tip\": \"{{ .result.propina }}\"}}"}),
				422, []string{"/response_template"}, "response_template: does not render over response_data: line 2: "},
			{"template that does not parse, line 3", dynRegistration(t, "t1", e.merchantURL, map[string]any{
				"response_template": "{\n\"order\": {\n\"tip\": \"{{ .result.tip }\"}}"}),
				422, []string{"/response_template"}, "response_template: does not parse: line 3: "},
			{"template without response_data", dynRegistration(t, "t1", e.merchantURL, map[string]any{"response_data": nil}),
				422, []string{"/response_data"}, "required with response_template"},
			{"request_data not an execute body", dynRegistration(t, "t1", e.merchantURL, map[string]any{"request_data": "[1]"}),
				422, []string{"/request_data"}, "execute body"},
			{"internal url", dynRegistration(t, "t1", "http://127.0.0.1:1/", nil), 422, []string{"/url"}, "loopback"},
			{"bad event name", dynRegistration(t, "a tip", e.merchantURL, nil), 422, []string{"/event_name"}, "letters, digits"},
			{"unknown member", dynRegistration(t, "t1", e.merchantURL, map[string]any{"respose_body": map[string]any{}}),
				422, []string{"/respose_body"}, "not a member"},
			{"not JSON", []byte(`{"event_name":`), 400, nil, ""},
			{"too large", dynRegistration(t, "t1", e.merchantURL, map[string]any{"response_data": strings.Repeat("1", 70<<10)}),
				413, nil, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				entries := e.do(t, "POST", hooks, e.web, c.body).errors(t, c.status)
				if c.pointers != nil && !slices.Equal(pointers(entries), c.pointers) {
					t.Errorf("pointers %q, want %q", pointers(entries), c.pointers)
				}
				if !strings.Contains(entries[0].Detail, c.detail) {
					t.Errorf("detail %q, want it to hold %q", entries[0].Detail, c.detail)
				}
			})
		}
		e.do(t, "GET", hooks+"/t1", e.web, nil).errors(t, http.StatusNotFound)
		// The limit (max_per_tenant 4): tip, bare, plain and one more.
		e.do(t, "POST", hooks, e.web, dynRegistration(t, "fourth", e.merchantURL, nil)).want(t, http.StatusCreated)
		entries := e.do(t, "POST", hooks, e.web, dynRegistration(t, "fifth", e.merchantURL, nil)).errors(t, http.StatusConflict)
		if !strings.Contains(entries[0].Detail, "as many dynamic webhooks") {
			t.Errorf("limit: %q", entries[0].Detail)
		}
		e.do(t, "POST", hooks, e.web, dynRegistration(t, "fourth", e.merchantURL, nil)).want(t, http.StatusOK)
		e.do(t, "POST", "/api/v1/merchants/kfc-ve/webhooks", e.ve, dynRegistration(t, "fifth", e.merchantURL, nil)).want(t, http.StatusCreated)
	})

	t.Run("routes", func(t *testing.T) {
		for _, p := range []string{
			"/api/v1/merchants/", "/api/v1/merchants/kfc-web", "/api/v1/merchants/kfc-web/", "/api/v1/merchants/kfc-web/hooks",
			"/api/v1/merchants/kfc-web/webhooks/", "/api/v1/merchants/kfc-web/webhooks/tip/run",
			"/api/v1/merchants/kfc-web/webhooks/tip/execute/now", "/api/v1/merchants//webhooks",
			"/api/v1/merchants/" + strings.Repeat("m", 129) + "/webhooks",
		} {
			e.do(t, "GET", p, e.web, nil).errors(t, http.StatusNotFound)
		}
		for _, c := range []struct{ method, path, allow string }{
			{"PUT", hooks, "GET, POST"},
			{"DELETE", hooks, "GET, POST"},
			{"POST", hooks + "/tip", "DELETE, GET"},
			{"PATCH", hooks + "/tip", "DELETE, GET"},
			{"GET", hooks + "/tip/execute", "POST"},
			{"DELETE", hooks + "/tip/execute", "POST"},
		} {
			r := e.do(t, c.method, c.path, e.web, nil)
			r.errors(t, http.StatusMethodNotAllowed)
			if got := r.header.Get("Allow"); got != c.allow {
				t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
			}
		}
		// Unknown event names.
		e.do(t, "GET", hooks+"/nope", e.web, nil).errors(t, http.StatusNotFound)
		e.do(t, "DELETE", hooks+"/nope", e.web, nil).errors(t, http.StatusNotFound)
		r := e.do(t, "POST", hooks+"/nope/execute", e.web, []byte(dynOrder))
		r.errors(t, http.StatusNotFound)
		if r.header.Get("webhook-signature") != "" {
			t.Error("an unknown event's 404 is signed")
		}
	})

	t.Run("trailing slash", func(t *testing.T) {
		// As /v1/webhooks/{id}/ is not /v1/webhooks/{id}, and as the
		// OpenAPI document has no such path.
		// Sent around the OpenAPI check, which would refuse the answer
		// before this test can say what is wrong.
		for _, m := range []string{"GET", "DELETE"} {
			req, _ := http.NewRequest(m, e.base+hooks+"/bare/", nil)
			req.Header["merchant_token"] = []string{e.web}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s/bare/ answered %d, want 404 (it is %s %s/bare)", m, hooks, resp.StatusCode, m, hooks)
			}
		}
	})

	t.Run("another merchant", func(t *testing.T) {
		before := e.callCount()
		for _, c := range []struct {
			method, path string
			body         []byte
		}{
			{"GET", hooks, nil},
			{"POST", hooks, dynRegistration(t, "tip", e.merchantURL+"/evil", nil)},
			{"GET", hooks + "/tip", nil},
			{"DELETE", hooks + "/tip", nil},
			{"POST", hooks + "/tip/execute", []byte(dynOrder)},
			{"POST", hooks + "/nope/execute", []byte(dynOrder)},
		} {
			entries := e.do(t, c.method, c.path, e.ve, c.body).errors(t, http.StatusForbidden)
			if entries[0].Detail != "The credential is not this merchant's." {
				t.Errorf("%s %s: %q", c.method, c.path, entries[0].Detail)
			}
		}
		if e.callCount() != before {
			t.Error("another merchant's execute reached the merchant")
		}
		var v dynView
		e.do(t, "GET", hooks+"/tip", e.web, nil).want(t, http.StatusOK).decode(t, &v)
		if v.URL != e.merchantURL+"/tip" {
			t.Errorf("another merchant changed the webhook: %s", v.URL)
		}
	})

	t.Run("credentials", func(t *testing.T) {
		for _, c := range []struct {
			name string
			hdr  []string
		}{
			{"none", nil},
			{"wrong merchant_token", []string{"merchant_token", randomToken(t, 24)}},
			{"empty merchant_token", []string{"merchant_token", " "}},
			{"merchant-token with a hyphen", []string{"Merchant-Token", e.web}},
			{"the token without a scheme", []string{"Authorization", e.web}},
			// Authorization, when present, is the credential.
			{"a wrong Bearer beside a good merchant_token", []string{"Authorization", "Bearer nope", "merchant_token", e.web}},
		} {
			for _, p := range []string{hooks, hooks + "/tip"} {
				req, _ := http.NewRequest("GET", e.base+p, nil)
				for i := 0; i+1 < len(c.hdr); i += 2 {
					req.Header[c.hdr[i]] = []string{c.hdr[i+1]}
				}
				resp, err := e.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				r := apiResponse{status: resp.StatusCode, header: resp.Header, body: b}
				if entries := r.errors(t, http.StatusUnauthorized); entries[0].Detail != "The request has no valid credential." {
					t.Errorf("%s %s: %q", c.name, p, entries[0].Detail)
				}
			}
		}
		// The header's name in any case.
		req, _ := http.NewRequest("GET", e.base+hooks, nil)
		req.Header["MERCHANT_TOKEN"] = []string{e.web}
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("MERCHANT_TOKEN answered %d", resp.StatusCode)
		}
	})

	t.Run("delete", func(t *testing.T) {
		r := e.do(t, "DELETE", hooks+"/tip", e.web, nil).want(t, http.StatusNoContent)
		if len(r.body) != 0 {
			t.Errorf("204 with a body %s", r.body)
		}
		e.do(t, "GET", hooks+"/tip", e.web, nil).errors(t, http.StatusNotFound)
		e.do(t, "DELETE", hooks+"/tip", e.web, nil).errors(t, http.StatusNotFound)
		e.do(t, "POST", hooks+"/tip/execute", e.web, []byte(dynOrder)).errors(t, http.StatusNotFound)
		// Registered again: new, with a new secret.
		var v dynView
		e.do(t, "POST", hooks, e.web, dynRegistration(t, "tip", e.merchantURL, nil)).want(t, http.StatusCreated).decode(t, &v)
		if v.Secret == "" || v.Secret == secret {
			t.Errorf("registered again after a delete: secret %q", v.Secret)
		}
	})

	t.Run("no credential in any answer", func(t *testing.T) {
		bodies := e.check.answers()
		for _, s := range []string{dynAPIKey, dynHeaderValue, e.web, e.ve} {
			for _, b := range bodies {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("an answer holds the secret %q: %.200s", s, b)
					break
				}
			}
		}
		n := 0
		for _, b := range bodies {
			if bytes.Contains(b, []byte(secret)) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("the signing secret is in %d answers, want only the registration's", n)
		}
		t.Logf("%d exchanges checked against the OpenAPI document", e.check.count())
	})

	// Without expected_underscore_headers, Caddy drops merchant_token
	// before any handler sees it: a merchant that sends only that header
	// is answered 401, as if it sent no credential at all.
	t.Run("merchant_token without expected_underscore_headers", func(t *testing.T) {
		apiCaddy.Load(t, apiCaddy.NewTester(t), dynAPICaddyfile(storage, false))
		r := e.do(t, "GET", hooks, e.web, nil)
		entries := r.errors(t, http.StatusUnauthorized)
		if entries[0].Detail != "The request has no valid credential." || r.header.Get("WWW-Authenticate") != `Bearer realm="webhooks"` {
			t.Errorf("a merchant_token dropped by Caddy: %q, WWW-Authenticate %q", entries[0].Detail, r.header.Get("WWW-Authenticate"))
		}
		r = e.do(t, "POST", hooks+"/bare/execute", e.web, []byte(dynOrder))
		r.errors(t, http.StatusUnauthorized)
		// A Bearer credential still works.
		e.do(t, "GET", hooks, "", nil, "Authorization", "Bearer "+e.web).want(t, http.StatusOK)
	})
}
