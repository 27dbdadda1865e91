package order

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/ordertest"
	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestOrderedDownDestinationHoldsOnlyLanes: while an ordered destination
// is down (every attempt 503) with 1,000 events of 200 keys waiting, at
// most one message per lane is handed out: in_flight stays within the
// lanes and the rest is pending, only stored. Once it answers again every
// key's statuses arrive in order.
func TestOrderedDownDestinationHoldsOnlyLanes(t *testing.T) {
	const (
		dest     = "down_sink"
		lanes    = 8
		keys     = 200
		statuses = 5
	)
	var up atomic.Bool
	s := ordertest.NewSink(t, func(ordertest.Attempt) int {
		if up.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	load(t, caddyAt.NewTester(t), aveConfig(queueDir(t), []string{to(s.URL, dest,
		"order_by data.shipment_id",
		"lanes 8",
		"timeout 2s",
	)}, "schedule 50ms 1s"))
	watch := watchInFlight(adminURL, dest)
	defer watch.result()

	ids := keyIDs("down", keys)
	for k := range statuses {
		for i := 0; i < keys; i += 25 {
			var evs []ordertest.Ev
			for _, key := range ids[i : i+25] {
				evs = append(evs, ordertest.Ev{Key: key, Status: k})
			}
			postStatuses(t, evs...)
		}
	}
	total := keys * statuses
	// The heads fail and wait for their retries; everything else waits
	// behind them, stored.
	var st destStatus
	testutil.WaitFor(t, 15*time.Second, "blocked lanes with the rest of the events pending", func() bool {
		st = status(t, dest)
		return st.BlockedLanes >= 1 && st.Pending >= uint64(total-lanes)
	})
	time.Sleep(2 * time.Second) // through a few retries of the heads
	st = status(t, dest)
	if st.InFlight > lanes || st.Pending < uint64(total-lanes) || st.BlockedLanes < 1 || st.BlockedLanes > lanes {
		t.Errorf("status while down = %+v; want in_flight ≤ %d, pending ≥ %d, 1 to %d blocked lanes", st, lanes, total-lanes, lanes)
	}
	// Only the lanes' heads were tried: statuses 0 (every key's status 0
	// was stored before any status 1), one key per lane.
	downAttempts := s.All()
	tried := map[string]bool{}
	for _, a := range downAttempts {
		if a.Status != 0 {
			t.Errorf("%s attempted while the destination was down and every lane's head failing", a.Ev)
		}
		tried[a.Key] = true
	}
	if len(tried) != st.BlockedLanes || st.BlockedLanes != lanes {
		t.Errorf("while down: %d keys tried, blocked_lanes %d; want the head of each of the %d lanes", len(tried), st.BlockedLanes, lanes)
	}
	t.Logf("while down: %+v; %d attempts, of %d keys", st, len(downAttempts), len(tried))

	up.Store(true)
	upAt := time.Now()
	acked := map[string]int{}
	for _, k := range ids {
		acked[k] = statuses
	}
	s.WaitDelivered(t, acked, 60*time.Second)
	t.Logf("all %d events delivered %v after the destination came back", total, time.Since(upAt).Round(time.Millisecond))
	settled(t, adminURL, dest)
	maxInFlight, reads := watch.result()
	if maxInFlight > lanes {
		t.Errorf("in_flight reached %d (in %d reads of the status): more than the %d lanes", maxInFlight, reads, lanes)
	}
	t.Logf("%s; in_flight at most %d (%d reads)", ordertest.CheckOrder(t, s.All(), acked), maxInFlight, reads)
}
