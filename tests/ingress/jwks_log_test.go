package ingress

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestVerifyJWKSFailureLogRedacted: a JWKS that cannot be fetched is
// reported in Caddy's log, under hook_verify's logger, without the URL's
// query or userinfo, where an API key may sit.
func TestVerifyJWKSFailureLogRedacted(t *testing.T) {
	const (
		user   = "jwks-user-7d2a"
		pass   = "jwks-pass-1c9e"
		apiKey = "jwks-api-key-44b0"
	)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(failing.Close)
	jwksURL := strings.Replace(failing.URL, "http://", "http://"+user+":"+pass+"@", 1) + "/jwks.json?api_key=" + apiKey

	logFile := filepath.Join(t.TempDir(), "caddy.log")
	start(t, globals(`
	log {
		output file `+logFile+`
		format json
		level DEBUG
	}`)+"\n"+siteAddress+` {
	bind 127.0.0.1
	route /hooks/jwks {
		hook_verify {
			jwks `+jwksURL+`
			jwks_insecure_http
			jwks_refresh 1m
		}
		hook_normalize ave_tracking
	}
}
`)
	var logs string
	testutil.WaitFor(t, 10*time.Second, "the JWKS failure in the log", func() bool {
		b, _ := os.ReadFile(logFile)
		logs = string(b)
		return strings.Contains(logs, "JWKS refresh failed")
	})
	var line string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "JWKS refresh failed") {
			line = l
			break
		}
	}
	if !strings.Contains(line, `"logger":"http.handlers.hook_verify"`) {
		t.Errorf("the JWKS failure is not logged by hook_verify's logger: %s", line)
	}
	if want := strings.TrimPrefix(failing.URL, "http://") + "/jwks.json?REDACTED"; !strings.Contains(line, want) {
		t.Errorf("the JWKS failure does not name the endpoint as %q: %s", want, line)
	}
	for _, secret := range []string{user, pass, apiKey} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q:\n%s", secret, logs)
		}
	}
}
