package caddymodule

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookrelay/hookrelay/internal/testutil"
	"github.com/hookrelay/hookrelay/registry"
)

// apiCaddy is the in-process Caddy of the webhook API's tests: the only
// tests of this package that run a server. Its ports are used by no other
// package (tests/* own 3010-3050 and 9180-9943).
var apiCaddy = testutil.InProcess{AdminPort: 3060, HTTPPort: 9680, HTTPSPort: 9681}

// apiPrefix is where the tests mount the API.
const apiPrefix = "/hooks"

// apiEnv is a running Caddy with hook_webhooks behind two tenants' tokens,
// and a receiver the test events are delivered to.
type apiEnv struct {
	base         string // the API's URL, prefix included
	acme, globex string // the two tenants' tokens
	client       *http.Client
	check        *openAPICheck
	receiver     string // https://127.0.0.2:<port>/hook
	received     chan receivedDelivery
	loadedAt     time.Time
}

type receivedDelivery struct {
	header http.Header
	query  string
	body   []byte
}

// apiResponse is one answer of the API.
type apiResponse struct {
	status int
	header http.Header
	body   []byte
}

// randomToken returns a random secret for the test.
func randomToken(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// startWebhooksAPI runs the API: an embedded queue in a temporary
// directory, a seal key and two tokens generated here and passed as
// {env.*} placeholders, and a TLS receiver on 127.0.0.2, the one internal
// network the registry is allowed to reach (127.0.0.1 and localhost stay
// refused).
func startWebhooksAPI(t *testing.T) *apiEnv {
	t.Helper()
	e := &apiEnv{
		base:     apiCaddy.BaseURL() + apiPrefix,
		acme:     randomToken(t, 24),
		globex:   randomToken(t, 24),
		received: make(chan receivedDelivery, 16),
	}
	t.Setenv("HOOKRELAY_TEST_SEAL_KEY", randomToken(t, 32))
	t.Setenv("HOOKRELAY_TEST_TOKEN_ACME", e.acme)
	t.Setenv("HOOKRELAY_TEST_TOKEN_GLOBEX", e.globex)
	caFile := e.startReceiver(t)

	caddyfile := apiCaddy.Globals(fmt.Sprintf(`	hookrelay {
		storage embedded %s
		webhooks {
			seal_key {env.HOOKRELAY_TEST_SEAL_KEY}
			allow_network 127.0.0.2/32
			trusted_ca %s
		}
	}`, t.TempDir(), caFile)) + `
:9680 {
	route /hooks/* {
		hook_webhooks {
			prefix /hooks
			token {env.HOOKRELAY_TEST_TOKEN_ACME} acme
			token {env.HOOKRELAY_TEST_TOKEN_GLOBEX} globex
		}
	}
}
`
	apiCaddy.Load(t, apiCaddy.NewTester(t), caddyfile)
	e.loadedAt = time.Now()
	e.client = &http.Client{Timeout: 30 * time.Second}
	return e
}

// startReceiver starts the HTTPS receiver on 127.0.0.2 with a certificate
// made here, and returns the file of that certificate, for trusted_ca.
func (e *apiEnv) startReceiver(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "hookrelay webhook API test receiver"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.2")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "receiver.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("listening on 127.0.0.2: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case e.received <- receivedDelivery{header: r.Header.Clone(), query: r.URL.RawQuery, body: body}:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	e.receiver = "https://" + ln.Addr().String() + "/hook"
	return caFile
}

// do sends a request to the API, path relative to the prefix, with the
// token as a Bearer credential ("" for none); hdr are more header names
// and values.
func (e *apiEnv) do(t *testing.T, method, path, token string, body []byte, hdr ...string) apiResponse {
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
		req.Header.Set("Authorization", "Bearer "+token)
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

// want checks the status of r.
func (r apiResponse) want(t *testing.T, status int) apiResponse {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	return r
}

// envelopeEntry is one entry of the error envelope.
type envelopeEntry struct {
	Title      string `json:"title"`
	Detail     string `json:"detail"`
	StatusCode string `json:"status_code"`
	Source     *struct {
		Pointer string `json:"pointer"`
	} `json:"source"`
}

// errors checks that r is the envelope of status and returns its entries.
func (r apiResponse) errors(t *testing.T, status int) []envelopeEntry {
	t.Helper()
	r.want(t, status)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var env struct {
		Errors []envelopeEntry `json:"errors"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil || len(env.Errors) == 0 {
		t.Fatalf("not the error envelope (%v): %s", err, r.body)
	}
	for _, e := range env.Errors {
		if e.StatusCode != strconv.Itoa(status) || e.Title == "" || e.Detail == "" {
			t.Errorf("envelope entry %+v: want status_code %q, a title and a detail", e, strconv.Itoa(status))
		}
	}
	return env.Errors
}

// pointers returns the entries' pointers, "" for an entry without one.
func pointers(entries []envelopeEntry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		if e.Source != nil {
			out[i] = e.Source.Pointer
		}
	}
	return out
}

// decode decodes r's JSON body into v.
func (r apiResponse) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// seedFile reads a file of testdata/ventiapp: the bytes of seed 000's
// examples, as published (trailing commas, comments and trailing spaces
// included).
func seedFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "ventiapp", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// objectKeys returns the member names of the JSON object raw, in order.
func objectKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", raw)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// sameShape compares a webhook of our answer with one of the seed's
// example answers: the same keys in the same order, each of the same JSON
// type, created_at in RFC 3339, and api_version and message equal.
func sameShape(t *testing.T, got, want json.RawMessage) {
	t.Helper()
	if g, w := objectKeys(t, got), objectKeys(t, want); !slices.Equal(g, w) {
		t.Errorf("keys %v, the seed's %v", g, w)
	}
	var g, w map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	for k, wv := range w {
		if fmt.Sprintf("%T", g[k]) != fmt.Sprintf("%T", wv) {
			t.Errorf("%s is %T (%v), the seed's is %T", k, g[k], g[k], wv)
		}
	}
	id, _ := g["id"].(float64)
	if id < 1 || id != float64(uint64(id)) {
		t.Errorf("id %v is not a positive integer", g["id"])
	}
	for _, k := range []string{"created_at"} {
		s, _ := g[k].(string)
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			t.Errorf("%s %q is not RFC 3339: %v", k, s, err)
		}
	}
	if g["api_version"] != "1.0.9" {
		t.Errorf("api_version %v, want 1.0.9", g["api_version"])
	}
	if wm, ok := w["message"]; ok && g["message"] != wm {
		t.Errorf("message %v, the seed's %v", g["message"], wm)
	}
}

// seedAnswer returns the "webhook" (or the first of "webhooks") of one of
// the seed's example answers, read through lenientJSON: the list's example
// has a trailing comma.
func seedAnswer(t *testing.T, name string) json.RawMessage {
	t.Helper()
	b, err := lenientJSON(seedFile(t, name))
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		Webhook  json.RawMessage   `json:"webhook"`
		Webhooks []json.RawMessage `json:"webhooks"`
	}
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("the seed's %s: %v", name, err)
	}
	if a.Webhook != nil {
		return a.Webhook
	}
	return a.Webhooks[0]
}

// ventiappResult is the body of Ventiapp's create and delete answers.
type ventiappResult struct {
	Webhook json.RawMessage `json:"webhook"`
}

type ventiappHook struct {
	ID         uint64 `json:"id"`
	Address    string `json:"address"`
	Topic      string `json:"topic"`
	CreatedAt  string `json:"created_at"`
	APIVersion string `json:"api_version"`
	Message    string `json:"message"`
}

// apiHook is the native representation, for the tests.
type apiHook struct {
	ID            uint64                `json:"id"`
	Topic         string                `json:"topic"`
	Address       string                `json:"address"`
	Filter        string                `json:"filter"`
	OrderBy       string                `json:"order_by"`
	Authorization *registry.AuthSummary `json:"authorization"`
	HeaderNames   []string              `json:"header_names"`
	ParamNames    []string              `json:"param_names"`
	Retry         *struct {
		Schedule []string `json:"schedule"`
		MaxAge   string   `json:"max_age"`
		On4xx    string   `json:"on_4xx"`
	} `json:"retry"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	APIVersion string    `json:"api_version"`
	Secret     string    `json:"secret"`
}

type apiPage struct {
	Data       []apiHook `json:"data"`
	NextCursor *string   `json:"next_cursor"`
}

// nativeIDs lists every webhook of the tenant with the native API, page
// by page.
func (e *apiEnv) nativeIDs(t *testing.T, token string, limit int) []uint64 {
	t.Helper()
	var ids []uint64
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("the pages do not end")
		}
		path := "/v1/webhooks?limit=" + strconv.Itoa(limit)
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		var page apiPage
		e.do(t, "GET", path, token, nil).want(t, http.StatusOK).decode(t, &page)
		if len(page.Data) > limit {
			t.Fatalf("a page of %d webhooks, limit %d", len(page.Data), limit)
		}
		for _, w := range page.Data {
			ids = append(ids, w.ID)
		}
		if page.NextCursor == nil {
			return ids
		}
		if len(page.Data) != limit {
			t.Errorf("a page of %d webhooks that is not the last, limit %d", len(page.Data), limit)
		}
		cursor = *page.NextCursor
	}
}

// Secrets the tests give the API, which no answer may hold.
const (
	testAPIKey       = "api-key-value-0d1e2f-never-shown"
	testHeaderValue  = "custom-header-value-9a8b7c-never-shown"
	testParamValue   = "custom-param-value-5e6f7a-never-shown"
	testLoginSecret  = "login-body-client-secret-3c4d5e-never-shown"
	seedAPIKey       = "xxX12345xXxKey"
	seedLoginHeader  = "Basic xxxxxxxxxxxxxxxxxx"
	seedLoginBodyVal = "client_credentials"
)

func TestWebhooksAPI(t *testing.T) {
	e := startWebhooksAPI(t)

	t.Run("openapi", func(t *testing.T) {
		doc := e.do(t, "GET", "/openapi.json", "", nil).want(t, http.StatusOK)
		e.check = newOpenAPICheck(t, doc.body, http.DefaultTransport)
		e.client.Transport = e.check
		// Again, through the check.
		e.do(t, "GET", "/openapi.json", "", nil).want(t, http.StatusOK)
		y := e.do(t, "GET", "/openapi.yaml", "", nil).want(t, http.StatusOK)
		if ct := y.header.Get("Content-Type"); ct != "application/yaml" {
			t.Errorf("openapi.yaml: Content-Type %q", ct)
		}
		if !bytes.Contains(y.body, []byte(`- url: "/hooks"`)) {
			t.Errorf("openapi.yaml does not name the prefix as its server")
		}
		e.do(t, "POST", "/openapi.json", "", []byte(`{}`)).errors(t, http.StatusMethodNotAllowed)
	})
	if e.check == nil {
		t.Fatal("no OpenAPI check: the remaining requests would go unchecked")
	}

	var ventiIDs []uint64
	t.Run("ventiapp", func(t *testing.T) {
		// The seed's list request: Authorization and Content-Type.
		list := e.do(t, "GET", "/api/webhooks/list", e.acme, nil, "Content-Type", "application/json").want(t, http.StatusOK)
		if string(list.body) != `{"webhooks":[]}` {
			t.Errorf("empty list %s, want {\"webhooks\":[]}", list.body)
		}
		// The seed's create examples, verbatim: the oauth and api-key
		// "Ejemplo" bodies (trailing commas) and the "Body Parameters"
		// sample (comments too).
		for _, name := range []string{"create_oauth_example.json", "create_apikey_example.json", "create_body_parameters.json"} {
			body := seedFile(t, name)
			r := e.do(t, "POST", "/api/webhooks/create", e.acme, body).want(t, http.StatusOK)
			if got := objectKeys(t, r.body); !slices.Equal(got, []string{"webhook"}) {
				t.Errorf("%s: answer keys %v", name, got)
			}
			var res ventiappResult
			r.decode(t, &res)
			sameShape(t, res.Webhook, seedAnswer(t, "create_answer.json"))
			var w ventiappHook
			if err := json.Unmarshal(res.Webhook, &w); err != nil {
				t.Fatal(err)
			}
			if w.Address != "https://whatever.hostname.com/" || w.Topic != "orders/created" || w.Message != "Webhook created" {
				t.Errorf("%s: answered %s", name, res.Webhook)
			}
			created, _ := time.Parse(time.RFC3339, w.CreatedAt)
			if created.Before(e.loadedAt.Add(-2*time.Second)) || created.After(time.Now().Add(time.Second)) {
				t.Errorf("%s: created_at %s, not now", name, w.CreatedAt)
			}
			ventiIDs = append(ventiIDs, w.ID)
		}

		// The list, as the seed's list example.
		list = e.do(t, "GET", "/api/webhooks/list", e.acme, nil, "Content-Type", "application/json").want(t, http.StatusOK)
		var l struct {
			Webhooks []json.RawMessage `json:"webhooks"`
		}
		list.decode(t, &l)
		if got := objectKeys(t, list.body); !slices.Equal(got, []string{"webhooks"}) {
			t.Errorf("list keys %v", got)
		}
		var listed []uint64
		for _, raw := range l.Webhooks {
			sameShape(t, raw, seedAnswer(t, "list_answer.json"))
			var w ventiappHook
			_ = json.Unmarshal(raw, &w)
			listed = append(listed, w.ID)
		}
		want := slices.Sorted(slices.Values(ventiIDs))
		if !slices.Equal(listed, want) {
			t.Errorf("listed %v, want %v", listed, want)
		}

		// The seed's delete body, verbatim: its id is not one of ours.
		if got := pointers(e.do(t, "POST", "/api/webhooks/delete", e.acme, seedFile(t, "delete_body.json")).errors(t, http.StatusNotFound)); got[0] != "" {
			t.Errorf("404 with pointer %q", got[0])
		}
		// The same body with an id of ours.
		del := bytes.Replace(seedFile(t, "delete_body.json"), []byte("1047897671"), []byte(strconv.FormatUint(ventiIDs[0], 10)), 1)
		// Another tenant's id is not found.
		e.do(t, "POST", "/api/webhooks/delete", e.globex, del).errors(t, http.StatusNotFound)
		r := e.do(t, "POST", "/api/webhooks/delete", e.acme, del).want(t, http.StatusOK)
		var res ventiappResult
		r.decode(t, &res)
		sameShape(t, res.Webhook, seedAnswer(t, "delete_answer.json"))
		var w ventiappHook
		_ = json.Unmarshal(res.Webhook, &w)
		if w.ID != ventiIDs[0] || w.Message != "Webhook deleted" {
			t.Errorf("deleted %s", res.Webhook)
		}
		e.do(t, "POST", "/api/webhooks/delete", e.acme, del).errors(t, http.StatusNotFound)
		ventiIDs = ventiIDs[1:]
		list = e.do(t, "GET", "/api/webhooks/list", e.acme, nil).want(t, http.StatusOK)
		list.decode(t, &l)
		if len(l.Webhooks) != 2 {
			t.Errorf("%d webhooks after the delete, want 2", len(l.Webhooks))
		}

		// Ventiapp's pointers are within its "webhook" object.
		for _, c := range []struct {
			path, body string
			want       []string
		}{
			{"/api/webhooks/create", `{"webhook":{"topic":5,"address":"https://whatever.hostname.com/"}}`, []string{"/webhook/topic"}},
			{"/api/webhooks/create", `{"webhook":{"topic":"orders/created","address":"http://whatever.hostname.com/",}}`, []string{"/webhook/address"}},
			{"/api/webhooks/create", `{"hook":{}}`, []string{"/webhook"}},
			{"/api/webhooks/create", `{"webhook":[]}`, []string{"/webhook"}},
			{"/api/webhooks/create", `{"webhook":{"topic":"orders/created","address":"https://whatever.hostname.com/","authorization":{"authType":"api-key","headers":[{"a":"b","c":"d"}]}}}`,
				[]string{"/webhook/authorization/headers/0"}},
			{"/api/webhooks/delete", `{"webhook":{"id":"abc"}}`, []string{"/webhook/id"}},
			{"/api/webhooks/delete", `{"webhook":{"id":-4}}`, []string{"/webhook/id"}},
			{"/api/webhooks/delete", `{"webhook":{}}`, []string{"/webhook/id"}},
		} {
			got := pointers(e.do(t, "POST", c.path, e.acme, []byte(c.body)).errors(t, http.StatusUnprocessableEntity))
			if !slices.Equal(got, c.want) {
				t.Errorf("%s %s: pointers %q, want %q", c.path, c.body, got, c.want)
			}
		}
		// Unknown members are ignored.
		r = e.do(t, "POST", "/api/webhooks/create", e.acme, []byte(`{"webhook":{"topic":"orders/updated","address":"https://whatever.hostname.com/x","id":7,"extra":[1,],},"more":{}}`)).want(t, http.StatusOK)
		r.decode(t, &res)
		_ = json.Unmarshal(res.Webhook, &w)
		if w.Topic != "orders/updated" || w.Address != "https://whatever.hostname.com/x" {
			t.Errorf("created %s", res.Webhook)
		}
		ventiIDs = append(ventiIDs, w.ID)
	})

	var hookID uint64
	var secret string
	t.Run("native", func(t *testing.T) {
		body := fmt.Sprintf(`{
			"topic": "orders/*",
			"address": %q,
			"filter": "data.total > 100",
			"order_by": "data.orderId",
			"authorization": {"authType": "api-key", "headers": [{"API-KEY": %q}]},
			"headers": [{"X-Custom": %q}],
			"params": [{"token": %q}],
			"retry": {"schedule": ["1m", "5m"], "max_age": "720h", "on_4xx": "retry"}
		}`, e.receiver, testAPIKey, testHeaderValue, testParamValue)
		r := e.do(t, "POST", "/v1/webhooks", e.acme, []byte(body)).want(t, http.StatusCreated)
		var w apiHook
		r.decode(t, &w)
		hookID, secret = w.ID, w.Secret
		if loc := r.header.Get("Location"); loc != apiPrefix+"/v1/webhooks/"+strconv.FormatUint(w.ID, 10) {
			t.Errorf("Location %q", loc)
		}
		if !strings.HasPrefix(secret, "whsec_") {
			t.Errorf("secret %q", secret)
		}
		if w.Topic != "orders/*" || w.Address != e.receiver || w.Filter != "data.total > 100" || w.OrderBy != "data.orderId" ||
			!slices.Equal(w.HeaderNames, []string{"X-Custom"}) || !slices.Equal(w.ParamNames, []string{"token"}) ||
			w.Authorization == nil || w.Authorization.AuthType != "api-key" || !slices.Equal(w.Authorization.HeaderNames, []string{"API-KEY"}) ||
			w.Retry == nil || !slices.Equal(w.Retry.Schedule, []string{"1m", "5m"}) || w.Retry.MaxAge != "720h" || w.Retry.On4xx != "retry" ||
			w.APIVersion != "1.0.9" || w.CreatedAt.IsZero() || !w.UpdatedAt.Equal(w.CreatedAt) {
			t.Errorf("created %s", r.body)
		}

		// Read back: the same, without the secret.
		g := e.do(t, "GET", "/v1/webhooks/"+strconv.FormatUint(hookID, 10), e.acme, nil).want(t, http.StatusOK)
		if strings.Contains(string(g.body), `"secret"`) {
			t.Errorf("GET shows the secret: %s", g.body)
		}
		var got apiHook
		g.decode(t, &got)
		w.Secret = ""
		if !reflect.DeepEqual(got, w) {
			t.Errorf("GET %+v, created %+v", got, w)
		}

		// A merge patch: null removes, a present member replaces.
		p := e.do(t, "PATCH", "/v1/webhooks/"+strconv.FormatUint(hookID, 10), e.acme,
			[]byte(`{"filter": null, "retry": null, "headers": [{"X-Custom": "`+testHeaderValue+`"}, {"X-Second": "2"}]}`),
			"Content-Type", "application/merge-patch+json").want(t, http.StatusOK)
		var patched apiHook
		p.decode(t, &patched)
		if patched.Filter != "" || patched.Retry != nil || !slices.Equal(patched.HeaderNames, []string{"X-Custom", "X-Second"}) ||
			patched.Topic != "orders/*" || patched.Authorization == nil || patched.UpdatedAt.Before(patched.CreatedAt) {
			t.Errorf("patched %s", p.body)
		}
		for _, c := range []struct {
			body string
			want []string
		}{
			{`{"topic": null}`, []string{"/topic"}},
			{`{"address": null, "secret": null}`, []string{"/address", "/secret"}},
			{`{"adress": "https://whatever.hostname.com/"}`, []string{"/adress"}},
			{`{"id": 5, "created_at": "2020-01-01T00:00:00Z"}`, []string{"/created_at", "/id"}},
			{`{"retry": {"schedule": ["1m", "often"], "maxAge": "1h"}}`, []string{"/retry/schedule/1", "/retry/maxAge"}},
			{`{"topic": "orders//created"}`, []string{"/topic"}},
		} {
			got := pointers(e.do(t, "PATCH", "/v1/webhooks/"+strconv.FormatUint(hookID, 10), e.acme, []byte(c.body)).errors(t, http.StatusUnprocessableEntity))
			if !slices.Equal(got, c.want) {
				t.Errorf("PATCH %s: pointers %q, want %q", c.body, got, c.want)
			}
		}

		// Rotate: a new secret, the old one signing until the time given.
		rot := e.do(t, "POST", "/v1/webhooks/"+strconv.FormatUint(hookID, 10)+"/rotate", e.acme, nil).want(t, http.StatusOK)
		var rr struct {
			Webhook                 apiHook   `json:"webhook"`
			Secret                  string    `json:"secret"`
			PreviousSecretExpiresAt time.Time `json:"previous_secret_expires_at"`
		}
		rot.decode(t, &rr)
		if !strings.HasPrefix(rr.Secret, "whsec_") || rr.Secret == secret || rr.Webhook.ID != hookID {
			t.Errorf("rotated %s", rot.body)
		}
		if until := time.Until(rr.PreviousSecretExpiresAt); until < 23*time.Hour || until > 25*time.Hour {
			t.Errorf("previous secret expires in %v, want about 24h", until)
		}
		secret = rr.Secret

		// A test event, delivered through the queue: signed with the new
		// secret, with the webhook's headers, params and api key.
		tr := e.do(t, "POST", "/v1/webhooks/"+strconv.FormatUint(hookID, 10)+"/test", e.acme, nil).want(t, http.StatusAccepted)
		var ev struct {
			EventID string `json:"event_id"`
		}
		tr.decode(t, &ev)
		select {
		case d := <-e.received:
			if got := d.header.Get("webhook-id"); got != ev.EventID {
				t.Errorf("delivered webhook-id %q, answered event_id %q", got, ev.EventID)
			}
			wh, err := standardwebhooks.NewWebhook(secret)
			if err != nil {
				t.Fatal(err)
			}
			if err := wh.Verify(d.body, d.header); err != nil {
				t.Errorf("the test event's signature does not verify with the new secret: %v", err)
			}
			var got struct {
				ID     string          `json:"id"`
				Topic  string          `json:"topic"`
				Tenant string          `json:"tenant"`
				Data   json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(d.body, &got); err != nil {
				t.Fatal(err)
			}
			if got.ID != ev.EventID || got.Topic != "hookrelay/test" || got.Tenant != "acme" || string(got.Data) != `{"test":true}` {
				t.Errorf("delivered %s", d.body)
			}
			if d.header.Get("API-KEY") != testAPIKey || d.header.Get("X-Custom") != testHeaderValue || d.header.Get("X-Second") != "2" ||
				!strings.Contains(d.query, "token="+testParamValue) {
				t.Errorf("delivered without the webhook's credentials: %v %q", d.header, d.query)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the test event was not delivered")
		}

		// An oauth webhook: its login body stays sealed.
		oauth := fmt.Sprintf(`{"topic": "orders/created", "address": "https://whatever.hostname.com/oauth",
			"authorization": {"authType": "oauth", "addressLogin": "https://whatever.hostname.com/token",
				"headers": [{"Content-Type": "application/json"}], "body": {"client_id": "id", "client_secret": %q},
				"tokenKey": "auth_token", "expiresKey": "expires_in", "tokenType": "Bearer"}}`, testLoginSecret)
		var ow apiHook
		e.do(t, "POST", "/v1/webhooks", e.acme, []byte(oauth)).want(t, http.StatusCreated).decode(t, &ow)
		if a := ow.Authorization; a == nil || a.AuthType != "oauth" || a.AddressLogin != "https://whatever.hostname.com/token" ||
			a.TokenKey != "auth_token" || !slices.Equal(a.HeaderNames, []string{"Content-Type"}) {
			t.Errorf("oauth summary %+v", a)
		}

		// Topics.
		var topics struct {
			Data []string `json:"data"`
		}
		e.do(t, "GET", "/v1/topics", e.acme, nil).want(t, http.StatusOK).decode(t, &topics)
		if !slices.Equal(topics.Data, registry.KnownTopics) {
			t.Errorf("topics %v", topics.Data)
		}
	})
	if hookID == 0 {
		t.Fatal("no native webhook to go on with")
	}

	t.Run("paging", func(t *testing.T) {
		for i := range 5 {
			e.do(t, "POST", "/v1/webhooks", e.acme, []byte(fmt.Sprintf(`{"topic":"products/created","address":"https://whatever.hostname.com/p%d"}`, i))).
				want(t, http.StatusCreated)
		}
		all := e.nativeIDs(t, e.acme, maxPageSize)
		if len(all) < 5+2+2 {
			t.Fatalf("%d webhooks listed", len(all))
		}
		if !slices.IsSorted(all) {
			t.Errorf("not in id order: %v", all)
		}
		for _, limit := range []int{1, 2, 3} {
			if got := e.nativeIDs(t, e.acme, limit); !slices.Equal(got, all) {
				t.Errorf("pages of %d: %v, want %v", limit, got, all)
			}
		}
		var page apiPage
		e.do(t, "GET", "/v1/webhooks", e.acme, nil).want(t, http.StatusOK).decode(t, &page)
		if len(page.Data) != len(all) || page.NextCursor != nil {
			t.Errorf("default page: %d webhooks, next %v", len(page.Data), page.NextCursor)
		}
		for _, q := range []string{"limit=0", "limit=201", "limit=abc", "limit=", "cursor=!!!", "cursor=" + base64.RawURLEncoding.EncodeToString([]byte("abc")), "cursor="} {
			e.do(t, "GET", "/v1/webhooks?"+q, e.acme, nil).errors(t, http.StatusBadRequest)
		}
	})

	t.Run("tenants", func(t *testing.T) {
		id := strconv.FormatUint(hookID, 10)
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/v1/webhooks/" + id, ""},
			{"PATCH", "/v1/webhooks/" + id, `{"topic":"orders/updated"}`},
			{"DELETE", "/v1/webhooks/" + id, ""},
			{"POST", "/v1/webhooks/" + id + "/rotate", ""},
			{"POST", "/v1/webhooks/" + id + "/test", ""},
			{"POST", "/api/webhooks/delete", `{"webhook":{"id":` + id + `}}`},
		} {
			var body []byte
			if c.body != "" {
				body = []byte(c.body)
			}
			e.do(t, c.method, c.path, e.globex, body).errors(t, http.StatusNotFound)
		}
		var page apiPage
		r := e.do(t, "GET", "/v1/webhooks", e.globex, nil).want(t, http.StatusOK)
		r.decode(t, &page)
		if string(r.body) != `{"data":[],"next_cursor":null}` {
			t.Errorf("globex's list %s", r.body)
		}
		if l := e.do(t, "GET", "/api/webhooks/list", e.globex, nil).want(t, http.StatusOK); string(l.body) != `{"webhooks":[]}` {
			t.Errorf("globex's Ventiapp list %s", l.body)
		}
		// Still acme's, unchanged.
		var w apiHook
		e.do(t, "GET", "/v1/webhooks/"+id, e.acme, nil).want(t, http.StatusOK).decode(t, &w)
		if w.Topic != "orders/*" {
			t.Errorf("acme's webhook changed: %+v", w)
		}
	})

	t.Run("auth", func(t *testing.T) {
		for _, c := range []struct {
			name string
			hdr  []string
		}{
			{"none", nil},
			{"wrong token", []string{"Authorization", "Bearer " + randomToken(t, 24)}},
			{"empty bearer", []string{"Authorization", "Bearer "}},
			{"basic", []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("acme:"+e.acme))}},
			{"token without scheme", []string{"Authorization", e.acme}},
		} {
			for _, path := range []string{"/v1/webhooks", "/api/webhooks/list", "/v1/topics", "/nowhere"} {
				r := e.do(t, "GET", path, "", nil, c.hdr...)
				entries := r.errors(t, http.StatusUnauthorized)
				if entries[0].Detail != "The request has no valid credential." {
					t.Errorf("%s %s: detail %q", c.name, path, entries[0].Detail)
				}
				if r.header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s %s: no WWW-Authenticate", c.name, path)
				}
			}
		}
		// The scheme's name in any case, as RFC 9110 has it.
		e.do(t, "GET", "/v1/topics", "", nil, "Authorization", "bearer "+e.globex).want(t, http.StatusOK)
	})

	t.Run("routes", func(t *testing.T) {
		for _, p := range []string{"/", "/v1", "/v1/webhooks/", "/v1/webhooks/abc", "/v1/webhooks/0", "/v1/webhooks/1/nothing", "/api/webhooks", "/api/webhooks/list/"} {
			e.do(t, "GET", p, e.acme, nil).errors(t, http.StatusNotFound)
		}
		for _, c := range []struct{ method, path, allow string }{
			{"PUT", "/v1/webhooks", "GET, POST"},
			{"POST", "/api/webhooks/list", "GET"},
			{"GET", "/api/webhooks/create", "POST"},
			{"DELETE", "/api/webhooks/delete", "POST"},
			{"POST", "/v1/webhooks/" + strconv.FormatUint(hookID, 10), "DELETE, GET, PATCH"},
			{"GET", "/v1/webhooks/" + strconv.FormatUint(hookID, 10) + "/rotate", "POST"},
			{"DELETE", "/v1/topics", "GET"},
		} {
			r := e.do(t, c.method, c.path, e.acme, nil)
			r.errors(t, http.StatusMethodNotAllowed)
			if got := r.header.Get("Allow"); got != c.allow {
				t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
			}
		}
	})

	t.Run("bodies", func(t *testing.T) {
		before := e.nativeIDs(t, e.acme, maxPageSize)
		big := []byte(`{"topic":"orders/created","address":"https://whatever.hostname.com/","filter":"` + strings.Repeat("a", 70<<10) + `"}`)
		for _, path := range []string{"/v1/webhooks", "/api/webhooks/create"} {
			e.do(t, "POST", path, e.acme, big).errors(t, http.StatusRequestEntityTooLarge)
		}
		for _, c := range []struct {
			path, body, detail string
		}{
			{"/v1/webhooks", `{"topic": }`, "line 1, column 11"},
			{"/v1/webhooks", "{\n  \"topic\": \"orders/created\",\n}", "line 3, column 1"},
			{"/v1/webhooks", `{"topic":"orders/created"} {}`, "syntax error"},
			{"/v1/webhooks", `// a comment
{"topic":"orders/created"}`, "line 1, column 1"},
			{"/v1/webhooks", `[1,2]`, "must be a JSON object"},
			{"/v1/webhooks", `null`, "must be a JSON object"},
			{"/v1/webhooks", ``, "empty"},
			{"/v1/webhooks", `{"topic":"orders/cre`, "ends before"},
			{"/api/webhooks/create", `{"webhook": /* open`, "comment at line 1, column 13 is not closed"},
			{"/api/webhooks/create", `{"webhook": {"topic": "a",,}}`, "syntax error"},
			{"/api/webhooks/create", `[]`, "must be a JSON object"},
			{"/api/webhooks/delete", `{"webhook":{"id":1}} trailing`, "syntax error"},
		} {
			entries := e.do(t, "POST", c.path, e.acme, []byte(c.body)).errors(t, http.StatusBadRequest)
			if !strings.Contains(entries[0].Detail, c.detail) {
				t.Errorf("%s %q: detail %q, want it to hold %q", c.path, c.body, entries[0].Detail, c.detail)
			}
		}
		if after := e.nativeIDs(t, e.acme, maxPageSize); !slices.Equal(after, before) {
			t.Errorf("refused bodies registered webhooks: %v, then %v", before, after)
		}
	})

	t.Run("validation", func(t *testing.T) {
		before := e.nativeIDs(t, e.acme, maxPageSize)
		const ok = `"topic":"orders/created","address":"https://whatever.hostname.com/"`
		for _, c := range []struct {
			name, body string
			want       []string
			detail     string // held by the first entry's detail
		}{
			{"http address", `{"topic":"orders/created","address":"http://whatever.hostname.com/"}`, []string{"/address"}, "https"},
			{"loopback address", `{"topic":"orders/created","address":"https://127.0.0.1/"}`, []string{"/address"}, "loopback"},
			{"localhost", `{"topic":"orders/created","address":"https://localhost/"}`, []string{"/address"}, "loopback"},
			{"bad topic", `{"topic":"orders created","address":"https://whatever.hostname.com/"}`, []string{"/topic"}, "topic"},
			{"bad filter", `{` + ok + `,"filter":"data.total >"}`, []string{"/filter"}, "invalid filter: 1:"},
			{"filter not bool", `{` + ok + `,"filter":"'a' + 'b'"}`, []string{"/filter"}, "must be bool"},
			{"order_by outside the event", `{` + ok + `,"order_by":"orderId"}`, []string{"/order_by"}, "must start with data"},
			{"order_by of the wrong type", `{` + ok + `,"order_by":["data","id"]}`, []string{"/order_by"}, "must be a string"},
			{"api-key without headers", `{` + ok + `,"authorization":{"authType":"api-key"}}`, []string{"/authorization/headers"}, "api-key needs at least one header"},
			{"oauth without addressLogin", `{` + ok + `,"authorization":{"authType":"oauth","body":{"client_secret":"` + testLoginSecret + `"}}}`, []string{"/authorization/addressLogin"}, "required for oauth"},
			{"reserved header", `{` + ok + `,"headers":[{"X-Fine":"1"},{"webhook-signature":"v1,forged"}]}`, []string{"/headers/1"}, "set by the relay"},
			{"retry below the minimum", `{` + ok + `,"retry":{"schedule":["1m","1s"]}}`, []string{"/retry/schedule/1"}, "shorter than the 10s"},
			{"topic of the wrong type", `{"topic":5,"address":"https://whatever.hostname.com/"}`, []string{"/topic"}, "must be a string"},
			{"headers of the wrong type", `{` + ok + `,"headers":{"X-A":"1"}}`, []string{"/headers"}, "array"},
			{"missing members", `{}`, []string{"/topic", "/address"}, "required"},
			{"several", `{"topic":"orders//x","address":"https://10.0.0.1/","authorization":{"authType":"basic"}}`,
				[]string{"/topic", "/address", "/authorization/authType"}, "topic"},
			{"unknown member", `{` + ok + `,"retry":{"schedule":["1m"],"max":"1h"}}`, []string{"/retry/max"}, "not a member"},
		} {
			entries := e.do(t, "POST", "/v1/webhooks", e.acme, []byte(c.body)).errors(t, http.StatusUnprocessableEntity)
			if got := pointers(entries); !slices.Equal(got, c.want) {
				t.Errorf("%s: pointers %q, want %q", c.name, got, c.want)
			}
			if !strings.Contains(entries[0].Detail, c.detail) {
				t.Errorf("%s: detail %q, want it to hold %q", c.name, entries[0].Detail, c.detail)
			}
		}
		if after := e.nativeIDs(t, e.acme, maxPageSize); !slices.Equal(after, before) {
			t.Errorf("a refused webhook was registered: %v, then %v", before, after)
		}
	})

	t.Run("delete", func(t *testing.T) {
		id := strconv.FormatUint(hookID, 10)
		r := e.do(t, "DELETE", "/v1/webhooks/"+id, e.acme, nil).want(t, http.StatusNoContent)
		if len(r.body) != 0 {
			t.Errorf("204 with a body: %s", r.body)
		}
		e.do(t, "GET", "/v1/webhooks/"+id, e.acme, nil).errors(t, http.StatusNotFound)
		e.do(t, "DELETE", "/v1/webhooks/"+id, e.acme, nil).errors(t, http.StatusNotFound)
		e.do(t, "POST", "/v1/webhooks/"+id+"/test", e.acme, nil).errors(t, http.StatusNotFound)
	})

	t.Run("no credential in any answer", func(t *testing.T) {
		bodies := e.check.answers()
		if len(bodies) < 100 {
			t.Fatalf("only %d answers were recorded", len(bodies))
		}
		for _, s := range []string{testAPIKey, testHeaderValue, testParamValue, testLoginSecret, seedAPIKey, seedLoginHeader, seedLoginBodyVal, "username1", e.acme, e.globex} {
			for _, b := range bodies {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("an answer holds the secret %q: %s", s, b)
					break
				}
			}
		}
		t.Logf("%d exchanges checked against the OpenAPI document", e.check.count())
	})
}
