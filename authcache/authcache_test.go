package authcache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

func newTestCache(t testing.TB) *Cache {
	t.Helper()
	c, err := NewCache(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func newClockCache(t testing.TB) (*Cache, *testutil.Clock) {
	t.Helper()
	clk := testutil.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	c, err := NewCache(0, nil, WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, clk
}

// recorded is what a token endpoint received.
type recorded struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   string
}

// tokenEndpoint is a loopback token endpoint that issues tok-1, tok-2, ... and records requests.
type tokenEndpoint struct {
	*httptest.Server
	n    atomic.Int64
	mu   sync.Mutex
	reqs []recorded
	// respond writes the answer for the n-th request (1-based); nil: the Ventiapp shape.
	respond func(w http.ResponseWriter, n int64)
	// gate, when not nil, holds every request until it is closed.
	gate chan struct{}
}

func newTokenEndpoint(t testing.TB, respond func(w http.ResponseWriter, n int64)) *tokenEndpoint {
	t.Helper()
	te := &tokenEndpoint{respond: respond}
	te.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := te.n.Add(1)
		te.mu.Lock()
		te.reqs = append(te.reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(body)})
		te.mu.Unlock()
		if te.gate != nil {
			select {
			case <-te.gate:
			case <-r.Context().Done():
				return
			}
		}
		if te.respond != nil {
			te.respond(w, n)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"auth_token":"tok-%d","expires_in":"3600"}`, n)
	}))
	t.Cleanup(te.Close)
	return te
}

func (te *tokenEndpoint) requests() []recorded {
	te.mu.Lock()
	defer te.mu.Unlock()
	return append([]recorded(nil), te.reqs...)
}

func authorize(t testing.TB, a Authorizer) *http.Request {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "http://destination.test/hook", nil)
	if err := a.Authorize(context.Background(), req); err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	return req
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// The seed's example: Basic login header, form Content-Type, grant_type in the body, token under
// auth_token, expires_in as a string.
func TestVentiappRequestShape(t *testing.T) {
	te := newTokenEndpoint(t, nil)
	c, clk := newClockCache(t)
	o, err := c.OAuth(OAuthConfig{
		TokenURL: te.URL + "/oauth/token?tenant=acme",
		LoginHeaders: []Pair{
			{"Authorization", "Basic dmVudGk6c2VjcmV0"},
			{"Content-Type", "application/x-www-form-urlencoded"},
		},
		LoginParams: []Pair{{"audience", "erp hub"}},
		LoginBody:   []Pair{{"grant_type", "client_credentials"}, {"scope", "hooks:write"}},
		TokenKey:    "auth_token",
		ExpiresKey:  "expires_in",
		TokenType:   "Bearer",
	})
	if err != nil {
		t.Fatal(err)
	}
	req := authorize(t, o)
	if got := req.Header.Get("Authorization"); got != "Bearer tok-1" {
		t.Fatalf("Authorization = %q, want %q", got, "Bearer tok-1")
	}

	reqs := te.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d token requests, want 1", len(reqs))
	}
	r := reqs[0]
	want := recorded{
		Method:   "POST",
		Path:     "/oauth/token",
		RawQuery: "tenant=acme&audience=erp+hub",
		Body:     "grant_type=client_credentials&scope=hooks%3Awrite",
	}
	if r.Method != want.Method || r.Path != want.Path || r.RawQuery != want.RawQuery || r.Body != want.Body {
		t.Fatalf("request = %s %s?%s %q, want %s %s?%s %q",
			r.Method, r.Path, r.RawQuery, r.Body, want.Method, want.Path, want.RawQuery, want.Body)
	}
	for name, v := range map[string]string{
		"Authorization":  "Basic dmVudGk6c2VjcmV0",
		"Content-Type":   "application/x-www-form-urlencoded",
		"Accept":         "application/json",
		"Content-Length": fmt.Sprint(len(want.Body)),
	} {
		if got := r.Header.Values(name); len(got) != 1 || got[0] != v {
			t.Errorf("header %s = %q, want [%q]", name, got, v)
		}
	}

	// "3600" as a string: lifetime 1h, refreshed 10% (6m) before expiry.
	clk.Advance(54*time.Minute - time.Second)
	if got := authorize(t, o).Header.Get("Authorization"); got != "Bearer tok-1" {
		t.Fatalf("before refresh time: Authorization = %q, want tok-1", got)
	}
	clk.Advance(time.Second)
	if got := authorize(t, o).Header.Get("Authorization"); got != "Bearer tok-2" {
		t.Fatalf("at refresh time: Authorization = %q, want tok-2", got)
	}
}

func TestDottedKeysJSONBody(t *testing.T) {
	te := newTokenEndpoint(t, func(w http.ResponseWriter, n int64) {
		fmt.Fprintf(w, `{"data":{"token":"dt-%d","ttl":120},"access_token":"wrong"}`, n)
	})
	c, clk := newClockCache(t)
	o, err := c.OAuth(OAuthConfig{
		TokenURL:   te.URL + "/login",
		LoginBody:  []Pair{{"user", "relay"}, {"password", "pw-json-secret"}},
		BodyFormat: "json",
		TokenKey:   "data.token",
		ExpiresKey: "data.ttl",
		TokenType:  "Token",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := authorize(t, o).Header.Get("Authorization"); got != "Token dt-1" {
		t.Fatalf("Authorization = %q, want %q", got, "Token dt-1")
	}
	r := te.requests()[0]
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.Body, err)
	}
	if len(body) != 2 || body["user"] != "relay" || body["password"] != "pw-json-secret" {
		t.Fatalf("body = %v", body)
	}
	// ttl 120: refreshed max(12s, 5s) = 12s before expiry.
	clk.Advance(108*time.Second - time.Nanosecond)
	if got := authorize(t, o).Header.Get("Authorization"); got != "Token dt-1" {
		t.Fatalf("Authorization = %q, want dt-1", got)
	}
	clk.Advance(time.Nanosecond)
	if got := authorize(t, o).Header.Get("Authorization"); got != "Token dt-2" {
		t.Fatalf("Authorization = %q, want dt-2", got)
	}
}

func TestBodyFormatDecision(t *testing.T) {
	tests := []struct {
		explicit, contentType string
		want                  string
	}{
		{"", "", "form"},
		{"", "application/json", "json"},
		{"", "application/vnd.api+JSON; charset=utf-8", "json"},
		{"", "application/x-www-form-urlencoded", "form"},
		{"", "text/plain", "form"},
		{"form", "application/json", "form"},
		{"json", "application/x-www-form-urlencoded", "json"},
	}
	for _, tt := range tests {
		got, err := bodyFormat(tt.explicit, tt.contentType)
		if err != nil || got != tt.want {
			t.Errorf("bodyFormat(%q, %q) = %q, %v; want %q", tt.explicit, tt.contentType, got, err, tt.want)
		}
	}
	if _, err := bodyFormat("xml", ""); err == nil {
		t.Error("bodyFormat accepted xml")
	}
}

func TestRequestBodies(t *testing.T) {
	tests := []struct {
		name      string
		cfg       OAuthConfig
		wantCT    string
		wantBody  string
		wantQuery string
	}{
		{"defaults: form with grant_type added", OAuthConfig{
			LoginBody: []Pair{{"client_id", "a b"}, {"client_secret", "s&=t"}},
		}, "application/x-www-form-urlencoded", "client_id=a+b&client_secret=s%26%3Dt&grant_type=client_credentials", ""},
		{"no body at all", OAuthConfig{}, "application/x-www-form-urlencoded", "grant_type=client_credentials", ""},
		{"json detected from the login Content-Type", OAuthConfig{
			LoginHeaders: []Pair{{"content-type", "application/json; charset=utf-8"}},
			LoginBody:    []Pair{{"b", "2"}, {"a", "1"}},
		}, "application/json; charset=utf-8", `{"a":"1","b":"2"}`, ""},
		{"empty json body", OAuthConfig{BodyFormat: "json"}, "application/json", `{}`, ""},
		{"repeated params", OAuthConfig{
			LoginParams: []Pair{{"k", "1"}, {"k", "2"}},
			LoginBody:   []Pair{{"grant_type", "password"}},
		}, "application/x-www-form-urlencoded", "grant_type=password", "k=1&k=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			te := newTokenEndpoint(t, nil)
			c := newTestCache(t)
			tt.cfg.TokenURL = te.URL + "/t"
			tt.cfg.TokenKey = "auth_token"
			o, err := c.OAuth(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			authorize(t, o)
			r := te.requests()[0]
			if got := r.Header.Values("Content-Type"); len(got) != 1 || got[0] != tt.wantCT {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantCT)
			}
			if r.Body != tt.wantBody {
				t.Errorf("body = %q, want %q", r.Body, tt.wantBody)
			}
			if r.RawQuery != tt.wantQuery {
				t.Errorf("query = %q, want %q", r.RawQuery, tt.wantQuery)
			}
		})
	}
}

// 1,000 Authorize calls across 32 goroutines make one token request while the token lives, and
// exactly one more once it is due for refresh; a 401 with the cached token evicts it, a 401 with
// an older one does not.
func TestConcurrentAuthorizeOneFetch(t *testing.T) {
	te := newTokenEndpoint(t, nil)
	te.gate = make(chan struct{})
	c, clk := newClockCache(t)
	o, err := c.OAuth(OAuthConfig{TokenURL: te.URL, TokenKey: "auth_token"})
	if err != nil {
		t.Fatal(err)
	}

	const goroutines, calls = 32, 1000
	run := func(want string) *http.Request {
		t.Helper()
		var wg sync.WaitGroup
		var bad atomic.Int64
		var last atomic.Pointer[http.Request]
		for g := range goroutines {
			wg.Go(func() {
				for i := g; i < calls; i += goroutines {
					req := httptest.NewRequest(http.MethodPost, "http://destination.test/", nil)
					if err := o.Authorize(context.Background(), req); err != nil || req.Header.Get("Authorization") != want {
						bad.Add(1)
					}
					last.Store(req)
				}
			})
		}
		wg.Wait()
		if n := bad.Load(); n != 0 {
			t.Fatalf("%d calls failed or did not carry %q", n, want)
		}
		return last.Load()
	}

	// Hold the first token request until every goroutine has missed and is waiting on it.
	done := make(chan *http.Request)
	go func() { done <- run("Bearer tok-1") }()
	waitFor(t, "32 concurrent misses", func() bool { return c.Stats().Misses >= goroutines })
	close(te.gate)
	old := <-done
	if n := te.n.Load(); n != 1 {
		t.Fatalf("%d token requests for the first token, want 1", n)
	}
	if s := c.Stats(); s.Fetches != 1 || s.Hits+s.Misses != calls {
		t.Fatalf("stats = %+v", s)
	}

	clk.Advance(time.Hour) // past refresh time
	run("Bearer tok-2")
	if n := te.n.Load(); n != 2 {
		t.Fatalf("%d token requests after expiry, want 2", n)
	}

	// A 401 for a request that carried the old token must not evict the fresh one.
	if !o.Reject(old) {
		t.Fatal("Reject = false, want true for OAuth")
	}
	cur := authorize(t, o)
	if got := cur.Header.Get("Authorization"); got != "Bearer tok-2" || te.n.Load() != 2 {
		t.Fatalf("after Reject(old): %q, %d requests; want tok-2, 2", got, te.n.Load())
	}
	// A 401 with the cached token evicts it; the next call fetches once.
	o.Reject(cur)
	run("Bearer tok-3")
	if n := te.n.Load(); n != 3 {
		t.Fatalf("%d token requests after Reject, want 3", n)
	}
	if s := c.Stats(); s.Fetches != 3 || s.FetchErrors != 0 {
		t.Fatalf("stats = %+v", s)
	}
}

// A token that lives no longer than the refresh window is not cached (ristretto would keep a
// TTL <= 0 forever); the callers waiting on its flight still share it, so concurrent misses make
// one request even though nothing is stored: the same path as a Set that ristretto drops.
func TestShortLivedTokenSharedNotCached(t *testing.T) {
	te := newTokenEndpoint(t, func(w http.ResponseWriter, n int64) {
		fmt.Fprintf(w, `{"access_token":"short-%d","expires_in":5}`, n)
	})
	te.gate = make(chan struct{})
	c := newTestCache(t)
	o, err := c.OAuth(OAuthConfig{TokenURL: te.URL})
	if err != nil {
		t.Fatal(err)
	}
	const goroutines = 16
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range goroutines {
		wg.Go(func() {
			if tok, err := o.Token(context.Background()); err != nil || tok != "short-1" {
				bad.Add(1)
			}
		})
	}
	waitFor(t, "concurrent misses", func() bool { return c.Stats().Misses >= goroutines })
	close(te.gate)
	wg.Wait()
	if bad.Load() != 0 || te.n.Load() != 1 {
		t.Fatalf("%d bad results, %d requests; want 0, 1", bad.Load(), te.n.Load())
	}
	// Not cached: the next call fetches again.
	if tok, err := o.Token(t.Context()); err != nil || tok != "short-2" {
		t.Fatalf("Token = %q, %v; want short-2", tok, err)
	}
}

func TestCacheTTL(t *testing.T) {
	tests := []struct {
		life, refreshBefore, want time.Duration
	}{
		{time.Hour, 0, 54 * time.Minute},
		{6 * time.Second, 0, time.Second},      // 10% is 0.6s: the 5s floor applies
		{5 * time.Second, 0, 0},                // not cached
		{3 * time.Second, 0, -2 * time.Second}, // not cached
		{100 * time.Second, 30 * time.Second, 70 * time.Second},
		{10 * time.Second, time.Minute, -50 * time.Second},
		{0, 0, 0},
	}
	for _, tt := range tests {
		o := &OAuth{refresh: tt.refreshBefore}
		if got := o.cacheTTL(tt.life); got != tt.want && !(got <= 0 && tt.want <= 0) {
			t.Errorf("cacheTTL(%v) with refresh_before %v = %v, want %v", tt.life, tt.refreshBefore, got, tt.want)
		}
	}
}

func TestLifetimeParsing(t *testing.T) {
	tests := []struct {
		body string
		want time.Duration // time until refresh
	}{
		{`{"access_token":"x","expires_in":3600}`, 54 * time.Minute},
		{`{"access_token":"x","expires_in":"3600"}`, 54 * time.Minute},
		{`{"access_token":"x","expires_in":" 600.5 "}`, 600500*time.Millisecond - time.Minute - 50*time.Millisecond},
		{`{"access_token":"x"}`, 4*time.Minute + 30*time.Second},                   // DefaultTTL 5m
		{`{"access_token":"x","expires_in":null}`, 4*time.Minute + 30*time.Second}, // DefaultTTL
		{`{"access_token":"x","expires_in":"soon"}`, 4*time.Minute + 30*time.Second},
		{`{"access_token":"x","expires_in":1e12}`, maxLifetime - maxLifetime/10},
	}
	for _, tt := range tests {
		te := newTokenEndpoint(t, func(w http.ResponseWriter, _ int64) { io.WriteString(w, tt.body) })
		c, clk := newClockCache(t)
		o, err := c.OAuth(OAuthConfig{TokenURL: te.URL})
		if err != nil {
			t.Fatal(err)
		}
		authorize(t, o)
		clk.Advance(tt.want - time.Millisecond)
		authorize(t, o)
		if te.n.Load() != 1 {
			t.Errorf("%s: refreshed before %v", tt.body, tt.want)
		}
		clk.Advance(time.Millisecond)
		authorize(t, o)
		if te.n.Load() != 2 {
			t.Errorf("%s: not refreshed at %v", tt.body, tt.want)
		}
	}
}

const (
	secretBasic   = "Basic c2VjcmV0LWJhc2ljLVoz"
	secretBody    = "client-secret-K9x"
	secretParam   = "param-secret-P4"
	secretInBody  = "LEAKED-FROM-ERROR-BODY"
	secretToken   = "issued-token-T8"
	secretAPIKey  = "api-key-value-A1"
	secretURLPass = "url-password-U2"
)

var allSecrets = []string{secretBasic, "c2VjcmV0LWJhc2ljLVoz", secretBody, secretParam, secretInBody, secretToken, secretAPIKey, secretURLPass}

func secretConfig(tokenURL string) OAuthConfig {
	return OAuthConfig{
		TokenURL:     tokenURL,
		LoginHeaders: []Pair{{"Authorization", secretBasic}},
		LoginParams:  []Pair{{"api_key", secretParam}},
		LoginBody:    []Pair{{"client_id", "relay"}, {"client_secret", secretBody}},
	}
}

func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, sec := range allSecrets {
		if strings.Contains(s, sec) {
			t.Errorf("%s contains secret %q: %s", what, sec, s)
		}
	}
}

func TestTokenEndpointFailures(t *testing.T) {
	// A closed port on loopback.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + ln.Addr().String() + "/token"
	ln.Close()

	fail := func(status int, body string) func(http.ResponseWriter, int64) {
		return func(w http.ResponseWriter, _ int64) {
			if status == http.StatusFound {
				w.Header().Set("Location", "/elsewhere?"+secretInBody)
			}
			w.WriteHeader(status)
			io.WriteString(w, body)
		}
	}
	tests := []struct {
		name       string
		url        string // "" = the test endpoint
		respond    func(http.ResponseWriter, int64)
		wantStatus int
	}{
		{"connection refused", closedURL, nil, 0},
		{"500 with secrets in the body", "", fail(500, `{"error":"`+secretInBody+`","echo":"`+secretBody+`"}`), 500},
		{"401", "", fail(401, `{"error":"invalid_client `+secretInBody+`"}`), 401},
		{"redirect not followed", "", fail(http.StatusFound, secretInBody), 302},
		{"200 not JSON", "", fail(200, "<html>"+secretInBody+"</html>"), 200},
		{"200 without token", "", fail(200, `{"token":"`+secretToken+`"}`), 200},
		{"200 token not a string", "", fail(200, `{"access_token":12345}`), 200},
		{"200 too large", "", fail(200, `{"access_token":"`+strings.Repeat("x", maxTokenResponseSize)+`"}`), 200},
		{"200 token with newline", "", fail(200, `{"access_token":"a\nX-Evil: `+secretToken+`"}`), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.url
			if u == "" {
				u = newTokenEndpoint(t, tt.respond).URL + "/token"
			}
			c := newTestCache(t)
			o, err := c.OAuth(secretConfig(u))
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodPost, "http://destination.test/", nil)
			err = o.Authorize(t.Context(), req)
			te, ok := errors.AsType[*TokenError](err)
			if !ok {
				t.Fatalf("err = %v (%T), want *TokenError", err, err)
			}
			if te.Status != tt.wantStatus {
				t.Errorf("Status = %d, want %d", te.Status, tt.wantStatus)
			}
			if !strings.Contains(err.Error(), te.Host) || !strings.HasPrefix(te.Host, "127.0.0.1:") {
				t.Errorf("error %q does not name the host 127.0.0.1:port", err)
			}
			if tt.wantStatus != 0 && !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", tt.wantStatus)) {
				t.Errorf("error %q does not name the status", err)
			}
			if tt.wantStatus == 0 && !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("error %v does not wrap ECONNREFUSED", err)
			}
			assertNoSecret(t, "error", err.Error())
			assertNoSecret(t, "error %+v", fmt.Sprintf("%+v %#v", err, err))
			if req.Header.Get("Authorization") != "" {
				t.Error("a failed Authorize set an Authorization header")
			}
			if s := c.Stats(); s.Fetches != 1 || s.FetchErrors != 1 {
				t.Errorf("stats = %+v, want 1 fetch, 1 error", s)
			}
		})
	}
}

func TestTokenTimeoutAndCancellation(t *testing.T) {
	te := newTokenEndpoint(t, nil)
	te.gate = make(chan struct{}) // never opened in the timeout case

	t.Run("timeout", func(t *testing.T) {
		c := newTestCache(t)
		o, err := c.OAuth(OAuthConfig{TokenURL: te.URL, TokenKey: "auth_token", Timeout: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		_, err = o.Token(t.Context())
		if _, ok := errors.AsType[*TokenError](err); !ok || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a *TokenError wrapping context.DeadlineExceeded", err)
		}
	})

	t.Run("a cancelled caller does not cancel the shared request", func(t *testing.T) {
		te := newTokenEndpoint(t, nil)
		te.gate = make(chan struct{})
		c := newTestCache(t)
		o, err := c.OAuth(OAuthConfig{TokenURL: te.URL, TokenKey: "auth_token"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		first := make(chan error)
		go func() { _, err := o.Token(ctx); first <- err }()
		waitFor(t, "the token request", func() bool { return te.n.Load() == 1 })
		second := make(chan string)
		go func() { tok, _ := o.Token(context.Background()); second <- tok }()
		waitFor(t, "the second caller", func() bool { return c.Stats().Misses == 2 })
		cancel()
		if err := <-first; !errors.Is(err, context.Canceled) {
			t.Fatalf("first caller: %v, want context.Canceled", err)
		}
		close(te.gate)
		if tok := <-second; tok != "tok-1" {
			t.Fatalf("second caller got %q, want tok-1", tok)
		}
		if te.n.Load() != 1 {
			t.Fatalf("%d token requests, want 1", te.n.Load())
		}
	})

	t.Run("Close aborts the request and later calls fail", func(t *testing.T) {
		te := newTokenEndpoint(t, nil)
		te.gate = make(chan struct{})
		c := newTestCache(t)
		o, err := c.OAuth(OAuthConfig{TokenURL: te.URL, TokenKey: "auth_token"})
		if err != nil {
			t.Fatal(err)
		}
		res := make(chan error)
		go func() { _, err := o.Token(context.Background()); res <- err }()
		waitFor(t, "the token request", func() bool { return te.n.Load() == 1 })
		c.Close()
		if err := <-res; !errors.Is(err, context.Canceled) {
			t.Fatalf("in-flight Token after Close: %v, want context.Canceled", err)
		}
		if _, err := o.Token(t.Context()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Token after Close: %v, want ErrClosed", err)
		}
		o.Reject(httptest.NewRequest("POST", "http://x/", nil)) // must not panic or block
		c.Close()                                               // idempotent
	})
}

// Every string the package produces, on success and failure, is free of secrets.
func TestNoSecretsInOutput(t *testing.T) {
	te := newTokenEndpoint(t, func(w http.ResponseWriter, n int64) {
		if n == 1 {
			w.WriteHeader(503)
			io.WriteString(w, secretInBody+" "+secretBody)
			return
		}
		fmt.Fprintf(w, `{"access_token":%q,"expires_in":3600}`, secretToken)
	})
	c := newTestCache(t)
	var out []string
	capture := func(vs ...any) {
		for _, v := range vs {
			out = append(out, fmt.Sprint(v), fmt.Sprintf("%v|%+v|%#v|%s", v, v, v, v))
		}
	}

	u := strings.Replace(te.URL, "http://", "http://relay:"+secretURLPass+"@", 1) + "/token?key=" + secretParam
	cfg := secretConfig(u)
	capture(cfg, &cfg, cfg.LoginHeaders, cfg.LoginBody, cfg.LoginParams)
	o, err := c.OAuth(cfg)
	if err != nil {
		t.Fatal(err)
	}
	capture(o)
	_, err = o.Token(t.Context()) // 503
	if err == nil {
		t.Fatal("want an error from the 503")
	}
	capture(err)
	tok, err := o.Token(t.Context())
	if err != nil || tok != secretToken {
		t.Fatalf("Token = %q, %v", tok, err)
	}
	capture(o, c.Stats())

	// Config errors carrying secret values.
	for _, bad := range []OAuthConfig{
		{TokenURL: "ftp://relay:" + secretURLPass + "@host/?k=" + secretParam},
		{TokenURL: "::" + secretParam},
		{TokenURL: te.URL, LoginHeaders: []Pair{{"Authorization", secretBasic + "\r\n"}}},
		{TokenURL: te.URL, BodyFormat: "json", LoginBody: []Pair{{"s", secretBody}, {"s", secretBody}}},
		{TokenURL: te.URL, LoginBody: []Pair{{"s", secretBody}}, BodyFormat: "yaml"},
	} {
		_, err := c.OAuth(bad)
		if err == nil {
			t.Fatalf("config %v accepted", bad)
		}
		capture(err)
	}

	k := APIKey([]Pair{{"API-KEY", secretAPIKey}, {"api-user", "user1"}})
	capture(k)

	for _, s := range out {
		assertNoSecret(t, "output", s)
	}
	if !strings.Contains(fmt.Sprint(k), "Api-User=REDACTED") || !strings.Contains(o.String(), "client_secret=REDACTED") {
		t.Errorf("String output does not list names: %s / %s", k, o)
	}
}

func TestAPIKey(t *testing.T) {
	k := APIKey([]Pair{{"API-KEY", "k1"}, {"api-user", "user1"}, {"X-Multi", "a"}, {"x-multi", "b"}})
	req := httptest.NewRequest(http.MethodPost, "http://destination.test/", nil)
	req.Header.Set("Api-Key", "old")
	req.Header.Set("Other", "kept")
	if err := k.Authorize(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{
		"Api-Key": {"k1"}, "Api-User": {"user1"}, "X-Multi": {"a", "b"}, "Other": {"kept"},
	} {
		if got := req.Header.Values(name); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	req.Header["Api-Key"][0] = "mutated"
	if err := k.Authorize(t.Context(), req); err != nil || req.Header.Get("Api-Key") != "k1" {
		t.Fatalf("a request's header mutation leaked into the Authorizer: %q", req.Header.Get("Api-Key"))
	}
	if k.Reject(req) {
		t.Error("Reject = true for an API key")
	}
	nilHeader := &http.Request{}
	if err := k.Authorize(t.Context(), nilHeader); err != nil || nilHeader.Header.Get("Api-Key") != "k1" {
		t.Fatal("Authorize with a nil Header")
	}
}

func TestOAuthValidation(t *testing.T) {
	c := newTestCache(t)
	bad := []OAuthConfig{
		{},
		{TokenURL: "/relative"},
		{TokenURL: "ftp://host/"},
		{TokenURL: "https:///nohost"},
		{TokenURL: "https://h/", BodyFormat: "xml"},
		{TokenURL: "https://h/", TokenType: "Bearer x"},
		{TokenURL: "https://h/", DefaultTTL: -1},
		{TokenURL: "https://h/", RefreshBefore: -1},
		{TokenURL: "https://h/", Timeout: -1},
		{TokenURL: "https://h/", LoginHeaders: []Pair{{"Bad Name", "v"}}},
		{TokenURL: "https://h/", LoginParams: []Pair{{"", "v"}}},
		{TokenURL: "https://h/", BodyFormat: "json", LoginBody: []Pair{{"a", "1"}, {"a", "2"}}},
	}
	for _, cfg := range bad {
		if _, err := c.OAuth(cfg); err == nil {
			t.Errorf("OAuth(%v) accepted", cfg)
		}
	}
	if _, err := c.OAuth(OAuthConfig{TokenURL: "http://127.0.0.1:1/t"}); err != nil {
		t.Errorf("minimal config rejected: %v", err)
	}
	if _, err := NewCache(-1, nil); err == nil {
		t.Error("NewCache(-1) accepted")
	}
}

// Configurations that send the same token request share the token; different credentials do not.
func TestCacheKeySharing(t *testing.T) {
	te := newTokenEndpoint(t, nil)
	c := newTestCache(t)
	mk := func(secret string) *OAuth {
		o, err := c.OAuth(OAuthConfig{TokenURL: te.URL, TokenKey: "auth_token", LoginBody: []Pair{{"client_secret", secret}}})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	a1, a2, b := mk("a"), mk("a"), mk("b")
	if a1.key != a2.key || a1.key == b.key {
		t.Fatal("cache keys do not follow the credentials")
	}
	if strings.Contains(a1.key, "client_secret") {
		t.Fatal("cache key holds clear text")
	}
	ta, _ := a1.Token(t.Context())
	ta2, _ := a2.Token(t.Context())
	tb, _ := b.Token(t.Context())
	if ta != ta2 || ta == tb || te.n.Load() != 2 {
		t.Fatalf("tokens %q %q %q after %d requests; want the first two shared, 2 requests", ta, ta2, tb, te.n.Load())
	}
}

func TestLookupPath(t *testing.T) {
	var doc map[string]any
	json.Unmarshal([]byte(`{"a":{"b":{"c":"deep"}},"x.y":"literal","x":{"y":"nested"},"n":{"m":1}}`), &doc)
	for path, want := range map[string]any{"a.b.c": "deep", "x.y": "literal", "n.m": float64(1), "a.b.z": nil, "zz": nil, "a.": nil} {
		got, _ := lookupPath(doc, path)
		if got != want {
			t.Errorf("lookupPath(%q) = %v, want %v", path, got, want)
		}
	}
}

// A caller that missed just before another flight stored its token, and starts its own flight
// just after that one ended, must use the stored token: the flight looks at the cache again
// before fetching. (Calling refreshToken directly reproduces that interleaving deterministically.)
func TestLateMissUsesStoredToken(t *testing.T) {
	te := newTokenEndpoint(t, nil)
	c := newTestCache(t)
	o, err := c.OAuth(OAuthConfig{TokenURL: te.URL, TokenKey: "auth_token"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Token(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Set+Wait happened inside the flight: the token is visible now, not eventually.
	if _, ok := c.tokens.Get(o.key); !ok {
		t.Fatal("token not visible in the cache after its flight ended")
	}
	e, err := o.refreshToken(t.Context())
	if err != nil || e.token != "tok-1" || te.n.Load() != 1 {
		t.Fatalf("late flight: %v, %v, %d requests; want tok-1 and 1 request", e, err, te.n.Load())
	}
}
