// Package order holds hookrelay's Caddy-level tests of ordered delivery
// (CONTRACT.md section 6): a destination with order_by delivers the
// events of one key one at a time, in the order they were stored, while a
// failing key holds back only its own lane. The tests run a real Caddy
// (in-process with caddytest, or a child process that is killed) and
// check, at loopback receivers, every attempt of every key.
package order

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	// hookrelay's modules, for the in-process Caddy that caddytest runs.
	_ "github.com/hookrelay/hookrelay"
	"github.com/hookrelay/hookrelay/internal/ordertest"
	"github.com/hookrelay/hookrelay/internal/testutil"
)

// caddyAt is the in-process Caddy of this package (it owns 3110 and
// 9990-9999; 9993 is the https_port its configs never use).
var caddyAt = testutil.InProcess{AdminPort: 3110, HTTPPort: httpPort, HTTPSPort: 9993}

// httpPort is the one HTTP port the package's configs listen on.
const httpPort = 9990

var (
	adminURL = caddyAt.AdminURL()
	baseURL  = caddyAt.BaseURL()
)

// verifySecret is the HS256 key hook_verify checks.
const verifySecret = "order-test-hmac-secret"

// baseDir holds every test's queue directory. It is removed after the
// whole package ran, when no config uses it any more.
var baseDir string

func TestMain(m *testing.M) {
	testutil.RunIsolated(m, func(dir string) { baseDir = dir }, func() { _ = caddyAt.Unload() })
}

// queueDir returns a fresh queue directory for one test.
func queueDir(t *testing.T) string { return testutil.QueueDir(t, baseDir) }

// globalOptions is the global block every in-process config starts with.
func globalOptions(dir string) string {
	return caddyAt.Globals(fmt.Sprintf("\thookrelay {\n\t\tstorage embedded %s\n\t}", dir))
}

// aveRoute is the verified, normalized Ave tracking route /ave whose
// hook_relay block holds tos (the `to` blocks) and retry (the retry
// block's lines).
func aveRoute(tos []string, retry ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `	route /ave {
		hook_verify {
			secret %s
			algorithms HS256
		}
		hook_normalize ave_tracking
		hook_relay {
			topic shipments/tracking
`, verifySecret)
	for _, to := range tos {
		b.WriteString(to)
		b.WriteString("\n")
	}
	b.WriteString(retryBlock(retry...))
	b.WriteString("\t\t}\n\t}\n")
	return b.String()
}

// retryBlock is a retry block with lines; nothing without lines.
func retryBlock(lines ...string) string {
	if len(lines) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\t\t\tretry {\n")
	for _, l := range lines {
		fmt.Fprintf(&b, "\t\t\t\t%s\n", l)
	}
	b.WriteString("\t\t\t}\n")
	return b.String()
}

// aveConfig is an in-process config with the queue in dir and one site
// holding the Ave route (see aveRoute).
func aveConfig(dir string, tos []string, retry ...string) string {
	return globalOptions(dir) + fmt.Sprintf("\n:%d {\n%s}\n", httpPort, aveRoute(tos, retry...))
}

// to is one destination block.
func to(url, name string, lines ...string) string { return testutil.ToBlock(url, name, lines...) }

// load runs config in the in-process Caddy (a reload when one is running)
// and, when the test ends, replaces it with an empty config so that its
// queue is closed before the next test starts its own. caddytest runs no
// in-process Caddy with -short: the test is skipped.
func load(t *testing.T, tc *caddytest.Tester, config string) {
	t.Helper()
	if testing.Short() {
		t.Skip("caddytest runs no in-process Caddy with -short")
	}
	caddyAt.Load(t, tc, config)
	counters.Start(t)
}

// counters reads the in-process Caddy's metrics test by test.
var counters = testutil.NewCounters(adminURL)

// metric reads one series of the in-process Caddy's /metrics (a counter
// as its growth since the test's first config; a series not exposed as 0).
func metric(t *testing.T, sample string) float64 {
	t.Helper()
	return counters.Series(t)[sample]
}

// exposed reports whether the in-process Caddy's /metrics has the series.
func exposed(t *testing.T, sample string) bool {
	t.Helper()
	_, ok := testutil.Metrics(t, adminURL)[sample]
	return ok
}

// settled waits until the queue holds nothing more for dest at the admin
// API adminURL: no attempt can follow.
func settled(t *testing.T, admin, dest string) {
	t.Helper()
	testutil.WaitSettled(t, admin, dest, 60*time.Second)
}

var httpClient = &http.Client{
	Timeout: 30 * time.Second,
	Transport: &http.Transport{
		MaxIdleConnsPerHost: 64,
	},
}

// post sends body to url with the headers; it does not fail the test on
// a transport error (it returns status 0 and the error), so it is safe in
// goroutines.
func post(url string, header http.Header, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}

// signed returns a send function for an ordertest.Feeder: it posts a
// signed body to url and returns the status (0 on a transport error).
func signed(t testing.TB, url string) func([]byte) int {
	h := http.Header{"Ave-Hub-Signature": {testutil.HS256(t, verifySecret, nil)}}
	return func(body []byte) int {
		status, _, err := post(url, h, body)
		if err != nil {
			return 0
		}
		return status
	}
}

// postStatuses posts one signed request holding the given statuses (in
// that order) and fails the test unless it is answered 201.
func postStatuses(t *testing.T, evs ...ordertest.Ev) {
	t.Helper()
	h := http.Header{"Ave-Hub-Signature": {testutil.HS256(t, verifySecret, nil)}}
	status, body, err := post(baseURL+"/ave", h, ordertest.StatusPayload(evs...))
	if err != nil || status != http.StatusCreated {
		t.Fatalf("POST /ave %v = %d %s %v, want 201", evs, status, body, err)
	}
}

// keyIDs returns n distinct shipment ids with a prefix.
func keyIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return ids
}

