package relay

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// runnerStore is what a runner asks of the queue: open its consumer,
// park a retry, store a dead letter, pause its consumer. *queue is the
// one implementation; tests of a runner's decisions may use another.
type runnerStore interface {
	openConsumer(ctx context.Context, cs consumerSettings) (jetstream.Consumer, error)
	scheduleRetry(ctx context.Context, dest, eventID string, attempts int, firstSeen, at time.Time, body []byte) error
	storeDeadLetter(ctx context.Context, r deadRecord, body []byte, dropped func(n uint64)) error
	setConsumerState(ctx context.Context, cs consumerSettings, pauseFor time.Duration, gone bool) error
}

// runner runs one destination on this node: a puller goroutine that
// fetches the destination's messages from its consumer, Workers
// goroutines that attempt them (see delivery.go), and a heartbeat that
// keeps what the runner holds from being handed out again.
type runner struct {
	e     *Engine
	store runnerStore
	name  string
	log   *zap.Logger
	dest  atomic.Pointer[Destination]
	stats *destStats

	// ctx ends pulling; attemptCtx ends attempts under way. Stopping a
	// runner ends pulling at once and gives its attempts a grace period
	// before cancelling them, since a cancelled attempt is made again.
	ctx           context.Context
	cancel        context.CancelFunc
	attemptCtx    context.Context
	cancelAttempt context.CancelFunc
	wg            sync.WaitGroup

	// breaker is the circuit of the destination's own consumer; lanes
	// have none (see lanes.go).
	breaker breaker
	held    heldMsgs
	gone    goneMark
	// slots holds one token per attempt under way: at most Workers,
	// whether the puller or a lane started it.
	slots chan struct{}
	// lanes are the lanes whose pull loops run (see lanes.go).
	lanes laneSet

	// lazy runners (registered webhooks) run only while their
	// destination has messages: started by Engine.wake, they end by
	// themselves once idle. woken counts the wakes while running, so
	// that a runner never ends right after a wake it did not see.
	lazy  bool
	woken atomic.Uint64
}

func newRunner(e *Engine, d *Destination) *runner {
	ctx, cancel := context.WithCancel(e.ctx)
	actx, acancel := context.WithCancel(e.ctx)
	r := &runner{
		e:             e,
		store:         e.q,
		name:          d.Name,
		log:           e.log.Named("delivery").With(zap.String("destination", d.Name)),
		stats:         e.stats(d.Name),
		ctx:           ctx,
		cancel:        cancel,
		attemptCtx:    actx,
		cancelAttempt: acancel,
		slots:         make(chan struct{}, max(d.Workers, 1)),
	}
	r.held.m = make(map[jetstream.Msg]struct{})
	r.dest.Store(d)
	return r
}

func (r *runner) cfg() *Destination     { return r.dest.Load() }
func (r *runner) setCfg(d *Destination) { r.dest.Store(d) }

// consumerSettings are the destination's consumer's.
func (r *runner) consumerSettings() consumerSettings {
	return consumerSettings{dest: r.name, ackWait: r.e.ackWait, maxPending: r.cfg().MaxPending, lazy: r.lazy}
}

func (r *runner) start() {
	r.e.beating.Store(r, struct{}{})
	r.wg.Add(2)
	go r.pull()
	go r.watchLanes()
	if d := r.cfg(); d.orderPath != nil {
		for lane := range d.Lanes {
			r.startLane(lane, false)
		}
	}
}

// stop ends pulling at once, hands back what was fetched and not started,
// and lets attempts under way finish for up to grace before cancelling
// them (a cancelled attempt is handed back and made again). It returns
// once every goroutine of the runner has ended.
func (r *runner) stop(grace time.Duration) {
	r.cancel()
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		r.log.Warn("attempts still running after the grace period; cancelling them, they will be made again", zap.Duration("grace", grace))
		r.cancelAttempt()
		<-done
	}
	r.cancelAttempt()
	r.e.beating.Delete(r)
}

