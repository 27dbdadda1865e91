package relay

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// breakerThreshold is how many consecutive failed attempts open a
// destination's circuit: it then stops pulling messages for a cool-down
// instead of trying (and re-queueing) every waiting message.
const breakerThreshold = 5

// destWorker pulls one destination's messages and delivers them.
type destWorker struct {
	e    *Engine
	name string
	log  *zap.Logger
	dest atomic.Pointer[Destination]

	// ctx ends pulling; attemptCtx ends attempts under way. Stopping a
	// worker ends pulling at once and gives its attempts a grace period
	// before cancelling them, since a cancelled attempt is made again.
	ctx           context.Context
	cancel        context.CancelFunc
	attemptCtx    context.Context
	cancelAttempt context.CancelFunc
	wg            sync.WaitGroup

	failures atomic.Int64 // consecutive failed attempts
	held     heldMsgs
	gone     goneMark
}

func newDestWorker(e *Engine, d *Destination) *destWorker {
	ctx, cancel := context.WithCancel(e.ctx)
	actx, acancel := context.WithCancel(e.ctx)
	w := &destWorker{
		e:             e,
		name:          d.Name,
		log:           e.log.Named("delivery").With(zap.String("destination", d.Name)),
		ctx:           ctx,
		cancel:        cancel,
		attemptCtx:    actx,
		cancelAttempt: acancel,
	}
	w.held.m = make(map[jetstream.Msg]struct{})
	w.dest.Store(d)
	return w
}

func (w *destWorker) cfg() *Destination     { return w.dest.Load() }
func (w *destWorker) setCfg(d *Destination) { w.dest.Store(d) }

func (w *destWorker) start() {
	d := w.cfg()
	work := make(chan jetstream.Msg)
	w.wg.Add(1 + d.Workers)
	go w.dispatch(work)
	for i := 0; i < d.Workers; i++ {
		go func() {
			defer w.wg.Done()
			for msg := range work {
				w.handle(msg)
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		w.wg.Wait()
		close(done)
	}()
	go w.heartbeat(done)
}

// stop ends pulling at once, hands back what was fetched and not started,
// and lets attempts under way finish for up to grace before cancelling
// them (a cancelled attempt is handed back and made again). It returns
// once every goroutine of the worker has ended.
func (w *destWorker) stop(grace time.Duration) {
	w.cancel()
	done := make(chan struct{})
	go func() {
		w.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		w.log.Warn("attempts still running after the grace period; cancelling them, they will be made again", zap.Duration("grace", grace))
		w.cancelAttempt()
		<-done
	}
	w.cancelAttempt()
}

// stopGrace is how long a stopping worker lets its attempts run: the
// longest an attempt can take (twice the timeout, with a 401 retry).
func (w *destWorker) stopGrace() time.Duration { return 2*w.cfg().Timeout + time.Second }

// heldMsgs are the messages a worker holds, fetched and not yet settled:
// waiting for a free worker or being attempted. The heartbeat keeps them
// from being handed out again while the consumer's AckWait is short.
type heldMsgs struct {
	mu sync.Mutex
	m  map[jetstream.Msg]struct{}
}

func (h *heldMsgs) add(m jetstream.Msg) {
	h.mu.Lock()
	h.m[m] = struct{}{}
	h.mu.Unlock()
}

func (h *heldMsgs) done(m jetstream.Msg) {
	h.mu.Lock()
	delete(h.m, m)
	h.mu.Unlock()
}

func (h *heldMsgs) snapshot(buf []jetstream.Msg) []jetstream.Msg {
	h.mu.Lock()
	defer h.mu.Unlock()
	for m := range h.m {
		buf = append(buf, m)
	}
	return buf
}

// heartbeat tells JetStream, every third of the AckWait, that the held
// messages are still being worked on, until done is closed.
func (w *destWorker) heartbeat(done <-chan struct{}) {
	t := time.NewTicker(w.e.ackWait / 3)
	defer t.Stop()
	var buf []jetstream.Msg
	for {
		select {
		case <-done:
			return
		case <-t.C:
			buf = w.held.snapshot(buf[:0])
			for _, m := range buf {
				_ = m.InProgress()
			}
		}
	}
}

// goneMark is set when the destination answered 410 Gone: the worker
// hands its messages back instead of attempting them while the mark
// holds. The mark that every node sees lives in the consumer (see
// Engine.markGone); this is the node's own copy, cleared by a Resume
// here, or when the consumer hands out a message again after the pause
// took effect, which means another node resumed it.
type goneMark struct {
	mu     sync.Mutex
	set    bool
	pauseT time.Time // when the consumer's pause was confirmed; zero until then
}

func (g *goneMark) isSet() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.set
}

// mark sets the mark and reports whether it was not set before.
func (g *goneMark) mark() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.set {
		return false
	}
	g.set, g.pauseT = true, time.Time{}
	return true
}

