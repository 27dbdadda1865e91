// Package ops holds hookrelay's operations tests, run against a real Caddy
// in-process (caddytest): the admin API (/hookrelay/...), the Prometheus
// metrics on the admin /metrics endpoint across a reload, the status page
// in a real headless browser, and the 'caddy hookrelay' CLI commands.
package ops

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	// hookrelay's modules, for the in-process Caddy that caddytest runs.
	_ "github.com/hookrelay/hookrelay"
	"github.com/hookrelay/hookrelay/internal/testutil"
)

// caddyAt is the in-process Caddy of this package (it owns 3040 and
// 9480-9499; 9843 for the https_port its configs never use).
var caddyAt = testutil.InProcess{AdminPort: 3040, HTTPPort: httpPort, HTTPSPort: 9843}

const (
	// httpPort is the HTTP port the package's configs listen on.
	httpPort = 9480
	// hookPath is where every config of this package takes webhooks.
	hookPath = "/hook"
	topic    = "shipments/tracking"
)

var (
	adminAddr = caddyAt.AdminAddr()
	adminURL  = caddyAt.AdminURL()
	baseURL   = caddyAt.BaseURL()
)

// baseDir holds every test's queue directory; it is removed after the
// whole package ran.
var baseDir string

func TestMain(m *testing.M) {
	testutil.RunIsolated(m, func(dir string) { baseDir = dir }, unloadAll)
}

func queueDir(t *testing.T) string { return testutil.QueueDir(t, baseDir) }

// config returns a Caddyfile with this package's global options, a fresh
// queue, and a site on httpPort that relays hookPath (Ave tracking) to
// the destinations and serves site, more directives for the site.
func config(t testing.TB, dir string, dests []dest, site string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(caddyAt.Globals(fmt.Sprintf("\thookrelay {\n\t\tstorage embedded %s\n\t}", dir)))
	b.WriteString("\n")
	fmt.Fprintf(&b, ":%d {\n\troute %s {\n\t\thook_normalize ave_tracking\n\t\thook_relay {\n\t\t\ttopic %s\n", httpPort, hookPath, topic)
	for _, d := range dests {
		fmt.Fprintf(&b, "\t\t\tto %s {\n\t\t\t\tname %s\n", d.url, d.name)
		for _, l := range d.lines {
			fmt.Fprintf(&b, "\t\t\t\t%s\n", l)
		}
		b.WriteString("\t\t\t}\n")
	}
	b.WriteString("\t\t\tretry {\n\t\t\t\tschedule 1s\n\t\t\t}\n\t\t}\n\t}\n")
	b.WriteString(site)
	b.WriteString("\n}\n")
	return b.String()
}

type dest struct {
	name  string
	url   string
	lines []string
}

// load runs config in the in-process Caddy (a reload when one runs) and,
// when the test ends, unloads it so its queue closes before the next test.
func load(t *testing.T, tc *caddytest.Tester, cfg string) {
	t.Helper()
	caddyAt.Load(t, tc, cfg)
}

// unloadAll loads a config with the admin endpoint only.
func unloadAll() { _ = caddyAt.Unload() }

// settled waits until the queue holds nothing more for dest: no attempt
// can follow.
func settled(t testing.TB, dest string) {
	t.Helper()
	testutil.WaitSettled(t, adminURL, dest, 30*time.Second)
}

var httpClient = &http.Client{Timeout: 20 * time.Second}

// do sends a request and returns the status and body.
func do(t testing.TB, method, url, contentType string, body []byte, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// admin calls the admin API and decodes a 200 answer into out.
func admin(t testing.TB, method, path string, body any, out any) {
	t.Helper()
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	status, b := do(t, method, adminURL+path, "application/json", raw)
	if status != http.StatusOK {
		t.Fatalf("%s %s = %d %s, want 200", method, path, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
}

// postAve posts an Ave tracking payload with one guide per id; it must be
// answered 201.
func postAve(t testing.TB, ids ...string) {
	t.Helper()
	status, body := do(t, http.MethodPost, baseURL+hookPath, "application/json", testutil.AvePayload(ids...))
	if status != http.StatusCreated {
		t.Fatalf("POST %s = %d %s, want 201", hookPath, status, body)
	}
}

// The admin API's answers, as a client reads them.
type destinationStatus struct {
	Name         string     `json:"name"`
	Pending      uint64     `json:"pending"`
	InFlight     int        `json:"in_flight"`
	InRetry      uint64     `json:"in_retry"`
	NextAttempt  *time.Time `json:"next_attempt"`
	LastStatus   int        `json:"last_status"`
	LastOutcome  string     `json:"last_outcome"`
	LastError    string     `json:"last_error"`
	Paused       bool       `json:"paused"`
	DeadLetters  uint64     `json:"dead_letters"`
	CircuitOpen  bool       `json:"circuit_open"`
	RecentCounts struct {
		Delivered  int `json:"delivered"`
		Retry      int `json:"retry"`
		DeadLetter int `json:"dead_letter"`
	} `json:"recent"`
}

type deadLetter struct {
	ID          uint64    `json:"id"`
	EventID     string    `json:"event_id"`
	Topic       string    `json:"topic"`
	Destination string    `json:"destination"`
	Attempts    int       `json:"attempts"`
	FirstSeen   time.Time `json:"first_seen"`
	DeadAt      time.Time `json:"dead_at"`
	LastStatus  int       `json:"last_status"`
	LastError   string    `json:"last_error"`
	Reason      string    `json:"reason"`
}

type deadLetterPage struct {
	DeadLetters []deadLetter `json:"dead_letters"`
	Total       uint64       `json:"total"`
	NextCursor  string       `json:"next_cursor"`
}

// status returns a destination's status from the admin API.
func status(t testing.TB, name string) destinationStatus {
	t.Helper()
	var resp struct {
		Destinations []destinationStatus `json:"destinations"`
	}
	admin(t, http.MethodGet, "/hookrelay/destinations", nil, &resp)
	for _, d := range resp.Destinations {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("destination %s not listed in %+v", name, resp.Destinations)
	return destinationStatus{}
}

func deadLetters(t testing.TB, query string) deadLetterPage {
	t.Helper()
	var page deadLetterPage
	admin(t, http.MethodGet, "/hookrelay/dead_letters"+query, nil, &page)
	return page
}

// sink is a loopback destination that records the webhook-id of every
// attempt and answers what its script says for the n-th one (1-based).
type sink struct {
	*testutil.Receiver
	mu  sync.Mutex
	ids []string
}

func newSink(t testing.TB, script func(n int) int) *sink {
	t.Helper()
	s := &sink{}
	s.Receiver = testutil.NewReceiver(t, func(n int, r *http.Request, _ []byte) (int, http.Header, []byte) {
		s.mu.Lock()
		s.ids = append(s.ids, r.Header.Get("webhook-id"))
		s.mu.Unlock()
		if script == nil {
			return http.StatusOK, nil, nil
		}
		return script(n), nil, nil
	})
	return s
}

// failFirst answers 404 to the first n attempts, then 200.
func failFirst(n int) func(int) int {
	return func(i int) int {
		if i <= n {
			return http.StatusNotFound
		}
		return http.StatusOK
	}
}

// idsReceived returns how many attempts carried each webhook-id.
func (s *sink) idsReceived() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int)
	for _, id := range s.ids {
		m[id]++
	}
	return m
}

// scrape reads the admin endpoint's /metrics into name{labels} -> value.
func scrape(t testing.TB) map[string]float64 {
	t.Helper()
	return testutil.Metrics(t, adminURL)
}
