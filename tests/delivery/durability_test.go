package delivery

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// childSite is a Caddy run as a child process by the kill -9 tests: its
// directory (queue and data), admin address and HTTP port on loopback.
type childSite struct {
	dir, adminAddr string
	port           int
}

func newChildSite(t *testing.T) childSite {
	return childSite{dir: t.TempDir(), adminAddr: fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)), port: testutil.FreePort(t)}
}

// caddyfile is a config with an embedded queue in the site's directory
// (hookrelay holds more lines of the hookrelay option) and one route
// /ave made of the directives in route.
func (c childSite) caddyfile(hookrelay, route string) string {
	return fmt.Sprintf(`{
	admin %s
	auto_https off
	skip_install_trust
	hookrelay {
		storage embedded %s
		%s
	}
}

:%d {
	bind 127.0.0.1
	route /ave {
		%s
	}
}
`, c.adminAddr, filepath.Join(c.dir, "queue"), hookrelay, c.port, route)
}

func (c childSite) url() string { return fmt.Sprintf("http://127.0.0.1:%d/ave", c.port) }

// TestKill9UnderLoadLosesNoAcceptedEvent runs Caddy as a child process,
// posts distinct guides from several senders while the destination is
// down, kills Caddy with SIGKILL in the middle of it, restarts it on the
// same queue directory with the destination up, and checks that every
// event that was answered 201 is delivered. Duplicates are allowed and
// reported; losses are not.
func TestKill9UnderLoadLosesNoAcceptedEvent(t *testing.T) {
	bin := testutil.CaddyBinary(t)
	for _, mode := range []struct{ name, sync string }{
		{"sync_default", ""},
		{"sync_always", "sync always"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			killUnderLoad(t, bin, mode.name, mode.sync)
		})
	}
}