func (g *goneMark) paused(at time.Time) {
	g.mu.Lock()
	if g.set {
		g.pauseT = at
	}
	g.mu.Unlock()
}

func (g *goneMark) clear() {
	g.mu.Lock()
	g.set, g.pauseT = false, time.Time{}
	g.mu.Unlock()
}

// fetched clears the mark when a fetch that started after the pause took
// effect was handed a message: the consumer was resumed.
func (g *goneMark) fetched(fetchStart time.Time) {
	g.mu.Lock()
	if g.set && !g.pauseT.IsZero() && fetchStart.After(g.pauseT) {
		g.set, g.pauseT = false, time.Time{}
	}
	g.mu.Unlock()
}

// consumerConfig is the destination's durable consumer. Every node of a
// cluster shares it, so each message goes to one node.
func (w *destWorker) consumerConfig() jetstream.ConsumerConfig {
	d := w.cfg()
	return jetstream.ConsumerConfig{
		Durable:       consumerName(d.Name),
		Description:   "hookrelay deliveries to " + d.Name,
		FilterSubject: outSubject(d.Name),
		AckPolicy:     jetstream.AckExplicitPolicy,
		// Short, so that what a dead node held comes back within
		// seconds; the heartbeat keeps held messages from coming back
		// while this node works on them, however long an attempt takes.
		AckWait:       w.e.ackWait,
		MaxDeliver:    -1,
		MaxAckPending: d.MaxPending,
	}
}

// consumer creates or updates the destination's durable consumer, keeping
// its pause (Engine.Pause) and gone mark across updates.
func (w *destWorker) consumer() (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	// One stream or consumer update at a time: nats-server 2.15 races
	// on the stream's store config when a stream update and a consumer
	// create run at once (the race detector reports it).
	w.e.consumerMu.Lock()
	defer w.e.consumerMu.Unlock()
	if err := w.e.q.ensureStreams(ctx); err != nil {
		return nil, err
	}
	cfg := w.consumerConfig()
	cfg.PauseUntil, cfg.Metadata = w.e.q.consumerState(ctx, cfg.Durable)
	c, err := w.e.q.js.CreateOrUpdateConsumer(ctx, StreamOut, cfg)
	if err != nil {
		return nil, err
	}
	if err := w.e.q.ensureScheduledCounter(ctx, w.name); err != nil {
		w.log.Debug("cannot create the scheduled-retry counter; status shows 0 scheduled", zap.Error(err))
	}
	return c, nil
}

