package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// delivery is one message in its attempt: what the runner took from the
// queue and everything each way of finishing it needs.
type delivery struct {
	msg        jetstream.Msg
	dest       *Destination
	eventID    string
	attempt    int // this attempt's number, from 1
	firstSeen  time.Time
	seq        uint64 // stream sequence
	lane       int    // the lane of an ordered delivery; noLane otherwise
	runLog     *zap.Logger
	withFields *zap.Logger // made by log, once
	start      time.Time   // when the request went out; zero when none did
}

// attemptResult is what one delivery attempt came to.
type attemptResult struct {
	status     int
	err        error
	retryAfter time.Duration
	hasRA      bool
}

// errorText says why an attempt failed, for logs, status and dead
// letters; it never holds a response body or a credential.
func (r attemptResult) errorText() string {
	if r.err != nil {
		return r.err.Error()
	}
	return "HTTP " + strconv.Itoa(r.status) + " " + http.StatusText(r.status)
}

// refusal is an error that no retry can fix and that names its own
// dead-letter reason, such as an address guard's refusal
// (netguard.RefusedError, reason address_refused).
type refusal interface {
	error
	DeadLetterReason() string
}

// open reads a fetched message's delivery.
func (r *runner) open(msg jetstream.Msg, lane int) (*delivery, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return nil, err
	}
	hdr := msg.Headers()
	d := &delivery{
		msg:     msg,
		dest:    r.cfg(),
		attempt: headerInt(hdr, HeaderAttempts) + int(meta.NumDelivered),
		seq:     meta.Sequence.Stream,
		lane:    lane,
		eventID: hdr.Get(HeaderEvent),
	}
	d.firstSeen, err = time.Parse(time.RFC3339Nano, hdr.Get(HeaderFirstSeen))
	if err != nil {
		d.firstSeen = meta.Timestamp
	}
	if d.eventID == "" {
		d.eventID = "msg_" + strconv.FormatUint(d.seq, 10)
	}
	d.runLog = r.log
	return d, nil
}

// log is the runner's logger with the delivery's fields; made on first
// use, since most deliveries log nothing.
func (d *delivery) log() *zap.Logger {
	if d.withFields == nil {
		if d.lane == noLane {
			d.withFields = d.runLog.With(zap.String("event_id", d.eventID), zap.Int("attempt", d.attempt))
		} else {
			d.withFields = d.runLog.With(zap.String("event_id", d.eventID), zap.Int("attempt", d.attempt), zap.Int("lane", d.lane))
		}
	}
	return d.withFields
}

// handle makes one attempt for a message, of lane (noLane for the
// destination's own consumer), and settles it.
func (r *runner) handle(msg jetstream.Msg, lane int) {
	defer r.held.done(msg)
	if r.gone.isSet() {
		// The destination answered 410: keep its events stored, untried,
		// until an operator resumes it. The consumer is paused, so the
		// message stays with it.
		_ = msg.NakWithDelay(time.Second)
		return
	}
	d, err := r.open(msg, lane)
	if err != nil {
		_ = msg.Nak()
		return
	}
	r.stats.taken(d.seq)
	if lane != noLane {
		r.stats.laneTaken(lane, d.seq)
	}
	body := msg.Data()
	if d.dest.Transform != nil {
		out, err := d.dest.Transform(body)
		if err != nil {
			r.deadLetter(d, attemptResult{err: fmt.Errorf("transform: %w", err)}, ReasonTransformFailed)
			return
		}
		body = out
	}
	res := r.attempt(d, body)
	if res.err != nil && r.attemptCtx.Err() != nil {
		// The runner stopped (reload or shutdown) and its grace period
		// cut the attempt short: hand the message back at once, without
		// counting a failure against the destination.
		_ = msg.Nak()
		return
	}
	r.settle(d, res)
}

// settle decides what an attempt's result means and finishes the
// delivery that way.
func (r *runner) settle(d *delivery, res attemptResult) {
	outcome := d.dest.Retry.classify(res.status)
	var refused refusal
	if res.err != nil {
		outcome = OutcomeRetry
		if errors.As(res.err, &refused) {
			// Trying again reaches the same refusal.
			outcome = OutcomeDeadLetter
		}
	}
	if d.runLog.Core().Enabled(zap.DebugLevel) {
		d.log().Debug("delivery attempt",
			zap.Int("status", res.status),
			zap.Stringer("outcome", outcome),
			zap.Duration("took", time.Since(d.start)),
			zap.NamedError("error", res.err))
	}
	switch outcome {
	case OutcomeDelivered:
		if d.lane == noLane {
			r.breaker.success()
		}
		r.delivered(d, res)
	case OutcomeDeadLetter:
		if d.lane == noLane {
			r.breaker.success()
		}
		if refused != nil {
			r.deadLetter(d, res, DeadLetterReason(refused.DeadLetterReason()))
			return
		}
		if res.status == http.StatusGone {
			r.deadLetter(d, res, ReasonGone)
			r.markGone(d.log())
			return
		}
		r.deadLetter(d, res, ReasonPermanentFailure)
	case OutcomeRetry:
		if d.lane == noLane {
			// Lanes stay out of the circuit: each tries only its head,
			// once per step of its retry schedule, which is all the
			// holding back a failing destination needs, and failing
			// keys must not hold back the lanes that flow.
			r.breaker.failure()
		}
		delay, ok := d.dest.Retry.nextDelay(d.attempt, d.firstSeen, time.Now(), res.retryAfter, res.hasRA)
		if !ok {
			r.deadLetter(d, res, ReasonMaxAge)
			return
		}
		r.retry(d, res, delay)
	}
}

