package registry

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/zap/zaptest"

	"github.com/hookrelay/hookrelay/authcache"
	"github.com/hookrelay/hookrelay/destination"
	"github.com/hookrelay/hookrelay/netguard"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/event"
)

func newSealKey(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// testSettings allow loopback addresses over http, for receivers on
// 127.0.0.1.
func testSettings(t testing.TB, key string) Settings {
	t.Helper()
	sealer, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := authcache.NewCache(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tokens.Close)
	guard := netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	return Settings{
		Sealer:        sealer,
		Guard:         guard,
		Client:        netguard.NewClient(guard, netguard.ClientOptions{}),
		Tokens:        tokens,
		Retry:         relay.RetryPolicy{Schedule: []time.Duration{200 * time.Millisecond}, MaxAge: time.Minute},
		MinRetryDelay: 100 * time.Millisecond,
		AllowHTTP:     true,
	}
}

type env struct {
	dir string
	eng *relay.Engine
	reg *Registry
}

// open starts an embedded engine in dir and the registry on it; both
// stop when the test ends (or earlier, with close).
func open(t testing.TB, dir string, settings Settings) *env {
	t.Helper()
	eng, err := relay.Open(relay.Options{Queue: relay.QueueConfig{Dir: dir}, Logger: zaptest.NewLogger(t), NakMaxDelay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kv, err := eng.KeyValue(ctx, Bucket, "test")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := Open(ctx, kv, eng, settings, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{dir: dir, eng: eng, reg: reg}
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	if e.reg != nil {
		e.reg.Close()
		e.reg = nil
	}
	if e.eng != nil {
		_ = e.eng.Close()
		e.eng = nil
	}
}

// sink records what it receives.
type sink struct {
	*httptest.Server
	mu   sync.Mutex
	got  []*http.Request
	body [][]byte
}

func newSink(t testing.TB) *sink {
	s := &sink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.got = append(s.got, r)
		s.body = append(s.body, b)
		s.mu.Unlock()
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func enqueue(t testing.TB, e *env, topic, tenant string, data string) []string {
	t.Helper()
	ev := event.Event{ID: event.NewID("test", topic, tenant, data), Topic: topic, Source: "test", ReceivedAt: time.Now().UTC(), Tenant: tenant, Data: json.RawMessage(data)}
	names := e.reg.Match(&ev, func() map[string]any {
		b, _ := json.Marshal(&ev)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	})
	if err := e.eng.EnqueueEach(context.Background(), []event.Event{ev}, [][]string{names}); err != nil {
		t.Fatal(err)
	}
	return names
}

func TestCreateDeliverSignedAndTenantIsolation(t *testing.T) {
	e := open(t, t.TempDir(), testSettings(t, newSealKey(t)))
	a, b := newSink(t), newSink(t)
	ctx := context.Background()
	wa, secret, err := e.reg.Create(ctx, "acme", Input{Topic: "orders/created", Address: a.URL + "/hook",
		Headers: Pairs{{"X-Custom", "c1"}}, Params: Pairs{{"shop", "7"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "whsec_") || wa.ID < 1_000_000_000 {
		t.Fatalf("secret %q id %d", secret, wa.ID)
	}
	if _, _, err := e.reg.Create(ctx, "globex", Input{Topic: "orders/*", Address: b.URL}); err != nil {
		t.Fatal(err)
	}

	// Another tenant sees nothing of acme's webhook.
	if _, err := e.reg.Get("globex", wa.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("globex got acme's webhook: %v", err)
	}
	if _, err := e.reg.Delete(ctx, "globex", wa.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("globex deleted acme's webhook: %v", err)
	}
	if l, _ := e.reg.List("globex", 0, 0); len(l) != 1 || l[0].Tenant != "globex" {
		t.Fatalf("globex lists %v", l)
	}

	// An event stamped acme reaches only acme's webhook; an unstamped one
	// reaches both.
	if names := enqueue(t, e, "orders/created", "acme", `{"n":1}`); len(names) != 1 {
		t.Fatalf("acme event routed to %v", names)
	}
	if names := enqueue(t, e, "orders/created", "", `{"n":2}`); len(names) != 2 {
		t.Fatalf("unstamped event routed to %v", names)
	}
	waitFor(t, 5*time.Second, "deliveries", func() bool { return a.count() == 2 && b.count() == 1 })

	a.mu.Lock()
	r, body := a.got[0], a.body[0]
	a.mu.Unlock()
	if r.Header.Get("X-Custom") != "c1" || r.URL.Query().Get("shop") != "7" || r.URL.Path != "/hook" {
		t.Fatalf("delivery lacks its headers or params: %v %v", r.Header, r.URL)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(body, r.Header); err != nil {
		t.Fatalf("signature: %v", err)
	}
}

func TestCredentialsSealedAtRest(t *testing.T) {
	dir := t.TempDir()
	key := newSealKey(t)
	e := open(t, dir, testSettings(t, key))
	rc := newSink(t)
	w, secret, err := e.reg.Create(context.Background(), "acme", Input{
		Topic: "orders/created", Address: rc.URL,
		Authorization: &Authorization{AuthType: AuthAPIKey, Headers: Pairs{{"API-KEY", "s3cr3t-api-key"}}},
		Headers:       Pairs{{"X-Token", "s3cr3t-header"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if w.Auth == nil || w.Auth.AuthType != AuthAPIKey || strings.Join(w.Auth.HeaderNames, ",") != "API-KEY" {
		t.Fatalf("summary %+v", w.Auth)
	}
	raw, _ := json.Marshal(w)
	for _, s := range []string{"s3cr3t-api-key", "s3cr3t-header", secret} {
		if strings.Contains(string(raw), s) {
			t.Fatalf("the stored webhook holds %q in clear", s)
		}
	}
	enqueue(t, e, "orders/created", "acme", `{"n":1}`)
	waitFor(t, 5*time.Second, "delivery", func() bool { return rc.count() == 1 })
	if got := rc.got[0].Header.Get("API-KEY"); got != "s3cr3t-api-key" {
		t.Fatalf("api key header %q", got)
	}
	e.close()
	// Nothing under the queue's directory holds the credentials in clear.
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, s := range []string{"s3cr3t-api-key", "s3cr3t-header", secret} {
			if strings.Contains(string(b), s) {
				t.Errorf("%s holds %q in clear", p, s)
			}
		}
		return nil
	})

	// Another key cannot open them: the webhook is listed as broken and
	// does not run, and its events wait.
	other := open(t, dir, testSettings(t, newSealKey(t)))
	info := other.reg.All()
	if len(info) != 1 || !strings.Contains(info[0].Broken, "cannot be opened") {
		t.Fatalf("with another key: %+v", info)
	}
	other.close()
	// The old key, second in the list, still opens them.
	s := testSettings(t, newSealKey(t))
	s.Sealer, _ = NewSealer(newSealKey(t), key)
	again := open(t, dir, s)
	if info := again.reg.All(); len(info) != 1 || info[0].Broken != "" {
		t.Fatalf("with the old key second: %+v", info)
	}
}

func TestRestartKeepsWebhooksAndPending(t *testing.T) {
	dir, key := t.TempDir(), newSealKey(t)
	e := open(t, dir, testSettings(t, key))
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	w, _, err := e.reg.Create(context.Background(), "acme", Input{Topic: "orders/created", Address: down.URL})
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, e, "orders/created", "acme", `{"n":1}`)
	enqueue(t, e, "orders/created", "acme", `{"n":2}`)
	e.close()
	addr := down.Listener.Addr().String()
	down.Close()

	// The receiver comes back on the same address, the relay restarts.
	rc := &sink{}
	l, err := netListen(addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	rc.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		rc.got = append(rc.got, r)
		rc.mu.Unlock()
	}))
	rc.Listener = l
	rc.Start()
	t.Cleanup(rc.Close)
	again := open(t, dir, testSettings(t, key))
	if _, err := again.reg.Get("acme", w.ID); err != nil {
		t.Fatalf("webhook lost across a restart: %v", err)
	}
	waitFor(t, 10*time.Second, "both pending events", func() bool { return rc.count() >= 2 })
}

func TestUpdateRotateDelete(t *testing.T) {
	e := open(t, t.TempDir(), testSettings(t, newSealKey(t)))
	rc := newSink(t)
	ctx := context.Background()
	w, old, err := e.reg.Create(ctx, "acme", Input{Topic: "orders/created", Address: rc.URL})
	if err != nil {
		t.Fatal(err)
	}
	// An update is checked like a create, and nothing changes on error.
	_, err = e.reg.Update(ctx, "acme", w.ID, func(in *Input) error { in.Address = "ftp://x"; return nil })
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Fields[0].Pointer != "/address" {
		t.Fatalf("bad update: %v", err)
	}
	if got, _ := e.reg.Get("acme", w.ID); got.Address != rc.URL {
		t.Fatalf("a refused update changed the webhook: %s", got.Address)
	}
	if _, err := e.reg.Update(ctx, "acme", w.ID, func(in *Input) error { in.Topic = "orders/*"; return nil }); err != nil {
		t.Fatal(err)
	}

	_, fresh, err := e.reg.Rotate(ctx, "acme", w.ID)
	if err != nil || fresh == old {
		t.Fatalf("rotate: %v", err)
	}
	enqueue(t, e, "orders/updated", "acme", `{"n":1}`)
	waitFor(t, 5*time.Second, "delivery", func() bool { return rc.count() == 1 })
	r, body := rc.got[0], rc.body[0]
	if sigs := strings.Fields(r.Header.Get("webhook-signature")); len(sigs) != 2 {
		t.Fatalf("want two signatures during the grace period, got %q", sigs)
	}
	for _, s := range []string{old, fresh} {
		wh, _ := standardwebhooks.NewWebhook(s)
		if err := wh.Verify(body, r.Header); err != nil {
			t.Fatalf("a secret does not verify: %v", err)
		}
	}

	if _, err := e.reg.Delete(ctx, "acme", w.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Get("acme", w.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted webhook still there: %v", err)
	}
	if names := enqueue(t, e, "orders/updated", "acme", `{"n":2}`); len(names) != 0 {
		t.Fatalf("a deleted webhook still matches: %v", names)
	}
}

func TestValidation(t *testing.T) {
	s := testSettings(t, newSealKey(t))
	s.AllowHTTP = false
	s.Guard = netguard.New(nil)
	s.MaxRetryAge = 24 * time.Hour
	s = s.withDefaults()
	cases := []struct {
		in   Input
		want []string
	}{
		{Input{}, []string{"/topic", "/address"}},
		{Input{Topic: "a//b", Address: "http://example.com/"}, []string{"/topic", "/address"}},
		{Input{Topic: "x", Address: "https://127.0.0.1/"}, []string{"/address"}},
		{Input{Topic: "x", Address: "https://localhost/"}, []string{"/address"}},
		{Input{Topic: "x", Address: "https://example.com/", Filter: "foo =="}, []string{"/filter"}},
		{Input{Topic: "x", Address: "https://example.com/", Secret: "nope"}, []string{"/secret"}},
		{Input{Topic: "x", Address: "https://example.com/", Headers: Pairs{{"webhook-signature", "x"}, {"bad name", "v"}}},
			[]string{"/headers/0", "/headers/1"}},
		{Input{Topic: "x", Address: "https://example.com/", Authorization: &Authorization{AuthType: AuthAPIKey}},
			[]string{"/authorization/headers"}},
		{Input{Topic: "x", Address: "https://example.com/", Authorization: &Authorization{AuthType: AuthOAuth}},
			[]string{"/authorization/addressLogin"}},
		{Input{Topic: "x", Address: "https://example.com/", Authorization: &Authorization{AuthType: "basic"}},
			[]string{"/authorization/authType"}},
		{Input{Topic: "x", Address: "https://example.com/", Authorization: &Authorization{AuthType: AuthOAuth,
			AddressLogin: "https://10.0.0.1/token", Body: json.RawMessage(`[1]`)}},
			[]string{"/authorization/addressLogin", "/authorization/body"}},
		{Input{Topic: "x", Address: "https://example.com/", Authorization: &Authorization{AuthType: AuthOAuth,
			AddressLogin: "https://example.com/token", Headers: Pairs{{"Content-Type", "application/x-www-form-urlencoded"}},
			Body: json.RawMessage(`{"nested":{"a":1}}`)}},
			[]string{"/authorization/body"}},
		{Input{Topic: "x", Address: "https://example.com/", Retry: &destination.RetryConfig{
			Schedule: []destination.Duration{destination.Duration(time.Millisecond)}, MaxAge: destination.Duration(48 * time.Hour)}},
			[]string{"/retry/schedule/0", "/retry/max_age"}},
		{Input{Topic: "orders/*", Address: "https://example.com/", Filter: `data.total > 100`}, nil},
		{Input{Topic: "x", Address: "https://example.com/", OrderBy: "orderId"}, []string{"/order_by"}},
		{Input{Topic: "x", Address: "https://example.com/", OrderBy: "data..orderId"}, []string{"/order_by"}},
		{Input{Topic: "x", Address: "https://example.com/", OrderBy: "data.orderId"}, nil},
	}
	for _, c := range cases {
		ve := s.check(&c.in)
		var got []string
		if ve != nil {
			for _, f := range ve.Fields {
				got = append(got, f.Pointer)
			}
		}
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%+v: pointers %v, want %v (%v)", c.in, got, c.want, ve)
		}
	}
}

func TestFilterAndPatternRouting(t *testing.T) {
	e := open(t, t.TempDir(), testSettings(t, newSealKey(t)))
	rc := newSink(t)
	ctx := context.Background()
	big, _, err := e.reg.Create(ctx, "acme", Input{Topic: "orders/*", Address: rc.URL, Filter: `has(data.total) && data.total > 100`})
	if err != nil {
		t.Fatal(err)
	}
	all, _, err := e.reg.Create(ctx, "acme", Input{Topic: "*", Address: rc.URL})
	if err != nil {
		t.Fatal(err)
	}
	names := enqueue(t, e, "orders/created", "", `{"total":150}`)
	if strings.Join(names, ",") != relay.WebhookName(all.ID)+","+relay.WebhookName(big.ID) &&
		strings.Join(names, ",") != relay.WebhookName(big.ID)+","+relay.WebhookName(all.ID) {
		t.Fatalf("big order routed to %v", names)
	}
	if names := enqueue(t, e, "orders/created", "", `{"total":50}`); len(names) != 1 || names[0] != relay.WebhookName(all.ID) {
		t.Fatalf("small order routed to %v", names)
	}
	if names := enqueue(t, e, "onProductUpdated", "", `{}`); len(names) != 1 {
		t.Fatalf("product event routed to %v", names)
	}
}

func TestPairsJSON(t *testing.T) {
	var p Pairs
	if err := json.Unmarshal([]byte(`[{"API-KEY":"k"},{"n":42},{"b":true}]`), &p); err != nil {
		t.Fatal(err)
	}
	if len(p) != 3 || p[0] != (Pair{"API-KEY", "k"}) || p[1].Value != "42" || p[2].Value != "true" {
		t.Fatalf("%+v", p)
	}
	out, _ := json.Marshal(p)
	if string(out) != `[{"API-KEY":"k"},{"n":"42"},{"b":"true"}]` {
		t.Fatalf("%s", out)
	}
	for _, bad := range []string{`{}`, `[{"a":"1","b":"2"}]`, `[{"a":{"x":1}}]`, `["x"]`, `[{}]`} {
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if err := json.Unmarshal([]byte(`null`), &p); err != nil || p != nil {
		t.Fatalf("null: %v %v", p, err)
	}
}

// A webhook registered with an order_by runs as an ordered destination
// with the registry's lanes, and its events of one key arrive in order.
func TestOrderedWebhook(t *testing.T) {
	settings := testSettings(t, newSealKey(t))
	settings.Lanes = 3
	e := open(t, t.TempDir(), settings)
	rc := newSink(t)
	ctx := context.Background()
	w, _, err := e.reg.Create(ctx, "acme", Input{Topic: "orders/*", Address: rc.URL, OrderBy: "data.orderId"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := e.reg.Get("acme", w.ID); got.OrderBy != "data.orderId" {
		t.Fatalf("stored order_by %q", got.OrderBy)
	}
	for n := range 10 {
		enqueue(t, e, "orders/updated", "acme", fmt.Sprintf(`{"orderId":"o-1","n":%d}`, n))
	}
	waitFor(t, 20*time.Second, "10 deliveries", func() bool { return rc.count() == 10 })
	rc.mu.Lock()
	for i, b := range rc.body {
		if !strings.Contains(string(b), fmt.Sprintf(`"n":%d`, i)) {
			t.Errorf("delivery %d is %s", i, b)
		}
	}
	rc.mu.Unlock()
	st, err := e.eng.DestinationStatus(ctx, relay.WebhookName(w.ID))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Ordered || st.Lanes != 3 {
		t.Fatalf("status %+v: want ordered with 3 lanes", st)
	}
}