// dispatch pulls messages and hands them to the workers.
func (w *destWorker) dispatch(work chan<- jetstream.Msg) {
	defer w.wg.Done()
	defer close(work)
	var cons jetstream.Consumer
	backoff := 100 * time.Millisecond
	cooldown := time.Duration(0)
	// stalled counts consecutive failed fetches; a few in a row mean
	// delivery is paused (queue unreachable, no leader), which is logged
	// once, and so is the recovery.
	stalled := 0
	fetchFailed := func(msg string, err error) {
		stalled++
		if stalled == fetchStalledAfter {
			w.log.Warn("cannot fetch from the queue; delivery pauses until it answers", zap.Error(err))
			return
		}
		w.log.Debug(msg, zap.Error(err))
	}
	for w.ctx.Err() == nil {
		if cons == nil {
			c, err := w.consumer()
			if err != nil {
				stalled = max(stalled+1, fetchStalledAfter)
				w.log.Warn("cannot create the destination's consumer; retrying", zap.Error(err), zap.Duration("in", backoff))
				if !sleepCtx(w.ctx, backoff) {
					return
				}
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			cons, backoff = c, 100*time.Millisecond
		}
		if w.failures.Load() >= breakerThreshold {
			if cooldown == 0 {
				cooldown = min(max(w.cfg().Retry.Delay(1), 10*time.Millisecond), 30*time.Second)
				w.log.Warn("destination keeps failing; pausing pulls", zap.Duration("for", cooldown))
			}
			if !sleepCtx(w.ctx, cooldown) {
				return
			}
			// Let one batch through as a probe; double the next pause.
			cooldown = min(2*cooldown, 5*time.Minute)
			w.failures.Store(breakerThreshold - 1)
		} else if cooldown != 0 && w.failures.Load() == 0 {
			w.log.Info("destination recovered; pulling again")
			cooldown = 0
		}
		d := w.cfg()
		fctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
		fetchStart := time.Now()
		batch, err := cons.Fetch(2*d.Workers, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			if w.ctx.Err() != nil {
				return
			}
			if consumerGone(err) {
				cons = nil
			}
			fetchFailed("fetch failed; retrying", err)
			if !sleepCtx(w.ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		for msg := range batch.Messages() {
			w.held.add(msg)
			w.gone.fetched(fetchStart)
			select {
			case work <- msg:
			case <-w.ctx.Done():
				// Hand it back at once rather than after AckWait.
				_ = msg.Nak()
				w.held.done(msg)
			}
		}
		cancel()
		if err := batch.Error(); err != nil && w.ctx.Err() == nil &&
			!errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			if consumerGone(err) {
				cons = nil
			}
			fetchFailed("fetch ended with an error", err)
			if !sleepCtx(w.ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if stalled >= fetchStalledAfter {
			w.log.Info("fetching from the queue again; delivery resumed")
		}
		stalled = 0
	}
}

// fetchStalledAfter is how many failed fetches in a row are logged as
// paused delivery; fewer (a leader change) are only debug noise.
const fetchStalledAfter = 3

// consumerGone reports whether a fetch error means that the destination's
// consumer, or its stream, no longer exists and must be created again. A
// pull request for a consumer that does not exist finds no responder:
// that is what a cluster that came back without its state, or a deleted
// stream, looks like from here. Re-creating is idempotent, so doing it
// for a responder missing only for a moment costs a few requests.
func consumerGone(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, jetstream.ErrConsumerDeleted) ||
		errors.Is(err, nats.ErrNoResponders)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// attemptResult is what one delivery attempt came to.
type attemptResult struct {
	status     int
	err        error
	retryAfter time.Duration
	hasRA      bool
}

// handle makes one attempt for a message and acks, retries or
// dead-letters it.
func (w *destWorker) handle(msg jetstream.Msg) {
	defer w.held.done(msg)
	d := w.cfg()
	if w.gone.isSet() {
		// The destination answered 410: keep its events stored, untried,
		// until an operator resumes it. The consumer is paused, so the
		// message stays with it.
		_ = msg.NakWithDelay(time.Second)
		return
	}
	hdr := msg.Headers()
	meta, err := msg.Metadata()
	if err != nil {
		_ = msg.Nak()
		return
	}
	stats := w.e.stats(d.Name)
	stats.taken(meta.Sequence.Stream)
	attempt := headerInt(hdr, HeaderAttempts) + int(meta.NumDelivered)
	firstSeen, err := time.Parse(time.RFC3339Nano, hdr.Get(HeaderFirstSeen))
	if err != nil {
		firstSeen = meta.Timestamp
	}
	id := hdr.Get(HeaderEvent)
	if id == "" {
		id = "msg_" + strconv.FormatUint(meta.Sequence.Stream, 10)
	}
	log := w.log.With(zap.String("event_id", id), zap.Int("attempt", attempt))

	body := msg.Data()
	if d.Transform != nil {
		out, err := d.Transform(body)
		if err != nil {
			if w.e.obs != nil {
				w.e.obs.Attempt(d.Name, OutcomeDeadLetter, 0)
			}
			w.deadLetter(msg, d, id, attempt, firstSeen, 0, "transform: "+err.Error(), "transform_failed", log)
			return
		}
		body = out
	}

	start := time.Now()
	res := w.attempt(d, id, body)
	if res.err != nil && w.attemptCtx.Err() != nil {
		// The worker stopped (reload or shutdown) and its grace period
		// cut the attempt short: hand the message back at once, without
		// counting a failure against the destination.
		_ = msg.Nak()
		return
	}
	outcome := d.Retry.classify(res.status)
	if res.err != nil {
		outcome = OutcomeRetry
	}
	log.Debug("delivery attempt",
		zap.Int("status", res.status),
		zap.String("outcome", outcome.String()),
		zap.Duration("took", time.Since(start)),
		zap.NamedError("error", res.err))

	observe := func(o Outcome) {
		stats.record(o, res.status, statusError(res))
		if w.e.obs != nil {
			w.e.obs.Attempt(d.Name, o, time.Since(start))
		}
	}
	switch outcome {
	case OutcomeDelivered:
		observe(OutcomeDelivered)
		w.failures.Store(0)
		if err := msg.Ack(); err != nil {
			log.Debug("ack failed; the message may be delivered again", zap.Error(err))
		}
	case OutcomeDeadLetter:
		observe(OutcomeDeadLetter)
		w.failures.Store(0)
		reason := "permanent_failure"
		if res.status == http.StatusGone {
			reason = "gone"
		}
		w.deadLetter(msg, d, id, attempt, firstSeen, res.status, statusError(res), reason, log)
		if res.status == http.StatusGone {
			w.markGone(log)
		}
	case OutcomeRetry:
		w.failures.Add(1)
		delay, ok := d.Retry.nextDelay(attempt, firstSeen, time.Now(), res.retryAfter, res.hasRA)
		if !ok {
			observe(OutcomeDeadLetter)
			w.deadLetter(msg, d, id, attempt, firstSeen, res.status, statusError(res), "max_age", log)
			return
		}
		observe(OutcomeRetry)
		w.retryLater(msg, d, id, attempt, firstSeen, delay, log)
	}
}

func statusError(r attemptResult) string {
	if r.err != nil {
		return r.err.Error()
	}
	return "HTTP " + strconv.Itoa(r.status) + " " + http.StatusText(r.status)
}

// attempt POSTs body to the destination once (twice when an OAuth token
// was refused with 401 and a fresh one may help).
func (w *destWorker) attempt(d *Destination, id string, body []byte) attemptResult {
	ctx, cancel := context.WithTimeout(w.attemptCtx, d.Timeout)
	defer cancel()
	res := w.send(ctx, d, id, body)
	if res.status == http.StatusUnauthorized && res.req != nil && d.Auth != nil && d.Auth.Reject(res.req) {
		res = w.send(ctx, d, id, body)
	}
	return res.attemptResult
}

type sendResult struct {
	attemptResult
	req *http.Request
}

func (w *destWorker) send(ctx context.Context, d *Destination, id string, body []byte) sendResult {
	now := time.Now()
	req, err := d.NewRequest(ctx, id, body, now)
	if err != nil {
		return sendResult{attemptResult: attemptResult{err: err}}
	}
	resp, err := w.e.client.Do(req)
	if err != nil {
		return sendResult{attemptResult: attemptResult{err: RedactURLError(err)}, req: req}
	}
	// Drain a little so the connection can be reused; never keep or log
	// the body.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
	r := attemptResult{status: resp.StatusCode}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		r.retryAfter, r.hasRA = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	return sendResult{attemptResult: r, req: req}
}

// retryLater puts the message back for another attempt after delay:
// short delays stay in the consumer (NakWithDelay), long ones are
// re-published as a scheduled message and the original acknowledged.
func (w *destWorker) retryLater(msg jetstream.Msg, d *Destination, id string, attempt int, firstSeen time.Time, delay time.Duration, log *zap.Logger) {
	if delay <= w.e.nakMax {
		if err := msg.NakWithDelay(delay); err != nil {
			log.Debug("nak failed; the message comes back after its ack wait", zap.Error(err))
		} else if meta, err := msg.Metadata(); err == nil {
			w.e.stats(d.Name).retryingAt(meta.Sequence.Stream, time.Now().Add(delay))
		}
		return
	}
	at := time.Now().Add(delay).Truncate(time.Second).Add(time.Second)
	m := &nats.Msg{
		Subject: subjectSchedule + d.Name + "." + id,
		Header: nats.Header{
			HeaderEvent:                    {id},
			HeaderAttempts:                 {strconv.Itoa(attempt)},
			HeaderFirstSeen:                {firstSeen.UTC().Format(time.RFC3339Nano)},
			jetstream.ScheduleHeader:       {"@at " + at.UTC().Format(time.RFC3339)},
			jetstream.ScheduleTargetHeader: {outSubject(d.Name)},
		},
		Data: msg.Data(),
	}
	ctx, cancel := context.WithTimeout(w.attemptCtx, 10*time.Second)
	defer cancel()
	if _, err := w.e.q.js.PublishMsg(ctx, m); err != nil {
		// Keep it in the consumer rather than lose it.
		log.Warn("scheduling a retry failed; keeping the message in the consumer", zap.Error(err))
		_ = msg.NakWithDelay(min(delay, w.e.nakMax))
		return
	}
	if err := msg.Ack(); err != nil {
		log.Debug("ack after scheduling failed; a duplicate attempt may follow", zap.Error(err))
	}
	log.Debug("retry scheduled", zap.Time("at", at))
}

// deadLetter moves a message to the dead-letter stream with its last
// status and error, then acknowledges the original. The record never
// holds a response body or a credential.
func (w *destWorker) deadLetter(msg jetstream.Msg, d *Destination, id string, attempt int, firstSeen time.Time, status int, lastErr, reason string, log *zap.Logger) {
	if len(lastErr) > 512 {
		lastErr = lastErr[:512]
	}
	m := &nats.Msg{
		Subject: subjectDead + d.Name,
		Header: nats.Header{
			HeaderEvent:       {id},
			HeaderDestination: {d.Name},
			HeaderAttempts:    {strconv.Itoa(attempt)},
			HeaderFirstSeen:   {firstSeen.UTC().Format(time.RFC3339Nano)},
			HeaderLastStatus:  {strconv.Itoa(status)},
			HeaderLastError:   {lastErr},
			HeaderDeadAt:      {time.Now().UTC().Format(time.RFC3339Nano)},
			HeaderReason:      {reason},
		},
		Data: msg.Data(),
	}
	ctx, cancel := context.WithTimeout(w.attemptCtx, 10*time.Second)
	defer cancel()
	if err := w.e.q.storeDeadLetter(ctx, m, w.e.deadLettersDropped); err != nil {
		log.Warn("storing a dead letter failed; retrying the message later", zap.Error(err))
		_ = msg.NakWithDelay(time.Minute)
		return
	}
	if err := msg.Ack(); err != nil {
		log.Debug("ack after dead-lettering failed", zap.Error(err))
	}
	log.Warn("delivery dead-lettered",
		zap.String("reason", reason),
		zap.Int("last_status", status),
		zap.String("last_error", lastErr))
}

// markGone acts on a 410 Gone: the destination is marked gone and paused
// in its consumer, so that every node stops and its later events stay
// stored until an operator resumes it (Engine.Resume clears the mark).
func (w *destWorker) markGone(log *zap.Logger) {
	if !w.gone.mark() {
		return
	}
	log.Error("destination answered 410 Gone; it is paused and its events wait until it is resumed")
	ctx, cancel := context.WithTimeout(w.attemptCtx, 10*time.Second)
	defer cancel()
	if err := w.e.setConsumerState(ctx, w, pauseForever, true); err != nil {
		log.Warn("marking the destination gone failed; this node holds its deliveries anyway", zap.Error(err))
		return
	}
	w.gone.paused(time.Now())
}
