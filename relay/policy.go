package relay

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// DefaultSchedule is the default retry schedule: the delay
// after the 1st, 2nd, ... failed attempt. The last step repeats.
var DefaultSchedule = []time.Duration{
	time.Minute, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 24 * time.Hour,
}

// DefaultMaxAge is how long an event is retried before it is dead-lettered.
const DefaultMaxAge = 30 * 24 * time.Hour

// RetryPolicy says when a failed delivery is tried again.
type RetryPolicy struct {
	// Schedule is the delay after each failed attempt; the last step
	// repeats. Empty means DefaultSchedule.
	Schedule []time.Duration
	// MaxAge is how long after an event was first stored it may still be
	// retried; 0 means DefaultMaxAge.
	MaxAge time.Duration
	// RetryOn4xx retries 4xx answers other than 408, 410, 425 and 429
	// instead of dead-lettering them at once.
	RetryOn4xx bool
}

// Validate checks the policy: its delays must be positive and its max age
// not negative. Its errors wrap ErrNegative.
func (p RetryPolicy) Validate() error {
	for _, d := range p.Schedule {
		if d <= 0 {
			return fmt.Errorf("retry delay %s: %w", d, ErrNegative)
		}
	}
	if p.MaxAge < 0 {
		return fmt.Errorf("retry max age %s: %w", p.MaxAge, ErrNegative)
	}
	return nil
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if len(p.Schedule) == 0 {
		p.Schedule = DefaultSchedule
	}
	if p.MaxAge <= 0 {
		p.MaxAge = DefaultMaxAge
	}
	return p
}

// Delay is the scheduled wait after the n-th failed attempt (n >= 1),
// before jitter.
func (p RetryPolicy) Delay(n int) time.Duration {
	s := p.withDefaults().Schedule
	if n < 1 {
		n = 1
	}
	if n > len(s) {
		n = len(s)
	}
	return s[n-1]
}

// jitter adds up to 10% to d, so that retries of a burst spread out; it
// never shortens the scheduled delay.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d + time.Duration(rand.Int64N(int64(d)/10+1))
}

// Outcome is how one delivery attempt ended. Its text form
// ("delivered", "retry", "dead_letter") is what logs, metrics and the
// JSON of the admin API show; the zero Outcome is no attempt.
type Outcome int

const (
	// OutcomeDelivered: the destination answered 2xx.
	OutcomeDelivered Outcome = iota + 1
	// OutcomeRetry: a transient failure; try again later.
	OutcomeRetry
	// OutcomeDeadLetter: a permanent failure, or retries exhausted; the
	// message moves to the dead letters.
	OutcomeDeadLetter
)

var outcomeText = [...]string{"", "delivered", "retry", "dead_letter"}

func (o Outcome) String() string {
	if o < 0 || int(o) >= len(outcomeText) {
		return "outcome(" + strconv.Itoa(int(o)) + ")"
	}
	return outcomeText[o]
}

// MarshalText writes the outcome's text form.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText reads an outcome's text form; "" is the zero Outcome.
func (o *Outcome) UnmarshalText(b []byte) error {
	for i, t := range outcomeText {
		if string(b) == t {
			*o = Outcome(i)
			return nil
		}
	}
	return fmt.Errorf("unknown delivery outcome %q", b)
}

// DeadLetterReason says why a message was dead-lettered.
type DeadLetterReason string

const (
	// ReasonPermanentFailure: the destination answered a 4xx that is not
	// retried.
	ReasonPermanentFailure DeadLetterReason = "permanent_failure"
	// ReasonGone: the destination answered 410 Gone; it is paused too.
	ReasonGone DeadLetterReason = "gone"
	// ReasonMaxAge: retries ran past the retry policy's max age.
	ReasonMaxAge DeadLetterReason = "max_age"
	// ReasonTransformFailed: the destination's transform failed on the
	// event, which no retry can change.
	ReasonTransformFailed DeadLetterReason = "transform_failed"
	// ReasonAddressRefused: the destination's address (or its login
	// address) resolved to an address its guard refuses, such as a
	// loopback or private one; no connection was made. Only webhooks
	// registered over the API are guarded.
	ReasonAddressRefused DeadLetterReason = "address_refused"
)

// classify maps an HTTP status to an outcome. A status of 0 means no
// answer (connection error, timeout) and is retried.
func (p RetryPolicy) classify(status int) Outcome {
	switch {
	case status >= 200 && status < 300:
		return OutcomeDelivered
	case status == 0, status == http.StatusRequestTimeout, status == http.StatusTooEarly,
		status == http.StatusTooManyRequests, status >= 500:
		return OutcomeRetry
	case status == http.StatusGone:
		return OutcomeDeadLetter
	case status >= 400 && status < 500:
		if p.RetryOn4xx {
			return OutcomeRetry
		}
		return OutcomeDeadLetter
	default:
		// 1xx or 3xx: redirects are not followed; a failure, retried.
		return OutcomeRetry
	}
}

// parseRetryAfter reads a Retry-After header: delta-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > 365*24*3600 {
			secs = 365 * 24 * 3600
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

// nextDelay decides the wait before the next attempt after the n-th
// failure of an event first stored at firstSeen. It reports false when the
// event must leave the retry queue because it reached its max age.
// A Retry-After (already parsed, ok=true) is a floor, capped by the
// remaining age.
func (p RetryPolicy) nextDelay(n int, firstSeen, now time.Time, retryAfter time.Duration, hasRetryAfter bool) (time.Duration, bool) {
	p = p.withDefaults()
	remaining := firstSeen.Add(p.MaxAge).Sub(now)
	if remaining <= 0 {
		return 0, false
	}
	d := jitter(p.Delay(n))
	if hasRetryAfter && retryAfter > d {
		d = retryAfter
		if d > remaining {
			d = remaining
		}
		return d, true
	}
	if d > remaining {
		return 0, false
	}
	return d, true
}
