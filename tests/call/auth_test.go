package call

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// callerSecret is what the hook_verify of these tests verifies tokens with.
const callerSecret = "sync-test-caller-hmac-secret-0123456789"

// wantUnauthenticated is hook_call's refusal of a caller that nothing
// before it authenticated.
const wantUnauthenticated = `{"errors":[{"title":"Unauthenticated","detail":"The request is not authenticated.","status_code":"401"}]}`

// TestCallNeedsAnAuthenticatedCaller: hook_call calls the merchant with
// the merchant's credentials, so it runs only for a caller that a handler
// before it authenticated (basic_auth, hook_verify) or when its config opts
// out with allow_unauthenticated. Anyone else gets 401 in the contract's
// envelope, logged at Debug only, and the merchant is not called.
func TestCallNeedsAnAuthenticatedCaller(t *testing.T) {
	rc := merchant(t)
	logFile := filepath.Join(testDir(t), "caddy.log")
	verify := "\t\thook_verify {\n\t\t\tsecret " + callerSecret + "\n\t\t\talgorithms HS256\n\t\t\tallow_bearer\n\t\t}\n"
	site := callRouteWith("/open", "", "", rc.URL+"/tip", "") +
		callRoute("/basic", rc.URL+"/tip", "", "") +
		callRouteWith("/verified", verify, "", rc.URL+"/tip", "") +
		callRouteWith("/anyone", "", "\t\t\tallow_unauthenticated", rc.URL+"/tip", "")
	tc := caddyAt.NewTester(t)
	caddyAt.Load(t, tc, config("\tlog {\n\t\toutput file "+logFile+"\n\t\tformat json\n\t\tlevel DEBUG\n\t}", site))

	order := []byte(`{"order_id":"ord_1","tip":5000}`)
	token := testutil.HS256(t, callerSecret, nil)
	bearer := http.Header{"Authorization": {"Bearer " + token}}
	wrongPassword := http.Header{"Authorization": {"Basic ZGV1bmE6bm90LXRoZS1wYXNzd29yZA=="}} // deuna:not-the-password
	for _, tt := range []struct {
		name   string
		path   string
		header http.Header
		status int
		want   string // the exact body; "" for basic_auth's and hook_verify's own refusals
	}{
		{"open route, no credentials", "/open", nil, http.StatusUnauthorized, wantUnauthenticated},
		// Credentials that no handler checked are not authentication.
		{"open route, basic credentials", "/open", callerHeader(), http.StatusUnauthorized, wantUnauthenticated},
		{"open route, a valid token", "/open", bearer, http.StatusUnauthorized, wantUnauthenticated},
		{"open route, a valid token in hook_verify's header", "/open", http.Header{"Ave-Hub-Signature": {token}}, http.StatusUnauthorized, wantUnauthenticated},
		{"basic_auth, no credentials", "/basic", nil, http.StatusUnauthorized, ""},
		{"basic_auth, wrong password", "/basic", wrongPassword, http.StatusUnauthorized, ""},
		{"basic_auth, a token", "/basic", bearer, http.StatusUnauthorized, ""},
		{"hook_verify, no token", "/verified", nil, http.StatusUnauthorized, ""},
		{"hook_verify, a wrong token", "/verified", http.Header{"Authorization": {"Bearer " + testutil.HS256(t, "not-the-secret", nil)}}, http.StatusUnauthorized, ""},
		{"hook_verify, basic credentials", "/verified", callerHeader(), http.StatusUnauthorized, ""},
		{"basic_auth, authenticated", "/basic", callerHeader(), http.StatusOK, merchantReply},
		{"hook_verify, verified", "/verified", bearer, http.StatusOK, merchantReply},
		{"allow_unauthenticated", "/anyone", nil, http.StatusOK, merchantReply},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := rc.Count()
			resp, body := postWith(t, tt.path, order, tt.header)
			if resp.StatusCode != tt.status || (tt.want != "" && !jsonEqual(body, tt.want)) {
				t.Fatalf("got %d %s\nwant %d %s", resp.StatusCode, body, tt.status, tt.want)
			}
			calls := rc.Count() - before
			if tt.status != http.StatusOK {
				if calls != 0 {
					t.Errorf("the merchant was called %d times for a refused caller", calls)
				}
				if sig := resp.Header.Get("webhook-signature"); sig != "" {
					t.Errorf("a refusal is signed: webhook-signature %q", sig)
				}
				return
			}
			if calls != 1 {
				t.Fatalf("the merchant was called %d times, want 1", calls)
			}
			verifyAnswer(t, resp, body)
			got := rc.Got()
			fwd := got[len(got)-1]
			if !bytes.Equal(fwd.Body, order) {
				t.Errorf("forwarded %q, want the order as sent", fwd.Body)
			}
			if auth := fwd.Header.Get("Authorization"); auth != "" {
				t.Errorf("the caller's credentials reached the merchant: Authorization %q", auth)
			}
		})
	}

	// A refusal is a client's mistake: logged at Debug, never above, so
	// callers cannot flood the log. Opting out is logged as a warning
	// when the config loads.
	var refusals []testutil.LogEntry
	testutil.WaitFor(t, 10*time.Second, "the refusals in the log", func() bool {
		refusals = testutil.Logged(t, logFile, "http.handlers.hook_call", "no handler before hook_call authenticated the caller")
		return len(refusals) >= 4
	})
	for _, l := range refusals {
		if l.Level != "debug" {
			t.Errorf("a refusal logged at %s: %q", l.Level, l.Msg)
		}
	}
	warnings := testutil.Logged(t, logFile, "http.handlers.hook_call", "allow_unauthenticated")
	if len(warnings) == 0 || warnings[0].Level != "warn" {
		t.Errorf("allow_unauthenticated is not warned about at load: %+v", warnings)
	}
}

