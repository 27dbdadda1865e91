package relay

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookrelay/hookrelay/relay/event"
)

// settled waits until nothing of dest is pending or in flight.
func settled(t *testing.T, e *Engine, dest string) DestinationStatus {
	t.Helper()
	var st DestinationStatus
	waitFor(t, 15*time.Second, dest+" to settle", func() bool {
		st = statusOf(t, e, dest)
		return st.Pending == 0 && st.InFlight == 0
	})
	return st
}

func TestGoneDestinationIsPausedAndKeepsLaterEvents(t *testing.T) {
	var gone atomic.Bool
	gone.Store(true)
	rc := newReceiver(t, func(int, *http.Request) (int, http.Header) {
		if gone.Load() {
			return http.StatusGone, nil
		}
		return http.StatusOK, nil
	})
	e := openEngine(t, Options{})
	if err := e.Apply("cfg", []*Destination{{Name: "app", URL: rc.URL, Workers: 1}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.Enqueue(ctx, []event.Event{testEvent(1)}, []string{"app"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the 410 to be dead-lettered", func() bool { return len(deadLetters(t, e, "app")) == 1 })
	if dl := deadLetters(t, e, "app")[0]; dl.Reason != "gone" || dl.LastStatus != http.StatusGone {
		t.Errorf("dead letter = %+v, want reason gone, status 410", dl)
	}
	var st DestinationStatus
	waitFor(t, 10*time.Second, "the destination to be marked gone and paused", func() bool {
		st = statusOf(t, e, "app")
		return st.Gone && st.Paused
	})
	if st.GoneSince == nil {
		t.Error("gone without a gone_since")
	}
	// Later events stay stored and are not attempted.
	if err := e.Enqueue(ctx, []event.Event{testEvent(2), testEvent(3), testEvent(4)}, []string{"app"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "3 events waiting", func() bool { return statusOf(t, e, "app").Depth() == 3 })
	time.Sleep(300 * time.Millisecond) // a worker that ignored the mark would have tried by now
	if n := rc.count(); n != 1 {
		t.Fatalf("%d attempts, want only the one that got 410", n)
	}
	// A reload that restarts the worker keeps the mark.
	if err := e.Apply("cfg2", []*Destination{{Name: "app", URL: rc.URL, Workers: 2}}); err != nil {
		t.Fatal(err)
	}
	if st := statusOf(t, e, "app"); !st.Gone || !st.Paused {
		t.Fatalf("after a reload: gone %v, paused %v", st.Gone, st.Paused)
	}
	gone.Store(false)
	if err := e.Resume(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the 3 waiting events to be delivered", func() bool { return rc.count() == 4 })
	st = settled(t, e, "app")
	if st.Gone || st.Paused || st.GoneSince != nil {
		t.Errorf("after resume: gone %v, paused %v, since %v", st.Gone, st.Paused, st.GoneSince)
	}
	if n := len(deadLetters(t, e, "app")); n != 1 {
		t.Errorf("%d dead letters, want 1", n)
	}
}

// A reload that restarts a worker lets its attempt under way finish
// instead of cancelling it, which would make the attempt twice.
func TestStoppedWorkerFinishesItsAttempt(t *testing.T) {
	started := make(chan struct{}, 1)
	rc := newReceiver(t, func(n int, _ *http.Request) (int, http.Header) {
		if n == 1 {
			started <- struct{}{}
			time.Sleep(1500 * time.Millisecond)
		}
		return http.StatusOK, nil
	})
	e := openEngine(t, Options{})
	if err := e.Apply("cfg", []*Destination{{Name: "app", URL: rc.URL, Workers: 1, Timeout: 5 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Enqueue(context.Background(), []event.Event{testEvent(1)}, []string{"app"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt")
	}
	// Different workers: the running worker is stopped and replaced.
	if err := e.Apply("cfg2", []*Destination{{Name: "app", URL: rc.URL, Workers: 4, Timeout: 5 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	st := settled(t, e, "app")
	if n := rc.count(); n != 1 {
		t.Errorf("%d attempts, want 1: the stopped worker's attempt was cut short and made again", n)
	}
	if st.Recent.Delivered != 1 || st.Recent.Retry != 0 {
		t.Errorf("recent = %+v, want one delivery", st.Recent)
	}
}

// A runner that stops hands back at once the messages it fetched and did
// not start: the next runner has them without waiting for their AckWait,
// and none is attempted twice.
func TestStoppedRunnerHandsBackWhatItHeld(t *testing.T) {
	var hung atomic.Int32
	rc := newReceiver(t, func(n int, _ *http.Request) (int, http.Header) {
		if hung.Add(1) <= 2 {
			time.Sleep(time.Second) // both workers busy; the others wait
		}
		return http.StatusOK, nil
	})
	e := openEngine(t, Options{}) // the default AckWait, 6s
	if err := e.Apply("cfg", []*Destination{{Name: "app", URL: rc.URL, Workers: 2, Timeout: 5 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	var evs []event.Event
	for i := range 6 {
		evs = append(evs, testEvent(i))
	}
	if err := e.Enqueue(context.Background(), evs, []string{"app"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "two attempts under way", func() bool { return hung.Load() >= 2 })
	time.Sleep(100 * time.Millisecond) // the puller fetches the others meanwhile
	stopped := time.Now()
	// Other workers: the runner is stopped and replaced.
	if err := e.Apply("cfg2", []*Destination{{Name: "app", URL: rc.URL, Workers: 3, Timeout: 5 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "every event", func() bool { return rc.count() >= len(evs) })
	if took := time.Since(stopped); took > 4*time.Second {
		t.Errorf("the last event came %v after the stop: what the runner held waited for its AckWait", took)
	}
	settled(t, e, "app")
	seen := map[string]int{}
	for _, r := range rc.got() {
		seen[r.header.Get("webhook-id")]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s attempted %d times", id, n)
		}
	}
	if len(seen) != len(evs) {
		t.Errorf("%d events delivered, want %d", len(seen), len(evs))
	}
}

// An attempt that takes longer than the AckWait is not handed out again:
// the worker's heartbeat keeps it.
func TestLongAttemptIsNotHandedOutTwice(t *testing.T) {
	rc := newReceiver(t, func(n int, _ *http.Request) (int, http.Header) {
		time.Sleep(2500 * time.Millisecond)
		return http.StatusOK, nil
	})
	e := openEngine(t, Options{AckWait: 600 * time.Millisecond})
	if err := e.Apply("cfg", []*Destination{{Name: "app", URL: rc.URL, Workers: 2, Timeout: 10 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	// The second event waits for a free worker longer than the AckWait too.
	if err := e.Enqueue(context.Background(), []event.Event{testEvent(1), testEvent(2), testEvent(3)}, []string{"app"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "3 attempts", func() bool { return rc.count() >= 3 })
	st := settled(t, e, "app")
	if n := rc.count(); n != 3 {
		t.Errorf("%d attempts for 3 events: held messages were handed out again", n)
	}
	if st.Redelivered != 0 || st.Recent.Delivered != 3 {
		t.Errorf("status = %+v", st)
	}
}

// A message handed to a node that then dies comes back within about the
// AckWait, not minutes later. The dead node is a JetStream connection
// that fetched and then vanished.
func TestMessagesOfADeadNodeComeBackQuickly(t *testing.T) {
	rc := newReceiver(t, nil)
	e := openEngine(t, Options{AckWait: time.Second})
	ctx := context.Background()
	var evs []event.Event
	for i := range 20 {
		evs = append(evs, testEvent(i))
	}
	if err := e.Enqueue(ctx, evs, []string{"app"}); err != nil {
		t.Fatal(err)
	}
	// The "dead node": another connection opens the destination's
	// consumer as a node would, takes every message and vanishes.
	dest := &Destination{Name: "app", URL: rc.URL}
	nc, err := nats.Connect("", nats.InProcessServer(e.q.srv))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	cons, err := js.CreateOrUpdateConsumer(ctx, StreamOut, newRunner(e, dest.withDefaults()).consumerSettings().config())
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(20, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range batch.Messages() {
		n++
	}
	nc.Close()
	if n != 20 {
		t.Fatalf("the dead node took %d messages, want 20", n)
	}
	died := time.Now()
	if err := e.Apply("cfg", []*Destination{dest}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "every event to be delivered", func() bool { return rc.count() >= 20 })
	t.Logf("20 messages held by a dead node delivered %v after it died (AckWait 1s)", time.Since(died).Round(time.Millisecond))
}

// BenchmarkStatusWithParkedRetries measures a status call (what the admin
// API, the status page and every metrics scrape make) with 0 and with
// 200,000 retries parked as scheduled messages.
//
//	go test -run '^$' -bench StatusWithParkedRetries -benchtime 20x ./relay/
func BenchmarkStatusWithParkedRetries(b *testing.B) {
	for _, parked := range []int{0, 200_000} {
		b.Run("parked="+strconv.Itoa(parked), func(b *testing.B) {
			e, err := Open(Options{Queue: QueueConfig{Dir: b.TempDir()}})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			if err := e.Apply("cfg", []*Destination{{Name: "app", URL: "http://127.0.0.1:1/"}}); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			at := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
			for i := 0; i < parked; i++ {
				id := event.NewID("bench", strconv.Itoa(i))
				m := &nats.Msg{
					Subject: subjectSchedule + "app." + id,
					Header: nats.Header{
						HeaderEvent:                    {id},
						jetstream.ScheduleHeader:       {"@at " + at},
						jetstream.ScheduleTargetHeader: {outSubject("app")},
					},
					Data: []byte(`{"n":1}`),
				}
				if _, err := e.q.js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-e.q.js.PublishAsyncComplete():
			case <-time.After(2 * time.Minute):
				b.Fatal("parking timed out")
			}
			var st DestinationStatus
			deadline := time.Now().Add(time.Minute)
			for {
				all, err := e.Stats(ctx)
				if err != nil {
					b.Fatal(err)
				}
				st = all[0]
				if st.Scheduled == uint64(parked) || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if st.Scheduled != uint64(parked) {
				b.Fatalf("scheduled = %d, want %d", st.Scheduled, parked)
			}
			b.Run("status", func(b *testing.B) {
				for b.Loop() {
					if _, err := e.Stats(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
			// How the status counted parked retries before: the stream's
			// per-subject counts, one subject per parked retry.
			b.Run("per-subject-count", func(b *testing.B) {
				for b.Loop() {
					s, err := e.q.js.Stream(ctx, StreamOut)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := s.Info(ctx, jetstream.WithSubjectFilter(subjectSchedule+">")); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
