package ops

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// Metric series this test reads.
const (
	deliveredERP   = `hookrelay_delivery_attempts_total{destination="erp",outcome="delivered"}`
	deadBI         = `hookrelay_delivery_attempts_total{destination="bi",outcome="dead_letter"}`
	deadLettersBI  = `hookrelay_dead_letters_total{destination="bi"}`
	latencyERP     = `hookrelay_delivery_attempt_duration_seconds_count{destination="erp"}`
	enqueued       = `hookrelay_events_enqueued_total`
	ingress201     = `hookrelay_ingress_requests_total{code="201"}`
	ingress400     = `hookrelay_ingress_requests_total{code="400"}`
	depthERP       = `hookrelay_queue_depth{destination="erp"}`
	pausedERP      = `hookrelay_destination_paused{destination="erp"}`
	storedDeadBI   = `hookrelay_dead_letters_stored{destination="bi"}`
	storedDeadERP  = `hookrelay_dead_letters_stored{destination="erp"}`
	tokenFetches   = `hookrelay_token_fetches_total`
	tokenHits      = `hookrelay_token_cache_hits_total`
	tokenMisses    = `hookrelay_token_cache_misses_total`
	retriesWaiting = `hookrelay_retries_waiting{destination="erp"}`
)

func TestMetricsKeepCountingAcrossReload(t *testing.T) {
	tc := caddyAt.NewTester(t)
	tokens := testutil.NewReceiver(t, func(int, *http.Request, []byte) (int, http.Header, []byte) {
		return http.StatusOK, http.Header{"Content-Type": {"application/json"}}, []byte(`{"access_token":"tok-1","expires_in":3600}`)
	})
	erp := newSink(t, nil)
	bi := newSink(t, func(int) int { return http.StatusNotFound })
	dir := queueDir(t)
	cfg := func(version string) string {
		return config(t, dir, []dest{
			{name: "erp", url: erp.URL, lines: []string{
				"header X-Config " + version,
				"auth oauth {",
				"\ttoken_url " + tokens.URL,
				"\tlogin_body grant_type client_credentials",
				"}",
			}},
			{name: "bi", url: bi.URL},
		}, "")
	}
	load(t, tc, cfg("1"))

	// delta fails the test unless series grew by want between two scrapes.
	delta := func(before, after map[string]float64, series string, want float64) {
		t.Helper()
		if _, ok := after[series]; !ok {
			t.Errorf("%s is missing from /metrics", series)
			return
		}
		if got := after[series] - before[series]; got != want {
			t.Errorf("%s grew by %v (from %v to %v), want %v", series, got, before[series], after[series], want)
		}
	}
	gauge := func(m map[string]float64, series string, want float64) {
		t.Helper()
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	settled := func(what string, cond func(m map[string]float64) bool) map[string]float64 {
		t.Helper()
		var m map[string]float64
		testutil.WaitFor(t, 15*time.Second, what, func() bool { m = scrape(t); return cond(m) })
		return m
	}

	m0 := scrape(t)
	postAve(t, "M-1")
	testutil.WaitFor(t, 15*time.Second, "the first delivery", func() bool { return erp.Count() == 1 })
	m1 := settled("the first attempts to be counted", func(m map[string]float64) bool {
		return m[deliveredERP]-m0[deliveredERP] == 1 && m[deadBI]-m0[deadBI] == 1 && m[storedDeadBI] == 1
	})
	delta(m0, m1, enqueued, 2)
	delta(m0, m1, ingress201, 1)
	delta(m0, m1, latencyERP, 1)
	delta(m0, m1, deadLettersBI, 1)
	gauge(m1, depthERP, 0)
	gauge(m1, storedDeadERP, 0)
	gauge(m1, pausedERP, 0)
	gauge(m1, retriesWaiting, 0)
	gauge(m1, tokenFetches, 1)
	if m1[tokenHits]+m1[tokenMisses] < 1 {
		t.Errorf("token cache lookups: hits %v, misses %v; want at least one", m1[tokenHits], m1[tokenMisses])
	}

	// A reload: the new config's registry must get the same collectors,
	// and they must go on from where they were.
	load(t, tc, cfg("2"))
	if status, body := do(t, http.MethodPost, baseURL+hookPath, "application/json", []byte(`{"tipo":`)); status != http.StatusBadRequest {
		t.Fatalf("bad JSON = %d %s, want 400", status, body)
	}
	postAve(t, "M-2")
	testutil.WaitFor(t, 15*time.Second, "the delivery after the reload", func() bool { return erp.Count() == 2 })
	m2 := settled("the attempts after the reload to be counted", func(m map[string]float64) bool {
		return m[deliveredERP]-m1[deliveredERP] == 1 && m[deadBI]-m1[deadBI] == 1 && m[storedDeadBI] == 2
	})
	delta(m1, m2, enqueued, 2)
	delta(m1, m2, ingress201, 1)
	delta(m1, m2, ingress400, 1)
	delta(m1, m2, latencyERP, 1)
	delta(m1, m2, deadLettersBI, 1)
	if got := erp.Got()[1].Header.Get("X-Config"); got != "2" {
		t.Errorf("the delivery after the reload carried config %q, want 2", got)
	}
	if m2[tokenHits]+m2[tokenMisses] <= m1[tokenHits]+m1[tokenMisses] {
		t.Errorf("token cache lookups froze across the reload: %v+%v then %v+%v", m1[tokenHits], m1[tokenMisses], m2[tokenHits], m2[tokenMisses])
	}

	// The gauges follow the queue: pause erp and let two events wait.
	admin(t, http.MethodPost, "/hookrelay/destinations/erp/pause", nil, nil)
	postAve(t, "M-3", "M-4")
	m3 := settled("2 queued for the paused erp", func(m map[string]float64) bool {
		return m[depthERP] == 2 && m[pausedERP] == 1 && m[storedDeadBI] == 4
	})
	delta(m2, m3, deliveredERP, 0)
	admin(t, http.MethodPost, "/hookrelay/destinations/erp/resume", nil, nil)
	m4 := settled("erp to drain", func(m map[string]float64) bool {
		return m[depthERP] == 0 && m[pausedERP] == 0 && m[deliveredERP]-m3[deliveredERP] == 2
	})
	if t.Failed() {
		for _, m := range []map[string]float64{m0, m1, m2, m3, m4} {
			t.Log(fmt.Sprint(pick(m, deliveredERP, depthERP, pausedERP, storedDeadBI, tokenFetches, tokenHits, tokenMisses)))
		}
	}
}

func pick(m map[string]float64, keys ...string) map[string]float64 {
	out := make(map[string]float64, len(keys))
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}