// destStatus is what the admin API says of a destination, as far as these
// tests read it.
type destStatus struct {
	Name               string     `json:"name"`
	Pending            uint64     `json:"pending"`
	InFlight           int        `json:"in_flight"`
	InRetry            uint64     `json:"in_retry"`
	Ordered            bool       `json:"ordered"`
	Lanes              int        `json:"lanes"`
	BlockedLanes       int        `json:"blocked_lanes"`
	OldestBlockedSince *time.Time `json:"oldest_blocked_since"`
	OldestBlockedKey   string     `json:"oldest_blocked_key"`
	LastOutcome        string     `json:"last_outcome"`
	DeadLetters        uint64     `json:"dead_letters"`
}

// readStatus reads GET /hookrelay/destinations/<name> at the admin API;
// it does not fail the test, so it is safe in goroutines.
func readStatus(admin, name string) (destStatus, error) {
	var st destStatus
	err := testutil.DestinationStatus(httpClient, admin, name, &st)
	return st, err
}

// status is readStatus that fails the test on an error.
func status(t *testing.T, name string) destStatus {
	t.Helper()
	st, err := readStatus(adminURL, name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// listedStatus reads the destination's entry of GET /hookrelay/destinations.
func listedStatus(t *testing.T, name string) destStatus {
	t.Helper()
	code, b := testutil.Do(t, http.MethodGet, adminURL+"/hookrelay/destinations", nil, nil)
	var resp struct {
		Destinations []destStatus `json:"destinations"`
	}
	if code != http.StatusOK || json.Unmarshal(b, &resp) != nil {
		t.Fatalf("GET /hookrelay/destinations = %d %s", code, b)
	}
	for _, d := range resp.Destinations {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("destination %s not listed: %s", name, b)
	return destStatus{}
}

// inFlightWatch polls a destination's status every few milliseconds until
// stopped and keeps the largest in_flight it saw.
type inFlightWatch struct {
	stop chan struct{}
	done chan struct{}
	max  int
	errs int
	n    int
}

func watchInFlight(admin, name string) *inFlightWatch {
	w := &inFlightWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			st, err := readStatus(admin, name)
			if err != nil {
				w.errs++
				continue
			}
			w.n++
			w.max = max(w.max, st.InFlight)
		}
	}()
	return w
}

// result stops the watch and returns the largest in_flight seen and how
// many reads it made.
func (w *inFlightWatch) result() (maxInFlight, reads int) {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	return w.max, w.n
}
