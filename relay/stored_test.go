package relay

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookrelay/hookrelay/relay/event"
)

// A new delivery is stored as the event's json.Marshal form, with its
// event id, when it was first seen and its message id (the dedupe key),
// and no attempt count, which reads as none made.
func TestNewDeliveryStoredForm(t *testing.T) {
	e := openEngine(t, Options{})
	ctx := context.Background()
	js := secondConn(t, e)
	ev := testEvent(1)
	ev.Tenant = "acme"
	ev.Data = json.RawMessage("{ \"note\" : \"<b>&\u2028</b>\",\n \"n\": [1, 2] }")
	other := testEvent(2)
	before := time.Now()
	if err := e.EnqueueEach(ctx, []event.Event{ev, other}, [][]string{{"erp", "wms"}, {"erp"}}); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	s, err := js.Stream(ctx, StreamOut)
	if err != nil {
		t.Fatal(err)
	}
	type stored struct{ subject, msgID string }
	want := []struct {
		stored
		ev *event.Event
	}{
		{stored{outSubject("erp"), ev.ID + ".erp"}, &ev},
		{stored{outSubject("wms"), ev.ID + ".wms"}, &ev},
		{stored{outSubject("erp"), other.ID + ".erp"}, &other},
	}
	for i, w := range want {
		m, err := s.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(w.ev)
		if m.Subject != w.subject || string(m.Data) != string(body) {
			t.Errorf("message %d: %s %s, want %s %s", i+1, m.Subject, m.Data, w.subject, body)
		}
		h := m.Header
		if got := h.Get(jetstream.MsgIDHeader); got != w.msgID {
			t.Errorf("message %d: message id %q, want %q", i+1, got, w.msgID)
		}
		if got := h.Get(HeaderEvent); got != w.ev.ID {
			t.Errorf("message %d: event id %q, want %q", i+1, got, w.ev.ID)
		}
		seen, err := time.Parse(time.RFC3339Nano, h.Get(HeaderFirstSeen))
		if err != nil || seen.Before(before.Truncate(time.Microsecond)) || seen.After(after) {
			t.Errorf("message %d: first seen %q (%v), want between %v and %v", i+1, h.Get(HeaderFirstSeen), err, before, after)
		}
		if vs, ok := h[HeaderAttempts]; ok {
			t.Errorf("message %d: attempts header %q, want none", i+1, vs)
		}
		if len(h) != 3 {
			t.Errorf("message %d: headers %v, want 3", i+1, h)
		}
	}
}

// Without an attempt count on new deliveries the attempts are numbered
// from 1, through retries kept in the consumer, a retry parked as a
// scheduled message and the dead letter; the retry budget starts when the
// event was enqueued; every attempt carries the event id as its
// webhook-id; and a replay starts over at attempt 1 with a fresh budget.
func TestAttemptsWithoutStoredCount(t *testing.T) {
	rc := newReceiver(t, func(n int, _ *http.Request) (int, http.Header) {
		if n <= 3 {
			return http.StatusInternalServerError, nil
		}
		return http.StatusBadRequest, nil
	})
	// Delays above 100ms are parked as scheduled messages.
	e := openEngine(t, Options{NakMaxDelay: 100 * time.Millisecond})
	policy := RetryPolicy{Schedule: []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 1500 * time.Millisecond}, MaxAge: time.Hour}
	if err := e.Apply("cfg", []*Destination{{Name: "erp", URL: rc.URL, Retry: policy}}); err != nil {
		t.Fatal(err)
	}
	ev := testEvent(3)
	before := time.Now()
	if err := e.Enqueue(context.Background(), []event.Event{ev}, []string{"erp"}); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	var dls []DeadLetter
	waitFor(t, 15*time.Second, "the dead letter", func() bool { dls = deadLetters(t, e, "erp"); return len(dls) == 1 })
	dl := dls[0]
	if dl.Attempts != 4 || rc.count() != 4 || dl.Reason != ReasonPermanentFailure || dl.EventID != ev.ID {
		t.Errorf("dead letter %+v after %d attempts; want the 4th attempt's", dl, rc.count())
	}
	if dl.FirstSeen.Before(before.Truncate(time.Microsecond)) || dl.FirstSeen.After(after) {
		t.Errorf("first seen %v, want between %v and %v: the budget starts at the enqueue", dl.FirstSeen, before, after)
	}
	got := rc.got()
	if gap := got[3].at.Sub(got[2].at); gap < policy.Schedule[2] {
		t.Errorf("the 4th attempt came %v after the 3rd, before its scheduled retry", gap)
	}
	for i, a := range got {
		if a.header.Get("webhook-id") != ev.ID || string(a.body) != string(got[0].body) {
			t.Errorf("attempt %d: webhook-id %q, body %s", i+1, a.header.Get("webhook-id"), a.body)
		}
	}

	replayed := time.Now()
	if n, err := e.Replay(context.Background(), []uint64{dl.Seq}); err != nil || n != 1 {
		t.Fatalf("Replay = %d, %v", n, err)
	}
	waitFor(t, 15*time.Second, "the replay's dead letter", func() bool { dls = deadLetters(t, e, "erp"); return len(dls) == 1 && dls[0].Seq != dl.Seq })
	if dl := dls[0]; dl.Attempts != 1 || rc.count() != 5 || dl.FirstSeen.Before(replayed.Truncate(time.Microsecond)) {
		t.Errorf("replay's dead letter %+v after %d attempts; want attempt 1, first seen after %v", dl, rc.count(), replayed)
	}
}
