package ingress

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	t.Setenv("HOOKRELAY_TEST_HMAC", hubSecret)
	logFile := filepath.Join(t.TempDir(), "access.log")
	tester := start(t, globals()+"\n"+siteAddress+` {
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
		{"expired", hs(hubSecret, map[string]any{"jti": "log-2", "exp": now.Add(-time.Hour).Unix()}), false, 401},
		{"no exp", hs(hubSecret, map[string]any{"jti": "log-3", "exp": nil}), false, 401},
		{"malformed", "log-malformed-token-4b2e9c1d", false, 400},
		{"bearer, bad signature", hs("not-the-hub-secret", map[string]any{"jti": "log-5"}), true, 401},
		{"accepted", hs(hubSecret, map[string]any{"jti": "log-6"}), false, 201},
	}
	for _, rq := range requests {
		h := map[string]string{"Ave-Hub-signature": rq.token}
		if rq.bearer {
			h = map[string]string{"Authorization": "Bearer " + rq.token}
		}
		if r := postHook(t, tester, "/hooks/log", h, payload, false); r.status != rq.status {
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