// stopGrace is how long a stopping runner lets its attempts run: the
// longest an attempt can take (twice the timeout, with a 401 retry).
func (r *runner) stopGrace() time.Duration { return 2*r.cfg().Timeout + time.Second }

// heldMsgs are the messages a runner holds, fetched and not yet settled:
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

func (h *heldMsgs) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.m)
}

func (h *heldMsgs) snapshot(buf []jetstream.Msg) []jetstream.Msg {
	h.mu.Lock()
	defer h.mu.Unlock()
	for m := range h.m {
		buf = append(buf, m)
	}
	return buf
}

// heartbeat tells JetStream, every third of the AckWait, that the
// messages every runner holds are still being worked on, until the engine
// closes. One goroutine serves every runner, so that an idle destination
// costs no timer.
func (e *Engine) heartbeat() {
	t := time.NewTicker(e.ackWait / 3)
	defer t.Stop()
	var buf []jetstream.Msg
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
			e.beating.Range(func(k, _ any) bool {
				buf = k.(*runner).held.snapshot(buf[:0])
				for _, m := range buf {
					_ = m.InProgress()
				}
				return true
			})
		}
	}
}

// goneMark is set when the destination answered 410 Gone: the runner
// hands its messages back instead of attempting them while the mark
// holds. The mark that every node sees lives in the consumer (see
// runner.markGone); this is the node's own copy, cleared by a Resume
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

// markGone acts on a 410 Gone: the destination is marked gone and paused
// in its consumer, so that every node stops and its later events stay
// stored until an operator resumes it (Engine.Resume clears the mark).
func (r *runner) markGone(log *zap.Logger) {
	if !r.gone.mark() {
		return
	}
	log.Error("destination answered 410 Gone; it is paused and its events wait until it is resumed")
	ctx, cancel := context.WithTimeout(r.attemptCtx, 10*time.Second)
	defer cancel()
	// The mark lives in the destination's own consumer; its lanes, when
	// it is ordered, are paused with it.
	for _, cs := range r.allConsumers() {
		if err := r.store.setConsumerState(ctx, cs, pauseForever, !cs.isLane); err != nil {
			log.Warn("marking the destination gone failed; this node holds its deliveries anyway", zap.Error(err))
			return
		}
	}
	r.gone.paused(time.Now())
}

// Backoff between failed fetches or consumer creations.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// fetchStalledAfter is how many failed fetches in a row are logged as
// paused delivery; fewer (a leader change) are only debug noise.
const fetchStalledAfter = 3

// puller is the state of a runner's pull loop.
type puller struct {
	r       *runner
	cons    jetstream.Consumer
	backoff time.Duration
	// stalled counts consecutive failed fetches; a few in a row mean
	// delivery is paused (queue unreachable, no leader), which is logged
	// once, and so is the recovery.
	stalled int
	// idle counts consecutive fetches that found nothing; see idleOut.
	idle int
	// cs are the settings of the consumer pulled from.
	cs consumerSettings
	// credits bounds the messages fetched and not settled (see pull).
	credits chan struct{}
}

// fetchExpiry is how long a pull request waits for messages; a message
// arriving meanwhile is handed out at once.
const fetchExpiry = 5 * time.Second

// idleAfter is how many fetches in a row that found nothing make a lazy
// runner look whether it may end (see idleOut).
const idleAfter = 6

// pull fetches the destination's messages and hands each to a worker, at
// most Workers attempts at once, until the runner stops. An idle
// destination costs this goroutine, its idle workers and a pull request.
//
// A pull request asks for as many messages as the puller has credits for:
// each message costs one until it is settled, and there are as many as
// workers plus up to maxPrefetch more, so that the next messages are at
// hand when an attempt ends. A message is held (and kept from coming
// back by the heartbeat) from the moment it arrives, and waits at most
// for a worker, never in a buffer the heartbeat does not see.
func (r *runner) pull() {
	defer r.wg.Done()
	workers := cap(r.slots)
	credits := make(chan struct{}, workers+min(workers, maxPrefetch))
	work := make(chan jetstream.Msg, cap(credits))
	for range workers {
		r.wg.Add(1)
		go r.worker(work, credits)
	}
	defer close(work)
	p := &puller{r: r, backoff: minBackoff, cs: r.consumerSettings(), credits: credits}
	for r.ctx.Err() == nil {
		if p.cons == nil && !p.openConsumer() {
			continue
		}
		if !r.holdBack() {
			return
		}
		n := p.reserve()
		if n == 0 {
			return
		}
		if err := p.fetch(n, work); err != nil {
			p.failed(err)
			continue
		}
		p.succeeded()
		if r.lazy && p.idle >= idleAfter && p.idleOut() {
			return
		}
	}
}

