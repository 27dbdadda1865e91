package relay

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay/event"
)

func TestDestStatsRecentWindow(t *testing.T) {
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	s := newDestStats(func() time.Time { return now })
	s.record(OutcomeRetry, 503, "HTTP 503 Service Unavailable") // 09:00:00, out of the window at the end
	now = now.Add(time.Minute)
	s.record(OutcomeDelivered, 200, "HTTP 200 OK")
	now = now.Add(3 * time.Minute)
	s.record(OutcomeDeadLetter, 404, "HTTP 404 Not Found")
	now = now.Add(50 * time.Second)
	s.record(OutcomeDelivered, 204, "")
	now = now.Add(20 * time.Second) // 09:05:10

	var st DestinationStatus
	s.fill(&st)
	if want := (Outcomes{Delivered: 2, DeadLetter: 1}); st.Recent != want {
		t.Errorf("Recent = %+v, want %+v", st.Recent, want)
	}
	if st.LastStatus != 204 || st.LastOutcome != OutcomeDelivered || st.LastError != "" {
		t.Errorf("last = %d %q %q, want 204 delivered and no error", st.LastStatus, st.LastOutcome, st.LastError)
	}
	if len(st.RecentAttempts) != 4 || st.RecentAttempts[0].Status != 204 || st.RecentAttempts[3].Status != 503 {
		t.Errorf("RecentAttempts = %+v, want 4, newest first", st.RecentAttempts)
	}
	if st.RecentAttempts[1].Error != "HTTP 404 Not Found" {
		t.Errorf("a failed attempt lost its error: %+v", st.RecentAttempts[1])
	}

	// Much later every bucket is stale, and the ring keeps only the last
	// few attempts.
	now = now.Add(time.Hour)
	for i := 0; i < 3*numRecentAttempts; i++ {
		s.record(OutcomeRetry, 500+i, "")
	}
	now = now.Add(RecentWindow)
	st = DestinationStatus{}
	s.fill(&st)
	if st.Recent != (Outcomes{}) {
		t.Errorf("Recent after the window = %+v, want zero", st.Recent)
	}
	if len(st.RecentAttempts) != numRecentAttempts || st.RecentAttempts[0].Status != 500+3*numRecentAttempts-1 {
		t.Errorf("RecentAttempts = %+v", st.RecentAttempts)
	}
}

func TestDestStatsRetryDue(t *testing.T) {
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	s := newDestStats(func() time.Time { return now })
	s.retryingAt(1, now.Add(time.Minute))
	s.retryingAt(2, now.Add(30*time.Second))
	s.retryingAt(3, now.Add(2*time.Minute))
	s.taken(2)
	var st DestinationStatus
	s.fill(&st)
	if st.RetryWaiting != 2 || st.NextAttempt == nil || !st.NextAttempt.Equal(now.Add(time.Minute)) {
		t.Errorf("RetryWaiting %d, NextAttempt %v; want 2 and %v", st.RetryWaiting, st.NextAttempt, now.Add(time.Minute))
	}
	// A retry that never came back here (another node took it) is
	// forgotten.
	now = now.Add(time.Hour)
	st = DestinationStatus{}
	s.fill(&st)
	if st.RetryWaiting != 0 || st.NextAttempt != nil {
		t.Errorf("stale retries kept: %d, %v", st.RetryWaiting, st.NextAttempt)
	}
}

func statusOf(t *testing.T, e *Engine, name string) DestinationStatus {
	t.Helper()
	st, err := e.DestinationStatus(context.Background(), name)
	if err != nil {
		t.Fatalf("DestinationStatus(%s): %v", name, err)
	}
	return st
}

