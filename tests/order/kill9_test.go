package order

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

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
	s := newOrderSink(t, flaky(0.10))
	s.okDelay = time.Millisecond
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

	f := newFeeder(keyIDs("k9", keys), statuses)
	stop := make(chan struct{})
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		f.run(stop, senders, batch, signed(t, fmt.Sprintf("http://127.0.0.1:%d/ave", port)))
	}()
	stopFeeding := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-fed
	}
	defer stopFeeding()

	deadline := time.Now().Add(3 * time.Minute)
	for f.accepted.Load() < int64(f.total()/2) {
		if time.Now().After(deadline) {
			stopFeeding()
			t.Fatalf("only %d of %d events answered 201 in 3 minutes", f.accepted.Load(), f.total())
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.Kill() // SIGKILL, the senders still posting, attempts under way
	killedAt := time.Now()
	t.Logf("killed Caddy after %d events answered 201, %d attempts", f.accepted.Load(), s.arrived.Load())
	c = testutil.StartCaddy(t, bin, dir, adminAddr, config)
	runs = append(runs, c)
	t.Logf("restarted %v after the kill", time.Since(killedAt).Round(time.Millisecond))

	select {
	case <-fed:
	case <-time.After(3 * time.Minute):
		stopFeeding()
		t.Fatalf("the senders did not finish in 3 minutes: %s", f.summary())
	}
	acked := f.acked()
	s.waitDelivered(t, acked, 2*time.Minute)
	settled(t, "http://"+adminAddr, dest)
	st := checkOrder(t, s.all(), acked)
	took := st.last.Sub(f.began)
	t.Logf("%d keys × %d statuses: ingress %s", keys, statuses, f.summary())
	t.Logf("delivery: %s; all %d events delivered %v after the first was sent (%.0f events/s, a kill -9 and a restart included)",
		st, f.total(), took.Round(time.Millisecond), float64(f.total())/took.Seconds())
	if st, err := readStatus("http://"+adminAddr, dest); err != nil || !st.Ordered || st.Lanes != lanes || st.BlockedLanes != 0 {
		t.Errorf("status after the restart = %+v %v; want ordered, %d lanes, none blocked", st, err, lanes)
	}
}
