package delivery

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// relayConfig is a config with one verified, normalized route /ave whose
// hook_relay block holds tos (the `to` blocks) and retry (the retry
// block's lines).
func relayConfig(dir string, tos []string, retry ...string) string {
	var b strings.Builder
	b.WriteString(globalOptions(dir))
	fmt.Fprintf(&b, `
:%d {
	route /ave {
		hook_verify {
			secret %s
			algorithms HS256
		}
		hook_normalize ave_tracking
		hook_relay {
			topic shipments/tracking
`, httpPort, verifySecret)
	for _, to := range tos {
		b.WriteString(to)
		b.WriteString("\n")
	}
	if len(retry) > 0 {
		b.WriteString("\t\t\tretry {\n")
		for _, l := range retry {
			fmt.Fprintf(&b, "\t\t\t\t%s\n", l)
		}
		b.WriteString("\t\t\t}\n")
	}
	b.WriteString("\t\t}\n\t}\n}\n")
	return b.String()
}

// to is one destination block.
func to(url, name string, lines ...string) string { return testutil.ToBlock(url, name, lines...) }

// generous bounds a gap from above without making the test depend on the
// machine's speed: it only catches a retry that never comes on schedule.
const generous = 10 * time.Second

func checkGap(t *testing.T, what string, a, b delivery, scheduled time.Duration) {
	t.Helper()
	gap := b.At.Sub(a.At)
	if gap < scheduled {
		t.Errorf("%s: gap %v, want at least the scheduled %v", what, gap, scheduled)
	}
	if gap > scheduled+generous {
		t.Errorf("%s: gap %v, want about %v", what, gap, scheduled)
	}
}

// TestRetriesFollowTheSchedule: a destination failing N times and then
// answering 200 gets exactly N+1 attempts, spaced by the route's schedule
// (whose last step repeats), all with the same webhook-id.
func TestRetriesFollowTheSchedule(t *testing.T) {
	const failures = 3
	s := newSink(t, func(n int, _ delivery) (int, http.Header) {
		if n <= failures {
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusOK, nil
	})
	load(t, caddyAt.NewTester(t), relayConfig(queueDir(t),
		[]string{to(s.URL, "retry_schedule")},
		"schedule 50ms 100ms"))

	postAve(t, "/ave", "retry-schedule-1")
	testutil.WaitFor(t, 30*time.Second, "the delivery after the retries", func() bool {
		return len(s.delivered()) == 1
	})
	testutil.WaitFor(t, 10*time.Second, "the attempts to be counted", func() bool {
		return attemptsMetric(t, "retry_schedule", "delivered") == 1
	})
	settled(t, "retry_schedule")
	got := s.deliveries()
	if len(got) != failures+1 {
		t.Fatalf("%d attempts, want %d", len(got), failures+1)
	}
	if r := attemptsMetric(t, "retry_schedule", "retry"); r != failures {
		t.Errorf("retry outcomes = %v, want %d", r, failures)
	}
	for i, d := range got {
		if d.WebhookID != got[0].WebhookID || d.WebhookID == "" {
			t.Errorf("attempt %d: webhook-id %q, want %q on every attempt", i+1, d.WebhookID, got[0].WebhookID)
		}
	}
	schedule := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}
	for i := 1; i < len(got); i++ {
		checkGap(t, fmt.Sprintf("attempt %d after %d", i+1, i), got[i-1], got[i], schedule[i-1])
	}
}

