package caddymodule

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// webhooksCaddy is the in-process Caddy of this package's tests of
// registered webhooks (it owns the admin port 3090 and 9880-9881).
var webhooksCaddy = testutil.InProcess{AdminPort: 3090, HTTPPort: 9880, HTTPSPort: 9881}

// The credentials the tests register: none may appear in any answer,
// printout, page or metric.
const (
	credAPIKey = "api-key-value-that-must-stay-sealed"
	credHeader = "custom-header-value-that-must-stay-sealed"
	credParam  = "param-value-that-must-stay-sealed"
)

var credentials = []string{credAPIKey, credHeader, credParam}

const webhookTopic = "shipments/tracking"

// webhooksEnv is a running Caddy with the webhook registry, a receiver
// of deliveries, and what the test read from it, to check for secrets.
type webhooksEnv struct {
	t    *testing.T
	tc   *caddytest.Tester
	dir  string
	recv *receiver

	mu   sync.Mutex
	read []string // every answer, printout, page and scrape seen
}

// newWebhooksEnv returns the environment of a test; start loads a config.
func newWebhooksEnv(t *testing.T) *webhooksEnv {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOOKRELAY_TEST_SEAL_KEY", base64.StdEncoding.EncodeToString(key))
	e := &webhooksEnv{t: t, tc: webhooksCaddy.NewTester(t), dir: t.TempDir(), recv: newReceiver(t)}
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, s := range e.read {
			for _, c := range credentials {
				if strings.Contains(s, c) {
					t.Errorf("a credential (%s) was shown:\n%s", c, s)
				}
			}
		}
	})
	return e
}

// webhooksOpts are the variations of a config.
type webhooksOpts struct {
	noRegistry bool   // no webhooks block
	perWebhook bool   // per_webhook_metrics
	sealKeyEnv string // the seal key's variable; default HOOKRELAY_TEST_SEAL_KEY
}

// load runs a config: the queue in the test's directory, the registry
// (its seal key from the environment, loopback addresses allowed), a
// route that relays to registered webhooks and a status page.
func (e *webhooksEnv) load(o webhooksOpts) {
	e.t.Helper()
	block := fmt.Sprintf("\thookrelay {\n\t\tstorage embedded %s\n", e.dir)
	if !o.noRegistry {
		env := o.sealKeyEnv
		if env == "" {
			env = "HOOKRELAY_TEST_SEAL_KEY"
		}
		block += fmt.Sprintf("\t\twebhooks {\n\t\t\tseal_key {env.%s}\n\t\t\tallow_http\n\t\t\tallow_network 127.0.0.0/8\n", env)
		if o.perWebhook {
			block += "\t\t\tper_webhook_metrics\n"
		}
		block += "\t\t}\n"
	}
	block += "\t}"
	relay := "\t\thook_relay {\n\t\t\ttopic " + webhookTopic + "\n\t\t\twebhooks\n\t\t}\n"
	if o.noRegistry {
		relay = "\t\thook_relay {\n\t\t\ttopic " + webhookTopic + "\n\t\t\tto " + e.recv.url + "/static {\n\t\t\t\tname static\n\t\t\t}\n\t\t}\n"
	}
	cfg := webhooksCaddy.Globals(block) + fmt.Sprintf("\n:%d {\n\troute /hook {\n%s\t}\n\troute /status {\n\t\thook_dashboard\n\t}\n}\n",
		webhooksCaddy.HTTPPort, relay)
	webhooksCaddy.Load(e.t, e.tc, cfg)
}

// saw keeps s to check it for credentials at the end.
func (e *webhooksEnv) saw(s string) {
	e.mu.Lock()
	e.read = append(e.read, s)
	e.mu.Unlock()
}

// admin sends a request to the admin API and returns the status and body.
func (e *webhooksEnv) admin(method, path string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				e.t.Fatal(err)
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, webhooksCaddy.AdminURL()+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	e.saw(string(b))
	return resp.StatusCode, b
}

