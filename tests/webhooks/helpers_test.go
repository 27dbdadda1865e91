// Package webhooks holds hookrelay's end-to-end tests of webhooks
// registered at run time (CONTRACT.md section 4): tenants register
// webhooks over the hook_webhooks API of a real Caddy, events posted to a
// hook_relay route with webhooks reach them, signed, authorized, retried
// and dead-lettered, and the SSRF guard keeps them off internal networks.
//
// Every test runs the real Caddy in process (caddytest) with the admin API
// on localhost:3070 and the site on 127.0.0.1:9780, over the embedded
// JetStream queue in a temporary directory (one test uses a loopback NATS
// server, to read the queue while Caddy runs). Receivers and token
// endpoints are httptest TLS servers on 127.0.0.1, trusted through the
// webhooks block's trusted_ca. Tests load their own config and unload it
// when they end, so they run one at a time.
package webhooks

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	// hookrelay's modules, for the in-process Caddy that caddytest runs.
	_ "github.com/hookrelay/hookrelay"
	"github.com/hookrelay/hookrelay/internal/testutil"
	"github.com/hookrelay/hookrelay/relay"
)

// caddyAt is the in-process Caddy of this package (it owns 3070 and 9780;
// 9783 for the https_port its configs never use).
var caddyAt = testutil.InProcess{AdminPort: 3070, HTTPPort: 9780, HTTPSPort: 9783}

var (
	adminURL = caddyAt.AdminURL()
	baseURL  = caddyAt.BaseURL()
)

const (
	// sealEnv holds the seal key of every config: 32 bytes in base64.
	sealEnv = "HOOKRELAY_WEBHOOKS_TEST_SEAL_KEY"
	sealKey = "q1n3Kx0ZbV2m8cR7tY4uI9oP6aS5dF3gH1jK2lZ0xCw="

	// The API's static tokens and the tenants they stand for.
	tokenA  = "tenant-a-api-token-5c1f0e"
	tokenB  = "tenant-b-api-token-93d2aa"
	tenantA = "tenant-a"
	tenantB = "tenant-b"

	// eventsPath takes events of topic orders/created for every tenant's
	// webhooks; every config has it.
	eventsPath = "/events"
	topic      = "orders/created"
)

// The two tenants, as API callers.
var (
	apiA = api{token: tokenA}
	apiB = api{token: tokenB}
)

// baseDir holds every test's queue directory; it is removed after the
// whole package ran.
var baseDir string

// queueDir returns a fresh queue directory for one test.
func queueDir(t *testing.T) string { return testutil.QueueDir(t, baseDir) }

// config is a test's Caddyfile: the package's global options, a hookrelay
// option with a webhooks block, and one site with the webhook API (both
// tenants' tokens), the /events route and the test's own routes.
type config struct {
	// storage is the storage line's argument; default "embedded <fresh dir>".
	storage string
	// webhooks are lines of the webhooks block besides seal_key.
	webhooks []string
	// logFile, when set, receives Caddy's log at DEBUG level, as JSON.
	logFile string
	// routes are more routes of the site.
	routes string
}

// caddyfile returns the config's Caddyfile.
func (c config) caddyfile(t *testing.T) string {
	t.Helper()
	storage := c.storage
	if storage == "" {
		storage = "embedded " + queueDir(t)
	}
	var hr strings.Builder
	fmt.Fprintf(&hr, "\thookrelay {\n\t\tstorage %s\n\t\twebhooks {\n\t\t\tseal_key {env.%s}\n", storage, sealEnv)
	for _, l := range c.webhooks {
		fmt.Fprintf(&hr, "\t\t\t%s\n", l)
	}
	hr.WriteString("\t\t}\n\t}")
	opts := []string{hr.String()}
	if c.logFile != "" {
		opts = append(opts, fmt.Sprintf("\tlog {\n\t\toutput file %s\n\t\tformat json\n\t\tlevel DEBUG\n\t}", c.logFile))
	}
	return caddyAt.Globals(opts...) + fmt.Sprintf(`
:%d {
	bind 127.0.0.1
	@api path /api/webhooks/* /v1/* /openapi.json
	route @api {
		hook_webhooks {
			token %s %s
			token %s %s
		}
	}
	route %s {
		hook_relay {
			topic %s
			webhooks
		}
	}
%s
}
`, caddyAt.HTTPPort, tokenA, tenantA, tokenB, tenantB, eventsPath, topic, c.routes)
}

// start runs the config in the in-process Caddy and unloads it when the
// test ends, which closes its queue.
func start(t *testing.T, c config) {
	t.Helper()
	t.Setenv(sealEnv, sealKey)
	caddyAt.Load(t, caddyAt.NewTester(t), c.caddyfile(t))
}

