package order

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/ordertest"
	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestOrderedStuckKeyOthersFlow: one key K whose first status fails (503)
// through the short and the long step of the retry schedule holds back
// K's later statuses, and the keys that share its lane, only. Of 200
// other keys × 5 statuses sent after K's statuses, every key is either
// delivered whole, in order, while K is stuck, or (the few, about 1 in 32,
// that share K's lane, whichever the hash puts there) not attempted at
// all, waiting behind K. Meanwhile the status shows the blocked lane and
// its key, the metrics show it, and in_flight stays within the lanes.
// Once the receiver takes K, K's statuses arrive in order, then the held
// keys', and the lane is no longer blocked. The test does not depend on
// the product's lane hash.
func TestOrderedStuckKeyOthersFlow(t *testing.T) {
	const (
		dest     = "stuck_sink"
		lanes    = 32
		statuses = 5
		others   = 200
		// mostHeld bounds the keys that may share K's lane: 200 keys
		// over 32 lanes put about 6 there; more than 20 is not a hash
		// spreading keys over the lanes, or more than K's lane held back.
		mostHeld = 20
		K        = "stuck-K"
	)
	otherKeys := keyIDs("flow", others)

	var released atomic.Bool
	s := ordertest.NewSink(t, func(a ordertest.Attempt) int {
		if a.Key == K && !released.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	s.OKDelay = time.Millisecond
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
	postStatuses(t, ordertest.Ev{Key: K, Status: 0})
	testutil.WaitFor(t, 15*time.Second, "the first attempt of K's head", func() bool { return len(s.Of(K)) >= 1 })
	for k := 1; k < statuses; k++ {
		postStatuses(t, ordertest.Ev{Key: K, Status: k})
	}
	// The other keys, status by status, 20 keys a request.
	sentOthers := time.Now()
	for k := range statuses {
		for i := 0; i < len(otherKeys); i += 20 {
			var evs []ordertest.Ev
			for _, key := range otherKeys[i:min(i+20, len(otherKeys))] {
				evs = append(evs, ordertest.Ev{Key: key, Status: k})
			}
			postStatuses(t, evs...)
		}
	}
	// They flow while K is stuck, but for the keys of K's lane. Wait until
	// every other key is delivered whole or untouched, and the queue holds
	// nothing more than K's later statuses and the untouched keys': no lane
	// but K's has anything left to deliver. The state must hold a while,
	// not in passing.
	var full, held, partial []string
	var st destStatus
	stable := 0
	deadline := time.Now().Add(30 * time.Second)
	for stable < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("the other keys did not settle while K is stuck: %d delivered whole, %d untouched (at most %d may share K's lane), %d in between %v; status %+v",
				len(full), len(held), mostHeld, len(partial), partial[:min(5, len(partial))], st)
		}
		time.Sleep(100 * time.Millisecond)
		full, held, partial = nil, nil, nil
		for _, k := range otherKeys {
			switch n := s.ArrivedOf(k); {
			case n == 0:
				held = append(held, k)
			case s.Delivered(ordertest.Ev{Key: k, Status: statuses - 1}) > 0:
				full = append(full, k)
			default:
				partial = append(partial, k)
			}
		}
		st = status(t, dest)
		if len(partial) == 0 && len(held) <= mostHeld && st.Pending == uint64(statuses-1+statuses*len(held)) && st.InFlight <= 1 {
			stable++
		} else {
			stable = 0
		}
	}
	t.Logf("while K was stuck: %d keys × %d statuses delivered within %v of being sent; %d keys untouched, waiting behind K in its lane: %v",
		len(full), statuses, time.Since(sentOthers).Round(time.Millisecond), len(held), held)

	// While K's head waits for its retry: the status and the metrics.
	first := s.Of(K)[0]
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
		return s.AttemptsOf(ordertest.Ev{Key: K, Status: 0}) >= 3
	})
	if v := metric(t, metricOldest); v < 3 {
		t.Errorf("%s = %v after the 3s step, want ≥ 3", metricOldest, v)
	}
	stuck := s.Of(K)
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
	for _, k := range held {
		if n := s.ArrivedOf(k); n != 0 {
			t.Errorf("key %s, held behind K, had %d attempts while K's head failed", k, n)
		}
	}
	released.Store(true)
	releasedAt := time.Now()

	acked := map[string]int{K: statuses}
	for _, k := range otherKeys {
		acked[k] = statuses
	}
	s.WaitDelivered(t, acked, 20*time.Second)
	t.Logf("K's %d statuses and the %d held keys' delivered %v after the receiver took K", statuses, len(held), time.Since(releasedAt).Round(time.Millisecond))
	// The held keys were stored after K's statuses, in K's lane: they come
	// after K's last one.
	var lastK time.Time
	for _, a := range s.Of(K) {
		if a.Status == statuses-1 && a.OK() && (lastK.IsZero() || a.End.Before(lastK)) {
			lastK = a.End
		}
	}
	for _, k := range held {
		if as := s.Of(k); len(as) > 0 && !as[0].Start.After(lastK) {
			t.Errorf("key %s, stored in K's lane after K's statuses, was attempted at %v, before K's last status was delivered at %v", k, as[0].Start, lastK)
		}
	}
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
	stats := ordertest.CheckOrder(t, s.All(), acked)
	t.Logf("%s; in_flight at most %d (%d reads)", stats, maxInFlight, reads)
}