// TestRelayHasNoCallOptions: hook_relay has no mode, and the options of
// the former sync mode are refused with a pointer to hook_call rather than
// ignored.
func TestRelayHasNoCallOptions(t *testing.T) {
	tc := caddyAt.NewTester(t)
	caddyAt.Load(t, tc, emptyConfig)
	for _, opt := range []string{"mode sync", "allow_unauthenticated", "response_secret " + responseWhsec} {
		msg := loadError(t, config("", `	hook_relay {
		topic orders
		`+opt+`
		to http://127.0.0.1:9399/orders
	}`))
		if want := "the hook_call directive"; !strings.Contains(msg, want) {
			t.Errorf("%s: refused with\n%s\nwant it to contain\n%s", opt, msg, want)
		}
	}
}

// TestDeunaTipExampleRuns runs examples/deuna-tip/Caddyfile as it is
// shipped (on this package's ports, its files found from here): a caller
// without a token is refused, one with a token for the audience deuna-tip
// gets the merchant's tip as a signed DEUNA order.
func TestDeunaTipExampleRuns(t *testing.T) {
	for _, env := range []string{"HOOKRELAY_DEV_SECRET", "TIP_RESPONSE_WHSEC", "MERCHANT_API_KEY"} {
		t.Setenv(env, "") // the example's public development defaults
	}
	src, err := os.ReadFile(tipExample(t, "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(tipExample(t, "Caddyfile"))
	caddyfile := strings.NewReplacer(
		"admin localhost:2019", fmt.Sprintf("admin %s\n\thttp_port %d\n\thttps_port %d", caddyAt.AdminAddr(), caddyAt.HTTPPort, caddyAt.HTTPSPort),
		":8080 {", ":9381 {",
		"127.0.0.1:8082", "127.0.0.1:9382",
		"examples/deuna-tip/", dir+"/",
	).Replace(string(src))
	for _, line := range strings.Split(caddyfile, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, moved := range []string{"localhost:2019", ":8080", ":8082", " examples/"} {
			if strings.Contains(line, moved) {
				t.Fatalf("the example still holds %q after moving it to this package's ports and paths:\n%s", moved, caddyfile)
			}
		}
	}
	tc := caddyAt.NewTester(t)
	caddyAt.Load(t, tc, caddyfile)
	order, err := os.ReadFile(tipExample(t, "order.json"))
	if err != nil {
		t.Fatal(err)
	}
	do := func(header http.Header) (*http.Response, []byte) {
		req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:9381/webhooks/tip", bytes.NewReader(order))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		if _, err := b.ReadFrom(resp.Body); err != nil {
			t.Fatal(err)
		}
		return resp, b.Bytes()
	}

	if resp, body := do(http.Header{}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a token: %d %s, want 401", resp.StatusCode, body)
	}
	// What `caddy hookrelay token --aud deuna-tip` mints with the default secret.
	token := testutil.HS256(t, "hookrelay-development-secret-change-me", map[string]any{"aud": "deuna-tip"})
	resp, body := do(http.Header{"Authorization": {"Bearer " + token}})
	want := `{"order":{"custom_fields":{"business_id":"kfc-co-0042","tip":5000},"order_id":"9f1c6a2e-3b7d-4c1a-8e55-0d2f6b1a7c44","status":"tip_applied","total_amount":53000}}`
	if resp.StatusCode != http.StatusOK || !jsonEqual(body, want) {
		t.Fatalf("with a token: %d %s\nwant 200 %s", resp.StatusCode, body, want)
	}
	if resp.Header.Get("webhook-signature") == "" {
		t.Error("the example's answer is not signed")
	}
}
