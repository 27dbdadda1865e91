package webhooks

import (
	"bytes"
	"encoding/json"
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

// The credentials TestSecretsNeverLeak registers, and the token its
// endpoint issues: none may show anywhere but on the wire to the
// webhook's own servers.
const (
	leakAPIKey      = "s3cr3t-key-value"
	leakLoginSecret = "s3cr3t-login"
	leakHeader      = "hdr-s3cr3t-value"
	leakParam       = "prm-s3cr3t-value"
	leakLoginHeader = "lh-s3cr3t-value"
	leakLoginParam  = "lp-s3cr3t-value"
	leakToken       = "tok-s3cr3t-issued"
	leakWhsec       = "whsec_dGhpcy1pcy1hLWxlYWstY2hlY2stc2VjcmV0"
)

// credentials are the strings no API answer may hold (the signing secret
// is shown by a create or rotate that makes it; see whsecs).
var credentials = []string{leakAPIKey, leakLoginSecret, leakHeader, leakParam, leakLoginHeader, leakLoginParam, leakToken}

// leaks returns the secrets found in b.
func leaks(b []byte, secrets []string) []string {
	var out []string
	for _, s := range secrets {
		if bytes.Contains(b, []byte(s)) {
			out = append(out, s)
		}
	}
	return out
}

// TestSecretsNeverLeak: the credentials a tenant registers (an api-key
// header, an oauth login's body, headers and params, custom headers and
// params) and the token fetched with them are used on deliveries, and
// appear in no answer of the webhook API, no answer of the admin API, no
// line of Caddy's debug log and no dead letter; the registry's bucket, as
// its files lie on disk, holds none of them, nor the signing secrets, in
// clear.
func TestSecretsNeverLeak(t *testing.T) {
	dest := newReceiver(t, func(int, *http.Request, []byte) int { return http.StatusBadRequest })
	var loginMu sync.Mutex
	var logins []testutil.Received
	login := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		loginMu.Lock()
		logins = append(logins, testutil.Received{Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
		loginMu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"auth_token":%q,"expires_in":3600}`, leakToken)
	}))
	t.Cleanup(login.Close)

	dir := queueDir(t)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	start(t, config{
		storage:  "embedded " + dir,
		logFile:  logFile,
		webhooks: []string{"allow_network 127.0.0.0/8", trustedCA(t, dest.Server)},
		routes:   "\troute /status {\n\t\thook_dashboard\n\t}",
	})

	var answers []string // "what: body" of every API answer
	record := func(what string, status int, body []byte) {
		answers = append(answers, fmt.Sprintf("%s (%d): %s", what, status, body))
	}

	apiKey := map[string]any{
		"topic":         topic,
		"address":       dest.URL + "/leak-check-apikey",
		"secret":        leakWhsec,
		"authorization": map[string]any{"authType": "api-key", "headers": []map[string]string{{"API-KEY": leakAPIKey}}},
		"headers":       []map[string]string{{"X-Custom-Secret": leakHeader}},
		"params":        []map[string]string{{"sig": leakParam}},
	}
	oauth := map[string]any{
		"topic":   topic,
		"address": dest.URL + "/leak-check-oauth",
		"authorization": map[string]any{
			"authType":     "oauth",
			"addressLogin": login.URL + "/token",
			"headers":      []map[string]string{{"X-Login-Key": leakLoginHeader}},
			"params":       []map[string]string{{"login_sig": leakLoginParam}},
			"body":         map[string]any{"client_id": "leak-client", "client_secret": leakLoginSecret},
			"tokenKey":     "auth_token",
		},
	}
	var ids []uint64
	for _, w := range []map[string]any{apiKey, oauth} {
		status, body := apiA.call(t, http.MethodPost, "/api/webhooks/create", map[string]any{"webhook": w})
		record("Ventiapp create", status, body)
		var out struct {
			Webhook ventiappWebhook `json:"webhook"`
		}
		if status != http.StatusOK || json.Unmarshal(body, &out) != nil || out.Webhook.ID == 0 {
			t.Fatalf("create answered %d %s, want 200 with the webhook", status, body)
		}
		ids = append(ids, out.Webhook.ID)
	}
	status, body := apiA.call(t, http.MethodPost, "/v1/webhooks", apiKey)
	record("native create", status, body)
	var native struct {
		ID uint64 `json:"id"`
	}
	if status != http.StatusCreated || json.Unmarshal(body, &native) != nil || native.ID == 0 {
		t.Fatalf("POST /v1/webhooks answered %d %s, want 201 with the webhook", status, body)
	}
	ids = append(ids, native.ID)

	// Refused registrations do not echo the values they refuse.
	for what, w := range map[string]map[string]any{
		"an invalid api-key header name": {"topic": topic, "address": dest.URL + "/x",
			"authorization": map[string]any{"authType": "api-key", "headers": []map[string]string{{"API KEY": leakAPIKey}}}},
		"a reserved custom header": {"topic": topic, "address": dest.URL + "/x",
			"headers": []map[string]string{{"Webhook-Signature": leakHeader}}},
		"an oauth login body that is not an object": {"topic": topic, "address": dest.URL + "/x",
			"authorization": map[string]any{"authType": "oauth", "addressLogin": login.URL + "/token", "body": []string{leakLoginSecret}}},
	} {
		status, body := apiA.call(t, http.MethodPost, "/api/webhooks/create", map[string]any{"webhook": w})
		record("create with "+what, status, body)
		if status != http.StatusUnprocessableEntity {
			t.Errorf("create with %s answered %d %s, want 422", what, status, body)
		}
	}

	// Deliveries carry the credentials, and are dead-lettered (400).
	post(t, eventsPath, nil, `{"orderId":"leak-1"}`)
	for _, id := range ids {
		waitDeadLetters(t, webhookName(id), 1)
		settled(t, webhookName(id))
	}
	loginMu.Lock()
	tokenRequests := append([]testutil.Received(nil), logins...)
	loginMu.Unlock()
	checkCredentialsUsed(t, dest.Got(), tokenRequests)

	// Every read and change of the API.
	for _, id := range ids {
		path := fmt.Sprintf("/v1/webhooks/%d", id)
		status, body := apiA.call(t, http.MethodGet, path, nil)
		record("GET "+path, status, body)
		status, body = apiA.call(t, http.MethodPatch, path, map[string]any{"topic": "orders/updated"})
		record("PATCH "+path, status, body)
		status, body = apiA.call(t, http.MethodPost, path+"/test", nil)
		record("POST "+path+"/test", status, body)
	}
	for _, path := range []string{"/api/webhooks/list", "/v1/webhooks", "/v1/topics", "/openapi.json"} {
		status, body := apiA.call(t, http.MethodGet, path, nil)
		record("GET "+path, status, body)
	}
	rotatePath := fmt.Sprintf("/v1/webhooks/%d/rotate", ids[0])
	status, body = apiA.call(t, http.MethodPost, rotatePath, nil)
	record("POST "+rotatePath, status, body)
	rotated := ""
	if status == http.StatusOK {
		rotated = secretIn(t, body)
	}
	status, body = apiA.remove(t, native.ID)
	record("Ventiapp delete", status, body)
	for _, id := range ids[:2] {
		settled(t, webhookName(id))
	}

	for _, a := range answers {
		secrets := append([]string(nil), credentials...)
		// A create may show the signing secret it was given (and a
		// rotate shows the new one); no other answer shows it.
		if !strings.HasPrefix(a, "Ventiapp create") && !strings.HasPrefix(a, "native create") {
			secrets = append(secrets, leakWhsec)
		}
		if found := leaks([]byte(a), secrets); len(found) > 0 {
			t.Errorf("the webhook API answered %q holding %q", a, found)
		}
	}

	// Every admin endpoint, each webhook's dead letters among them, and
	// the status page's state.
	adminPaths := []string{"/hookrelay/destinations", "/hookrelay/dead_letters", "/hookrelay/webhooks", "/config/", "/metrics"}
	for _, id := range ids {
		adminPaths = append(adminPaths,
			"/hookrelay/destinations/"+webhookName(id),
			"/hookrelay/dead_letters?destination="+webhookName(id),
			fmt.Sprintf("/hookrelay/webhooks/%d", id))
	}
	secrets := append(append([]string(nil), credentials...), leakWhsec)
	if rotated != "" {
		secrets = append(secrets, rotated)
	}
	for _, path := range adminPaths {
		status, body := admin(t, http.MethodGet, path, "")
		if found := leaks(body, secrets); len(found) > 0 {
			t.Errorf("the admin API's GET %s (%d) holds %q: %s", path, status, found, body)
		}
	}
	if status, body := get(t, baseURL+"/status?format=json"); status != http.StatusOK {
		t.Errorf("the status page's state answered %d %s", status, body)
	} else if found := leaks(body, secrets); len(found) > 0 {
		t.Errorf("the status page's state holds %q: %s", found, body)
	}

	// Caddy's log, at debug level.
	if len(testutil.ReadLog(t, logFile)) == 0 {
		t.Fatal("Caddy wrote no log: the check below would prove nothing")
	}
	logged, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if found := leaks(logged, secrets); len(found) > 0 {
		for _, line := range bytes.Split(logged, []byte("\n")) {
			if len(leaks(line, found)) > 0 {
				t.Errorf("Caddy's log holds %q: %s", leaks(line, found), line)
			}
		}
	}

	// The files of the queue, the registry's bucket among them, once the
	// queue is closed.
	if err := caddyAt.Unload(); err != nil {
		t.Fatal(err)
	}
	checkStore(t, dir, secrets, "/leak-check-apikey")
}

// checkCredentialsUsed fails the test unless the deliveries and the token
// requests carried the registered credentials: otherwise finding them
// nowhere else would prove nothing.
func checkCredentialsUsed(t *testing.T, deliveries, logins []testutil.Received) {
	t.Helper()
	var apiKey, oauth bool
	for _, d := range deliveries {
		switch d.Path {
		case "/leak-check-apikey":
			apiKey = apiKey || d.Header.Get("API-KEY") == leakAPIKey && d.Header.Get("X-Custom-Secret") == leakHeader &&
				strings.Contains(d.Query, "sig="+leakParam)
		case "/leak-check-oauth":
			oauth = oauth || d.Header.Get("Authorization") == "Bearer "+leakToken
		}
	}
	if !apiKey || !oauth {
		t.Fatalf("the deliveries did not carry the registered credentials (api-key %v, oauth token %v): %d deliveries", apiKey, oauth, len(deliveries))
	}
	if len(logins) == 0 {
		t.Fatal("no token request")
	}
	l := logins[0]
	if !bytes.Contains(l.Body, []byte(leakLoginSecret)) || l.Header.Get("X-Login-Key") != leakLoginHeader || !strings.Contains(l.Query, "login_sig="+leakLoginParam) {
		t.Fatalf("the token request did not carry the login's credentials: %s ?%s %v", l.Body, l.Query, l.Header)
	}
}

// checkStore fails the test when a file under dir holds a secret in
// clear, and when none holds marker (something the bucket keeps in clear,
// such as an address): then the files read are not the store.
func checkStore(t *testing.T, dir string, secrets []string, marker string) {
	t.Helper()
	sawMarker := false
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
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
		t.Fatalf("none of the %d files under %s holds %q: they are not where the registry keeps its webhooks", files, dir, marker)
	}
}
