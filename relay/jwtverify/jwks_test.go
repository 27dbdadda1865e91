package jwtverify

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
)

// jwksServer serves a JWK Set on a loopback port; set replaces it.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	body []byte
	code int
	hits atomic.Int64
}

type jwkEntry struct {
	kid string
	use jwkset.USE
	key any
}

func newJWKSServer(t *testing.T, entries ...jwkEntry) *jwksServer {
	t.Helper()
	s := &jwksServer{code: http.StatusOK}
	s.set(t, entries...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		body, code := s.body, s.code
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(t *testing.T, entries ...jwkEntry) {
	t.Helper()
	ctx := context.Background()
	store := jwkset.NewMemoryStorage()
	for _, e := range entries {
		jwk, err := jwkset.NewJWKFromKey(e.key, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: e.kid, USE: e.use}})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.KeyWrite(ctx, jwk); err != nil {
			t.Fatal(err)
		}
	}
	body, err := store.JSONPublic(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

func TestJWKSRotation(t *testing.T) {
	k := keys()
	clk := newClock()
	srv := newJWKSServer(t, jwkEntry{"k1", jwkset.UseSig, &k.p256a.PublicKey})
	v := newVerifier(t, Config{JWKSURL: srv.URL, JWKSRefresh: time.Hour, Now: clk.Now})
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("JWKS fetched %d times by New, want 1", got)
	}

	check := func(name, tok string, status int, detail string) {
		t.Helper()
		_, err := v.Verify(tok)
		v.cache.Wait()
		if err != nil && status == 0 {
			t.Fatalf("%s: %v", name, err)
		}
		checkErr(t, err, status, detail)
	}
	c := func(n int) map[string]any { return claimsAt(map[string]any{"n": n}) }

	old := sign(t, "ES256", k.p256a, c(1), "k1")
	check("k1", old, 0, "")
	check("no kid, tries every ES256 key", sign(t, "ES256", k.p256a, c(2), ""), 0, "")
	check("HS256 is not allowed by a JWKS", sign(t, "HS256", k.secret, c(3), "k1"), 401, DetailAlgorithm)

	// The hub rotates: k1 is gone, k2 is new, k3 is an encryption key.
	srv.set(t, jwkEntry{"k2", jwkset.UseSig, &k.p256b.PublicKey}, jwkEntry{"k3", jwkset.UseEnc, &k.rsa1.PublicKey})
	check("k2 after rotation, via refresh on unknown kid", sign(t, "ES256", k.p256b, c(4), "k2"), 0, "")
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", got)
	}
	check("removed k1, not cached", sign(t, "ES256", k.p256a, c(5), "k1"), 401, DetailInvalid)
	check("no kid, removed key", sign(t, "ES256", k.p256a, c(6), ""), 401, DetailInvalid)
	check("no kid, new key", sign(t, "ES256", k.p256b, c(7), ""), 0, "")
	check("kid of an encryption key", sign(t, "RS256", k.rsa1, c(8), "k3"), 401, DetailInvalid)
	check("kid of a P-256 key for ES384", sign(t, "ES384", k.p384, c(9), "k2"), 401, DetailInvalid)
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times, want 2: unknown kids must be rate-limited", got)
	}

	// The token verified with k1 before the rotation is served from the
	// cache for at most MaxCacheTTL, then refused.
	check("cached k1 token", old, 0, "")
	clk.Add(MaxCacheTTL)
	check("cached k1 token after MaxCacheTTL", old, 401, DetailInvalid)
}

func TestJWKSUnavailable(t *testing.T) {
	k := keys()
	srv := newJWKSServer(t)
	srv.mu.Lock()
	srv.code = http.StatusServiceUnavailable
	srv.mu.Unlock()
	// An unreachable JWKS must not keep Caddy from starting.
	v := newVerifier(t, Config{JWKSURL: srv.URL, Now: newClock().Now})
	_, err := v.Verify(sign(t, "ES256", k.p256a, claimsAt(nil), "k1"))
	checkErr(t, err, 401, DetailInvalid)
}

func TestJWKSWithPEMKeys(t *testing.T) {
	k := keys()
	clk := newClock()
	srv := newJWKSServer(t, jwkEntry{"j1", jwkset.UseSig, k.ed.Public()})
	v := newVerifier(t, Config{
		JWKSURL:    srv.URL,
		PublicKeys: []PublicKey{{KID: "p1", PEM: pkixPEM(t, &k.rsa1.PublicKey)}},
		Algorithms: []string{"EdDSA", "RS256"},
		CacheSize:  -1,
		Now:        clk.Now,
	})
	for _, tt := range []struct {
		name   string
		alg    string
		key    any
		kid    string
		status int
		detail string
	}{
		{"PEM key by kid", "RS256", k.rsa1, "p1", 0, ""},
		{"JWKS key by kid", "EdDSA", k.ed, "j1", 0, ""},
		{"JWKS key without kid", "EdDSA", k.ed, "", 0, ""},
		{"PEM kid with the wrong type", "EdDSA", k.ed, "p1", 401, DetailInvalid},
		{"PS256 not allowed", "PS256", k.rsa1, "p1", 401, DetailAlgorithm},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(sign(t, tt.alg, tt.key, claimsAt(nil), tt.kid))
			checkErr(t, err, tt.status, tt.detail)
		})
	}

	// An unknown kid is named in the internal error, bounded.
	v = newVerifier(t, Config{JWKSURL: srv.URL, Now: clk.Now})
	long := strings.Repeat("x", 1000)
	_, err := v.Verify(sign(t, "EdDSA", k.ed, claimsAt(nil), long))
	checkErr(t, err, 401, DetailInvalid)
	if msg := err.Error(); !strings.Contains(msg, `kid "xxxx`) || strings.Contains(msg, long) || len(msg) > 300 {
		t.Fatalf("error not bounded: %q", msg)
	}
}
