package order

import (
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestOrderedStuckKeyOthersFlow: one key K whose first status fails (503)
// through the short and the long step of the retry schedule holds back
// K's later statuses only: 200 keys of other lanes × 5 statuses are all
// delivered, in order, while K is stuck. Meanwhile the status shows the
// blocked lane and its key, the metrics show it, and in_flight stays
// within the lanes. Once the receiver takes K, K's statuses arrive in
// order and the lane is no longer blocked.
func TestOrderedStuckKeyOthersFlow(t *testing.T) {
	const (
		dest     = "stuck_sink"
		lanes    = 32
		statuses = 5
		others   = 200
		mates    = 3 // keys of K's lane, sent after K's head
		K        = "stuck-K"
	)
	laneK := laneOf(K, lanes)
	// 200 keys of the other lanes, and a few of K's lane.
	var otherKeys, mateKeys []string
	for i := 0; len(otherKeys) < others || len(mateKeys) < mates; i++ {
		k := fmt.Sprintf("flow-%05d", i)
		if laneOf(k, lanes) != laneK {
			if len(otherKeys) < others {
				otherKeys = append(otherKeys, k)
			}
		} else if len(mateKeys) < mates {
			mateKeys = append(mateKeys, k)
		}
	}

	var released atomic.Bool
	s := newOrderSink(t, func(a attempt) int {
		if a.Key == K && !released.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	s.okDelay = time.Millisecond
	load(t, caddyAt.NewTester(t), aveConfig(queueDir(t), []string{to(s.URL, dest,
		"order_by data.shipment_id",
		"lanes 32",
		"timeout 2s",
	)}, "schedule 50ms 3s"))
	metricBlocked := fmt.Sprintf(`hookrelay_blocked_lanes{destination=%q}`, dest)
	metricOldest := fmt.Sprintf(`hookrelay_oldest_blocked_seconds{destination=%q}`, dest)
	if st := status(t, dest); !st.Ordered || st.Lanes != lanes || st.BlockedLanes != 0 || st.OldestBlockedSince != nil || st.OldestBlockedKey != "" {
		t.Errorf("status before any event = %+v; want ordered, %d lanes, none blocked", st, lanes)
	}
	watch := watchInFlight(adminURL, dest)
	defer watch.result()

	// K's head first, and its first failure.
	postStatuses(t, ev{K, 0})
	testutil.WaitFor(t, 15*time.Second, "the first attempt of K's head", func() bool { return len(s.of(K)) >= 1 })
	for k := 1; k < statuses; k++ {
		postStatuses(t, ev{K, k})
	}
	for k := range statuses {
		for _, m := range mateKeys {
			postStatuses(t, ev{m, k})
		}
	}
	// The other keys, status by status, 20 keys a request.
	sentOthers := time.Now()
	for k := range statuses {
		for i := 0; i < len(otherKeys); i += 20 {
			var evs []ev
			for _, key := range otherKeys[i:min(i+20, len(otherKeys))] {
				evs = append(evs, ev{key, k})
			}
			postStatuses(t, evs...)
		}
	}
	othersAcked := map[string]int{}
	for _, k := range otherKeys {
		othersAcked[k] = statuses
	}
	// They flow while K is stuck: K never succeeds before the switch.
	s.waitDelivered(t, othersAcked, 30*time.Second)
	t.Logf("the %d events of the other lanes were delivered %v after they were sent, K stuck meanwhile",
		others*statuses, time.Since(sentOthers).Round(time.Millisecond))

	// While K's head waits for its retry: the status and the metrics.
	first := s.of(K)[0]
	var st destStatus
	testutil.WaitFor(t, 10*time.Second, "the status to show K's blocked lane", func() bool {
		st = status(t, dest)
		return st.BlockedLanes >= 1 && st.OldestBlockedKey == K && st.OldestBlockedSince != nil
	})
	if since := *st.OldestBlockedSince; since.Before(first.Start.Add(-2*time.Second)) || since.After(first.End.Add(2*time.Second)) {
		t.Errorf("oldest_blocked_since = %v; K's head first failed at %v", since, first.End)
	}
	if st.BlockedLanes != 1 {
		t.Errorf("blocked_lanes = %d, want 1: only K fails", st.BlockedLanes)
	}
	if ls := listedStatus(t, dest); ls.BlockedLanes != st.BlockedLanes || ls.OldestBlockedKey != K || ls.OldestBlockedSince == nil || !ls.Ordered || ls.Lanes != lanes {
		t.Errorf("GET /hookrelay/destinations lists %+v; want the blocked lane of K as /hookrelay/destinations/%s shows it", ls, dest)
	}
	testutil.WaitFor(t, 10*time.Second, metricBlocked+" ≥ 1", func() bool { return metric(t, metricBlocked) >= 1 })
	if v := metric(t, metricOldest); v <= 0 {
		t.Errorf("%s = %v while K is blocked, want > 0", metricOldest, v)
	}

	// Through the long step: the head's third attempt comes 3s after its
	// second; only then does the receiver take K.
	testutil.WaitFor(t, 20*time.Second, "the third attempt of K's head (after the 3s step)", func() bool {
		return s.attemptsOf(ev{K, 0}) >= 3
	})
	if v := metric(t, metricOldest); v < 3 {
		t.Errorf("%s = %v after the 3s step, want ≥ 3", metricOldest, v)
	}
	stuck := s.of(K)
	for _, a := range stuck {
		if a.Status != 0 {
			t.Errorf("status %d of K was attempted at %v while K's head failed", a.Status, a.Start)
		}
	}
	if len(stuck) >= 3 {
		if gap := stuck[2].Start.Sub(stuck[1].Start); gap < 3*time.Second {
			t.Errorf("K's head: third attempt %v after the second, want ≥ the 3s step", gap)
		}
	}
	var matesEarly int
	for _, m := range mateKeys {
		matesEarly += len(s.of(m))
	}
	t.Logf("while K was stuck (%d attempts of its head): %d attempts of the %d keys sharing its lane (held back by K's head)", len(stuck), matesEarly, mates)
	released.Store(true)
	releasedAt := time.Now()

	acked := map[string]int{K: statuses}
	for _, k := range slices.Concat(otherKeys, mateKeys) {
		acked[k] = statuses
	}
	s.waitDelivered(t, acked, 20*time.Second)
	t.Logf("K's %d statuses delivered %v after the receiver took them", statuses, time.Since(releasedAt).Round(time.Millisecond))
	testutil.WaitFor(t, 10*time.Second, "blocked_lanes back to 0", func() bool {
		st = status(t, dest)
		return st.BlockedLanes == 0
	})
	if st.OldestBlockedSince != nil || st.OldestBlockedKey != "" {
		t.Errorf("status with no lane blocked = %+v; want no oldest_blocked_since nor oldest_blocked_key", st)
	}
	testutil.WaitFor(t, 10*time.Second, metricBlocked+" back to 0", func() bool {
		return exposed(t, metricBlocked) && metric(t, metricBlocked) == 0 && metric(t, metricOldest) == 0
	})
	settled(t, adminURL, dest)
	maxInFlight, reads := watch.result()
	if maxInFlight > lanes {
		t.Errorf("in_flight reached %d (in %d reads of the status): more than the %d lanes", maxInFlight, reads, lanes)
	}
	stats := checkOrder(t, s.all(), acked)
	t.Logf("%s; in_flight at most %d (%d reads)", stats, maxInFlight, reads)
}
