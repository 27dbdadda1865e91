// Package dynamic holds hookrelay's end-to-end tests of DEUNA's dynamic,
// synchronous webhooks (CONTRACT.md section 5, seed 001): merchants
// register webhooks under /api/v1/merchants/{merchant_id}/webhooks of a
// real Caddy's hook_webhooks, execute them over an order, and get the
// order back with only the fields they may update merged, signed.
//
// Every test runs the real Caddy in process (caddytest) with the admin API
// on localhost:3100 and the site on 127.0.0.1:9980, over the embedded
// JetStream queue in a temporary directory. Merchants are httptest TLS
// servers on 127.0.0.1, trusted through the webhooks block's trusted_ca and
// reachable through allow_network 127.0.0.0/8. Tests load their own config
// and unload it when they end, so they run one at a time.
package dynamic

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	// hookrelay's modules, for the in-process Caddy that caddytest runs.
	_ "github.com/hookrelay/hookrelay"
	"github.com/hookrelay/hookrelay/internal/testutil"
)

// caddyAt is the in-process Caddy of this package (it owns 3100 and 9980;
// 9983 for the https_port its configs never use).
var caddyAt = testutil.InProcess{AdminPort: 3100, HTTPPort: 9980, HTTPSPort: 9983}

var baseURL = caddyAt.BaseURL()

const (
	// sealEnv holds the seal key of every config: 32 bytes in base64.
	sealEnv = "HOOKRELAY_DYNAMIC_TEST_SEAL_KEY"
	sealKey = "Zm9yLXRoZS1keW5hbWljLXdlYmhvb2stdGVzdHMtMzI="
)

// The merchants, as API callers: their ids and tokens.
var (
	kfc   = merchant{id: "kfc-web", token: "kfc-web-token-7f3a91"}
	kfcVE = merchant{id: "kfc-ve", token: "kfc-ve-token-41b8d0"}
	wow   = merchant{id: "wow-plus", token: "wow-plus-token-0c55e2"}
)

// baseDir holds every test's queue directory; it is removed after the
// whole package ran.
var baseDir string

func TestMain(m *testing.M) {
	testutil.RunIsolated(m, func(dir string) { baseDir = dir }, func() { _ = caddyAt.Unload() })
}

// queueDir returns a fresh queue directory for one test.
func queueDir(t *testing.T) string { return testutil.QueueDir(t, baseDir) }

// config is a test's Caddyfile: the package's global options (with
// merchant_token kept by the server), a hookrelay option with a webhooks
// block, and one site with the merchants' API.
type config struct {
	// storage is the storage line's argument; default "embedded <fresh dir>".
	storage string
	// webhooks are the lines of the webhooks block besides seal_key;
	// default: allowNetwork and the merchants' CA.
	webhooks []string
	// noUnderscore leaves out expected_underscore_headers: Caddy then
	// drops merchant_token.
	noUnderscore bool
	// logFile, when set, receives Caddy's log at DEBUG level, as JSON.
	logFile string
	// accessLog, when set, receives the site's access log, as JSON.
	accessLog string
	// sealKey is the seal key; default the package's.
	sealKey string
}

const allowNetwork = "allow_network 127.0.0.0/8"

func (c config) caddyfile(t *testing.T) string {
	t.Helper()
	storage := c.storage
	if storage == "" {
		storage = "embedded " + queueDir(t)
	}
	lines := c.webhooks
	if lines == nil {
		lines = []string{allowNetwork, trustedCA(t)}
	}
	var hr strings.Builder
	fmt.Fprintf(&hr, "\thookrelay {\n\t\tstorage %s\n\t\twebhooks {\n\t\t\tseal_key {env.%s}\n", storage, sealEnv)
	for _, l := range lines {
		fmt.Fprintf(&hr, "\t\t\t%s\n", l)
	}
	hr.WriteString("\t\t}\n\t}")
	opts := []string{hr.String()}
	if !c.noUnderscore {
		opts = append(opts, "\tservers {\n\t\texpected_underscore_headers merchant_token\n\t}")
	}
	if c.logFile != "" {
		opts = append(opts, fmt.Sprintf("\tlog {\n\t\toutput file %s\n\t\tformat json\n\t\tlevel DEBUG\n\t}", c.logFile))
	}
	site := ""
	if c.accessLog != "" {
		// As docs/dynamic.md tells ops: Caddy redacts Authorization in
		// its access log, not DEUNA's merchant_token.
		site = fmt.Sprintf("\tlog {\n\t\toutput file %s\n\t\tformat filter {\n\t\t\twrap json\n"+
			"\t\t\trequest>headers>Merchant_token delete\n\t\t}\n\t}\n", c.accessLog)
	}
	return caddyAt.Globals(opts...) + fmt.Sprintf(`
:%d {
	bind 127.0.0.1
%s	route /api/v1/* {
		hook_webhooks {
			token %s %s
			token %s %s
			token %s %s
		}
	}
}
`, caddyAt.HTTPPort, site, kfc.token, kfc.id, kfcVE.token, kfcVE.id, wow.token, wow.id)
}

