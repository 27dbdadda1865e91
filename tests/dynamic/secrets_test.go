package dynamic

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// The credentials TestSecretsNeverLeak registers, and the token its login
// endpoint issues.
const (
	leakAPIKey      = "dyn-s3cr3t-api-key"
	leakHeader      = "dyn-hdr-s3cr3t-value"
	leakLoginSecret = "dyn-s3cr3t-login"
	leakLoginHeader = "dyn-lh-s3cr3t-value"
	leakToken       = "dyn-tok-s3cr3t-issued"
	leakWhsec       = "whsec_ZHluYW1pYy1sZWFrLWNoZWNrLXNpZ25pbmctc2VjcmV0"
)

// TestSecretsNeverLeak: the credentials of dynamic webhooks (an api-key
// header, custom header values, an oauth login's body and headers, the
// token fetched with them) and their signing secrets (given, or made and
// shown once) are used on the calls to the merchant, and appear in no
// other answer of the API (list, get, replace, execute, refusals), in no
// line of Caddy's debug log, and nowhere in clear in the queue's files.
func TestSecretsNeverLeak(t *testing.T) {
	shop := newMerchant(t, func(r *http.Request, _ []byte) reply {
		if strings.HasSuffix(r.URL.Path, "/down") {
			return reply{status: http.StatusInternalServerError, ctype: "application/json", body: `{"message":"down"}`}
		}
		return jsonReply(workedAnswer)
	})
	var loginMu sync.Mutex
	var logins []testutil.Received
	login := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		loginMu.Lock()
		logins = append(logins, testutil.Received{Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
		loginMu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"expires_in":3600}`, leakToken)
	}))
	t.Cleanup(login.Close)

	dir := queueDir(t)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	start(t, config{storage: "embedded " + dir, logFile: logFile})

	var answers []string // "what: body" of every API answer but the one that shows a made secret
	record := func(what string, a answer) {
		answers = append(answers, fmt.Sprintf("%s (%d): %s", what, a.status, a.body))
	}

	apiKey := workedRegistration(shop.URL + "/leak-check-apikey")
	apiKey["event_name"] = "api_key"
	apiKey["secret"] = leakWhsec
	apiKey["authorization"] = map[string]any{"authType": "api-key", "headers": []map[string]string{{"X-Api-Key": leakAPIKey}}}
	apiKey["headers"] = []map[string]string{{"X-Shop-Secret": leakHeader}}
	apiKey["error_response_template"] = errorTemplate
	a := kfc.call(t, http.MethodPost, "", apiKey)
	record("register api_key", a)
	if a.status != http.StatusCreated {
		t.Fatalf("register api_key answered %s", a)
	}

	oauth := workedRegistration(shop.URL + "/leak-check-oauth")
	oauth["event_name"] = "oauth"
	oauth["authorization"] = map[string]any{
		"authType":     "oauth",
		"addressLogin": login.URL + "/token",
		"headers":      []map[string]string{{"X-Login-Key": leakLoginHeader}},
		"body":         map[string]any{"client_id": "kfc", "client_secret": leakLoginSecret},
	}
	made := kfc.register(t, oauth, http.StatusCreated) // shows the secret it made, this once

	// Refused registrations do not echo the values they refuse.
	for what, reg := range map[string]map[string]any{
		"an invalid api-key header name": {"event_name": "x", "url": shop.URL,
			"authorization": map[string]any{"authType": "api-key", "headers": []map[string]string{{"X Api Key": leakAPIKey}}}},
		"a reserved header": {"event_name": "x", "url": shop.URL,
			"headers": []map[string]string{{"Webhook-Signature": leakHeader}}},
		"a bad secret": {"event_name": "x", "url": shop.URL, "secret": leakWhsec + "!"},
	} {
		a := kfc.call(t, http.MethodPost, "", reg)
		record("register with "+what, a)
		if a.status != http.StatusUnprocessableEntity {
			t.Errorf("register with %s answered %s, want 422", what, a)
		}
	}

	// Executions: they succeed, then fail (the failure is logged).
	for _, event := range []string{"api_key", "oauth"} {
		a := kfc.execute(t, event, workedOrder)
		record("execute "+event, a)
		if a.status != http.StatusOK {
			t.Errorf("execute %s answered %s", event, a)
		}
	}
	apiKey["url"] = shop.URL + "/leak-check-apikey/down"
	delete(apiKey, "secret")
	a = kfc.call(t, http.MethodPost, "", apiKey)
	record("replace api_key", a)
	if a.status != http.StatusOK {
		t.Fatalf("replacing api_key answered %s", a)
	}
	a = kfc.execute(t, "api_key", workedOrder)
	record("execute api_key, failing", a)
	if a.status != http.StatusBadGateway {
		t.Errorf("execute api_key, failing, answered %s", a)
	}

	for _, path := range []string{"", "/api_key", "/oauth"} {
		a := kfc.call(t, http.MethodGet, path, nil)
		record("GET "+path, a)
		if a.status != http.StatusOK {
			t.Errorf("GET %s answered %s", path, a)
		}
	}
	a = kfc.call(t, http.MethodDelete, "/oauth", nil)
	record("DELETE /oauth", a)

	checkCredentialsUsed(t, shop.Got(), logins, &loginMu)

	secrets := []string{leakAPIKey, leakHeader, leakLoginSecret, leakLoginHeader, leakToken, leakWhsec, made}
	for _, a := range answers {
		if found := leaks([]byte(a), secrets); len(found) > 0 {
			t.Errorf("the API answered %q holding %q", a, found)
		}
	}

	if len(testutil.ReadLog(t, logFile)) == 0 {
		t.Fatal("Caddy wrote no log: the check below would prove nothing")
	}
	logged, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(logged, []byte("leak-check-apikey")) && !bytes.Contains(logged, []byte("api_key")) {
		t.Error("the log names neither the failing webhook nor its call: the check below may prove nothing")
	}
	for _, line := range bytes.Split(logged, []byte("\n")) {
		if found := leaks(line, secrets); len(found) > 0 {
			t.Errorf("Caddy's log holds %q: %s", found, line)
		}
	}

	// The queue's files, once it is closed.
	if err := caddyAt.Unload(); err != nil {
		t.Fatal(err)
	}
	checkStore(t, dir, secrets, "/leak-check-apikey/down")
}

// leaks returns the secrets found in b.
func leaks(b []byte, secrets []string) []string {
	var out []string
	for _, s := range secrets {
		if s != "" && bytes.Contains(b, []byte(s)) {
			out = append(out, s)
		}
	}
	return out
}

// checkCredentialsUsed fails the test unless the calls and the token
// request carried the registered credentials: otherwise finding them
// nowhere else would prove nothing.
func checkCredentialsUsed(t *testing.T, calls, logins []testutil.Received, mu *sync.Mutex) {
	t.Helper()
	var apiKey, oauth bool
	for _, c := range calls {
		switch c.Path {
		case "/leak-check-apikey":
			apiKey = apiKey || c.Header.Get("X-Api-Key") == leakAPIKey && c.Header.Get("X-Shop-Secret") == leakHeader
		case "/leak-check-oauth":
			oauth = oauth || c.Header.Get("Authorization") == "Bearer "+leakToken
		}
	}
	if !apiKey || !oauth {
		t.Fatalf("the calls did not carry the registered credentials (api-key %v, oauth token %v): %d calls", apiKey, oauth, len(calls))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(logins) == 0 {
		t.Fatal("no token request")
	}
	if l := logins[0]; !bytes.Contains(l.Body, []byte(leakLoginSecret)) || l.Header.Get("X-Login-Key") != leakLoginHeader {
		t.Fatalf("the token request did not carry the login's credentials: %s %v", l.Body, l.Header)
	}
}

// checkStore fails the test when a file under dir holds a secret in
// clear, and when none holds marker (something the bucket keeps in clear,
// such as a url): then the files read are not the store.
func checkStore(t *testing.T, dir string, secrets []string, marker string) {
	t.Helper()
	sawMarker := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sawMarker = sawMarker || bytes.Contains(b, []byte(marker))
		if found := leaks(b, secrets); len(found) > 0 {
			rel, _ := filepath.Rel(dir, path)
			t.Errorf("the queue's file %s holds %q in clear", rel, found)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !sawMarker {
		t.Fatalf("no file under %s holds %q: they are not where the dynamic webhooks are kept", dir, marker)
	}
}

// TestMerchantTokenNotLogged: a merchant's token is its credential for
// the API: like Authorization: Bearer, which Caddy's access log redacts,
// DEUNA's merchant_token must not be written in clear to Caddy's logs,
// the site's access log included.
//
// Caddy's access log redacts only Cookie, Set-Cookie, Authorization and
// Proxy-Authorization, and logs the request as it came: the site's log
// deletes merchant_token with a filter, as docs/dynamic.md says.
func TestMerchantTokenNotLogged(t *testing.T) {
	shop := fixedMerchant(t, workedAnswer)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	accessLog := filepath.Join(t.TempDir(), "access.log")
	start(t, config{logFile: logFile, accessLog: accessLog})

	kfc.register(t, workedRegistration(shop.URL+"/tip"), http.StatusCreated)
	kfc.execute(t, "set_tip", workedOrder)
	bearer := wow
	bearer.bearer = true
	bearer.call(t, http.MethodGet, "", nil)
	kfc.as(wow).call(t, http.MethodGet, "", nil) // refused: 403

	for _, file := range []string{logFile, accessLog} {
		if len(testutil.ReadLog(t, file)) == 0 {
			t.Fatalf("%s holds no entry: the check below would prove nothing", file)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			if found := leaks(line, []string{kfc.token, wow.token}); len(found) > 0 {
				t.Errorf("%s holds the merchant tokens %q: %s", filepath.Base(file), found, line)
			}
		}
	}
}
