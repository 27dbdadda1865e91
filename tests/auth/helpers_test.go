// Package auth holds hookrelay's Caddy-level tests of delivery authorization (contract section 3,
// "Authorization of deliveries"): OAuth tokens fetched from loopback token endpoints and cached,
// API keys, custom headers and params, and secrets kept out of logs and the admin API.
//
// Every test runs the real Caddy in process (caddytest) with the admin API on localhost:3020
// and the ingress on 127.0.0.1:9280; destinations and token endpoints are httptest servers on
// 127.0.0.1. Tests load their own config and unload it when they end, so they run one at a time.
package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/go-oauth2/oauth2/v4"
	"github.com/go-oauth2/oauth2/v4/manage"
	"github.com/go-oauth2/oauth2/v4/models"
	"github.com/go-oauth2/oauth2/v4/server"

	_ "github.com/hookrelay/hookrelay/caddymodule"
	"github.com/hookrelay/hookrelay/internal/testutil"
)

const (
	adminPort = 3020
	adminAddr = "localhost:3020"
	// ingress is where the test Caddy receives signed Aveonline webhooks.
	ingress = "http://127.0.0.1:9280/hook"

	// aveSecretEnv holds the HMAC secret hook_verify checks inbound webhooks with.
	aveSecretEnv = "HOOKRELAY_AUTH_TEST_AVE_SECRET"
	aveSecret    = "ave-hmac-secret-7f3c91e2d0"
)

// caddyConfig returns a complete Caddyfile: the isolation settings every test shares, extra
// global options, and one route that verifies, normalizes and relays Aveonline tracking
// webhooks with relayBody as the inside of its hook_relay block.
func caddyConfig(storageDir, extraGlobal, siteExtra, relayBody string) string {
	return fmt.Sprintf(`{
	admin %s
	http_port 9280
	https_port 9643
	auto_https off
	skip_install_trust
	hookrelay {
		storage embedded %s
	}
%s
}

:9280 {
	bind 127.0.0.1
%s
	route /hook {
		hook_verify {
			secret {env.%s}
			algorithms HS256
		}
		hook_normalize ave_tracking
		hook_relay {
			topic shipments/tracking
%s
		}
	}
}
`, adminAddr, storageDir, extraGlobal, siteExtra, aveSecretEnv, relayBody)
}

// startCaddy loads relayBody (see caddyConfig) into the in-process Caddy, with its own embedded
// queue (so each test starts with an empty queue and an empty token cache), and unloads it when
// the test ends, which stops the queue and the delivery workers.
func startCaddy(t testing.TB, relayBody string) {
	t.Helper()
	startCaddyConfig(t, caddyConfig(t.TempDir(), "", "", relayBody))
}

// startCaddyConfig loads a complete Caddyfile.
func startCaddyConfig(t testing.TB, cfg string) {
	t.Helper()
	t.Setenv(aveSecretEnv, aveSecret)
	// Registered before InitServer so that it runs after caddytest's own cleanup, which dumps
	// the running config of a failed test.
	t.Cleanup(func() { unload(t) })
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{
		AdminPort:          adminPort,
		LoadRequestTimeout: 60 * time.Second,
		TestRequestTimeout: 30 * time.Second,
	})
	tester.InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	counters.Start(t)
}

// unload replaces the test's config with one that only runs the admin API.
func unload(t testing.TB) {
	body := fmt.Sprintf(`{"admin":{"listen":%q}}`, adminAddr)
	req, err := http.NewRequest(http.MethodPost, "http://"+adminAddr+"/load", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("unloading the config: %v", err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Errorf("unloading the config: %d %s", resp.StatusCode, b)
	}
}

// postAve sends one signed Aveonline tracking webhook carrying a guide per id and requires the
// contract's 201.
func postAve(t testing.TB, ids ...string) {
	t.Helper()
	h := http.Header{"Ave-Hub-Signature": {testutil.HS256(t, aveSecret, nil)}}
	status, body := testutil.Post(t, ingress, h, testutil.AvePayload(ids...))
	if status != http.StatusCreated {
		t.Fatalf("ingress answered %d %s, want 201", status, body)
	}
}

// guideIDs returns n distinct guide ids starting with prefix.
func guideIDs(prefix string, from, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = prefix + "-" + strconv.Itoa(from+i)
	}
	return ids
}

// tokenEndpoint is a loopback token endpoint answering with the JSON body made by answer for the
// n-th token request (1-based), or with the status fail returns when it is not 0.
type tokenEndpoint struct {
	*testutil.Receiver
	mu   sync.Mutex
	fail int
}