// start runs the config in the in-process Caddy (a reload when one runs)
// and unloads it when the test ends, which closes its queue.
func start(t *testing.T, c config) {
	t.Helper()
	key := c.sealKey
	if key == "" {
		key = sealKey
	}
	t.Setenv(sealEnv, key)
	caddyAt.Load(t, caddyAt.NewTester(t), c.caddyfile(t))
}

// caCert is the PEM file of the certificate every httptest TLS server
// shares, written once.
var caCert struct {
	once sync.Once
	path string
	err  error
}

// trustedCA returns the webhooks block's trusted_ca line for the httptest
// TLS servers.
func trustedCA(t *testing.T) string {
	t.Helper()
	caCert.once.Do(func() {
		srv := httptest.NewTLSServer(http.NotFoundHandler())
		defer srv.Close()
		caCert.path = filepath.Join(baseDir, "httptest-ca.pem")
		b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
		caCert.err = os.WriteFile(caCert.path, b, 0o600)
	})
	if caCert.err != nil {
		t.Fatal(caCert.err)
	}
	return "trusted_ca " + caCert.path
}

// merchant calls the API as one merchant, with DEUNA's merchant_token
// header (bearer: with Authorization: Bearer instead).
type merchant struct {
	id, token string
	bearer    bool
}

// as returns m calling with another merchant's token.
func (m merchant) as(other merchant) merchant { m.token = other.token; return m }

func (m merchant) webhooks() string { return "/api/v1/merchants/" + m.id + "/webhooks" }

// answer is one answer of the API.
type answer struct {
	status int
	header http.Header
	body   []byte
	took   time.Duration
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.status, a.body) }

// call sends body (nil, raw JSON as a string or []byte, or a value to
// encode) to path below the merchant's webhooks.
func (m merchant) call(t *testing.T, method, path string, body any) answer {
	t.Helper()
	header := http.Header{}
	switch {
	case m.token == "":
	case m.bearer:
		header.Set("Authorization", "Bearer "+m.token)
	default:
		header["merchant_token"] = []string{m.token}
	}
	return do(t, method, baseURL+m.webhooks()+path, header, encode(t, body))
}