// observe records a finished attempt in the destination's status and
// tells the Observer.
func (r *runner) observe(d *delivery, o Outcome, res attemptResult) {
	var took time.Duration
	if !d.start.IsZero() {
		took = time.Since(d.start)
	}
	r.stats.record(o, res.status, res.errorText())
	if r.e.obs != nil {
		r.e.obs.Attempt(d.dest.Name, o, took)
	}
}

// delivered acknowledges a delivered message.
func (r *runner) delivered(d *delivery, res attemptResult) {
	r.observe(d, OutcomeDelivered, res)
	if err := d.msg.Ack(); err != nil {
		d.log().Debug("ack failed; the message may be delivered again", zap.Error(err))
	}
	if d.lane != noLane {
		r.stats.unblock(d.lane)
	}
}

// retry puts the message back for another attempt after delay: short
// delays stay in the consumer (NakWithDelay), long ones are parked as a
// scheduled message and the original acknowledged.
func (r *runner) retry(d *delivery, res attemptResult, delay time.Duration) {
	r.observe(d, OutcomeRetry, res)
	if d.lane != noLane {
		r.laneRetry(d, delay)
		return
	}
	if delay <= r.e.nakMax {
		if err := d.msg.NakWithDelay(delay); err != nil {
			d.log().Debug("nak failed; the message comes back after its ack wait", zap.Error(err))
		} else {
			r.stats.retryingAt(d.seq, time.Now().Add(delay))
		}
		return
	}
	at := time.Now().Add(delay).Truncate(time.Second).Add(time.Second)
	ctx, cancel := context.WithTimeout(r.attemptCtx, 10*time.Second)
	defer cancel()
	if err := r.store.scheduleRetry(ctx, d.dest.Name, d.eventID, d.attempt, d.firstSeen, at, d.msg.Data()); err != nil {
		// Keep it in the consumer rather than lose it.
		d.log().Warn("scheduling a retry failed; keeping the message in the consumer", zap.Error(err))
		_ = d.msg.NakWithDelay(min(delay, r.e.nakMax))
		return
	}
	if err := d.msg.Ack(); err != nil {
		d.log().Debug("ack after scheduling failed; a duplicate attempt may follow", zap.Error(err))
	}
	d.log().Debug("retry scheduled", zap.Time("at", at))
}

// deadLetter moves the message to the dead letters with its last status
// and error, then acknowledges the original. When the dead letter cannot
// be stored, the message stays queued and is tried again in a minute.
func (r *runner) deadLetter(d *delivery, res attemptResult, reason DeadLetterReason) {
	r.observe(d, OutcomeDeadLetter, res)
	rec := deadRecord{
		dest:      d.dest.Name,
		eventID:   d.eventID,
		attempts:  d.attempt,
		firstSeen: d.firstSeen,
		status:    res.status,
		lastError: res.errorText(),
		reason:    reason,
	}
	if len(rec.lastError) > maxLastError {
		rec.lastError = rec.lastError[:maxLastError]
	}
	ctx, cancel := context.WithTimeout(r.attemptCtx, 10*time.Second)
	defer cancel()
	if err := r.store.storeDeadLetter(ctx, rec, d.msg.Data(), r.e.deadLettersDropped); err != nil {
		d.log().Warn("storing a dead letter failed; retrying the message later", zap.Error(err))
		_ = d.msg.NakWithDelay(time.Minute)
		return
	}
	if err := d.msg.Ack(); err != nil {
		d.log().Debug("ack after dead-lettering failed", zap.Error(err))
	}
	if d.lane != noLane {
		r.stats.unblock(d.lane)
	}
	d.log().Warn("delivery dead-lettered",
		zap.String("reason", string(reason)),
		zap.Int("last_status", rec.status),
		zap.String("last_error", rec.lastError))
}

// attempt POSTs body to the destination once (twice when an OAuth token
// was refused with 401 and a fresh one may help).
func (r *runner) attempt(d *delivery, body []byte) attemptResult {
	ctx, cancel := context.WithTimeout(r.attemptCtx, d.dest.Timeout)
	defer cancel()
	d.start = time.Now()
	res, req := r.send(ctx, d, body)
	if res.status == http.StatusUnauthorized && req != nil && d.dest.Auth != nil && d.dest.Auth.Reject(req) {
		res, _ = r.send(ctx, d, body)
	}
	return res
}

// send makes one request; it returns the request when one was sent.
func (r *runner) send(ctx context.Context, d *delivery, body []byte) (attemptResult, *http.Request) {
	now := time.Now()
	req, err := d.dest.NewRequest(ctx, d.eventID, body, now)
	if err != nil {
		return attemptResult{err: err}, nil
	}
	client := r.e.client
	if d.dest.Client != nil {
		client = d.dest.Client
	}
	resp, err := client.Do(req)
	if err != nil {
		return attemptResult{err: RedactURLError(err)}, req
	}
	// Drain a little so the connection can be reused; never keep or log
	// the body.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
	res := attemptResult{status: resp.StatusCode}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		res.retryAfter, res.hasRA = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	return res, req
}
