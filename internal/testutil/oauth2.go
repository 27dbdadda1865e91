package testutil

import (
	"context"
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

// OAuth2Server is a real OAuth 2.0 authorization server (the
// github.com/go-oauth2/oauth2/v4 library) on 127.0.0.1 whose POST /token
// grants client credentials, the client authenticated by HTTP Basic or by
// client_id and client_secret in the form body (RFC 6749 section 2.3.1).
// Its URL is the server's; the token endpoint is URL + "/token".
type OAuth2Server struct {
	*httptest.Server
	// Auth is the library's server, e.g. to validate the tokens a
	// destination receives with ValidationBearerToken.
	Auth *server.Server

	mu       sync.Mutex
	requests int
}

// NewOAuth2Server starts a server that knows one client, closed when the
// test ends.
func NewOAuth2Server(t testing.TB, clientID, clientSecret string) *OAuth2Server {
	t.Helper()
	mgr := manage.NewDefaultManager()
	mgr.MapClientStorage(memClients{clientID: &models.Client{ID: clientID, Secret: clientSecret}})
	mgr.MapTokenStorage(&memTokens{access: map[string]oauth2.TokenInfo{}})
	s := &OAuth2Server{Auth: server.NewDefaultServer(mgr)}
	s.Auth.SetAllowedGrantType(oauth2.ClientCredentials)
	s.Auth.SetClientInfoHandler(func(r *http.Request) (string, string, error) {
		if _, _, ok := r.BasicAuth(); ok {
			return server.ClientBasicHandler(r)
		}
		return server.ClientFormHandler(r)
	})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		s.mu.Unlock()
		if err := s.Auth.HandleTokenRequest(w, r); err != nil {
			http.Error(w, "token error", http.StatusInternalServerError)
		}
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// TokenRequests returns how many token requests the server got.
func (s *OAuth2Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// The library's store package is not used because it pulls
// github.com/tidwall/buntdb, which this module does not require; these two
// in-memory stores implement its oauth2.ClientStore and oauth2.TokenStore.

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
