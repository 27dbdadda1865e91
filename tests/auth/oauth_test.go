package auth

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestOAuth2ServerClientCredentials runs the standard client-credentials flow end to end through
// Caddy against a real OAuth 2.0 authorization server library: a signed webhook is answered 201,
// hookrelay gets a token from the server and the destination receives it as a Bearer token that
// the server itself validates.
func TestOAuth2ServerClientCredentials(t *testing.T) {
	const clientID = "hookrelay-client"
	const clientSecret = "oauth2-client-secret-5d8e1a"
	basic := base64.StdEncoding.EncodeToString([]byte(clientID + ":" + clientSecret))

	tests := []struct {
		name string
		env  map[string]string
		auth string
	}{
		{
			name: "client credentials in the form body",
			env:  map[string]string{"TEST_CLIENT_SECRET": clientSecret},
			auth: `
					login_body grant_type client_credentials
					login_body client_id ` + clientID + `
					login_body client_secret {env.TEST_CLIENT_SECRET}`,
		},
		{
			name: "client credentials in HTTP Basic",
			env:  map[string]string{"TEST_CLIENT_BASIC": basic},
			auth: `
					login_header Authorization "Basic {env.TEST_CLIENT_BASIC}"
					login_body grant_type client_credentials`,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			as := testutil.NewOAuth2Server(t, clientID, clientSecret)

			type seen struct {
				auth, clientID string
				err            error
			}
			var mu sync.Mutex
			var got []seen
			dest := testutil.NewReceiver(t, func(_ int, r *http.Request, _ []byte) (int, http.Header, []byte) {
				ti, err := as.Auth.ValidationBearerToken(r)
				s := seen{auth: r.Header.Get("Authorization"), err: err}
				if err == nil {
					s.clientID = ti.GetClientID()
				}
				mu.Lock()
				got = append(got, s)
				mu.Unlock()
				if err != nil {
					return http.StatusUnauthorized, nil, nil
				}
				return http.StatusOK, nil, nil
			})

			name := fmt.Sprintf("oauth2lib-%d", i)
			startCaddy(t, fmt.Sprintf(`
			to %s/hook {
				name %s
				auth oauth {
					token_url %s/token%s
				}
			}`, dest.URL, name, as.URL, tt.auth))

			postAve(t, "oauth2lib-1")
			testutil.WaitFor(t, 20*time.Second, "the delivery", func() bool {
				return attempts(t, name, "delivered") == 1
			})
			settled(t, name)

			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 {
				t.Fatalf("destination got %d requests, want 1: %+v", len(got), got)
			}
			g := got[0]
			if g.err != nil {
				t.Fatalf("the authorization server rejects the delivered token (Authorization %q): %v", g.auth, g.err)
			}
			if !strings.HasPrefix(g.auth, "Bearer ") || len(g.auth) <= len("Bearer ") {
				t.Fatalf("Authorization = %q, want Bearer <token>", g.auth)
			}
			if g.clientID != clientID {
				t.Fatalf("token issued to %q, want %q", g.clientID, clientID)
			}
			if n := as.TokenRequests(); n != 1 {
				t.Fatalf("%d token requests, want 1", n)
			}
		})
	}
}

