package order

import (
	"fmt"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/ordertest"
)

// TestOrderedManyKeysFlakyReceiver sends 1,000 keys × 20 statuses (each
// key's statuses in order, the keys shuffled, several senders) to an
// ordered destination whose receiver fails about 10% of the attempts at
// random (half 503, half hanging until the 300ms timeout), reloads the
// config midway, and checks every key's attempts: one at a time, in
// order, nothing lost; duplicates are counted.
func TestOrderedManyKeysFlakyReceiver(t *testing.T) {
	// No -short variant: caddytest runs no in-process Caddy with -short.
	const (
		keys     = 1000
		statuses = 20
		dest     = "ordered_sink"
		lanes    = 32
		senders  = 8
		batch    = 10
	)
	s := ordertest.NewSink(t, ordertest.Flaky(0.10))
	s.OKDelay = time.Millisecond
	dir := queueDir(t)
	config := func(version string) string {
		return aveConfig(dir, []string{to(s.URL, dest,
			"order_by data.shipment_id",
			"lanes 32",
			"workers 32",
			"timeout 300ms",
			"header X-Config "+version,
		)}, "schedule 50ms 100ms 200ms")
	}
	tc := caddyAt.NewTester(t)
	load(t, tc, config("v1"))
	if st := status(t, dest); !st.Ordered || st.Lanes != lanes {
		t.Errorf("status: ordered %v, lanes %d; want true, %d", st.Ordered, st.Lanes, lanes)
	}

	f := ordertest.NewFeeder(keyIDs("flaky", keys), statuses)
	fed, stopFeeding := f.Start(senders, batch, signed(t, baseURL+"/ave"))
	defer stopFeeding()
	watch := watchInFlight(adminURL, dest)
	defer watch.result()

	// The reload, midway: same queue, a changed header.
	deadline := time.Now().Add(3 * time.Minute)
	for f.Accepted.Load() < int64(f.Total()/2) {
		if time.Now().After(deadline) {
			stopFeeding()
			t.Fatalf("only %d of %d events answered 201 in 3 minutes", f.Accepted.Load(), f.Total())
		}
		time.Sleep(10 * time.Millisecond)
	}
	reloadedAt := time.Now()
	tc.InitServer(config("v2"), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("reloaded at %s (in %v) after %d events answered 201, %d attempts", reloadedAt.Format("15:04:05.000000"),
		time.Since(reloadedAt).Round(time.Millisecond), f.Accepted.Load(), s.Arrived.Load())

	f.Wait(t, fed, stopFeeding, 3*time.Minute)
	acked := f.Acked()
	s.WaitDelivered(t, acked, 2*time.Minute)
	settled(t, adminURL, dest)
	maxInFlight, reads := watch.result()

	atts := s.All()
	st := ordertest.CheckOrder(t, atts, acked)
	versions := map[string]int{}
	var v1AfterReload int
	for _, a := range atts {
		versions[a.Config]++
		if a.Config == "v1" && a.Start.After(reloadedAt.Add(10*time.Second)) {
			v1AfterReload++
		}
	}
	if versions["v1"] == 0 || versions["v2"] == 0 {
		t.Errorf("X-Config headers seen: %v; want v1 before the reload and v2 after it", versions)
	}
	if v1AfterReload > 0 {
		t.Logf("%d attempts with the old config's header more than 10s after the reload", v1AfterReload)
	}
	if maxInFlight > lanes {
		t.Errorf("in_flight reached %d (in %d reads of the status): more than the %d lanes", maxInFlight, reads, lanes)
	}
	// A 2xx answer the relay did not take (its timeout fired first, in a
	// stall) is a retry for it and a duplicate for the receiver.
	retries := metric(t, fmt.Sprintf(`hookrelay_delivery_attempts_total{destination=%q,outcome="retry"}`, dest))
	t.Logf("the relay counted %.0f retries; the receiver answered %d errors and hung %d: %.0f 2xx answers counted as failures by the relay",
		retries, st.Failed, st.Hung, retries-float64(st.Failed+st.Hung))
	took := st.Last.Sub(f.Began)
	t.Logf("%d keys × %d statuses: ingress %s", keys, statuses, f.Summary())
	t.Logf("delivery: %s; all %d events delivered %v after the first was sent (%.0f events/s); headers %v; in_flight at most %d (%d reads)",
		st, f.Total(), took.Round(time.Millisecond), float64(f.Total())/took.Seconds(), versions, maxInFlight, reads)
}