// trustedCA writes the certificate of the httptest TLS servers (they all
// share one) as a PEM file for the webhooks block's trusted_ca, and
// returns the option's line.
func trustedCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return "trusted_ca " + path
}

// api calls the webhook API as one tenant.
type api struct{ token string }

// call sends body (nil, raw JSON as a string, or a value to encode) and
// returns the status and body of the answer.
func (a api) call(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	header := http.Header{"Authorization": {"Bearer " + a.token}}
	var b []byte
	switch v := body.(type) {
	case nil:
	case string:
		b = []byte(v)
	default:
		enc, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b = enc
	}
	if body != nil {
		header.Set("Content-Type", "application/json")
	}
	return testutil.Do(t, method, baseURL+path, header, b)
}

// ventiappWebhook is the webhook object of Ventiapp's answers.
type ventiappWebhook struct {
	ID         uint64 `json:"id"`
	Address    string `json:"address"`
	Topic      string `json:"topic"`
	CreatedAt  string `json:"created_at"`
	APIVersion string `json:"api_version"`
	Message    string `json:"message"`
}

// create registers webhook through Ventiapp's create and returns its id;
// anything but the 200 with "Webhook created" ends the test.
func (a api) create(t *testing.T, webhook map[string]any) uint64 {
	t.Helper()
	status, body := a.call(t, http.MethodPost, "/api/webhooks/create", map[string]any{"webhook": webhook})
	if status != http.StatusOK {
		t.Fatalf("create answered %d %s, want 200", status, body)
	}
	var out struct {
		Webhook ventiappWebhook `json:"webhook"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("create answered %s: %v", body, err)
	}
	if out.Webhook.ID == 0 || out.Webhook.Message != "Webhook created" {
		t.Fatalf("create answered %s, want the webhook with its id and \"Webhook created\"", body)
	}
	return out.Webhook.ID
}

// list returns the ids of Ventiapp's list.
func (a api) list(t *testing.T) []uint64 {
	t.Helper()
	status, body := a.call(t, http.MethodGet, "/api/webhooks/list", nil)
	if status != http.StatusOK {
		t.Fatalf("list answered %d %s, want 200", status, body)
	}
	var out struct {
		Webhooks []ventiappWebhook `json:"webhooks"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("list answered %s: %v", body, err)
	}
	ids := make([]uint64, len(out.Webhooks))
	for i, w := range out.Webhooks {
		ids[i] = w.ID
	}
	return ids
}

