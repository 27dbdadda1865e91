// Package auth holds hookrelay's Caddy-level tests of delivery authorization (contract section 3,
// "Authorization of deliveries"): OAuth tokens fetched from loopback token endpoints and cached,
// API keys, custom headers and params, and secrets kept out of logs and the admin API.
//
// Every test runs the real Caddy in process (caddytest) with the admin API on localhost:3020
// and the ingress on 127.0.0.1:9280 (see caddyAt); destinations and token endpoints are httptest servers on
// 127.0.0.1. Tests load their own config and unload it when they end, so they run one at a time.
package auth

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	_ "github.com/hookrelay/hookrelay/caddymodule"
	"github.com/hookrelay/hookrelay/internal/testutil"
)

// caddyAt is the in-process Caddy of this package (it owns 3020, 9280 and 9643).
var caddyAt = testutil.InProcess{AdminPort: 3020, HTTPPort: 9280, HTTPSPort: 9643}

const (
	// ingressPath is where the test Caddy receives signed Aveonline webhooks.
	ingressPath = "/hook"

	// aveSecretEnv holds the HMAC secret hook_verify checks inbound webhooks with.
	aveSecretEnv = "HOOKRELAY_AUTH_TEST_AVE_SECRET"
	aveSecret    = "ave-hmac-secret-7f3c91e2d0"
)

// caddyConfig returns a complete Caddyfile: the isolation settings every test shares, extra
// global options, and one route that verifies, normalizes and relays Aveonline tracking
// webhooks with relayBody as the inside of its hook_relay block.
func caddyConfig(storageDir, extraGlobal, siteExtra, relayBody string) string {
	globals := caddyAt.Globals(fmt.Sprintf("\thookrelay {\n\t\tstorage embedded %s\n\t}", storageDir), extraGlobal)
	return globals + fmt.Sprintf(`
:%d {
	bind 127.0.0.1
%s
	route %s {
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
`, caddyAt.HTTPPort, siteExtra, ingressPath, aveSecretEnv, relayBody)
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
	caddyAt.Load(t, caddyAt.NewTester(t), cfg)
	counters.Start(t)
}

// settled waits until the queue holds nothing more for dest: no attempt can follow.
func settled(t testing.TB, dest string) {
	t.Helper()
	testutil.WaitSettled(t, caddyAt.AdminURL(), dest, 30*time.Second)
}

// postAve sends one signed Aveonline tracking webhook carrying a guide per id and requires the
// contract's 201.
func postAve(t testing.TB, ids ...string) {
	t.Helper()
	h := http.Header{"Ave-Hub-Signature": {testutil.HS256(t, aveSecret, nil)}}
	status, body := testutil.Post(t, caddyAt.BaseURL()+ingressPath, h, testutil.AvePayload(ids...))
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
var counters = testutil.NewCounters(caddyAt.AdminURL())

// attempts returns the delivery attempts to dest that ended with outcome (delivered, retry,
// dead_letter).
func attempts(t testing.TB, dest, outcome string) int {
	t.Helper()
	series := fmt.Sprintf(`hookrelay_delivery_attempts_total{destination=%q,outcome=%q}`, dest, outcome)
	return int(counters.Series(t)[series])
}
