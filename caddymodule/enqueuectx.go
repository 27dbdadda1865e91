package caddymodule

import (
	"context"
	"sync"
	"time"
)

// enqueueTimeout bounds how long hook_relay waits for a request's events to
// be stored.
const enqueueTimeout = 10 * time.Second

// enqueueContext is the context a request's events are stored under:
// context.WithTimeout(context.WithoutCancel(r.Context()), timeout), the
// request's values without its cancellation (what is published must be
// waited for, even when the sender hangs up), done once the timeout
// passes. Unlike that, it costs no allocation per request: a context
// whose time did not run out is used again once released.
type enqueueContext struct {
	values   context.Context
	deadline time.Time
	done     chan struct{} // closed when the time runs out
	timer    *time.Timer   // closes done
}

var enqueueContexts sync.Pool // *enqueueContext, stopped

// newEnqueueContext returns a context with the values of values, done
// after timeout. Release it once done with it.
func newEnqueueContext(values context.Context, timeout time.Duration) *enqueueContext {
	deadline := time.Now().Add(timeout)
	c, _ := enqueueContexts.Get().(*enqueueContext)
	if c == nil {
		c = &enqueueContext{done: make(chan struct{})}
		done := c.done
		c.timer = time.AfterFunc(timeout, func() { close(done) })
	} else {
		c.timer.Reset(timeout)
	}
	c.values, c.deadline = values, deadline
	return c
}

// release ends the use of c, which must not be used after. It is used
// again unless its time ran out (its done channel is closed for good).
func (c *enqueueContext) release() {
	c.values = nil
	if c.timer.Stop() {
		enqueueContexts.Put(c)
	}
}

func (c *enqueueContext) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *enqueueContext) Done() <-chan struct{}       { return c.done }
func (c *enqueueContext) Value(key any) any           { return c.values.Value(key) }

func (c *enqueueContext) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}
