package authcache

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// The token endpoint of these tests is a real OAuth 2.0 authorization server library
// (github.com/go-oauth2/oauth2/v4), shared with the Caddy-level tests in internal/testutil.

func TestOAuth2ServerClientCredentials(t *testing.T) {
	const id, secret = "relay-client", "oauth2-lib-secret-Q7"
	as := testutil.NewOAuth2Server(t, id, secret)

	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
	tests := []struct {
		name string
		cfg  OAuthConfig
	}{
		{"credentials in form body", OAuthConfig{
			TokenURL: as.URL + "/token",
			LoginBody: []Pair{
				{"grant_type", "client_credentials"},
				{"client_id", id},
				{"client_secret", secret},
			},
		}},
		{"HTTP Basic, everything else defaulted", OAuthConfig{
			TokenURL:     as.URL + "/token",
			LoginHeaders: []Pair{{"Authorization", basic}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCache(t)
			o, err := c.OAuth(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := o.Token(t.Context())
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			req := httptest.NewRequest(http.MethodPost, "http://destination.test/hook", nil)
			req.Header.Set("Authorization", "Bearer stale")
			if err := o.Authorize(t.Context(), req); err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			if got, want := req.Header.Get("Authorization"), "Bearer "+tok; got != want {
				t.Fatalf("Authorization = %q, want %q", got, want)
			}
			if n := len(req.Header.Values("Authorization")); n != 1 {
				t.Fatalf("%d Authorization headers, want 1", n)
			}
			ti, err := as.Auth.ValidationBearerToken(req)
			if err != nil {
				t.Fatalf("server rejects the token: %v", err)
			}
			if ti.GetClientID() != id {
				t.Fatalf("token issued to %q, want %q", ti.GetClientID(), id)
			}
			if s := c.Stats(); s.Fetches != 1 || s.Hits != 1 || s.Misses != 1 {
				t.Fatalf("stats = %+v, want 1 fetch, 1 hit, 1 miss", s)
			}
		})
	}

	t.Run("wrong secret", func(t *testing.T) {
		c := newTestCache(t)
		o, err := c.OAuth(OAuthConfig{
			TokenURL:  as.URL + "/token",
			LoginBody: []Pair{{"client_id", id}, {"client_secret", "not-the-secret"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = o.Token(t.Context())
		te, ok := errors.AsType[*TokenError](err)
		if !ok || te.Status != http.StatusUnauthorized {
			t.Fatalf("err = %v, want a *TokenError with status 401", err)
		}
	})
}
