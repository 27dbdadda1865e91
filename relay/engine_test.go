package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/zap/zaptest"

	"github.com/hookrelay/hookrelay/relay/event"
)

// receiver is a loopback destination that records every attempt and
// answers what its script says.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	attempts []received
	answer   func(n int, r *http.Request) (status int, header http.Header)
}

type received struct {
	at     time.Time
	header http.Header
	query  string
	body   []byte
}

func newReceiver(t *testing.T, answer func(n int, r *http.Request) (int, http.Header)) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.attempts = append(rc.attempts, received{at: time.Now(), header: r.Header.Clone(), query: r.URL.RawQuery, body: body})
		n := len(rc.attempts)
		rc.mu.Unlock()
		status, h := http.StatusOK, http.Header(nil)
		if rc.answer != nil {
			status, h = rc.answer(n, r)
		}
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) got() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.attempts...)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.attempts)
}

func openEngine(t *testing.T, opts Options) *Engine {
	t.Helper()
	if opts.Queue.Dir == "" && len(opts.Queue.URLs) == 0 {
		opts.Queue.Dir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = zaptest.NewLogger(t)
	}
	e, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testEvent(i int) event.Event {
	return event.Event{
		ID:         event.NewID("test", strconv.Itoa(i)),
		Topic:      "shipments/tracking",
		Source:     "test",
		ReceivedAt: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC),
		Data:       json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)),
	}
}

func deadLetters(t *testing.T, e *Engine, dest string) []DeadLetter {
	t.Helper()
	dls, _, err := e.DeadLetters(context.Background(), dest, 0, 1000)
	if err != nil {
		t.Fatalf("DeadLetters: %v", err)
	}
	return dls
}

func TestDeliverSignedEvent(t *testing.T) {
	rc := newReceiver(t, nil)
	e := openEngine(t, Options{})
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	signer, err := NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	err = e.Apply("cfg", []*Destination{{
		Name:   "erp",
		URL:    rc.URL + "/hooks?x=1",
		Header: http.Header{"X-Source": {"aveonline"}},
		Query:  map[string][]string{"tenant": {"acme"}},
		Signer: signer,
	}})
	if err != nil {
		t.Fatal(err)
	}
	ev := testEvent(1)
	if err := e.Enqueue(context.Background(), []event.Event{ev}, []string{"erp"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the delivery", func() bool { return rc.count() == 1 })
	got := rc.got()[0]
	want, _ := json.Marshal(ev)
	if string(got.body) != string(want) {
		t.Errorf("body = %s, want %s", got.body, want)
	}
	if h := got.header.Get("Content-Type"); h != "application/json" {
		t.Errorf("Content-Type = %q", h)
	}
	if h := got.header.Get("webhook-id"); h != ev.ID {
		t.Errorf("webhook-id = %q, want %q", h, ev.ID)
	}
	if h := got.header.Get("X-Source"); h != "aveonline" {
		t.Errorf("X-Source = %q", h)
	}
	if got.query != "tenant=acme&x=1" {
		t.Errorf("query = %q", got.query)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(got.body, got.header); err != nil {
		t.Errorf("Standard Webhooks verification failed: %v", err)
	}
}

func TestRetryScheduleThenSuccess(t *testing.T) {
	const failures = 3
	rc := newReceiver(t, func(n int, _ *http.Request) (int, http.Header) {
		if n <= failures {
			return http.StatusInternalServerError, nil
		}
		return http.StatusOK, nil
	})
	e := openEngine(t, Options{})
	schedule := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}
	if err := e.Apply("cfg", []*Destination{{Name: "flaky", URL: rc.URL, Retry: RetryPolicy{Schedule: schedule}}}); err != nil {
		t.Fatal(err)
	}
	ev := testEvent(2)
	if err := e.Enqueue(context.Background(), []event.Event{ev}, []string{"flaky"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the final attempt", func() bool { return rc.count() == failures+1 })
	// Nothing more must come: the success is acknowledged.
	settled(t, e, "flaky")
	got := rc.got()
	if len(got) != failures+1 {
		t.Fatalf("attempts = %d, want %d", len(got), failures+1)
	}
	for i := 1; i < len(got); i++ {
		gap := got[i].at.Sub(got[i-1].at)
		want := schedule[min(i-1, len(schedule)-1)]
		if gap < want || gap > want+2*time.Second {
			t.Errorf("gap before attempt %d = %v, want %v (+10%% jitter, within tolerance)", i+1, gap, want)
		}
		if got[i].header.Get("webhook-id") != ev.ID {
			t.Errorf("attempt %d webhook-id changed", i+1)
		}
	}
	if dls := deadLetters(t, e, ""); len(dls) != 0 {
		t.Errorf("dead letters = %d, want 0", len(dls))
	}
}

func TestPermanentFailureDeadLettersAtOnce(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusGone, http.StatusUnprocessableEntity} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			rc := newReceiver(t, func(int, *http.Request) (int, http.Header) { return status, nil })
			e := openEngine(t, Options{})
			if err := e.Apply("cfg", []*Destination{{Name: "strict", URL: rc.URL, Retry: RetryPolicy{Schedule: []time.Duration{20 * time.Millisecond}}}}); err != nil {
				t.Fatal(err)
			}
			ev := testEvent(3)
			if err := e.Enqueue(context.Background(), []event.Event{ev}, []string{"strict"}); err != nil {
				t.Fatal(err)
			}
			var dls []DeadLetter
			waitFor(t, 10*time.Second, "the dead letter", func() bool { dls = deadLetters(t, e, "strict"); return len(dls) == 1 })
			if n := rc.count(); n != 1 {
				t.Errorf("attempts = %d, want 1", n)
			}
			dl := dls[0]
			if dl.EventID != ev.ID || dl.Destination != "strict" || dl.Attempts != 1 || dl.LastStatus != status {
				t.Errorf("dead letter = %+v", dl)
			}
			wantReason := ReasonPermanentFailure
			if status == http.StatusGone {
				wantReason = ReasonGone
			}
			if dl.Reason != wantReason {
				t.Errorf("reason = %q, want %q", dl.Reason, wantReason)
			}
			want, _ := json.Marshal(ev)
			if string(dl.Event) != string(want) {
				t.Errorf("dead letter event = %s", dl.Event)
			}
		})
	}
}