func killUnderLoad(t *testing.T, bin, mode, syncLine string) {
	// Kill once this many events were answered 201; the senders keep
	// going until the kill.
	killAfter := 4000
	if testing.Short() {
		killAfter = 400
	}
	const senders, perRequest = 8, 2

	var up atomic.Bool
	s := newSink(t, func(int, delivery) (int, http.Header) {
		if up.Load() {
			return http.StatusOK, nil
		}
		return http.StatusServiceUnavailable, nil
	})

	ch := newChildSite(t)
	caddyfile := ch.caddyfile(syncLine, fmt.Sprintf(`hook_verify {
			secret %s
			algorithms HS256
		}
		hook_normalize ave_tracking
		hook_relay {
			topic shipments/tracking
			to %s/hooks {
				name durable_sink
				timeout 1s
			}
			retry {
				schedule 100ms 250ms 500ms
			}
		}`, verifySecret, s.URL))
	dir, adminAddr, url := ch.dir, ch.adminAddr, ch.url()

	c := testutil.StartCaddy(t, bin, dir, adminAddr, caddyfile)

	// Several senders post distinct guides; every guide of a request
	// answered 201 is recorded.
	var (
		mu        sync.Mutex
		accepted  = map[string]bool{}
		requests  atomic.Int64
		answered  atomic.Int64 // 201s
		refused   atomic.Int64 // other statuses
		failed    atomic.Int64 // transport errors: cut or refused by the kill
		stop      atomic.Bool
		wg        sync.WaitGroup
		reachedCh = make(chan struct{})
		reached   sync.Once
	)
	token := testutil.HS256(t, verifySecret, nil)
	for w := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; !stop.Load(); seq++ {
				ids := guideIDs(fmt.Sprintf("%s-w%d-r%d", mode, w, seq), perRequest)
				requests.Add(1)
				status, _, _, err := post(url, http.Header{"Ave-Hub-Signature": {token}}, testutil.AvePayload(ids...))
				switch {
				case err != nil && status == 0:
					failed.Add(1)
					if stop.Load() {
						return
					}
				case status == http.StatusCreated:
					// The 201 is written only after the queue acknowledged
					// every event of the request: they count even if the
					// kill cut the rest of the response.
					answered.Add(1)
					mu.Lock()
					for _, id := range ids {
						accepted[id] = true
					}
					n := len(accepted)
					mu.Unlock()
					if n >= killAfter {
						reached.Do(func() { close(reachedCh) })
					}
				default:
					refused.Add(1)
				}
			}
		}()
	}
	select {
	case <-reachedCh:
	case <-time.After(2 * time.Minute):
		stop.Store(true)
		wg.Wait()
		t.Fatalf("only %d events accepted in 2 minutes\n%s", len(accepted), c.Log())
	}
	c.Kill() // SIGKILL, senders still posting
	stop.Store(true)
	wg.Wait()
	attemptsWhileDown := s.attempts()

	mu.Lock()
	want := make(map[string]bool, len(accepted))
	for id := range accepted {
		want[id] = true
	}
	mu.Unlock()

	// Back up: the destination answers 200, Caddy restarts on the same
	// queue directory.
	up.Store(true)
	c = testutil.StartCaddy(t, bin, dir, adminAddr, caddyfile)
	start := time.Now()
	testutil.WaitFor(t, 2*time.Minute, "every event answered 201 to be delivered after the restart", func() bool {
		got := s.deliveredShipments()
		for id := range want {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	took := time.Since(start)
	// Events stored but not answered 201 may still be on their way: let
	// the queue settle, then read one snapshot of what arrived.
	testutil.WaitSettled(t, "http://"+adminAddr, "durable_sink", time.Minute)
	got := s.deliveries()
	delivered := shipmentsOf(got)
	var losses, duplicates, unacknowledged int
	for id := range want {
		if delivered[id] == 0 {
			losses++
		}
	}
	byWebhookID := webhookIDsOf(got)
	for _, n := range byWebhookID {
		duplicates += n - 1
	}
	for id := range delivered {
		if !want[id] {
			unacknowledged++ // stored, but the kill cut the 201
		}
	}
	cut := 0
	for _, d := range got {
		if d.Cut {
			// The kill cut this attempt mid-body: the sink answered a
			// request that was never whole, and no event can be read
			// from it. It was made again after the restart.
			cut++
			if d.Status >= 200 && d.Status < 300 {
				t.Errorf("a cut attempt (webhook-id %q) was answered %d: the destination was down then", d.WebhookID, d.Status)
			}
			continue
		}
		if d.WebhookID == "" || d.WebhookID != d.EventID {
			t.Errorf("delivery with webhook-id %q for event %q", d.WebhookID, d.EventID)
			break
		}
	}
	if len(byWebhookID) != len(delivered) {
		t.Errorf("%d distinct webhook-ids for %d distinct shipments", len(byWebhookID), len(delivered))
		// Show the deliveries of the shipments that came under more than
		// one webhook-id.
		ids := map[string]map[string]bool{}
		for _, d := range got {
			if d.Status >= 200 && d.Status < 300 {
				if ids[d.ShipmentID] == nil {
					ids[d.ShipmentID] = map[string]bool{}
				}
				ids[d.ShipmentID][d.WebhookID] = true
			}
		}
		shown := 0
		for _, d := range got {
			if len(ids[d.ShipmentID]) > 1 && shown < 8 {
				shown++
				t.Logf("shipment %q webhook-id %q status %d cut %v body %.300s", d.ShipmentID, d.WebhookID, d.Status, d.Cut, d.Body)
			}
		}
	}
	if losses != 0 {
		t.Errorf("%d of %d events answered 201 were never delivered", losses, len(want))
	}
	t.Logf("%s: %d requests (%d answered 201, %d refused, %d transport errors around the kill); %d events answered 201, %d attempts while down (%d cut by the kill); "+
		"after restart all delivered in %v: %d distinct events delivered (%d of them stored but not answered 201), %d duplicate deliveries, %d losses",
		mode, requests.Load(), answered.Load(), refused.Load(), failed.Load(), len(want), attemptsWhileDown, cut,
		took.Round(time.Millisecond), len(byWebhookID), unacknowledged, duplicates, losses)
	if t.Failed() {
		t.Logf("caddy log after restart:\n%s", c.Log())
	}
}

// TestRecoveryAfterKill9TakesSeconds accepts 500 events while the
// destination hangs (the failure that holds messages: every worker is
// stuck in an attempt and more wait for a worker), kills Caddy with
// SIGKILL, brings the destination back and restarts Caddy: every event
// must arrive within seconds of the restart. Before, the messages the
// dead process held waited out an AckWait of twice the timeout plus 30s
// (90s with the default 30s timeout) before anyone tried them again.
func TestRecoveryAfterKill9TakesSeconds(t *testing.T) {
	bin := testutil.CaddyBinary(t)
	const events = 500
	var up atomic.Bool
	release := make(chan struct{})
	s := testutil.NewReceiver(t, func(_ int, r *http.Request, _ []byte) (int, http.Header, []byte) {
		if up.Load() {
			return http.StatusOK, nil, nil
		}
		select { // hang until the sender gives up or the test releases it
		case <-r.Context().Done():
		case <-release:
		}
		return http.StatusServiceUnavailable, nil, nil
	})
	t.Cleanup(func() { close(release) })
	ch := newChildSite(t)
	caddyfile := ch.caddyfile("", fmt.Sprintf(`hook_normalize ave_tracking
		hook_relay {
			topic shipments/tracking
			to %s/hooks {
				name hangs
			}
			retry {
				schedule 1s
			}
		}`, s.URL))
	dir, adminAddr, url := ch.dir, ch.adminAddr, ch.url()
	c := testutil.StartCaddy(t, bin, dir, adminAddr, caddyfile)
	for i := 0; i < events; i += 10 {
		status, body, _, err := post(url, nil, testutil.AvePayload(guideIDs(fmt.Sprintf("R%03d", i), 10)...))
		if err != nil || status != http.StatusCreated {
			t.Fatalf("POST = %d %s %v", status, body, err)
		}
	}
	testutil.WaitFor(t, 20*time.Second, "the workers to be stuck in attempts", func() bool { return s.Count() >= 16 })
	c.Kill()
	up.Store(true)
	c = testutil.StartCaddy(t, bin, dir, adminAddr, caddyfile)
	restarted := time.Now()
	delivered := func() map[string]bool {
		m := map[string]bool{}
		for _, r := range s.Got() {
			var ev struct {
				Data struct {
					ShipmentID string `json:"shipment_id"`
				} `json:"data"`
			}
			if json.Unmarshal(r.Body, &ev) == nil && ev.Data.ShipmentID != "" && r.Header.Get("webhook-id") != "" {
				m[ev.Data.ShipmentID] = true
			}
		}
		return m
	}
	// Generous for the machine, far below the old 90s AckWait.
	testutil.WaitFor(t, 45*time.Second, "every accepted event after the restart", func() bool {
		return len(delivered()) >= events
	})
	t.Logf("after kill -9 with %d events accepted and the destination hanging, the last was delivered %v after the restart",
		events, time.Since(restarted).Round(10*time.Millisecond))
}