func encode(t *testing.T, body any) []byte {
	t.Helper()
	switch v := body.(type) {
	case nil:
		return nil
	case string:
		return []byte(v)
	case []byte:
		return v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// do sends a request and returns the answer; it fails the test when none
// comes within 15s (nothing here may hang).
func do(t *testing.T, method, url string, header http.Header, body []byte) answer {
	t.Helper()
	if body != nil {
		header = header.Clone()
		if header == nil {
			header = http.Header{}
		}
		header.Set("Content-Type", "application/json")
	}
	a := testutil.Send(t, method, url, header, body)
	return answer{status: a.Status, header: a.Header, body: a.Body, took: a.Took}
}

// register registers a webhook (a body for call) and requires want (201
// or 200); it returns the answer's secret, empty when it shows none.
func (m merchant) register(t *testing.T, reg any, want int) string {
	t.Helper()
	a := m.call(t, http.MethodPost, "", reg)
	if a.status != want {
		t.Fatalf("registering %.60s answered %s, want %d", encode(t, reg), a, want)
	}
	var out struct {
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(a.body, &out); err != nil {
		t.Fatalf("registration answered %s: %v", a.body, err)
	}
	if want == http.StatusCreated && !strings.HasPrefix(out.Secret, "whsec_") {
		t.Fatalf("a new registration answered %s, want its whsec_ secret", a.body)
	}
	return out.Secret
}

// execute runs the merchant's webhook of event over body.
func (m merchant) execute(t *testing.T, event string, body any) answer {
	t.Helper()
	return m.call(t, http.MethodPost, "/"+event+"/execute", body)
}

// mustExecute runs event over body, requires a 200 signed with whsec and
// returns the answer's body.
func (m merchant) mustExecute(t *testing.T, event, whsec string, body any) []byte {
	t.Helper()
	a := m.execute(t, event, body)
	if a.status != http.StatusOK {
		t.Fatalf("executing %s answered %s, want 200", event, a)
	}
	if err := verify(t, whsec, a.body, a.header); err != nil {
		t.Fatalf("the answer of %s is not signed with the webhook's secret: %v (headers %v)", event, err, a.header)
	}
	return a.body
}

// verify checks a Standard Webhooks signature with the official library.
func verify(t *testing.T, whsec string, body []byte, header http.Header) error {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(whsec)
	if err != nil {
		t.Fatal(err)
	}
	return wh.Verify(body, header)
}

// reply is what a merchant answers: status, Content-Type, body and, for a
// redirect, Location.
type reply struct {
	status   int
	ctype    string
	body     string
	location string
}

func jsonReply(body string) reply {
	return reply{status: http.StatusOK, ctype: "application/json", body: body}
}

// merchantServer is a merchant's https endpoint on 127.0.0.1: it records
// every request and answers what its answer function says.
type merchantServer struct {
	*httptest.Server
	mu     sync.Mutex
	got    []testutil.Received
	answer func(r *http.Request, body []byte) reply
}

// newMerchant starts a merchant, closed when the test ends.
func newMerchant(t *testing.T, answer func(r *http.Request, body []byte) reply) *merchantServer {
	t.Helper()
	ms := &merchantServer{answer: answer}
	ms.Server = httptest.NewTLSServer(http.HandlerFunc(ms.serve))
	t.Cleanup(ms.Close)
	return ms
}

// fixedMerchant answers every request with body, 200, as JSON.
func fixedMerchant(t *testing.T, body string) *merchantServer {
	t.Helper()
	return newMerchant(t, func(*http.Request, []byte) reply { return jsonReply(body) })
}

func (ms *merchantServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ms.mu.Lock()
	ms.got = append(ms.got, testutil.Received{At: time.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	answer := ms.answer
	ms.mu.Unlock()
	rp := answer(r, body)
	if rp.status == 0 {
		return // the handler already answered, or hung until the caller left
	}
	if rp.ctype != "" {
		w.Header().Set("Content-Type", rp.ctype)
	}
	if rp.location != "" {
		w.Header().Set("Location", rp.location)
	}
	w.WriteHeader(rp.status)
	_, _ = io.WriteString(w, rp.body)
}

func (ms *merchantServer) setAnswer(answer func(r *http.Request, body []byte) reply) {
	ms.mu.Lock()
	ms.answer = answer
	ms.mu.Unlock()
}

// Got returns a copy of every request received so far.
func (ms *merchantServer) Got() []testutil.Received {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]testutil.Received(nil), ms.got...)
}

// Count returns how many requests were received.
func (ms *merchantServer) Count() int {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return len(ms.got)
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

// refused requires an answer of status in the contract's envelope with an
// entry at pointer (any entry when pointer is empty) whose detail holds
// every one of details; it returns that detail.
func refused(t *testing.T, a answer, status int, pointer string, details ...string) string {
	t.Helper()
	if a.status != status {
		t.Errorf("answered %s, want %d at %s", a, status, pointer)
		return ""
	}
	var e errorEnvelope
	if err := json.Unmarshal(a.body, &e); err != nil || len(e.Errors) == 0 {
		t.Errorf("answered %s, not the error envelope: %v", a.body, err)
		return ""
	}
	for _, x := range e.Errors {
		if x.StatusCode != strconv.Itoa(status) {
			t.Errorf("answered %d with an entry of status_code %q", a.status, x.StatusCode)
		}
		if pointer != "" && (x.Source == nil || x.Source.Pointer != pointer) {
			continue
		}
		for _, d := range details {
			if !strings.Contains(x.Detail, d) {
				t.Errorf("the entry at %s says %q, want it to mention %q", pointer, x.Detail, d)
			}
		}
		return x.Detail
	}
	t.Errorf("answered %s, want an entry pointing at %s", a.body, pointer)
	return ""
}

// sameJSON fails the test unless got is the JSON value want.
func sameJSON(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("%s: %s is not JSON: %v", what, got, err)
		return
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: want %s is not JSON: %v", what, want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("%s: got %s, want %s", what, got, want)
	}
}

// example reads a file of examples/deuna-dynamic.
func example(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "deuna-dynamic", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exampleRegistration reads a registration body of the example, with its
// url pointed at url.
func exampleRegistration(t *testing.T, name, url string) map[string]any {
	t.Helper()
	var reg map[string]any
	if err := json.Unmarshal(example(t, name), &reg); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	reg["url"] = url
	return reg
}
