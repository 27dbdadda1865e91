package auth

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestSecretsNeverLogged runs every authorization outcome with every Caddy logger at DEBUG
// writing to a file (a delivery that succeeds, a destination that keeps answering 401, a token
// endpoint that answers 500 with the secret in its body, a token endpoint and a destination
// refusing connections with secrets in their URLs' queries, and two dead letters), then requires that no secret appears in any log line, in the admin API's
// config or in the adapted config: secrets written as {env.*} placeholders stay placeholders.
func TestSecretsNeverLogged(t *testing.T) {
	const (
		clientID     = "log-client"
		clientSecret = "log-client-secret-8a1f4c"
		basicPass    = "log-basic-pass-77d2e0"
		loginParam   = "log-login-param-secret-88b3"
		apiKey       = "log-api-key-3e9d5a"
		headerSecret = "log-header-secret-66f1"
		paramSecret  = "log-param-secret-55c7"
	)
	basic := base64.StdEncoding.EncodeToString([]byte(clientID + ":" + basicPass))
	env := map[string]string{
		"LOG_CLIENT_SECRET": clientSecret,
		"LOG_BASIC":         basic,
		"LOG_LOGIN_PARAM":   loginParam,
		"LOG_API_KEY":       apiKey,
		"LOG_HEADER_SECRET": headerSecret,
		"LOG_PARAM_SECRET":  paramSecret,
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	secrets := map[string]string{
		"client secret":              clientSecret,
		"Basic credential":           basic,
		"Basic password":             basicPass,
		"login param":                loginParam,
		"API key":                    apiKey,
		"destination header secret":  headerSecret,
		"destination param secret":   paramSecret,
		"inbound HMAC secret":        aveSecret,
		"token of the OK endpoint":   "log-ok-token-",
		"token of the 401 endpoint":  "log-401-token-",
		"token-like text in the 500": "log-500-body-token",
	}

	okTokens := newTokenEndpoint(t, func(n int) string {
		return fmt.Sprintf(`{"access_token":"log-ok-token-%d","expires_in":3600}`, n)
	})
	rejTokens := newTokenEndpoint(t, func(n int) string {
		return fmt.Sprintf(`{"access_token":"log-401-token-%d","expires_in":3600}`, n)
	})
	// A failing token endpoint whose error body echoes the client secret and a token: neither
	// may reach a log line.
	failTokens := testutil.NewReceiver(t, func(int, *http.Request, []byte) (int, http.Header, []byte) {
		return http.StatusInternalServerError, http.Header{"Content-Type": {"application/json"}},
			[]byte(`{"error":"bad client_secret ` + clientSecret + `","access_token":"log-500-body-token"}`)
	})
	okDest := testutil.NewReceiver(t, nil)
	rejDest := testutil.NewReceiver(t, func(int, *http.Request, []byte) (int, http.Header, []byte) {
		return http.StatusUnauthorized, nil, []byte(`{"error":"invalid token"}`)
	})
	failDest := testutil.NewReceiver(t, nil)
	keyDest := testutil.NewReceiver(t, func(int, *http.Request, []byte) (int, http.Header, []byte) {
		return http.StatusBadRequest, nil, []byte(`{"error":"bad key ` + apiKey + `"}`)
	})
	// Refuses every connection for the whole test.
	closedAddr := testutil.ClosedPort(t).Addr

	logFile := filepath.Join(t.TempDir(), "caddy.log")
	relayBody := fmt.Sprintf(`
			to %[1]s/ok {
				name log-ok
				auth oauth {
					token_url %[2]s/token
					login_param key {env.LOG_LOGIN_PARAM}
					login_body grant_type client_credentials
					login_body client_id %[8]s
					login_body client_secret {env.LOG_CLIENT_SECRET}
				}
			}
			to %[3]s/rejects {
				name log-401
				auth oauth {
					token_url %[4]s/token
					login_header Authorization "Basic {env.LOG_BASIC}"
				}
			}
			to %[5]s/never {
				name log-tokfail
				auth oauth {
					token_url %[6]s/token
					login_param key {env.LOG_LOGIN_PARAM}
					login_body client_id %[8]s
					login_body client_secret {env.LOG_CLIENT_SECRET}
				}
			}
			to %[7]s/bad-request {
				name log-apikey
				header X-Secret {env.LOG_HEADER_SECRET}
				param sig {env.LOG_PARAM_SECRET}
				auth api_key {
					header API-KEY {env.LOG_API_KEY}
				}
			}
			to %[5]s/never {
				name log-tokdown
				auth oauth {
					token_url http://%[9]s/token?tenant=acme
					login_param key {env.LOG_LOGIN_PARAM}
					login_header Authorization "Basic {env.LOG_BASIC}"
				}
			}
			to http://%[9]s/refused {
				name log-refused
				header X-Secret {env.LOG_HEADER_SECRET}
				param sig {env.LOG_PARAM_SECRET}
				auth api_key {
					header API-KEY {env.LOG_API_KEY}
				}
			}
			retry {
				schedule 50ms
			}`,
		okDest.URL, okTokens.URL, rejDest.URL, rejTokens.URL, failDest.URL, failTokens.URL, keyDest.URL, clientID, closedAddr)
	global := fmt.Sprintf(`	log {
		output file %s
		level DEBUG
	}`, logFile)
	site := fmt.Sprintf(`	log {
		output file %s
	}`, logFile)
	cfg := caddyConfig(t.TempDir(), global, site, relayBody)
	startCaddyConfig(t, cfg)

	postAve(t, "log-1")
	testutil.WaitFor(t, 30*time.Second, "every scenario", func() bool {
		return attempts(t, "log-ok", "delivered") == 1 &&
			attempts(t, "log-401", "dead_letter") == 1 &&
			attempts(t, "log-apikey", "dead_letter") == 1 &&
			attempts(t, "log-tokfail", "retry") >= 3 &&
			attempts(t, "log-refused", "retry") >= 3 &&
			attempts(t, "log-tokdown", "retry") >= 3
	})
	testutil.WaitFor(t, 10*time.Second, "both dead letters in the log", func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Count(string(b), "delivery dead-lettered") >= 2
	})
	settled(t, "log-401")
	if n := rejDest.Count(); n != 2 {
		t.Errorf("the 401 destination got %d requests, want 2 (a fresh token once)", n)
	}

	// The admin API and the adapted config hold the placeholders, not the values.
	running, _ := adminGet(t, "/config/")
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]string{"GET /config/": running, "the adapted config": string(adapted)}
	for what, doc := range docs {
		for k := range env {
			if !strings.Contains(doc, "{env."+k+"}") {
				t.Errorf("%s lacks the placeholder {env.%s}", what, k)
			}
		}
	}
	// hookrelay's own admin endpoints report the last errors of destinations and dead letters.
	for _, path := range []string{"/hookrelay/destinations", "/hookrelay/dead_letters"} {
		body, status := adminGet(t, path)
		if status != http.StatusOK {
			t.Errorf("GET %s: %d %s, want 200: the secrets in it cannot be checked", path, status, body)
			continue
		}
		docs["GET "+path] = body
		if path == "/hookrelay/dead_letters" && !strings.Contains(body, "log-401") {
			t.Errorf("GET %s lists no dead letter of log-401: %s", path, body)
		}
	}
	for what, doc := range docs {
		for name, s := range secrets {
			if strings.Contains(doc, s) {
				t.Errorf("%s holds the %s", what, name)
			}
		}
	}

	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	text := string(logs)
	// The log must have recorded the scenarios, or the test proves nothing.
	for _, want := range []string{`"level":"debug"`, `"msg":"delivery attempt"`, `"destination":"log-tokfail"`,
		"token request to", "connection refused", `"msg":"delivery dead-lettered"`, `"logger":"http.log.access`} {
		if !strings.Contains(text, want) {
			t.Errorf("the log has no %s", want)
		}
	}
	lines := strings.Split(text, "\n")
	for name, s := range secrets {
		for _, line := range lines {
			if strings.Contains(line, s) {
				t.Errorf("a log line holds the %s: %s", name, line)
				break
			}
		}
	}
	t.Logf("%d log lines checked, %d bytes", len(lines), len(logs))
	if t.Failed() {
		t.Logf("log:\n%s", text)
	}
}

// adminGet returns the body and status of a GET on the admin API.
func adminGet(t *testing.T, path string) (string, int) {
	t.Helper()
	resp, err := http.Get(caddyAt.AdminURL() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return string(body), resp.StatusCode
}