// listNative returns the ids of the native list (first page).
func (a api) listNative(t *testing.T) []uint64 {
	t.Helper()
	status, body := a.call(t, http.MethodGet, "/v1/webhooks", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /v1/webhooks answered %d %s, want 200", status, body)
	}
	var out struct {
		Data []struct {
			ID uint64 `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("GET /v1/webhooks answered %s: %v", body, err)
	}
	ids := make([]uint64, len(out.Data))
	for i, w := range out.Data {
		ids[i] = w.ID
	}
	return ids
}

// remove deletes a webhook through Ventiapp's delete and returns the
// status and body of the answer.
func (a api) remove(t *testing.T, id uint64) (int, []byte) {
	t.Helper()
	return a.call(t, http.MethodPost, "/api/webhooks/delete", map[string]any{"webhook": map[string]any{"id": id}})
}

// secretIn returns the first "secret" member found in a JSON answer, at
// its top level or in its webhook or data object.
func secretIn(t *testing.T, body []byte) string {
	t.Helper()
	var out map[string]json.RawMessage
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("answer %s: %v", body, err)
	}
	for _, obj := range []map[string]json.RawMessage{out, inner(out, "webhook"), inner(out, "data")} {
		var s string
		if raw, ok := obj["secret"]; ok && json.Unmarshal(raw, &s) == nil && s != "" {
			return s
		}
	}
	t.Fatalf("no secret in the answer %s", body)
	return ""
}

func inner(m map[string]json.RawMessage, key string) map[string]json.RawMessage {
	var out map[string]json.RawMessage
	_ = json.Unmarshal(m[key], &out)
	return out
}

// webhookName is the destination a registered webhook runs as.
func webhookName(id uint64) string { return relay.WebhookName(id) }

// receiver is a loopback https server standing in for a webhook's
// address or a token endpoint: it records every request and answers the
// status answer gives (200 when nil).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []testutil.Received
	answer func(n int, r *http.Request, body []byte) int
}

// newReceiver starts a receiver, closed when the test ends.
func newReceiver(t *testing.T, answer func(n int, r *http.Request, body []byte) int) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	rc.Server = httptest.NewTLSServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.got = append(rc.got, testutil.Received{At: time.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	n := len(rc.got)
	answer := rc.answer
	rc.mu.Unlock()
	status := http.StatusOK
	if answer != nil {
		status = answer(n, r, body)
	}
	w.WriteHeader(status)
}

// setAnswer replaces the receiver's answer.
func (rc *receiver) setAnswer(answer func(n int, r *http.Request, body []byte) int) {
	rc.mu.Lock()
	rc.answer = answer
	rc.mu.Unlock()
}

// Got returns a copy of every request received so far.
func (rc *receiver) Got() []testutil.Received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]testutil.Received(nil), rc.got...)
}

// Count returns how many requests were received.
func (rc *receiver) Count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got)
}

// waitCount waits until the receiver got n requests.
func (rc *receiver) waitCount(t *testing.T, n int, what string) {
	t.Helper()
	testutil.WaitFor(t, 20*time.Second, what, func() bool { return rc.Count() >= n })
}

// post sends an event body to a route of the site, with header, and
// requires the contract's 201.
func post(t *testing.T, path string, header http.Header, body string) {
	t.Helper()
	status, resp := testutil.Post(t, baseURL+path, header, []byte(body))
	if status != http.StatusCreated {
		t.Fatalf("POST %s answered %d %s, want 201", path, status, resp)
	}
}

// settled waits until the queue holds nothing more for dest: no attempt
// can follow.
func settled(t *testing.T, dest string) {
	t.Helper()
	testutil.WaitSettled(t, adminURL, dest, 30*time.Second)
}

// admin sends a request to the admin API and returns the status and body.
func admin(t *testing.T, method, path string, body string) (int, []byte) {
	t.Helper()
	return send(t, method, adminURL+path, body)
}

// get sends a GET to url and returns the status and body.
func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	return send(t, http.MethodGet, url, "")
}

func send(t *testing.T, method, url string, body string) (int, []byte) {
	t.Helper()
	if body == "" {
		return testutil.Do(t, method, url, nil, nil)
	}
	return testutil.Do(t, method, url, http.Header{"Content-Type": {"application/json"}}, []byte(body))
}

// deadLetter is a dead letter as the admin API lists it.
type deadLetter struct {
	ID          uint64 `json:"id"`
	EventID     string `json:"event_id"`
	Topic       string `json:"topic"`
	Destination string `json:"destination"`
	Attempts    int    `json:"attempts"`
	LastStatus  int    `json:"last_status"`
	LastError   string `json:"last_error"`
	Reason      string `json:"reason"`
}

// deadLetters returns the dead letters of dest.
func deadLetters(t *testing.T, dest string) []deadLetter {
	t.Helper()
	status, body := admin(t, http.MethodGet, "/hookrelay/dead_letters?destination="+dest, "")
	if status != http.StatusOK {
		t.Fatalf("GET /hookrelay/dead_letters answered %d %s", status, body)
	}
	var out struct {
		DeadLetters []deadLetter `json:"dead_letters"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("dead letters %s: %v", body, err)
	}
	return out.DeadLetters
}

// waitDeadLetters waits until dest has n dead letters and returns them.
func waitDeadLetters(t *testing.T, dest string, n int) []deadLetter {
	t.Helper()
	var dls []deadLetter
	testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("%d dead letters of %s", n, dest), func() bool {
		dls = deadLetters(t, dest)
		return len(dls) >= n
	})
	return dls
}

// verify checks a delivery's Standard Webhooks signature with the official
// library and the secret whsec.
func verify(t *testing.T, whsec string, d testutil.Received) error {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(whsec)
	if err != nil {
		t.Fatal(err)
	}
	return wh.Verify(d.Body, d.Header)
}

// eventOf decodes a delivered event.
func eventOf(t *testing.T, d testutil.Received) deliveredEvent {
	t.Helper()
	var ev deliveredEvent
	if err := json.Unmarshal(d.Body, &ev); err != nil {
		t.Fatalf("delivered body %s: %v", d.Body, err)
	}
	return ev
}

// deliveredEvent is the event a webhook receives.
type deliveredEvent struct {
	ID     string          `json:"id"`
	Topic  string          `json:"topic"`
	Tenant string          `json:"tenant"`
	Data   json.RawMessage `json:"data"`
}

// field returns a string member of the event's data.
func (ev deliveredEvent) field(name string) string {
	var m map[string]any
	_ = json.Unmarshal(ev.Data, &m)
	s, _ := m[name].(string)
	return s
}

// errorEnvelope is the contract's error body.
type errorEnvelope struct {
	Errors []struct {
		Title      string `json:"title"`
		Detail     string `json:"detail"`
		StatusCode string `json:"status_code"`
		Source     *struct {
			Pointer string `json:"pointer"`
		} `json:"source"`
	} `json:"errors"`
}

// envelope decodes an error answer, failing the test when it is not the
// contract's envelope.
func envelope(t *testing.T, body []byte) errorEnvelope {
	t.Helper()
	var e errorEnvelope
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("answer %s is not the error envelope: %v", body, err)
	}
	return e
}