func TestPauseHoldsDeliveries(t *testing.T) {
	rc := newReceiver(t, nil)
	e := openEngine(t, Options{})
	if err := e.Apply("cfg", []*Destination{{Name: "erp", URL: rc.URL, Workers: 2}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.Pause(ctx, "erp"); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if err := e.Pause(ctx, "nope"); !errors.Is(err, ErrUnknownDestination) {
		t.Errorf("Pause(unknown) = %v, want ErrUnknownDestination", err)
	}
	evs := []event.Event{testEvent(1), testEvent(2), testEvent(3)}
	if err := e.Enqueue(ctx, evs, []string{"erp"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "3 pending while paused", func() bool {
		st := statusOf(t, e, "erp")
		return st.Paused && st.Pending == 3
	})
	// A reload that restarts the worker (and updates the consumer) keeps
	// the pause.
	if err := e.Apply("cfg2", []*Destination{{Name: "erp", URL: rc.URL, Workers: 3}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the restarted worker's consumer", func() bool {
		st := statusOf(t, e, "erp")
		return st.Paused && st.Pending == 3
	})
	if n := rc.count(); n != 0 {
		t.Fatalf("%d deliveries while paused", n)
	}
	if err := e.Resume(ctx, "erp"); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	waitFor(t, 15*time.Second, "3 deliveries after resume", func() bool { return rc.count() == 3 })
	waitFor(t, 10*time.Second, "the status to settle", func() bool {
		st := statusOf(t, e, "erp")
		return !st.Paused && st.Pending == 0 && st.InFlight == 0 && st.Recent.Delivered == 3
	})
	st := statusOf(t, e, "erp")
	if st.LastStatus != 200 || st.LastOutcome != OutcomeDelivered || st.InRetry != 0 || st.NextAttempt != nil {
		t.Errorf("status = %+v", st)
	}
}

func TestStatsCountRetries(t *testing.T) {
	rc := newReceiver(t, func(int, *http.Request) (int, http.Header) { return http.StatusServiceUnavailable, nil })
	e := openEngine(t, Options{NakMaxDelay: 2 * time.Minute})
	if err := e.Apply("cfg", []*Destination{
		{Name: "short", URL: rc.URL, Retry: RetryPolicy{Schedule: []time.Duration{time.Minute}}},
		{Name: "long", URL: rc.URL, Retry: RetryPolicy{Schedule: []time.Duration{time.Hour}}},
	}); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if err := e.Enqueue(context.Background(), []event.Event{testEvent(1)}, []string{"short", "long"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "both first attempts", func() bool { return rc.count() == 2 })
	var short, long DestinationStatus
	waitFor(t, 10*time.Second, "the retries to be counted", func() bool {
		short, long = statusOf(t, e, "short"), statusOf(t, e, "long")
		return short.InRetry == 1 && long.InRetry == 1
	})
	if short.RetryWaiting != 1 || short.Scheduled != 0 || short.InFlight != 1 {
		t.Errorf("short retry: waiting %d, scheduled %d, in flight %d; want 1, 0, 1", short.RetryWaiting, short.Scheduled, short.InFlight)
	}
	if long.RetryWaiting != 0 || long.Scheduled != 1 || long.InFlight != 0 {
		t.Errorf("long retry: waiting %d, scheduled %d, in flight %d; want 0, 1, 0", long.RetryWaiting, long.Scheduled, long.InFlight)
	}
	checkNext := func(st DestinationStatus, delay time.Duration) {
		t.Helper()
		if st.NextAttempt == nil {
			t.Errorf("%s: no next attempt", st.Name)
			return
		}
		// The schedule adds up to 10% jitter; a scheduled message is
		// rounded up to the next second.
		lo, hi := before.Add(delay), time.Now().Add(delay+delay/10+2*time.Second)
		if st.NextAttempt.Before(lo) || st.NextAttempt.After(hi) {
			t.Errorf("%s: next attempt %v, want between %v and %v", st.Name, st.NextAttempt, lo, hi)
		}
	}
	checkNext(short, time.Minute)
	checkNext(long, time.Hour)
	for _, st := range []DestinationStatus{short, long} {
		if st.LastStatus != 503 || st.LastOutcome != OutcomeRetry || st.LastError != "HTTP 503 Service Unavailable" || st.Recent.Retry != 1 {
			t.Errorf("%s: last %d %q %q, recent %+v", st.Name, st.LastStatus, st.LastOutcome, st.LastError, st.Recent)
		}
	}
	all, err := e.Stats(context.Background())
	if err != nil || len(all) != 2 || all[0].Name != "long" || all[1].Name != "short" {
		t.Errorf("Stats = %+v, %v; want long and short, sorted", all, err)
	}
}

func TestReplayDestinationSince(t *testing.T) {
	rc := newReceiver(t, func(n int, _ *http.Request) (int, http.Header) {
		if n <= 2 {
			return http.StatusNotFound, nil
		}
		return http.StatusOK, nil
	})
	e := openEngine(t, Options{})
	if err := e.Apply("cfg", []*Destination{{Name: "erp", URL: rc.URL, Workers: 1}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.Enqueue(ctx, []event.Event{testEvent(1), testEvent(2)}, []string{"erp"}); err != nil {
		t.Fatal(err)
	}
	var dls []DeadLetter
	waitFor(t, 10*time.Second, "2 dead letters", func() bool { dls = deadLetters(t, e, "erp"); return len(dls) == 2 })
	if dls[0].Topic != "shipments/tracking" || dls[0].Destination != "erp" || dls[0].LastStatus != 404 || dls[0].Attempts != 1 {
		t.Errorf("dead letter = %+v", dls[0])
	}
	if st := statusOf(t, e, "erp"); st.DeadLetters != 2 || st.Recent.DeadLetter != 2 {
		t.Errorf("status: dead letters %d, recent %+v; want 2", st.DeadLetters, st.Recent)
	}
	n, err := e.ReplayDestination(ctx, "erp", time.Now().Add(time.Minute))
	if err != nil || n != 0 {
		t.Errorf("ReplayDestination(future) = %d, %v; want 0", n, err)
	}
	n, err = e.ReplayDestination(ctx, "erp", dls[0].DeadAt)
	if err != nil || n != 2 {
		t.Fatalf("ReplayDestination = %d, %v; want 2", n, err)
	}
	waitFor(t, 10*time.Second, "the replayed deliveries", func() bool { return rc.count() == 4 })
	if dls := deadLetters(t, e, "erp"); len(dls) != 0 {
		t.Errorf("%d dead letters left", len(dls))
	}
	if _, err := e.ReplayDestination(ctx, "bad name", time.Time{}); err == nil {
		t.Error("ReplayDestination accepted an invalid name")
	}
}