// TestClientErrorDeadLettersAtOnce: a 4xx (other than 408, 410, 425,
// 429) is a permanent failure: one attempt, then the dead-letter stream.
func TestClientErrorDeadLettersAtOnce(t *testing.T) {
	s := newSink(t, func(int, delivery) (int, http.Header) { return http.StatusUnprocessableEntity, nil })
	load(t, caddyAt.NewTester(t), relayConfig(queueDir(t),
		[]string{to(s.URL, "retry_4xx")},
		"schedule 50ms"))

	postAve(t, "/ave", "retry-4xx-1")
	testutil.WaitFor(t, 15*time.Second, "the dead letter", func() bool {
		return metric(t, `hookrelay_dead_letters_total{destination="retry_4xx"}`) == 1
	})
	// The message left the queue: no other attempt can follow.
	settled(t, "retry_4xx")
	if r := attemptsMetric(t, "retry_4xx", "retry"); r != 0 {
		t.Errorf("retry outcomes = %v, want 0", r)
	}
	if d := attemptsMetric(t, "retry_4xx", "dead_letter"); d != 1 {
		t.Errorf("dead_letter outcomes = %v, want 1", d)
	}
	if n := s.attempts(); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

// TestRetryAfterIsHonoured: a 429 with Retry-After waits at least that
// long, even though the schedule says 50ms.
func TestRetryAfterIsHonoured(t *testing.T) {
	s := newSink(t, func(n int, _ delivery) (int, http.Header) {
		if n == 1 {
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}
		}
		return http.StatusOK, nil
	})
	load(t, caddyAt.NewTester(t), relayConfig(queueDir(t),
		[]string{to(s.URL, "retry_429")},
		"schedule 50ms"))

	postAve(t, "/ave", "retry-429-1")
	testutil.WaitFor(t, 15*time.Second, "the delivery after Retry-After", func() bool {
		return len(s.delivered()) == 1
	})
	settled(t, "retry_429")
	got := s.deliveries()
	if len(got) != 2 {
		t.Fatalf("%d attempts, want 2", len(got))
	}
	checkGap(t, "attempt after 429 Retry-After: 1", got[0], got[1], time.Second)
}

// TestMaxAgeStopsRetries: a destination that never recovers is tried on
// schedule until the event reaches the route's max_age; then it is
// dead-lettered and no attempt follows.
func TestMaxAgeStopsRetries(t *testing.T) {
	s := newSink(t, func(int, delivery) (int, http.Header) { return http.StatusServiceUnavailable, nil })
	const maxAge = 500 * time.Millisecond
	load(t, caddyAt.NewTester(t), relayConfig(queueDir(t),
		[]string{to(s.URL, "retry_max_age")},
		"schedule 50ms", "max_age 500ms"))

	postAve(t, "/ave", "retry-max-age-1")
	testutil.WaitFor(t, 30*time.Second, "the dead letter after max_age", func() bool {
		return metric(t, `hookrelay_dead_letters_total{destination="retry_max_age"}`) == 1
	})
	settled(t, "retry_max_age")
	got := s.deliveries()
	retries := attemptsMetric(t, "retry_max_age", "retry")
	if len(got) < 2 {
		t.Errorf("%d attempts, want retries before max_age", len(got))
	}
	// Every attempt but the last was a retry; the last one dead-lettered
	// the message, so no attempt can follow it.
	if int(retries)+1 != len(got) {
		t.Errorf("%d attempts but %v retry outcomes; want one dead_letter after the retries", len(got), retries)
	}
	if last := got[len(got)-1].At.Sub(got[0].At); last > maxAge+generous {
		t.Errorf("last attempt %v after the first, long past max_age %v", last, maxAge)
	}
}

// TestDeadDestinationDoesNotHoldOthersBack: with one destination hanging
// and one answering 503, the healthy one receives every event promptly.
func TestDeadDestinationDoesNotHoldOthersBack(t *testing.T) {
	release := make(chan struct{})
	hang := newSink(t, func(int, delivery) (int, http.Header) {
		<-release
		return http.StatusServiceUnavailable, nil
	})
	// Runs before the hanging sink is closed.
	t.Cleanup(func() { close(release) })
	failing := newSink(t, func(int, delivery) (int, http.Header) { return http.StatusServiceUnavailable, nil })
	ok := newSink(t, nil)
	load(t, caddyAt.NewTester(t), relayConfig(queueDir(t),
		[]string{
			to(hang.URL, "iso_hanging", "timeout 2m"),
			to(failing.URL, "iso_failing"),
			to(ok.URL, "iso_ok"),
		},
		"schedule 50ms"))

	const requests, perRequest = 8, 25
	want := map[string]bool{}
	for r := range requests {
		ids := guideIDs(fmt.Sprintf("iso-%d", r), perRequest)
		for _, id := range ids {
			want[id] = true
		}
		postAve(t, "/ave", ids...)
	}
	// Far less than the hanging destination's timeout: the healthy one is
	// not waiting behind it.
	testutil.WaitFor(t, 30*time.Second, "every event at the healthy destination", func() bool {
		return len(ok.deliveredShipments()) == len(want)
	})
	settled(t, "iso_ok")
	for id, n := range ok.deliveredShipments() {
		if !want[id] {
			t.Errorf("unexpected shipment %q delivered", id)
		}
		if n != 1 {
			t.Errorf("shipment %q delivered %d times to the healthy destination", id, n)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "attempts at the dead destinations", func() bool {
		return hang.attempts() > 0 && failing.attempts() > 0
	})
}
