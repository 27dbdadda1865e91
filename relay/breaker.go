package relay

import (
	"sync/atomic"
	"time"
)

// breakerThreshold is how many consecutive failed attempts open a
// destination's circuit.
const breakerThreshold = 5

// Bounds of the circuit's cool-down: the first is the destination's first
// retry delay held between these, and each later one doubles up to the
// most.
const (
	breakerMinCooldown = 10 * time.Millisecond
	breakerFirstMax    = 30 * time.Second
	breakerMaxCooldown = 5 * time.Minute
)

// breaker is a destination's circuit breaker, on this node. After
// breakerThreshold failed attempts in a row it opens: the destination's
// puller stops fetching for a cool-down instead of trying (and handing
// back) every waiting message. Then one batch goes through as a probe;
// one more failure opens it again for twice as long, a success closes it.
//
// Attempts call success and failure from any goroutine; next and probe
// belong to the puller's goroutine.
type breaker struct {
	failures atomic.Int64 // consecutive failed attempts
	cooldown time.Duration
}

// breakerChange is what next reports for the log.
type breakerChange int

const (
	breakerSame breakerChange = iota
	breakerOpened
	breakerRecovered
)

func (b *breaker) success() { b.failures.Store(0) }
func (b *breaker) failure() { b.failures.Add(1) }

// isOpen reports whether the circuit holds fetches back.
func (b *breaker) isOpen() bool { return b.failures.Load() >= breakerThreshold }

// next returns how long the puller waits before its next fetch: 0 while
// the circuit is closed. firstDelay is the destination's first retry
// delay, the first cool-down's base.
func (b *breaker) next(firstDelay time.Duration) (time.Duration, breakerChange) {
	if !b.isOpen() {
		if b.cooldown != 0 && b.failures.Load() == 0 {
			b.cooldown = 0
			return 0, breakerRecovered
		}
		return 0, breakerSame
	}
	change := breakerSame
	if b.cooldown == 0 {
		b.cooldown = min(max(firstDelay, breakerMinCooldown), breakerFirstMax)
		change = breakerOpened
	}
	wait := b.cooldown
	b.cooldown = min(2*b.cooldown, breakerMaxCooldown)
	return wait, change
}

// probe lets one batch through after a cool-down: one more failure opens
// the circuit again.
func (b *breaker) probe() { b.failures.Store(breakerThreshold - 1) }