// adminJSON sends a request that must answer want, and decodes the answer.
func (e *webhooksEnv) adminJSON(method, path string, body any, want int, out any) {
	e.t.Helper()
	code, b := e.admin(method, path, body)
	if code != want {
		e.t.Fatalf("%s %s = %d %s, want %d", method, path, code, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

// create registers a webhook for tenant to the receiver's path, with an
// api-key header, a custom header and a param, and returns the answer.
func (e *webhooksEnv) create(tenant, topic, path string) webhookSecretResponse {
	e.t.Helper()
	body := fmt.Sprintf(`{"tenant":%q,"topic":%q,"address":%q,
		"authorization":{"authType":"api-key","headers":[{"X-Api-Key":%q}]},
		"headers":[{"X-Custom":%q}],"params":[{"token":%q}]}`,
		tenant, topic, e.recv.url+path, credAPIKey, credHeader, credParam)
	var resp webhookSecretResponse
	e.adminJSON(http.MethodPost, "/hookrelay/webhooks", []byte(body), http.StatusCreated, &resp)
	return resp
}

// send posts one event to the relay route.
func (e *webhooksEnv) send() {
	e.t.Helper()
	resp, err := http.Post(webhooksCaddy.BaseURL()+"/hook", "application/json",
		strings.NewReader(fmt.Sprintf(`{"id":"evt-%d","status":"delivered"}`, time.Now().UnixNano())))
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("POST /hook = %d %s", resp.StatusCode, b)
	}
}

// eventually polls cond until it holds, and fails the test after 30s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// receiver takes deliveries: 200 on any path but /reject, which answers
// 400 (a dead letter at once). It counts them per path and checks that
// the registered credentials arrive.
type receiver struct {
	url string
	mu  sync.Mutex
	got map[string]int
	bad []string
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{got: make(map[string]int)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		r.mu.Lock()
		r.got[req.URL.Path]++
		if req.URL.Path != "/static" && (req.Header.Get("X-Api-Key") != credAPIKey || req.Header.Get("X-Custom") != credHeader ||
			req.URL.Query().Get("token") != credParam) {
			r.bad = append(r.bad, req.URL.Path)
		}
		r.mu.Unlock()
		if req.URL.Path == "/reject" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func (r *receiver) count(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[path]
}

// TestWebhooksAdminAPI runs the admin API of registered webhooks against
// a real Caddy: 404 while the registry is off; create (201 with the
// secret, once; 422 with a pointer per invalid field; 400 for bad JSON),
// the list with its pages, tenant filter and status, one webhook by id or
// destination name, rotate and delete whatever the tenant. Pause, resume,
// dead letters and replay work on wh-<id> through the destinations' and
// dead letters' endpoints. No answer holds a credential, and the signing
// secrets only those of create and rotate.
func TestWebhooksAdminAPI(t *testing.T) {
	e := newWebhooksEnv(t)

	e.load(webhooksOpts{noRegistry: true})
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/hookrelay/webhooks"},
		{http.MethodGet, "/hookrelay/webhooks/1234567890"},
		{http.MethodPost, "/hookrelay/webhooks/1234567890/rotate"},
	} {
		code, b := e.admin(c.method, c.path, nil)
		if code != http.StatusNotFound || !strings.Contains(string(b), errRegistryOff) {
			t.Errorf("%s %s without the registry = %d %s, want 404 %q", c.method, c.path, code, b, errRegistryOff)
		}
	}

	e.load(webhooksOpts{})
	a1 := e.create("acme", webhookTopic, "/ok")
	a2 := e.create("acme", webhookTopic, "/reject")
	g1 := e.create("globex", "orders/created", "/ok")
	secrets := []string{a1.Secret, a2.Secret, g1.Secret}
	for _, c := range []webhookSecretResponse{a1, a2, g1} {
		w := c.Webhook
		if !strings.HasPrefix(c.Secret, "whsec_") || w.ID == 0 || w.Destination != fmt.Sprintf("wh-%d", w.ID) || w.Broken != "" ||
			w.Auth == nil || w.Auth.AuthType != "api-key" || len(w.Auth.HeaderNames) != 1 || w.Auth.HeaderNames[0] != "X-Api-Key" {
			t.Errorf("create answered %+v", c)
		}
	}
	if a1.Webhook.Tenant != "acme" || g1.Webhook.Tenant != "globex" || g1.Webhook.Topic != "orders/created" || a1.Webhook.Address != e.recv.url+"/ok" {
		t.Errorf("created %+v and %+v", a1.Webhook, g1.Webhook)
	}

	// Invalid webhooks: one pointer per field; a missing tenant; bad JSON.
	var invalid validationResponse
	e.adminJSON(http.MethodPost, "/hookrelay/webhooks", []byte(`{"tenant":"acme","topic":"","address":"ftp://example.com/x",
		"authorization":{"authType":"api-key"},"headers":[{"Content-Type":"text/plain"}],"secret":"not-a-secret"}`),
		http.StatusUnprocessableEntity, &invalid)
	pointers := map[string]bool{}
	for _, f := range invalid.Fields {
		pointers[f.Pointer] = f.Message != ""
	}
	for _, p := range []string{"/topic", "/address", "/authorization/headers", "/headers/0", "/secret"} {
		if !pointers[p] {
			t.Errorf("the 422 lists no message for %s: %+v", p, invalid)
		}
	}
	if !strings.Contains(invalid.Error, "/address: ") {
		t.Errorf("the 422's error %q does not name the fields", invalid.Error)
	}
	if strings.Contains(invalid.Error, "not-a-secret") {
		t.Errorf("the 422 echoes the secret given: %q", invalid.Error)
	}
	e.adminJSON(http.MethodPost, "/hookrelay/webhooks", []byte(`{"topic":"x","address":"https://example.com"}`), http.StatusUnprocessableEntity, &invalid)
	if len(invalid.Fields) != 1 || invalid.Fields[0].Pointer != "/tenant" {
		t.Errorf("no tenant: %+v", invalid)
	}
	for _, body := range []string{`{"tenant":`, `{"tenant":"acme","unknown":1}`, `{"tenant":"acme","headers":{"a":"b"}}`} {
		if code, b := e.admin(http.MethodPost, "/hookrelay/webhooks", []byte(body)); code != http.StatusBadRequest {
			t.Errorf("POST %s = %d %s, want 400", body, code, b)
		}
	}

	// The list: in id order, with each one's status; pages; a tenant.
	var list webhooksResponse
	e.adminJSON(http.MethodGet, "/hookrelay/webhooks", nil, http.StatusOK, &list)
	if list.Total != 3 || list.Broken != 0 || len(list.Webhooks) != 3 || list.NextAfter != nil {
		t.Fatalf("list = %+v", list)
	}
	for i, w := range list.Webhooks {
		if i > 0 && w.ID <= list.Webhooks[i-1].ID {
			t.Errorf("the list is not in id order: %d after %d", w.ID, list.Webhooks[i-1].ID)
		}
		if w.Status == nil || w.Status.Name != w.Destination || webhookState(w.Info, w.Status) != "running" {
			t.Errorf("webhook %d: status %+v", w.ID, w.Status)
		}
	}
	var page webhooksResponse
	e.adminJSON(http.MethodGet, "/hookrelay/webhooks?limit=2", nil, http.StatusOK, &page)
	if len(page.Webhooks) != 2 || page.NextAfter == nil || *page.NextAfter != list.Webhooks[1].ID || page.Total != 3 {
		t.Fatalf("first page = %+v", page)
	}
	e.adminJSON(http.MethodGet, fmt.Sprintf("/hookrelay/webhooks?limit=2&after=%d", *page.NextAfter), nil, http.StatusOK, &page)
	if len(page.Webhooks) != 1 || page.Webhooks[0].ID != list.Webhooks[2].ID || page.NextAfter != nil {
		t.Fatalf("second page = %+v", page)
	}
	e.adminJSON(http.MethodGet, "/hookrelay/webhooks?tenant=acme", nil, http.StatusOK, &page)
	if page.Total != 2 || len(page.Webhooks) != 2 || page.Webhooks[0].Tenant != "acme" || page.Webhooks[1].Tenant != "acme" {
		t.Fatalf("acme's = %+v", page)
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "after=x"} {
		if code, b := e.admin(http.MethodGet, "/hookrelay/webhooks?"+q, nil); code != http.StatusBadRequest {
			t.Errorf("?%s = %d %s, want 400", q, code, b)
		}
	}

	// One webhook, by id or by destination name.
	var one webhookView
	for _, ref := range []string{fmt.Sprint(g1.Webhook.ID), g1.Webhook.Destination} {
		e.adminJSON(http.MethodGet, "/hookrelay/webhooks/"+ref, nil, http.StatusOK, &one)
		if one.ID != g1.Webhook.ID || one.Tenant != "globex" || one.Status == nil || one.Status.Name != g1.Webhook.Destination {
			t.Errorf("GET %s = %+v", ref, one)
		}
	}
	for path, want := range map[string]int{
		"/hookrelay/webhooks/1000000000":                       http.StatusNotFound,
		"/hookrelay/webhooks/nope":                             http.StatusBadRequest,
		fmt.Sprintf("/hookrelay/webhooks/%d/x", g1.Webhook.ID): http.StatusNotFound,
	} {
		if code, b := e.admin(http.MethodGet, path, nil); code != want {
			t.Errorf("GET %s = %d %s, want %d", path, code, b, want)
		}
	}
	if code, _ := e.admin(http.MethodPut, "/hookrelay/webhooks", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("PUT /hookrelay/webhooks = %d, want 405", code)
	}

	// Deliveries, dead letters, replay, pause and resume of wh-<id>.
	e.send()
	eventually(t, "the deliveries to both of acme's webhooks", func() bool { return e.recv.count("/ok") >= 1 && e.recv.count("/reject") >= 1 })
	if e.recv.count("/ok") != 1 {
		t.Errorf("/ok got %d deliveries; globex's webhook is of another topic", e.recv.count("/ok"))
	}
	if len(e.recv.bad) > 0 {
		t.Errorf("deliveries without the registered credentials: %v", e.recv.bad)
	}
	rej := a2.Webhook.Destination
	var dls deadLettersResponse
	eventually(t, "the dead letter of "+rej, func() bool {
		e.adminJSON(http.MethodGet, "/hookrelay/dead_letters?destination="+rej, nil, http.StatusOK, &dls)
		return dls.Total == 1
	})
	if len(dls.DeadLetters) != 1 || dls.DeadLetters[0].Destination != rej || dls.DeadLetters[0].LastStatus != http.StatusBadRequest {
		t.Errorf("dead letters of %s = %+v", rej, dls)
	}
	var replayed replayResponse
	e.adminJSON(http.MethodPost, "/hookrelay/dead_letters/replay", replayRequest{Destination: rej}, http.StatusOK, &replayed)
	if replayed.Replayed != 1 {
		t.Errorf("replayed %d, want 1", replayed.Replayed)
	}
	eventually(t, "the replayed delivery", func() bool { return e.recv.count("/reject") >= 2 })
	var paused pauseResponse
	e.adminJSON(http.MethodPost, "/hookrelay/destinations/"+rej+"/pause", nil, http.StatusOK, &paused)
	if !paused.Paused || paused.Destination != rej {
		t.Errorf("pause = %+v", paused)
	}
	e.adminJSON(http.MethodGet, "/hookrelay/webhooks/"+fmt.Sprint(a2.Webhook.ID), nil, http.StatusOK, &one)
	if one.Status == nil || !one.Status.Paused || webhookState(one.Info, one.Status) != "paused" {
		t.Errorf("a paused webhook: %+v", one.Status)
	}
	e.adminJSON(http.MethodPost, "/hookrelay/destinations/"+rej+"/resume", nil, http.StatusOK, &paused)
	e.adminJSON(http.MethodGet, "/hookrelay/destinations/"+rej, nil, http.StatusOK, nil)

	// Rotate, then delete, whatever the tenant.
	var rot webhookSecretResponse
	e.adminJSON(http.MethodPost, fmt.Sprintf("/hookrelay/webhooks/%d/rotate", a1.Webhook.ID), nil, http.StatusOK, &rot)
	if !strings.HasPrefix(rot.Secret, "whsec_") || rot.Secret == a1.Secret || rot.Webhook.ID != a1.Webhook.ID || rot.Webhook.Tenant != "acme" {
		t.Errorf("rotate = %+v", rot)
	}
	secrets = append(secrets, rot.Secret)
	if code, _ := e.admin(http.MethodGet, fmt.Sprintf("/hookrelay/webhooks/%d/rotate", a1.Webhook.ID), nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET rotate = %d, want 405", code)
	}
	var del webhookDeletedResponse
	e.adminJSON(http.MethodDelete, fmt.Sprintf("/hookrelay/webhooks/%d", g1.Webhook.ID), nil, http.StatusOK, &del)
	if !del.Deleted || del.Webhook.ID != g1.Webhook.ID || del.Webhook.Tenant != "globex" {
		t.Errorf("delete = %+v", del)
	}
	if code, _ := e.admin(http.MethodGet, fmt.Sprintf("/hookrelay/webhooks/%d", g1.Webhook.ID), nil); code != http.StatusNotFound {
		t.Errorf("GET after delete = %d, want 404", code)
	}
	if code, _ := e.admin(http.MethodDelete, fmt.Sprintf("/hookrelay/webhooks/%d", g1.Webhook.ID), nil); code != http.StatusNotFound {
		t.Errorf("delete twice = %d, want 404", code)
	}
	e.adminJSON(http.MethodGet, "/hookrelay/webhooks", nil, http.StatusOK, &list)
	if list.Total != 2 {
		t.Errorf("after delete, total %d", list.Total)
	}

	// The signing secrets appear only in the answers of create and rotate.
	e.mu.Lock()
	for _, s := range e.read {
		if strings.Contains(s, `"secret":"whsec_`) {
			continue // a create's or a rotation's
		}
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				t.Errorf("a signing secret appears in %s", s)
			}
		}
	}
	e.mu.Unlock()
}
