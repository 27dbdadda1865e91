package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestVerifyTokenNotInAccessLog sends tokens that hook_verify refuses (bad
// signature, expired, without exp, malformed, in the signature header and
// as a bearer token) and one it accepts, through a site whose access log is
// set up as the README says, and requires that no token reaches the log.
//
// Caddy logs the request's headers as they arrived (it copies them before
// any handler runs), so the raw header is kept out by the log's filter.
// What is evaluated after the handlers, such as a log_append placeholder,
// sees the request as hook_verify left it: without the token, whatever the
// outcome.
func TestVerifyTokenNotInAccessLog(t *testing.T) {
	t.Setenv("HOOKRELAY_TEST_HMAC", ingressSecret)
	logFile := filepath.Join(t.TempDir(), "access.log")
	tester := startIngressCaddy(t, ingressGlobals("")+`
:9080 {
	bind 127.0.0.1
	log {
		output file `+logFile+`
		format filter {
			wrap json
			request>headers>Ave-Hub-Signature delete
		}
	}
	log_append hub_signature {http.request.header.Ave-Hub-Signature}
	log_append authorization {http.request.header.Authorization}
	route /hooks/log {
		hook_verify {
			secret {env.HOOKRELAY_TEST_HMAC}
			algorithms HS256
			allow_bearer
		}
		hook_normalize ave_tracking
		respond 201
	}
}
`)
	payload := testutil.AvePayload("guia-log")
	now := time.Now()
	type request struct {
		name   string
		token  string
		bearer bool
		status int
	}
	hs := func(secret string, c map[string]any) string {
		return testutil.Sign(t, "HS256", []byte(secret), testutil.Claims(c), "")
	}
	requests := []request{
		{"bad signature", hs("not-the-hub-secret", map[string]any{"jti": "log-1"}), false, 401},
		{"expired", hs(ingressSecret, map[string]any{"jti": "log-2", "exp": now.Add(-time.Hour).Unix()}), false, 401},
		{"no exp", hs(ingressSecret, map[string]any{"jti": "log-3", "exp": nil}), false, 401},
		{"malformed", "log-malformed-token-4b2e9c1d", false, 400},
		{"bearer, bad signature", hs("not-the-hub-secret", map[string]any{"jti": "log-5"}), true, 401},
		{"accepted", hs(ingressSecret, map[string]any{"jti": "log-6"}), false, 201},
	}
	for _, rq := range requests {
		h := map[string]string{"Ave-Hub-signature": rq.token}
		if rq.bearer {
			h = map[string]string{"Authorization": "Bearer " + rq.token}
		}
		if r := postIngress(t, tester, "/hooks/log", h, payload, false); r.status != rq.status {
			t.Errorf("%s: status %d, want %d (%s)", rq.name, r.status, rq.status, r.body)
		}
	}

	var lines []string
	testutil.WaitFor(t, 10*time.Second, "an access log line per request", func() bool {
		b, _ := os.ReadFile(logFile)
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")
		return len(lines) >= len(requests)
	})
	for _, rq := range requests {
		// The signature segment alone is enough to tell a token.
		sig := rq.token[strings.LastIndexByte(rq.token, '.')+1:]
		for _, l := range lines {
			if strings.Contains(l, sig) {
				t.Errorf("%s: the access log holds the token:\n%s", rq.name, l)
			}
		}
	}
}

// TestVerifyDropsTokenHeaderWhateverTheOutcome: after hook_verify, the
// request carries neither the signature header nor, when the token came
// from it, the Authorization header, whether the token was refused or
// accepted. An Authorization header that did not carry the token stays.
func TestVerifyDropsTokenHeaderWhateverTheOutcome(t *testing.T) {
	v := provisionVerify(t, &Verify{Secret: ingressSecret, Algorithms: []string{"HS256"}, AllowBearer: true})
	good := testutil.Sign(t, "HS256", []byte(ingressSecret), testutil.Claims(nil), "")
	bad := testutil.Sign(t, "HS256", []byte("not-the-hub-secret"), testutil.Claims(nil), "")
	for _, tt := range []struct {
		name       string
		header     http.Header
		status     int
		keepsAuthz bool
	}{
		{"refused", http.Header{"Ave-Hub-Signature": {bad}}, 401, false},
		{"malformed", http.Header{"Ave-Hub-Signature": {"not-a-jwt"}}, 400, false},
		{"accepted", http.Header{"Ave-Hub-Signature": {good}}, 200, false},
		{"refused bearer", http.Header{"Authorization": {"Bearer " + bad}}, 401, false},
		{"accepted bearer", http.Header{"Authorization": {"Bearer " + good}}, 200, false},
		{"other Authorization kept", http.Header{"Ave-Hub-Signature": {bad}, "Authorization": {"Basic dTpw"}}, 401, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := withCaddyVars(httptest.NewRequest(http.MethodPost, "/hooks", strings.NewReader("{}")))
			r.Header = tt.header
			w := httptest.NewRecorder()
			next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
			if err := v.ServeHTTP(w, r, next); err != nil {
				t.Fatal(err)
			}
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d (%s)", w.Code, tt.status, w.Body)
			}
			if got := r.Header.Get("Ave-Hub-Signature"); got != "" {
				t.Errorf("the signature header is still on the request: %q", got)
			}
			if got := r.Header.Get("Authorization"); (got != "") != tt.keepsAuthz {
				t.Errorf("Authorization after hook_verify = %q, want it kept: %v", got, tt.keepsAuthz)
			}
		})
	}
}
