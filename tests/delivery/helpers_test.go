// Package delivery holds hookrelay's Caddy-level tests of durable delivery:
// ingress through a real Caddy (in-process with caddytest, or a child
// process that is killed), delivery to loopback receivers, retries, config
// reloads and the queue being unavailable.
package delivery

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

// caddyAt is the in-process Caddy of this package (it owns 3010 and 9180-9199; 9543 for the
// https_port its configs never use).
var caddyAt = testutil.InProcess{AdminPort: 3010, HTTPPort: httpPort, HTTPSPort: 9543}

// httpPort is the one HTTP port the package's configs listen on.
const httpPort = 9180

var (
	adminURL = caddyAt.AdminURL()
	baseURL  = caddyAt.BaseURL()
)

// Secrets used by every config of this package.
const (
	verifySecret = "delivery-test-hmac-secret"
	whsec        = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

// baseDir holds every test's queue directory. It is removed after the
// whole package ran, when no config uses it any more.
var baseDir string

func TestMain(m *testing.M) {
	testutil.RunIsolated(m, func(dir string) { baseDir = dir }, func() { _ = caddyAt.Unload() })
}

// queueDir returns a fresh queue directory for one test.
func queueDir(t *testing.T) string { return testutil.QueueDir(t, baseDir) }

// globalOptions is the global block every config of this package starts
// with; hookrelay holds the lines of the hookrelay option besides storage.
func globalOptions(dir string, hookrelay ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\thookrelay {\n\t\tstorage embedded %s\n", dir)
	for _, l := range hookrelay {
		fmt.Fprintf(&b, "\t\t%s\n", l)
	}
	b.WriteString("\t}")
	return caddyAt.Globals(b.String())
}

// load runs config in the in-process Caddy (a reload when one is running)
// and, when the test ends, replaces it with an empty config so that its
// queue is closed before the next test starts its own.
func load(t *testing.T, tc *caddytest.Tester, config string) {
	t.Helper()
	caddyAt.Load(t, tc, config)
	counters.Start(t)
}

// counters reads the in-process Caddy's metrics test by test.
var counters = testutil.NewCounters(adminURL)

// settled waits until the queue holds nothing more for dest: no attempt
// can follow.
func settled(t *testing.T, dest string) {
	t.Helper()
	testutil.WaitSettled(t, adminURL, dest, 30*time.Second)
}

// signedHeader returns the inbound signature header for one request.
func signedHeader(t testing.TB) http.Header {
	return http.Header{"Ave-Hub-Signature": {testutil.HS256(t, verifySecret, nil)}}
}

// post sends body to the in-process Caddy; it does not fail the test on
// a transport error (it returns status 0), so it is safe in goroutines.
func post(url string, header http.Header, body []byte) (int, []byte, http.Header, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header, err
}

var httpClient = &http.Client{
	Timeout: 20 * time.Second,
	Transport: &http.Transport{
		MaxIdleConnsPerHost: 64,
	},
}

// postAve posts a signed Ave payload with one guide per id and fails the
// test unless it is answered 201 with the contract's body.
func postAve(t *testing.T, path string, ids ...string) {
	t.Helper()
	status, body, _, err := post(baseURL+path, signedHeader(t), testutil.AvePayload(ids...))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	if status != http.StatusCreated || string(body) != successBody {
		t.Fatalf("POST %s = %d %s, want 201 %s", path, status, body, successBody)
	}
}

const successBody = `{"status":"success","message":"Your webhook event was received successfully","status_code":201}`

// delivery is one attempt a sink received, decoded.
type delivery struct {
	At         time.Time
	WebhookID  string
	EventID    string
	ShipmentID string
	Header     http.Header
	Query      string
	Body       []byte
	Status     int // what the sink answered
	// Cut is true when the body arrived shorter than its Content-Length:
	// the sender died mid-request (a kill -9 during an attempt).
	Cut bool
}

// sink is a loopback destination that decodes and records every attempt
// and answers what its script says for the n-th attempt (1-based).
type sink struct {
	*testutil.Receiver
	mu  sync.Mutex
	got []delivery
}

// newSink starts a sink answering script (200 when nil).
func newSink(t testing.TB, script func(n int, d delivery) (int, http.Header)) *sink {
	t.Helper()
	s := &sink{}
	s.Receiver = testutil.NewReceiver(t, func(n int, r *http.Request, body []byte) (int, http.Header, []byte) {
		d := delivery{At: time.Now(), WebhookID: r.Header.Get("webhook-id"), Header: r.Header.Clone(), Query: r.URL.RawQuery, Body: body,
			Cut: r.ContentLength >= 0 && int64(len(body)) != r.ContentLength}
		var ev struct {
			ID   string `json:"id"`
			Data struct {
				ShipmentID string `json:"shipment_id"`
			} `json:"data"`
		}
		if json.Unmarshal(body, &ev) == nil {
			d.EventID, d.ShipmentID = ev.ID, ev.Data.ShipmentID
		}
		status, h := http.StatusOK, http.Header(nil)
		if script != nil {
			status, h = script(n, d)
		}
		d.Status = status
		s.mu.Lock()
		s.got = append(s.got, d)
		s.mu.Unlock()
		return status, h, nil
	})
	return s
}

// deliveries returns every attempt so far.
func (s *sink) deliveries() []delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]delivery(nil), s.got...)
}

// attempts returns how many attempts arrived, answered or not yet (a
// script that holds an attempt counts it already). It goes up before
// deliveries records the attempt: wait on recorded to read it.
func (s *sink) attempts() int { return s.Receiver.Count() }

// recorded returns how many attempts deliveries returns.
func (s *sink) recorded() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// delivered returns, per webhook-id, how many attempts were answered 2xx.
func (s *sink) delivered() map[string]int { return webhookIDsOf(s.deliveries()) }

// deliveredShipments returns, per shipment id, how many attempts were
// answered 2xx.
func (s *sink) deliveredShipments() map[string]int { return shipmentsOf(s.deliveries()) }

// webhookIDsOf counts the 2xx attempts of ds per webhook-id.
func webhookIDsOf(ds []delivery) map[string]int {
	m := make(map[string]int)
	for _, d := range ds {
		if d.Status >= 200 && d.Status < 300 {
			m[d.WebhookID]++
		}
	}
	return m
}

// shipmentsOf counts the 2xx attempts of ds per shipment id.
func shipmentsOf(ds []delivery) map[string]int {
	m := make(map[string]int)
	for _, d := range ds {
		if d.Status >= 200 && d.Status < 300 {
			m[d.ShipmentID]++
		}
	}
	return m
}

// metric reads one series of the in-process Caddy's admin /metrics, such
// as `hookrelay_dead_letters_total{destination="x"}`: a counter as its
// growth since the test's first config loaded, a series that is not
// exposed (yet) as 0.
func metric(t *testing.T, sample string) float64 {
	t.Helper()
	return counters.Series(t)[sample]
}

// attemptsMetric is the delivery attempts counter of a destination and
// outcome (delivered, retry, dead_letter).
func attemptsMetric(t *testing.T, dest, outcome string) float64 {
	return metric(t, fmt.Sprintf(`hookrelay_delivery_attempts_total{destination=%q,outcome=%q}`, dest, outcome))
}

// guideIDs returns n distinct shipment ids with a prefix.
func guideIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return ids
}
