package testutil

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Metrics reads a Caddy admin endpoint's /metrics into series -> value, a
// series being a sample's name and labels as exposed, such as
// `hookrelay_dead_letters_total{destination="x"}`.
func Metrics(t testing.TB, adminURL string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	m := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading /metrics: %v", err)
	}
	return m
}

// Counters reads an in-process Caddy's metrics test by test. hookrelay's
// collectors live as long as the process (they keep counting across
// config loads), so a test run again in the same process (go test
// -count=N) would see the counts of its earlier runs: Counters remembers
// every counter's value when a test starts and reads a counter as its
// growth since then.
type Counters struct {
	adminURL string
	mu       sync.Mutex
	base     map[testing.TB]map[string]float64
}

// NewCounters returns Counters for the Caddy whose admin API is at
// adminURL.
func NewCounters(adminURL string) *Counters {
	return &Counters{adminURL: adminURL, base: make(map[testing.TB]map[string]float64)}
}

// Start records t's baseline, once per test; call it when the test's
// first config has loaded and before the test sends anything.
func (c *Counters) Start(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	_, ok := c.base[t]
	c.mu.Unlock()
	if ok {
		return
	}
	m := Metrics(t, c.adminURL)
	c.mu.Lock()
	c.base[t] = m
	c.mu.Unlock()
	t.Cleanup(func() {
		c.mu.Lock()
		delete(c.base, t)
		c.mu.Unlock()
	})
}

// Series returns every series: a counter (a name ending in _total) as its
// growth since t started, any other sample as it is.
func (c *Counters) Series(t testing.TB) map[string]float64 {
	t.Helper()
	m := Metrics(t, c.adminURL)
	c.mu.Lock()
	base := c.base[t]
	c.mu.Unlock()
	for series, v := range m {
		name, _, _ := strings.Cut(series, "{")
		if strings.HasSuffix(name, "_total") {
			m[series] = v - base[series]
		}
	}
	return m
}