// TestVentiappTokenEndpoint checks the exact token request sent to a token endpoint configured
// the way Ventiapp's "oauth" authorization is (Basic login header, form body with
// grant_type=client_credentials, a URL param, the token under auth_token and its lifetime as a
// string), and the Authorization header the delivery carries.
func TestVentiappTokenEndpoint(t *testing.T) {
	const basicCred = "dmVudGlhcHAtY2xpZW50OnZlbnRpLXNlY3JldC05YjI="
	for i, tokenType := range []string{"", "Bearer", "Token"} {
		name := "default token_type"
		if tokenType != "" {
			name = "token_type " + tokenType
		}
		t.Run(name, func(t *testing.T) {
			t.Setenv("VENTI_BASIC", basicCred)
			token := fmt.Sprintf("venti-auth-token-%d-c0ffee", i)
			te := newTokenEndpoint(t, func(int) string {
				return `{"auth_token":"` + token + `","expires_in":"3600","token_type":"bearer"}`
			})
			dest := testutil.NewReceiver(t, nil)

			tt := ""
			if tokenType != "" {
				tt = "token_type " + tokenType
			}
			dname := fmt.Sprintf("venti-%d", i)
			startCaddy(t, fmt.Sprintf(`
			to %s/webhooks/orders {
				name %s
				auth oauth {
					token_url %s/oauth/token?tenant=acme
					login_header Authorization "Basic {env.VENTI_BASIC}"
					login_header Content-Type application/x-www-form-urlencoded
					login_param scope webhooks
					login_body grant_type client_credentials
					token_key auth_token
					expires_key expires_in
					%s
				}
			}`, dest.URL, dname, te.URL, tt))

			postAve(t, "venti-1")
			testutil.WaitFor(t, 20*time.Second, "the delivery", func() bool { return dest.Count() == 1 })

			reqs := te.Got()
			if len(reqs) != 1 {
				t.Fatalf("%d token requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != http.MethodPost || r.Path != "/oauth/token" {
				t.Errorf("token request %s %s, want POST /oauth/token", r.Method, r.Path)
			}
			if want := "tenant=acme&scope=webhooks"; r.Query != want {
				t.Errorf("token request query %q, want %q", r.Query, want)
			}
			for name, want := range map[string]string{
				"Authorization": "Basic " + basicCred,
				"Content-Type":  "application/x-www-form-urlencoded",
				"Accept":        "application/json",
			} {
				if got := r.Header.Values(name); len(got) != 1 || got[0] != want {
					t.Errorf("token request %s = %q, want [%q]", name, got, want)
				}
			}
			form, err := url.ParseQuery(string(r.Body))
			if err != nil {
				t.Fatalf("token request body %q: %v", r.Body, err)
			}
			if want := (url.Values{"grant_type": {"client_credentials"}}); form.Encode() != want.Encode() {
				t.Errorf("token request body %q, want grant_type=client_credentials only", r.Body)
			}

			wantType := tokenType
			if wantType == "" {
				wantType = "Bearer"
			}
			d := dest.Got()[0]
			if got, want := d.Header.Values("Authorization"), []string{wantType + " " + token}; len(got) != 1 || got[0] != want[0] {
				t.Errorf("delivery Authorization = %q, want %q", got, want)
			}
			if d.Method != http.MethodPost || d.Path != "/webhooks/orders" {
				t.Errorf("delivery %s %s, want POST /webhooks/orders", d.Method, d.Path)
			}
		})
	}
}

// TestTokenSurvivesReload: the token cache belongs to the hookrelay app's pooled engine, so a
// config reload that keeps the credentials keeps using the cached token.
func TestTokenSurvivesReload(t *testing.T) {
	te := newTokenEndpoint(t, func(n int) string {
		return fmt.Sprintf(`{"access_token":"reload-token-%d","expires_in":3600}`, n)
	})
	dest := testutil.NewReceiver(t, nil)
	storage := t.TempDir()
	config := func(generation int) string {
		return caddyConfig(storage, "", "", fmt.Sprintf(`
			to %s/hook {
				name reload
				header X-Config-Generation %d
				auth oauth {
					token_url %s/token
				}
			}`, dest.URL, generation, te.URL))
	}

	startCaddyConfig(t, config(1))
	postAve(t, "reload-1")
	testutil.WaitFor(t, 20*time.Second, "the first delivery", func() bool { return dest.Count() == 1 })

	startCaddyConfig(t, config(2)) // a reload: same storage, same credentials
	postAve(t, "reload-2")
	testutil.WaitFor(t, 20*time.Second, "the delivery after the reload", func() bool { return dest.Count() == 2 })

	got := dest.Got()
	if g := got[1].Header.Get("X-Config-Generation"); g != "2" {
		t.Fatalf("the second delivery used config generation %q, want 2", g)
	}
	for i, r := range got {
		if a := r.Header.Get("Authorization"); a != "Bearer reload-token-1" {
			t.Errorf("delivery %d: Authorization %q, want Bearer reload-token-1", i, a)
		}
	}
	if n := te.Count(); n != 1 {
		t.Errorf("%d token requests across the reload, want 1", n)
	}
}