// maxPrefetch bounds the messages a runner holds beyond those being
// attempted: they are in memory, and an event may take megabytes.
const maxPrefetch = 16

// worker attempts the messages the puller hands it, each once a worker
// slot is free (lanes take slots too), until the puller ends. What it is
// handed after the runner stopped goes back at once.
func (r *runner) worker(work <-chan jetstream.Msg, credits <-chan struct{}) {
	defer r.wg.Done()
	for msg := range work {
		select {
		case r.slots <- struct{}{}:
			if r.ctx.Err() != nil {
				_ = msg.Nak()
				r.held.done(msg)
			} else {
				r.handle(msg, noLane)
			}
			<-r.slots
		case <-r.ctx.Done():
			_ = msg.Nak()
			r.held.done(msg)
		}
		<-credits
	}
}

// idleOut ends a lazy runner that has nothing to do: no message waiting,
// none handed out, not paused or gone (a paused consumer is kept alive by
// the pulls of its runner, or the server would delete it with its pause).
// It reports whether the runner ended; the engine starts it again at the
// next wake.
func (p *puller) idleOut() bool {
	r := p.r
	seq := r.woken.Load()
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	info, err := p.cons.Info(ctx)
	cancel()
	if err != nil || info.NumPending > 0 || info.NumAckPending > 0 || info.Paused || r.gone.isSet() || r.held.len() > 0 {
		p.idle = 0 // look again after as many idle fetches
		return false
	}
	if _, gone := goneSince(info); gone {
		p.idle = 0
		return false
	}
	if r.cfg().orderPath != nil || len(r.lanes.list()) > 0 {
		// Ordered deliveries may wait in lanes. (An unordered
		// destination's lanes are found by watchLanes at start, which
		// runs them; lanes that fill after that are seen by the sweep,
		// which wakes the runner again.)
		ctx, cancel = context.WithTimeout(r.ctx, 5*time.Second)
		lanes, err := r.e.q.laneCounts(ctx, r.name)
		cancel()
		if err != nil || len(lanes) > 0 {
			p.idle = 0
			return false
		}
	}
	if !r.e.endIdle(r, seq) {
		p.idle = 0
		return false
	}
	r.cancel()
	r.e.beating.Delete(r)
	return true
}

// openConsumer creates or updates the consumer; on failure it waits the
// backoff and reports false.
func (p *puller) openConsumer() bool {
	ctx, cancel := context.WithTimeout(p.r.ctx, 10*time.Second)
	c, err := p.r.store.openConsumer(ctx, p.cs)
	cancel()
	if err != nil {
		if p.r.ctx.Err() != nil {
			return false
		}
		p.stalled = max(p.stalled+1, fetchStalledAfter)
		p.r.log.Warn("cannot create the destination's consumer; retrying", zap.Error(err), zap.Duration("in", p.backoff))
		p.wait()
		return false
	}
	p.cons, p.backoff = c, minBackoff
	return true
}

// holdBack waits while the circuit is open; it reports false when the
// runner stopped meanwhile.
func (r *runner) holdBack() bool {
	wait, change := r.breaker.next(r.cfg().Retry.Delay(1))
	switch change {
	case breakerOpened:
		r.log.Warn("destination keeps failing; pausing pulls", zap.Duration("for", wait))
	case breakerRecovered:
		r.log.Info("destination recovered; pulling again")
	}
	if wait == 0 {
		return true
	}
	if !sleepCtx(r.ctx, wait) {
		return false
	}
	r.breaker.probe()
	return true
}

