package relay

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookrelay/hookrelay/relay/event"
)

// enqueueWithin runs Enqueue and fails the test if it does not return
// within d: an Enqueue that waits for an acknowledgement that never comes
// must not pass for one that returned an error.
func enqueueWithin(t *testing.T, d time.Duration, e *Engine, evs []event.Event, dests []string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- e.Enqueue(context.Background(), evs, dests) }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("Enqueue did not return within %v", d)
		return nil
	}
}

// secondConn is a JetStream connection of its own to the engine's
// embedded server, as an operator's would be.
func secondConn(t *testing.T, e *Engine) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(e.q.srv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// Enqueue returns only once JetStream acknowledged every message: what it
// accepted is in the stream when it returns, and a publish that is not
// acknowledged is ErrUnavailable, never a success.
func TestEnqueueWaitsForTheAcks(t *testing.T) {
	e := openEngine(t, Options{})
	ctx := context.Background()
	js := secondConn(t, e)

	evs := []event.Event{testEvent(1), testEvent(2), testEvent(3)}
	dests := []string{"erp", "wms"}
	if err := enqueueWithin(t, 10*time.Second, e, evs, dests); err != nil {
		t.Fatalf("Enqueue on a healthy queue: %v", err)
	}
	s, err := js.Stream(ctx, StreamOut)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != uint64(len(evs)*len(dests)) {
		t.Errorf("stored messages right after Enqueue = %d, want %d", n, len(evs)*len(dests))
	}

	// Without the stream a publish reaches no one: JetStream never
	// acknowledges it.
	if err := js.DeleteStream(ctx, StreamOut); err != nil {
		t.Fatal(err)
	}
	err = enqueueWithin(t, 10*time.Second, e, []event.Event{testEvent(4)}, dests)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Enqueue with the stream gone = %v, want ErrUnavailable", err)
	}
	if errors.Is(err, ErrFull) {
		t.Errorf("Enqueue with the stream gone = %v, want ErrUnavailable but not ErrFull", err)
	}
}

func TestEnqueueNothing(t *testing.T) {
	e := openEngine(t, Options{})
	js := secondConn(t, e)
	if err := js.DeleteStream(context.Background(), StreamOut); err != nil {
		t.Fatal(err)
	}
	// Nothing to store: no publish, so nothing can fail.
	if err := e.Enqueue(context.Background(), nil, []string{"erp"}); err != nil {
		t.Errorf("Enqueue of no events: %v", err)
	}
	if err := e.Enqueue(context.Background(), []event.Event{testEvent(1)}, nil); err != nil {
		t.Errorf("Enqueue to no destinations: %v", err)
	}
}
