package authcache

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/go-oauth2/oauth2/v4"
	"github.com/go-oauth2/oauth2/v4/manage"
	"github.com/go-oauth2/oauth2/v4/models"
	"github.com/go-oauth2/oauth2/v4/server"
)

// The token endpoint of these tests is a real OAuth 2.0 authorization server library
// (github.com/go-oauth2/oauth2/v4). Its store package is not used because it pulls
// github.com/tidwall/buntdb, which this module does not require; the two small in-memory stores
// below implement the library's oauth2.ClientStore and oauth2.TokenStore interfaces instead.

type memClients map[string]oauth2.ClientInfo

func (m memClients) GetByID(_ context.Context, id string) (oauth2.ClientInfo, error) {
	if c, ok := m[id]; ok {
		return c, nil
	}
	return nil, errors.New("client not found")
}

type memTokens struct {
	mu     sync.Mutex
	access map[string]oauth2.TokenInfo
}

func (m *memTokens) Create(_ context.Context, ti oauth2.TokenInfo) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := ti.GetAccess(); a != "" {
		m.access[a] = ti
	}
	return nil
}

func (m *memTokens) RemoveByAccess(_ context.Context, a string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.access, a)
	return nil
}

func (m *memTokens) GetByAccess(_ context.Context, a string) (oauth2.TokenInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.access[a], nil
}

func (m *memTokens) RemoveByCode(context.Context, string) error                     { return nil }
func (m *memTokens) RemoveByRefresh(context.Context, string) error                  { return nil }
func (m *memTokens) GetByCode(context.Context, string) (oauth2.TokenInfo, error)    { return nil, nil }
func (m *memTokens) GetByRefresh(context.Context, string) (oauth2.TokenInfo, error) { return nil, nil }

// newOAuth2Server starts a go-oauth2 authorization server on 127.0.0.1 whose /token endpoint
// accepts the client-credentials grant with the client authenticated by HTTP Basic or by
// client_id/client_secret in the form body (RFC 6749 section 2.3.1).
func newOAuth2Server(t *testing.T, clientID, clientSecret string) (*httptest.Server, *server.Server) {
	t.Helper()
	mgr := manage.NewDefaultManager()
	mgr.MapClientStorage(memClients{clientID: &models.Client{ID: clientID, Secret: clientSecret}})
	mgr.MapTokenStorage(&memTokens{access: map[string]oauth2.TokenInfo{}})
	srv := server.NewDefaultServer(mgr)
	srv.SetAllowedGrantType(oauth2.ClientCredentials)
	srv.SetClientInfoHandler(func(r *http.Request) (string, string, error) {
		if _, _, ok := r.BasicAuth(); ok {
			return server.ClientBasicHandler(r)
		}
		return server.ClientFormHandler(r)
	})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if err := srv.HandleTokenRequest(w, r); err != nil {
			http.Error(w, "token error", http.StatusInternalServerError)
		}
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts, srv
}

func TestOAuth2ServerClientCredentials(t *testing.T) {
	const id, secret = "relay-client", "oauth2-lib-secret-Q7"
	ts, srv := newOAuth2Server(t, id, secret)

	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
	tests := []struct {
		name string
		cfg  OAuthConfig
	}{
		{"credentials in form body", OAuthConfig{
			TokenURL: ts.URL + "/token",
			LoginBody: []Pair{
				{"grant_type", "client_credentials"},
				{"client_id", id},
				{"client_secret", secret},
			},
		}},
		{"HTTP Basic, everything else defaulted", OAuthConfig{
			TokenURL:     ts.URL + "/token",
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
			ti, err := srv.ValidationBearerToken(req)
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
			TokenURL:  ts.URL + "/token",
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
