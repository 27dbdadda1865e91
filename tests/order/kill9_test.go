package order

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/ordertest"
	"github.com/hookrelay/hookrelay/internal/testutil"
)

// childConfig is the config of a Caddy run as a child process: an
// embedded queue in dir, its admin API at adminAddr, and the Ave route on
// port, relaying to the `to` blocks with the retry lines.
func childConfig(dir, adminAddr string, port int, tos []string, retry ...string) string {
	return fmt.Sprintf(`{
	admin %s
	auto_https off
	skip_install_trust
	hookrelay {
		storage embedded %s
	}
}

:%d {
	bind 127.0.0.1
%s}
`, adminAddr, filepath.Join(dir, "queue"), port, aveRoute(tos, retry...))
}

// TestOrderedKill9 runs Caddy as a child process with an embedded queue,
// feeds 300 keys × 20 statuses as TestOrderedManyKeysFlakyReceiver does
// to a flaky receiver, kills Caddy with SIGKILL midway and restarts it on
// the same queue directory while the senders keep going (a status not
// answered 201 is sent again before the key's next one). Every key's
// statuses must arrive in order, one at a time, and every event answered
// 201 must be delivered; duplicates are counted.
func TestOrderedKill9(t *testing.T) {
	keys, statuses := 300, 20
	if testing.Short() {
		keys, statuses = 100, 10
	}
	const (
		dest    = "ordered_durable"
		lanes   = 32
		senders = 8
		batch   = 10
	)
	bin := testutil.CaddyBinary(t)
	s := ordertest.NewSink(t, ordertest.Flaky(0.10))
	s.OKDelay = time.Millisecond
	dir := t.TempDir()
	adminAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	port := testutil.FreePort(t)
	config := childConfig(dir, adminAddr, port, []string{to(s.URL, dest,
		"order_by data.shipment_id",
		"lanes 32",
		"workers 32",
		"timeout 300ms",
	)}, "schedule 50ms 100ms 200ms")
	c := testutil.StartCaddy(t, bin, dir, adminAddr, config)
	runs := []*testutil.Caddy{c}
	defer func() {
		if t.Failed() {
			for i, c := range runs {
				t.Logf("caddy log (run %d):\n%s", i+1, c.Log())
			}
		}
	}()

	f := ordertest.NewFeeder(keyIDs("k9", keys), statuses)
	fed, stopFeeding := f.Start(senders, batch, signed(t, fmt.Sprintf("http://127.0.0.1:%d/ave", port)))
	defer stopFeeding()

	deadline := time.Now().Add(3 * time.Minute)
	for f.Accepted.Load() < int64(f.Total()/2) {
		if time.Now().After(deadline) {
			stopFeeding()
			t.Fatalf("only %d of %d events answered 201 in 3 minutes", f.Accepted.Load(), f.Total())
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.Kill() // SIGKILL, the senders still posting, attempts under way
	killedAt := time.Now()
	t.Logf("killed Caddy after %d events answered 201, %d attempts", f.Accepted.Load(), s.Arrived.Load())
	c = testutil.StartCaddy(t, bin, dir, adminAddr, config)
	runs = append(runs, c)
	t.Logf("restarted %v after the kill", time.Since(killedAt).Round(time.Millisecond))

	f.Wait(t, fed, stopFeeding, 3*time.Minute)
	acked := f.Acked()
	s.WaitDelivered(t, acked, 2*time.Minute)
	settled(t, "http://"+adminAddr, dest)
	st := ordertest.CheckOrder(t, s.All(), acked)
	took := st.Last.Sub(f.Began)
	t.Logf("%d keys × %d statuses: ingress %s", keys, statuses, f.Summary())
	t.Logf("delivery: %s; all %d events delivered %v after the first was sent (%.0f events/s, a kill -9 and a restart included)",
		st, f.Total(), took.Round(time.Millisecond), float64(f.Total())/took.Seconds())
	if st, err := readStatus("http://"+adminAddr, dest); err != nil || !st.Ordered || st.Lanes != lanes || st.BlockedLanes != 0 {
		t.Errorf("status after the restart = %+v %v; want ordered, %d lanes, none blocked", st, err, lanes)
	}
}