// newTokenEndpoint answers every token request with answer(n).
func newTokenEndpoint(t testing.TB, answer func(n int) string) *tokenEndpoint {
	te := &tokenEndpoint{}
	te.Receiver = testutil.NewReceiver(t, func(n int, _ *http.Request, _ []byte) (int, http.Header, []byte) {
		te.mu.Lock()
		fail := te.fail
		te.mu.Unlock()
		if fail != 0 {
			return fail, http.Header{"Content-Type": {"text/plain"}}, []byte("token endpoint down")
		}
		return http.StatusOK, http.Header{"Content-Type": {"application/json"}}, []byte(answer(n))
	})
	return te
}

// setFail makes the endpoint answer status (0: answer normally).
func (te *tokenEndpoint) setFail(status int) {
	te.mu.Lock()
	te.fail = status
	te.mu.Unlock()
}

// counters reads the in-process Caddy's metrics test by test: a counter as its growth since the
// test's config loaded (the hookrelay collectors live as long as the test process), a series that
// is not exposed (yet) as 0. Tests also use destination names of their own.
var counters = testutil.NewCounters("http://" + adminAddr)

// attempts returns the delivery attempts to dest that ended with outcome (delivered, retry,
// dead_letter).
func attempts(t testing.TB, dest, outcome string) int {
	t.Helper()
	series := fmt.Sprintf(`hookrelay_delivery_attempts_total{destination=%q,outcome=%q}`, dest, outcome)
	return int(counters.Series(t)[series])
}

// The authorization server of the end-to-end OAuth tests is a real OAuth 2.0 server library
// (github.com/go-oauth2/oauth2/v4). Its store package is not used because it pulls
// github.com/tidwall/buntdb, which this module does not require; the two small in-memory stores
// below implement the library's oauth2.ClientStore and oauth2.TokenStore interfaces instead.

type memClients map[string]oauth2.ClientInfo

func (m memClients) GetByID(_ context.Context, id string) (oauth2.ClientInfo, error) {
	if c, ok := m[id]; ok {
		return c, nil
	}
	return nil, errors.New("client not found")
}

type memTokens struct {
	mu     sync.Mutex
	access map[string]oauth2.TokenInfo
}

func (m *memTokens) Create(_ context.Context, ti oauth2.TokenInfo) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := ti.GetAccess(); a != "" {
		m.access[a] = ti
	}
	return nil
}

func (m *memTokens) RemoveByAccess(_ context.Context, a string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.access, a)
	return nil
}

func (m *memTokens) GetByAccess(_ context.Context, a string) (oauth2.TokenInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.access[a], nil
}

func (m *memTokens) RemoveByCode(context.Context, string) error                     { return nil }
func (m *memTokens) RemoveByRefresh(context.Context, string) error                  { return nil }
func (m *memTokens) GetByCode(context.Context, string) (oauth2.TokenInfo, error)    { return nil, nil }
func (m *memTokens) GetByRefresh(context.Context, string) (oauth2.TokenInfo, error) { return nil, nil }

// oauth2Server is a go-oauth2 authorization server on 127.0.0.1 whose POST /token accepts the
// client-credentials grant with the client authenticated by HTTP Basic or by
// client_id/client_secret in the form body (RFC 6749 section 2.3.1).
type oauth2Server struct {
	*httptest.Server
	srv *server.Server

	mu       sync.Mutex
	requests int
}

func newOAuth2Server(t *testing.T, clientID, clientSecret string) *oauth2Server {
	t.Helper()
	mgr := manage.NewDefaultManager()
	mgr.MapClientStorage(memClients{clientID: &models.Client{ID: clientID, Secret: clientSecret}})
	mgr.MapTokenStorage(&memTokens{access: map[string]oauth2.TokenInfo{}})
	s := &oauth2Server{srv: server.NewDefaultServer(mgr)}
	s.srv.SetAllowedGrantType(oauth2.ClientCredentials)
	s.srv.SetClientInfoHandler(func(r *http.Request) (string, string, error) {
		if _, _, ok := r.BasicAuth(); ok {
			return server.ClientBasicHandler(r)
		}
		return server.ClientFormHandler(r)
	})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		s.mu.Unlock()
		if err := s.srv.HandleTokenRequest(w, r); err != nil {
			http.Error(w, "token error", http.StatusInternalServerError)
		}
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// tokenRequests returns how many token requests the server got.
func (s *oauth2Server) tokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}
