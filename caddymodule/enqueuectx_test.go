package caddymodule

import (
	"context"
	"errors"
	"testing"
	"time"
)

type enqueueCtxKey struct{}

// An enqueue context carries the request's values, is not cancelled with
// the request, and is done with DeadlineExceeded once its time passes.
func TestEnqueueContext(t *testing.T) {
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), enqueueCtxKey{}, "v"))
	start := time.Now()
	ctx := newEnqueueContext(parent, 50*time.Millisecond)
	cancel()
	if ctx.Value(enqueueCtxKey{}) != "v" {
		t.Error("the request's value is lost")
	}
	if d, ok := ctx.Deadline(); !ok || d.Before(start.Add(50*time.Millisecond)) || d.After(time.Now().Add(50*time.Millisecond)) {
		t.Errorf("deadline %v, %v", d, ok)
	}
	select {
	case <-ctx.Done():
		t.Fatal("done when the request was cancelled")
	case <-time.After(20 * time.Millisecond):
	}
	if ctx.Err() != nil {
		t.Errorf("Err = %v before the deadline", ctx.Err())
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("not done after its timeout")
	}
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("done after %v, before its timeout", took)
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("Err = %v, want DeadlineExceeded", ctx.Err())
	}
	ctx.release()

	// The next one starts afresh, never with a closed done channel.
	next := newEnqueueContext(context.Background(), time.Hour)
	defer next.release()
	if next.Err() != nil {
		t.Errorf("a new enqueue context is done: %v", next.Err())
	}
}

// Released enqueue contexts whose time did not run out are used again,
// each time for its full timeout.
func TestEnqueueContextReuse(t *testing.T) {
	for range 3 {
		ctx := newEnqueueContext(context.Background(), 30*time.Millisecond)
		time.Sleep(10 * time.Millisecond)
		ctx.release()
	}
	ctx := newEnqueueContext(context.Background(), 30*time.Millisecond)
	time.Sleep(15 * time.Millisecond)
	if ctx.Err() != nil {
		t.Fatal("an enqueue context used again is done before its own timeout")
	}
	<-ctx.Done()
	ctx.release()
	n := testing.AllocsPerRun(100, func() { newEnqueueContext(context.Background(), time.Minute).release() })
	if n > 0 && !raceEnabled {
		t.Errorf("an enqueue context allocates %v times", n)
	}
}
