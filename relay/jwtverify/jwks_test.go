package jwtverify

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
)

// jwksServer serves a JWK Set over https on a loopback port; set replaces
// it. Its Client trusts its certificate.
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
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	v := newVerifier(t, Config{JWKSURL: srv.URL, HTTPClient: srv.Client(), JWKSRefresh: time.Hour, Now: clk.Now})
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
	v := newVerifier(t, Config{JWKSURL: srv.URL, HTTPClient: srv.Client(), Now: newClock().Now})
	_, err := v.Verify(sign(t, "ES256", k.p256a, claimsAt(nil), "k1"))
	checkErr(t, err, 401, DetailInvalid)
}

func TestJWKSWithPEMKeys(t *testing.T) {
	k := keys()
	clk := newClock()
	srv := newJWKSServer(t, jwkEntry{"j1", jwkset.UseSig, k.ed.Public()})
	v := newVerifier(t, Config{
		JWKSURL:    srv.URL,
		HTTPClient: srv.Client(),
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
	v = newVerifier(t, Config{JWKSURL: srv.URL, HTTPClient: srv.Client(), Now: clk.Now})
	long := strings.Repeat("x", 1000)
	_, err := v.Verify(sign(t, "EdDSA", k.ed, claimsAt(nil), long))
	checkErr(t, err, 401, DetailInvalid)
	if msg := err.Error(); !strings.Contains(msg, `kid "xxxx`) || strings.Contains(msg, long) || len(msg) > 300 {
		t.Fatalf("error not bounded: %q", msg)
	}
}

// TestJWKSPlainHTTP refuses a JWKS URL over plain http, whose keys anyone on
// the path could replace, unless JWKSInsecureHTTP says so.
func TestJWKSPlainHTTP(t *testing.T) {
	k := keys()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"keys":[]}`))
	}))
	t.Cleanup(srv.Close)

	if v, err := New(context.Background(), Config{JWKSURL: srv.URL + "/jwks?key=s3cr3t-api-key"}); err == nil {
		v.Close()
		t.Fatal("New accepted a JWKS URL over plain http")
	} else if msg := err.Error(); !strings.Contains(msg, "must be https") || strings.Contains(msg, "s3cr3t-api-key") {
		t.Fatalf("error %q: want it to ask for https, without quoting the URL", msg)
	}
	if err := CheckJWKSURL(srv.URL, false); err == nil {
		t.Fatal("CheckJWKSURL accepted http without allowHTTP")
	}
	if err := CheckJWKSURL(srv.URL, true); err != nil {
		t.Fatalf("CheckJWKSURL refused http with allowHTTP: %v", err)
	}

	v := newVerifier(t, Config{JWKSURL: srv.URL, JWKSInsecureHTTP: true, Now: newClock().Now})
	_, err := v.Verify(sign(t, "ES256", k.p256a, claimsAt(nil), "k1"))
	checkErr(t, err, 401, DetailInvalid)
}

// TestJWKSRedirectToHTTP: the default client does not follow an https JWKS
// URL that redirects to plain http.
func TestJWKSRedirectToHTTP(t *testing.T) {
	var plainHits atomic.Int64
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		plainHits.Add(1)
		w.Write([]byte(`{"keys":[]}`))
	}))
	t.Cleanup(plain.Close)
	tlsSrv := httptest.NewTLSServer(http.RedirectHandler(plain.URL+"/jwks", http.StatusFound))
	t.Cleanup(tlsSrv.Close)
	newVerifier(t, Config{JWKSURL: tlsSrv.URL, HTTPClient: tlsSrv.Client(), Now: newClock().Now})
	if n := plainHits.Load(); n != 0 {
		t.Fatalf("the plain http URL was fetched %d times", n)
	}
}

// syncBuffer is a bytes.Buffer safe for the JWKS goroutines to log into.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestJWKSFailureLogsRedactURL makes a JWKS fetch fail, by an error status
// and by a refused connection (whose error quotes the request URL), and
// requires that neither the logs nor the errors hold the URL's query or
// userinfo, where an API key may sit. The logs go to Config.Logger.
func TestJWKSFailureLogsRedactURL(t *testing.T) {
	const (
		user   = "jwks-user-4c1e"
		pass   = "jwks-pass-9b7d"
		apiKey = "jwks-api-key-2f8a"
	)
	failing := newJWKSServer(t)
	failing.mu.Lock()
	failing.code = http.StatusInternalServerError
	failing.mu.Unlock()
	closed := httptest.NewTLSServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	k := keys()
	for name, base := range map[string]string{"error status": failing.URL, "connection refused": closedURL} {
		t.Run(name, func(t *testing.T) {
			var logs syncBuffer
			raw := strings.Replace(base, "https://", "https://"+user+":"+pass+"@", 1) + "/jwks?api_key=" + apiKey + "&x=1#frag-7e0c"
			v := newVerifier(t, Config{
				JWKSURL:     raw,
				HTTPClient:  failing.Client(),
				JWKSRefresh: 20 * time.Millisecond,
				Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
				Now:         newClock().Now,
			})
			// An unknown kid triggers a refresh too; its error reaches the
			// client's cause.
			_, verr := v.Verify(sign(t, "ES256", k.p256a, claimsAt(nil), "k1"))
			checkErr(t, verr, 401, DetailInvalid)
			deadline := time.Now().Add(10 * time.Second)
			for strings.Count(logs.String(), "JWKS refresh failed") < 2 {
				if time.Now().After(deadline) {
					t.Fatalf("no JWKS refresh failure logged: %q", logs.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			out := logs.String() + "\n" + verr.Error()
			for _, secret := range []string{user, pass, apiKey, "frag-7e0c"} {
				if strings.Contains(out, secret) {
					t.Errorf("%q leaks into the logs or errors:\n%s", secret, out)
				}
			}
			if want := strings.TrimPrefix(base, "https://") + "/jwks?REDACTED"; !strings.Contains(out, want) {
				t.Errorf("the logs do not name the JWKS as %q:\n%s", want, out)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://hub.example/jwks.json":                     "https://hub.example/jwks.json",
		"https://u:p@hub.example/jwks?key=k&x=1":            "https://hub.example/jwks?REDACTED",
		"https://u@hub.example:8443/.well-known/jwks.json?": "https://hub.example:8443/.well-known/jwks.json?",
		"https://hub.example/jwks#key=k":                    "https://hub.example/jwks",
		"https://hub.example/%zz?key=k":                     "REDACTED",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestJWKSFailureGoesToConfigLogger: JWKS failures, at load and at every
// refresh, reach Config.Logger, and nothing reaches the default logger,
// where the libraries underneath would log by themselves.
func TestJWKSFailureGoesToConfigLogger(t *testing.T) {
	var def syncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&def, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })

	failing := newJWKSServer(t)
	failing.mu.Lock()
	failing.code = http.StatusBadGateway
	failing.mu.Unlock()
	var logs syncBuffer
	newVerifier(t, Config{
		JWKSURL:     failing.URL + "/jwks",
		HTTPClient:  failing.Client(),
		JWKSRefresh: 20 * time.Millisecond,
		Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
	})
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(logs.String(), "JWKS refresh failed") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("JWKS failures logged to Config.Logger: %q", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("JWKS failures are not logged at Warn: %q", logs.String())
	}
	if def.String() != "" {
		t.Errorf("the default logger got %q", def.String())
	}
}