func TestRetryOn4xx(t *testing.T) {
	rc := newReceiver(t, func(n int, _ *http.Request) (int, http.Header) {
		if n == 1 {
			return http.StatusBadRequest, nil
		}
		return http.StatusNoContent, nil
	})
	e := openEngine(t, Options{})
	if err := e.Apply("cfg", []*Destination{{Name: "lenient", URL: rc.URL, Retry: RetryPolicy{Schedule: []time.Duration{20 * time.Millisecond}, RetryOn4xx: true}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Enqueue(context.Background(), []event.Event{testEvent(4)}, []string{"lenient"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the second attempt", func() bool { return rc.count() == 2 })
}

func TestRetryAfterIsAFloor(t *testing.T) {
	rc := newReceiver(t, func(n int, _ *http.Request) (int, http.Header) {
		if n == 1 {
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}
		}
		return http.StatusOK, nil
	})
	e := openEngine(t, Options{})
	if err := e.Apply("cfg", []*Destination{{Name: "limited", URL: rc.URL, Retry: RetryPolicy{Schedule: []time.Duration{10 * time.Millisecond}}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Enqueue(context.Background(), []event.Event{testEvent(5)}, []string{"limited"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the second attempt", func() bool { return rc.count() == 2 })
	got := rc.got()
	if gap := got[1].at.Sub(got[0].at); gap < time.Second {
		t.Errorf("gap = %v, want at least the Retry-After of 1s", gap)
	}
}

func TestMaxAgeDeadLetters(t *testing.T) {
	rc := newReceiver(t, func(int, *http.Request) (int, http.Header) { return http.StatusBadGateway, nil })
	e := openEngine(t, Options{})
	policy := RetryPolicy{Schedule: []time.Duration{30 * time.Millisecond}, MaxAge: 300 * time.Millisecond}
	if err := e.Apply("cfg", []*Destination{{Name: "down", URL: rc.URL, Retry: policy}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Enqueue(context.Background(), []event.Event{testEvent(6)}, []string{"down"}); err != nil {
		t.Fatal(err)
	}
	var dls []DeadLetter
	waitFor(t, 15*time.Second, "the dead letter", func() bool { dls = deadLetters(t, e, "down"); return len(dls) == 1 })
	dl := dls[0]
	if dl.Reason != "max_age" || dl.LastStatus != http.StatusBadGateway || dl.Attempts < 2 {
		t.Errorf("dead letter = %+v", dl)
	}
	if dl.DeadAt.Sub(dl.FirstSeen) < policy.MaxAge-policy.Schedule[0]-policy.Schedule[0]/10 {
		t.Errorf("dead-lettered after %v, before its max age", dl.DeadAt.Sub(dl.FirstSeen))
	}
	if n := rc.count(); n != dl.Attempts {
		t.Errorf("receiver saw %d attempts, dead letter says %d", n, dl.Attempts)
	}
}

func TestDeadDestinationDoesNotHoldOthersBack(t *testing.T) {
	block := make(chan struct{})
	dead := newReceiver(t, func(int, *http.Request) (int, http.Header) {
		<-block
		return http.StatusServiceUnavailable, nil
	})
	// Registered after the receiver, so it runs before the receiver's
	// Close waits for its handlers.
	t.Cleanup(func() { close(block) })
	fine := newReceiver(t, nil)
	e := openEngine(t, Options{})
	err := e.Apply("cfg", []*Destination{
		{Name: "dead", URL: dead.URL, Timeout: 5 * time.Second, Workers: 2},
		{Name: "fine", URL: fine.URL},
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	events := make([]event.Event, n)
	for i := range events {
		events[i] = testEvent(1000 + i)
	}
	if err := e.Enqueue(context.Background(), events, []string{"dead", "fine"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "every delivery to the healthy destination", func() bool { return fine.count() == n })
}

func TestLongDelayIsScheduled(t *testing.T) {
	rc := newReceiver(t, func(n int, _ *http.Request) (int, http.Header) {
		if n == 1 {
			return http.StatusInternalServerError, nil
		}
		return http.StatusOK, nil
	})
	// Every delay above 1ms goes through a scheduled message.
	e := openEngine(t, Options{NakMaxDelay: time.Millisecond})
	const delay = 3 * time.Second
	if err := e.Apply("cfg", []*Destination{{Name: "later", URL: rc.URL, Retry: RetryPolicy{Schedule: []time.Duration{delay}}}}); err != nil {
		t.Fatal(err)
	}
	ev := testEvent(7)
	if err := e.Enqueue(context.Background(), []event.Event{ev}, []string{"later"}); err != nil {
		t.Fatal(err)
	}
	// While it waits, the retry is a parked scheduled message, not a
	// message held in the consumer.
	waitFor(t, delay, "the retry to be parked", func() bool {
		st := statusOf(t, e, "later")
		return st.Scheduled == 1 && st.InFlight == 0 && st.RetryWaiting == 0
	})
	waitFor(t, 15*time.Second, "the scheduled attempt", func() bool { return rc.count() == 2 })
	got := rc.got()
	if gap := got[1].at.Sub(got[0].at); gap < delay {
		t.Errorf("gap = %v, want at least %v", gap, delay)
	}
	if got[1].header.Get("webhook-id") != ev.ID || string(got[1].body) != string(got[0].body) {
		t.Errorf("the scheduled attempt changed the message")
	}
}

func TestReplayRedelivers(t *testing.T) {
	rc := newReceiver(t, func(n int, _ *http.Request) (int, http.Header) {
		if n == 1 {
			return http.StatusNotFound, nil
		}
		return http.StatusOK, nil
	})
	e := openEngine(t, Options{})
	if err := e.Apply("cfg", []*Destination{{Name: "erp", URL: rc.URL}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Enqueue(context.Background(), []event.Event{testEvent(8)}, []string{"erp"}); err != nil {
		t.Fatal(err)
	}
	var dls []DeadLetter
	waitFor(t, 10*time.Second, "the dead letter", func() bool { dls = deadLetters(t, e, "erp"); return len(dls) == 1 })
	n, err := e.Replay(context.Background(), []uint64{dls[0].Seq})
	if err != nil || n != 1 {
		t.Fatalf("Replay = %d, %v", n, err)
	}
	waitFor(t, 10*time.Second, "the replayed delivery", func() bool { return rc.count() == 2 })
	if dls := deadLetters(t, e, "erp"); len(dls) != 0 {
		t.Errorf("dead letters after replay = %d, want 0", len(dls))
	}
}

func TestApplyReleaseFallsBack(t *testing.T) {
	a, b := newReceiver(t, nil), newReceiver(t, nil)
	e := openEngine(t, Options{})
	if err := e.Apply("old", []*Destination{{Name: "erp", URL: a.URL}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Apply("new", []*Destination{{Name: "erp", URL: b.URL}}); err != nil {
		t.Fatal(err)
	}
	// The new configuration failed to start: its settings go away.
	e.Release("new")
	if err := e.Enqueue(context.Background(), []event.Event{testEvent(9)}, []string{"erp"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the delivery to the old URL", func() bool { return a.count() == 1 })
	if b.count() != 0 {
		t.Errorf("the released configuration's URL got a delivery")
	}
	if err := e.Apply("x", []*Destination{{Name: "a.b", URL: a.URL}}); err == nil {
		t.Errorf("a destination name with a dot was accepted")
	}
	if err := e.Apply("x", []*Destination{{Name: "d", URL: a.URL}, {Name: "d", URL: b.URL}}); err == nil {
		t.Errorf("a duplicated destination name was accepted")
	}
}

func TestEnqueueDedupesResends(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(int, *http.Request) (int, http.Header) { <-release; return http.StatusOK, nil })
	e := openEngine(t, Options{})
	if err := e.Apply("cfg", []*Destination{{Name: "erp", URL: rc.URL, Workers: 1}}); err != nil {
		t.Fatal(err)
	}
	evs := []event.Event{testEvent(10), testEvent(11)}
	for i := 0; i < 3; i++ {
		if err := e.Enqueue(context.Background(), evs, []string{"erp"}); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	waitFor(t, 10*time.Second, "both deliveries", func() bool { return rc.count() >= 2 })
	settled(t, e, "erp")
	if n := rc.count(); n != 2 {
		t.Errorf("deliveries = %d, want 2 (resends deduplicated)", n)
	}
}

func TestReconfigureUpdatesStreams(t *testing.T) {
	dir := t.TempDir()
	e := openEngine(t, Options{Queue: QueueConfig{Dir: dir}})
	ctx := context.Background()
	streams := func() (dedupe, retention time.Duration) {
		t.Helper()
		out, err := e.q.js.Stream(ctx, StreamOut)
		if err != nil {
			t.Fatal(err)
		}
		dead, err := e.q.js.Stream(ctx, StreamDead)
		if err != nil {
			t.Fatal(err)
		}
		return out.CachedInfo().Config.Duplicates, dead.CachedInfo().Config.MaxAge
	}
	if d, r := streams(); d != 10*time.Minute || r != 30*24*time.Hour {
		t.Fatalf("defaults: dedupe %v, retention %v", d, r)
	}

	restart, err := e.Reconfigure(ctx, QueueConfig{Dir: dir, DedupeWindow: time.Hour, DeadLetterRetention: 48 * time.Hour})
	if err != nil || restart {
		t.Fatalf("Reconfigure: restart %v, err %v", restart, err)
	}
	if d, r := streams(); d != time.Hour || r != 48*time.Hour {
		t.Fatalf("after reconfigure: dedupe %v, retention %v", d, r)
	}

	// A single server cannot hold 3 replicas: refused, and the settings
	// in force stay, so workers keep creating consumers with them.
	if _, err := e.Reconfigure(ctx, QueueConfig{Dir: dir, Replicas: 3, DedupeWindow: 2 * time.Hour}); err == nil {
		t.Fatal("3 replicas on the embedded server: no error")
	}
	if st := e.QueueConfig(); st.Replicas != 1 || st.DedupeWindow != time.Hour {
		t.Fatalf("a refused reconfigure changed the settings: %+v", st)
	}
	if d, _ := streams(); d != time.Hour {
		t.Fatalf("a refused reconfigure changed the stream: dedupe %v", d)
	}

	// The fsync settings belong to the running server.
	restart, err = e.Reconfigure(ctx, QueueConfig{Dir: dir, SyncAlways: true, DedupeWindow: time.Hour, DeadLetterRetention: 48 * time.Hour})
	if err != nil || !restart {
		t.Fatalf("sync change: restart %v, err %v", restart, err)
	}
}
