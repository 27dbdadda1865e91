package caddymodule

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/authcache"
	"github.com/hookrelay/hookrelay/netguard"
	"github.com/hookrelay/hookrelay/registry"
	"github.com/hookrelay/hookrelay/relay"
)

// fuzzDynamicSettings are a webhooks block's settings with a fresh seal
// key; allow reaches those networks over http too.
func fuzzDynamicSettings(f *testing.F, allow ...netip.Prefix) registry.Settings {
	f.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		f.Fatal(err)
	}
	sealer, err := registry.NewSealer(base64.StdEncoding.EncodeToString(key))
	if err != nil {
		f.Fatal(err)
	}
	guard := netguard.New(allow)
	client := netguard.NewClient(guard, netguard.ClientOptions{})
	tokens, err := authcache.NewCache(0, client)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(tokens.Close)
	return registry.Settings{Sealer: sealer, Guard: guard, Client: client, Tokens: tokens, AllowHTTP: len(allow) > 0}
}

// FuzzDecodeDynamic feeds any body to the registration's decoder, then
// what it accepts to the registry's checks (on a bucket that stores
// nothing). Nothing panics; the decoder refuses with 400 (not a JSON
// object) or 422 (members, each with its pointer); the registry with 422
// or, for what passes its checks, 503 (the bucket stores nothing). Never
// 500.
//
//	go test -run '^$' -fuzz '^FuzzDecodeDynamic$' -fuzztime 60s ./caddymodule/
func FuzzDecodeDynamic(f *testing.F) {
	for _, s := range []string{
		string(dynSeedBody),
		`{"event_name":"tip","url":"https://kfc.example.com/tip"}`,
		`{"event_name":"tip","url":"https://kfc.example.com/tip","fields_update":{"fields":["total"],"custom_fields":["tip"]},` +
			`"response_body":{"fields":null},"error_response_template":"{\"order\":{\"e\":\"{{ .error }}\"}}","request_data":"{\"order\":{}}",` +
			`"authorization":{"authType":"api-key","headers":[{"API-KEY":"k"}]},"headers":[{"X-A":1}],"timeout":"2s","secret":null}`,
		`{"event_name":"tip","url":"https://kfc.example.com/tip","response_template":"{{ .result.x }","response_data":"{}"}`,
		`{"event_name":"tip","url":"https://10.0.0.1/","timeout":"31s","secret":"nope"}`,
		`{"event_name":"tip","url":"https://kfc.example.com/tip","timeout":0}`,
		`{"response_data":"\"\\ud800\""}`, `{"fields_update":{"fields":[null]}}`, `{"timeout":1e400}`,
		`{"merchant_id":"x","x":1}`, `[]`, `null`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	settings := fuzzDynamicSettings(f)
	dyn, err := registry.OpenDynamic(context.Background(), unstorableKV{}, settings, zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(dyn.Close)
	api := &WebhooksAPI{log: zap.NewNop()}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, fail := decodeDynamic(body)
		if fail != nil {
			checkFailure(t, fail)
			if fail.status != http.StatusBadRequest && fail.status != http.StatusUnprocessableEntity {
				t.Fatalf("the decoder refused with %d", fail.status)
			}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _, _, err := dyn.Register(ctx, "kfc-web", in)
		if err == nil {
			t.Fatal("the unstorable bucket stored a dynamic webhook")
		}
		rf := api.registryFailure(err, "")
		checkFailure(t, rf)
		if rf.status != http.StatusUnprocessableEntity && rf.status != http.StatusServiceUnavailable {
			t.Fatalf("the registry answered %d: %v", rf.status, err)
		}
	})
}

// dynSeedBody is the seed's registration body, response_data a string
// that holds JSON.
var dynSeedBody = []byte(`{
	"event_name": "tip",
	"url": "https://kfc.example.com/tip",
	"fields_update": {"fields": ["total"], "custom_fields": ["tip"]},
	"response_body": {"fields": ["order_id", "total"], "custom_fields": ["tip"]},
	"response_template": "{\"order\": {\"order_id\": \"{{ .result.uuid }}\", \"total\": \"{{ .result.total }}\", \"custom_fields\": {\"tip\": \"{{ .result.tip }}\"}}}",
	"response_data": "{\"uuid\": \"u-1\", \"tip\": \"1.20\", \"total\": \"11.30\"}"
}`)

// fuzzMerchant answers what the fuzz input says: a status and a body, or
// the request's body (echo).
type fuzzMerchant struct {
	mu     sync.Mutex
	status int
	body   []byte
	echo   bool
}

func (m *fuzzMerchant) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, _ := io.ReadAll(r.Body)
	m.mu.Lock()
	status, body := m.status, m.body
	if m.echo {
		body = req
	}
	m.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// fuzzMerchantStatuses are the statuses the fuzzed merchant answers.
var fuzzMerchantStatuses = []int{200, 201, 204, 302, 400, 401, 404, 409, 422, 429, 500, 502, 503}

// FuzzExecuteBody runs executions through the API's handler, over a real
// embedded bucket, against a real loopback merchant: any execute body,
// and any reply (status and body, or the execute body echoed) of the
// merchant, for webhooks with and without templates and field lists.
// Nothing panics; nothing is answered 500; every answer is JSON; the
// answers of an execution are signed with the webhook's secret and the
// relay's refusals are not; a 200 is {"order": {...}} with only the
// fields of response_body.
//
//	go test -run '^$' -fuzz '^FuzzExecuteBody$' -fuzztime 60s ./caddymodule/
func FuzzExecuteBody(f *testing.F) {
	for _, c := range []struct {
		event  byte
		body   string
		status byte
		reply  string
	}{
		{0, dynOrder, 0, dynReply},
		{0, dynOrder, 8, `{"code":"NO"}`},
		{0, dynOrder, 10, `{"code":"DOWN"}`},
		{1, dynOrder, 0, `{"uuid":"u"}`},
		{1, dynOrder, 4, `not json`},
		{2, dynOrder, 0x80, ""},
		{2, `{"order":{"total":"1","custom_fields":"x"},"x":[1]}`, 0x80, ""},
		{3, `{"order":{"custom_fields":null}}`, 1, dynReply},
		{4, `{"order":{"custom_fields":{"tip":{"a":1}}}}`, 0x80, ""},
		{4, `{"order":{}}`, 0, `{"order":{"custom_fields":{"tip":"\"}}`},
		{0, `{"order":[]}`, 0, dynReply},
		{0, `{"order":{}} x`, 0, dynReply},
		{0, `{"order":{"n":1e999}}`, 0, `{"uuid":"\u0000","tip":"\ud800","total":1e999}`},
		{5, dynOrder, 0, dynReply},
	} {
		f.Add(c.event, []byte(c.body), c.status, []byte(c.reply))
	}

	eng, err := relay.Open(relay.Options{Queue: relay.QueueConfig{Dir: f.TempDir()}, Logger: zap.NewNop()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = eng.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := eng.KeyValue(ctx, registry.DynamicBucket, "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	dyn, err := registry.OpenDynamic(ctx, kv, fuzzDynamicSettings(f, netip.MustParsePrefix("127.0.0.0/8")), zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(dyn.Close)
	m := &fuzzMerchant{status: 200}
	srv := httptest.NewServer(m)
	f.Cleanup(srv.Close)

	tip := registry.FieldSet{Fields: []string{"order_id", "total"}, CustomFields: []string{"tip"}}
	hooks := []struct {
		in      registry.DynamicInput
		respond registry.FieldSet
	}{
		{in: registry.DynamicInput{EventName: "tip", FieldsUpdate: registry.FieldSet{Fields: []string{"total"}, CustomFields: []string{"tip"}},
			ResponseTemplate: dynTemplate, ErrorResponseTemplate: dynErrors, ResponseData: json.RawMessage(dynReply)}, respond: tip},
		{in: registry.DynamicInput{EventName: "plain", FieldsUpdate: registry.FieldSet{Fields: []string{"order_id", "a.b.c"}},
			ResponseTemplate: dynTemplate, ResponseData: json.RawMessage(dynReply)}, respond: tip},
		{in: registry.DynamicInput{EventName: "bare", FieldsUpdate: registry.FieldSet{Fields: []string{"total", "x.y"}, CustomFields: []string{"tip", "a.b"}}},
			respond: registry.FieldSet{Fields: []string{"total", "x"}, CustomFields: []string{"tip"}}},
		{in: registry.DynamicInput{EventName: "whole", FieldsUpdate: registry.FieldSet{Fields: []string{"order_id"}, CustomFields: []string{"tip"}},
			ResponseTemplate: `{"order": {{ json .result }}}`, ErrorResponseTemplate: `{{ json . }}`, ResponseData: json.RawMessage(`{}`)}},
		{in: registry.DynamicInput{EventName: "cf", FieldsUpdate: registry.FieldSet{CustomFields: []string{"tip.a"}}},
			respond: registry.FieldSet{CustomFields: []string{"tip"}}},
	}
	secrets := map[string]string{}
	for i := range hooks {
		in := hooks[i].in
		in.URL = srv.URL + "/" + in.EventName
		in.ResponseBody = hooks[i].respond
		in.Timeout = 5 * time.Second
		_, secret, _, err := dyn.Register(ctx, "kfc-web", in)
		if err != nil {
			f.Fatalf("registering %s: %v", in.EventName, err)
		}
		secrets[in.EventName] = secret
	}
	const token = "fuzz-merchant-token"
	api := &WebhooksAPI{log: zap.NewNop(), MaxBody: DefaultWebhooksAPIMaxBody,
		tokens: []apiToken{{sum: sha256.Sum256([]byte(token)), tenant: "kfc-web"}},
		app:    &App{engine: &pooledEngine{}}}
	api.app.engine.registry.dyn = dyn

	f.Fuzz(func(t *testing.T, event byte, body []byte, status byte, reply []byte) {
		name := "unknown"
		var respond registry.FieldSet
		if int(event) < len(hooks) {
			name, respond = hooks[event].in.EventName, hooks[event].respond
		}
		st := fuzzMerchantStatuses[int(status&0x7f)%len(fuzzMerchantStatuses)]
		m.mu.Lock()
		m.status, m.body, m.echo = st, reply, status&0x80 != 0
		m.mu.Unlock()

		req := httptest.NewRequest("POST", "/api/v1/merchants/kfc-web/webhooks/"+name+"/execute", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		if err := api.ServeHTTP(rec, req, nil); err != nil {
			t.Fatalf("ServeHTTP: %v", err)
		}
		code, out := rec.Code, rec.Body.Bytes()
		if code == http.StatusInternalServerError {
			t.Fatalf("500: %s", out)
		}
		if !json.Valid(out) {
			t.Fatalf("%d with a body that is not JSON: %q", code, out)
		}
		signed := rec.Header().Get("webhook-signature") != ""
		switch {
		case code == http.StatusOK || code == http.StatusBadGateway || code == http.StatusGatewayTimeout:
			if !signed {
				t.Fatalf("%d unsigned: %s", code, out)
			}
		case code >= 400 && code < 500 && signed:
			if code != st {
				t.Fatalf("a signed %d, the merchant answered %d: %s", code, st, out)
			}
		case code == http.StatusBadRequest || code == http.StatusUnprocessableEntity || code == http.StatusNotFound:
			var env struct {
				Errors []envelopeEntry `json:"errors"`
			}
			if err := json.Unmarshal(out, &env); err != nil || len(env.Errors) == 0 {
				t.Fatalf("an unsigned %d that is not the envelope: %s", code, out)
			}
			if code == http.StatusNotFound && name != "unknown" {
				t.Fatalf("404 for the registered %s: %s", name, out)
			}
		default:
			t.Fatalf("answered %d (signed %v): %s", code, signed, out)
		}
		if signed {
			wh, err := standardwebhooks.NewWebhook(secrets[name])
			if err != nil {
				t.Fatal(err)
			}
			if err := wh.Verify(out, rec.Header()); err != nil {
				t.Fatalf("%d does not verify with %s's secret: %v", code, name, err)
			}
		}
		if code != http.StatusOK {
			return
		}
		var answer map[string]json.RawMessage
		if err := json.Unmarshal(out, &answer); err != nil || len(answer) != 1 || answer["order"] == nil {
			t.Fatalf("200 that is not {\"order\": ...}: %s", out)
		}
		if len(respond.Fields)+len(respond.CustomFields) == 0 {
			return
		}
		var order map[string]any
		if err := json.Unmarshal(answer["order"], &order); err != nil {
			t.Fatalf("200 whose order is not an object: %s", out)
		}
		for k, v := range order {
			if k == "custom_fields" && len(respond.CustomFields) > 0 {
				cf, _ := v.(map[string]any)
				for ck := range cf {
					if !fuzzListed(respond.CustomFields, ck) {
						t.Fatalf("the answer holds custom field %q, response_body lists %v: %s", ck, respond.CustomFields, out)
					}
				}
				continue
			}
			if !fuzzListed(respond.Fields, k) {
				t.Fatalf("the answer holds %q, response_body lists %v: %s", k, respond.Fields, out)
			}
		}
	})
}

// fuzzListed reports whether key is the first segment of a path of l.
func fuzzListed(l []string, key string) bool {
	for _, p := range l {
		if first, _, _ := strings.Cut(p, "."); first == key {
			return true
		}
	}
	return false
}
