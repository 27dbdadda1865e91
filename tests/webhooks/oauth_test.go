package webhooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/go-oauth2/oauth2/v4/server"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// tokenEndpoint is a Ventiapp-style token endpoint over https: it takes a
// JSON login body {"client_id","client_secret","tenant_no":<number>},
// and has a real OAuth 2.0 server (go-oauth2, which reads only forms)
// grant client credentials for it, answering the token under auth_token
// as the seed's mapping reads it (tokenKey auth_token, expiresKey
// expires_in). The same server validates the tokens deliveries carry.
type tokenEndpoint struct {
	*httptest.Server
	auth *server.Server

	mu       sync.Mutex
	requests int
	problems []string
	issued   []string
}

// newTokenEndpoint starts an endpoint that knows one client of one
// tenant number, closed when the test ends.
func newTokenEndpoint(t *testing.T, clientID, clientSecret string, tenantNo int) *tokenEndpoint {
	t.Helper()
	te := &tokenEndpoint{auth: testutil.NewOAuth2Server(t, clientID, clientSecret).Auth}
	te.auth.SetResponseTokenHandler(func(w http.ResponseWriter, data map[string]any, header http.Header, status ...int) error {
		if tok, ok := data["access_token"].(string); ok {
			data["auth_token"] = tok
			delete(data, "access_token")
			te.mu.Lock()
			te.issued = append(te.issued, tok)
			te.mu.Unlock()
		}
		for k := range header {
			w.Header().Set(k, header.Get(k))
		}
		w.Header().Set("Content-Type", "application/json")
		code := http.StatusOK
		if len(status) > 0 && status[0] > 0 {
			code = status[0]
		}
		w.WriteHeader(code)
		return json.NewEncoder(w).Encode(data)
	})
	te.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		te.mu.Lock()
		te.requests++
		te.mu.Unlock()
		login, problem := readLogin(r, clientID, clientSecret, tenantNo)
		if problem != "" {
			te.mu.Lock()
			te.problems = append(te.problems, problem)
			te.mu.Unlock()
			http.Error(w, problem, http.StatusBadRequest)
			return
		}
		r.Form = login
		if err := te.auth.HandleTokenRequest(w, r); err != nil {
			http.Error(w, "token error", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(te.Close)
	return te
}

// readLogin checks a Ventiapp login request and returns it as the form
// the OAuth server reads, or what is wrong with it.
func readLogin(r *http.Request, clientID, clientSecret string, tenantNo int) (url.Values, string) {
	if r.Method != http.MethodPost {
		return nil, "method " + r.Method
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return nil, "Content-Type " + r.Header.Get("Content-Type")
	}
	var body struct {
		ClientID     string          `json:"client_id"`
		ClientSecret string          `json:"client_secret"`
		TenantNo     json.RawMessage `json:"tenant_no"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return nil, "body: " + err.Error()
	}
	// A number, not the string "42".
	var n json.Number
	if err := json.Unmarshal(body.TenantNo, &n); err != nil || bytes.HasPrefix(body.TenantNo, []byte(`"`)) || n.String() != fmt.Sprint(tenantNo) {
		return nil, fmt.Sprintf("tenant_no %s, want the number %d", body.TenantNo, tenantNo)
	}
	if body.ClientID != clientID || body.ClientSecret != clientSecret {
		return nil, "unknown client"
	}
	return url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {clientSecret}}, ""
}

// Requests returns how many token requests the endpoint got.
func (te *tokenEndpoint) Requests() int {
	te.mu.Lock()
	defer te.mu.Unlock()
	return te.requests
}

// TestRegisteredWebhookOAuthAndSignature: a tenant registers, through
// Ventiapp's create, an https webhook with an oauth authorization whose
// login is a JSON body holding a number and whose token comes back under
// auth_token, and a whsec_ secret of its own. Events posted to a
// hook_relay route with webhooks reach it with the endpoint's token as a
// Bearer token (which the OAuth server accepts) and a signature that the
// official Standard Webhooks library verifies with that secret; the token
// is fetched once for every event.
func TestRegisteredWebhookOAuthAndSignature(t *testing.T) {
	const (
		clientID     = "ventiapp-client-7"
		clientSecret = "ventiapp-login-secret-b41d"
		whsec        = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	)
	te := newTokenEndpoint(t, clientID, clientSecret, 42)
	dest := newReceiver(t, func(_ int, r *http.Request, _ []byte) int {
		if _, err := te.auth.ValidationBearerToken(r); err != nil {
			return http.StatusUnauthorized
		}
		return http.StatusOK
	})
	start(t, config{webhooks: []string{"allow_network 127.0.0.0/8", trustedCA(t, dest.Server)}})

	id := apiA.create(t, map[string]any{
		"topic":   topic,
		"address": dest.URL + "/hooks/orders",
		"secret":  whsec,
		"authorization": map[string]any{
			"authType":     "oauth",
			"addressLogin": te.URL + "/oauth/token",
			"body":         map[string]any{"client_id": clientID, "client_secret": clientSecret, "tenant_no": 42},
			"tokenKey":     "auth_token",
			"expiresKey":   "expires_in",
		},
	})

	const events = 3
	for i := range events {
		post(t, eventsPath, nil, fmt.Sprintf(`{"orderId":"oauth-%d","total":%d}`, i, 100+i))
	}
	dest.waitCount(t, events, "the deliveries")
	settled(t, webhookName(id))

	te.mu.Lock()
	problems, issued := te.problems, te.issued
	te.mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("the token endpoint refused login requests: %q", problems)
	}
	if n := te.Requests(); n != 1 || len(issued) != 1 {
		t.Fatalf("%d token requests, %d tokens issued; want one of each for %d events (the token is cached)", n, len(issued), events)
	}
	got := dest.Got()
	if len(got) != events {
		t.Fatalf("the webhook got %d requests, want %d", len(got), events)
	}
	seen := map[string]bool{}
	for _, d := range got {
		if auth := d.Header.Values("Authorization"); len(auth) != 1 || auth[0] != "Bearer "+issued[0] {
			t.Errorf("Authorization = %q, want [Bearer <the issued token>]", auth)
		}
		if d.Method != http.MethodPost || d.Path != "/hooks/orders" {
			t.Errorf("delivery %s %s, want POST /hooks/orders", d.Method, d.Path)
		}
		if err := verify(t, whsec, d); err != nil {
			t.Errorf("the official Standard Webhooks library refuses the signature %q: %v", d.Header.Get("webhook-signature"), err)
		}
		ev := eventOf(t, d)
		if d.Header.Get("webhook-id") != ev.ID || ev.Topic != topic {
			t.Errorf("webhook-id %q, event %q of topic %q: want the event's id and %s", d.Header.Get("webhook-id"), ev.ID, ev.Topic, topic)
		}
		seen[ev.field("orderId")] = true
	}
	if len(seen) != events {
		t.Errorf("delivered orders %v, want %d distinct ones", seen, events)
	}
}