// pullBatchMin is the fewest credits the puller waits for, while
// messages are under way, before it asks for more: a pull request costs
// the queue about as much as a few messages, so asking for one message
// as each attempt ends would double its work under load.
func pullBatchMin(credits int) int { return max(1, credits/4) }

// pullGather is how long the puller waits for pullBatchMin credits once
// it has one.
const pullGather = 2 * time.Millisecond

// reserve takes credits for the next pull request: at least one, then
// every one free, waiting up to pullGather for pullBatchMin of them. It
// returns how many it took; 0 when the runner stopped.
func (p *puller) reserve() int {
	r := p.r
	select {
	case p.credits <- struct{}{}:
	case <-r.ctx.Done():
		return 0
	}
	n, most := 1, cap(p.credits)
	want := pullBatchMin(most)
	var gather *time.Timer
	defer func() {
		if gather != nil {
			gather.Stop()
		}
	}()
	for n < most {
		select {
		case p.credits <- struct{}{}:
			n++
			continue
		default:
		}
		if n >= want {
			return n
		}
		if gather == nil {
			gather = time.NewTimer(pullGather)
		}
		select {
		case p.credits <- struct{}{}:
			n++
		case <-gather.C:
			return n
		case <-r.ctx.Done():
			p.release(n)
			return 0
		}
	}
	return n
}

// release gives back n credits.
func (p *puller) release(n int) {
	for range n {
		<-p.credits
	}
}

// fetch sends one pull request for n messages, for which n credits are
// taken, and hands each message to the workers as it arrives. It returns
// the request's error, if any; a request that expired before n messages
// came is not one.
//
// The request ends on the server's side, when it expires (after
// fetchExpiry) or n messages were handed out; ending it on the client's
// side with a deadline would race with the server, losing a message
// handed out just then until its ack wait. A runner that stops does not
// wait for it: what arrives afterwards is handed back.
func (p *puller) fetch(n int, work chan<- jetstream.Msg) error {
	r := p.r
	start := time.Now()
	batch, err := p.cons.Fetch(n, jetstream.FetchMaxWait(fetchExpiry))
	if err != nil {
		p.release(n)
		return err
	}
	got := 0
	msgs := batch.Messages()
	for {
		select {
		case msg, ok := <-msgs:
			if !ok {
				p.release(n - got)
				if got > 0 {
					p.idle = 0
				} else {
					p.idle++
				}
				if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
					return err
				}
				return nil
			}
			got++
			r.held.add(msg)
			r.gone.fetched(start)
			work <- msg // never blocks: it has a credit, and work has room for all
		case <-r.ctx.Done():
			p.release(n - got)
			go handBack(msgs)
			return nil
		}
	}
}

// handBack hands back what an abandoned pull request still brings, until
// it ends.
func handBack(msgs <-chan jetstream.Msg) {
	for msg := range msgs {
		_ = msg.Nak()
	}
}

// failed notes a failed fetch and waits the backoff.
func (p *puller) failed(err error) {
	if p.r.ctx.Err() != nil {
		return
	}
	if consumerGone(err) {
		p.cons = nil
	}
	p.stalled++
	if p.stalled == fetchStalledAfter {
		p.r.log.Warn("cannot fetch from the queue; delivery pauses until it answers", zap.Error(err))
	} else {
		p.r.log.Debug("fetch failed; retrying", zap.Error(err))
	}
	p.wait()
}

// succeeded notes a fetch that worked.
func (p *puller) succeeded() {
	p.backoff = minBackoff
	if p.stalled >= fetchStalledAfter {
		p.r.log.Info("fetching from the queue again; delivery resumed")
	}
	p.stalled = 0
}

// wait sleeps the backoff, then doubles it.
func (p *puller) wait() {
	if sleepCtx(p.r.ctx, p.backoff) {
		p.backoff = min(2*p.backoff, maxBackoff)
	}
}

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
