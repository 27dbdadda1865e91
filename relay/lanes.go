package relay

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Ordered delivery.
//
// An ordered destination's events are stored on the subject of their
// key's lane (hookrelay.out.<destination>.<lane>), and each lane has a
// consumer of its own that hands out one message at a time
// (MaxAckPending 1). A lane's next message is handed out only once its
// head is acknowledged: delivered or dead-lettered.
// So the order holds whichever node works the lane, across restarts,
// kill -9 and a node's death (what a dead node held comes back after the
// ack wait, before anything behind it), with nothing kept in memory.
//
// A failed head is handed back with NakWithDelay for its whole retry
// delay, however long: JetStream keeps it pending, with its due time, in
// the consumer's replicated state, so the lane waits without a message in
// any node's memory, and the ack window a waiting lane takes is one
// message. Every node pulls from every lane; the runner's Workers bound
// the attempts under way across lanes.
//
// Lanes have no circuit breaker: a lane tries only its head, once per
// step of its retry schedule, so a destination that is down gets at most
// one attempt per lane per step, and keys that fail must not hold back
// the lanes that flow (a circuit counts failures across lanes).
//
// The destination's own subject and consumer stay: replays of dead
// letters are delivered there, on their own, and so are events stored
// before the destination was ordered.

// noLane marks a delivery of the destination's own consumer.
const noLane = -1

// laneBatch is how many messages one pull request of a lane asks for.
// The consumer hands them out one at a time, each once the one before is
// acknowledged, to the same request: a lane that flows costs one pull
// request per laneBatch messages or jetstream.DefaultExpires (30s), not
// one per message.
const laneBatch = 256

// watchLanesEvery is how often a runner looks for lanes with messages
// that it does not run: lanes a larger lane count left, or all lanes of a
// destination that is no longer ordered.
const watchLanesEvery = time.Minute

// laneSet are the lanes whose pull loops run.
type laneSet struct {
	mu      sync.Mutex
	running map[int]bool
}

// add marks lane running; it reports false when it already was.
func (s *laneSet) add(lane int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[lane] {
		return false
	}
	if s.running == nil {
		s.running = make(map[int]bool)
	}
	s.running[lane] = true
	return true
}

func (s *laneSet) remove(lane int) {
	s.mu.Lock()
	delete(s.running, lane)
	s.mu.Unlock()
}

// list returns the running lanes in order.
func (s *laneSet) list() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int, 0, len(s.running))
	for l := range s.running {
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}

// startLane starts lane's pull loop unless it runs. A draining loop ends
// once its lane is empty, and deletes the lane's consumer.
func (r *runner) startLane(lane int, drain bool) {
	if r.ctx.Err() != nil || !r.lanes.add(lane) {
		return
	}
	r.wg.Add(1)
	go r.runLane(lane, drain)
}

// runLane pulls lane's messages one at a time and attempts each, until
// the runner stops (or, draining, the lane is empty).
func (r *runner) runLane(lane int, drain bool) {
	defer r.wg.Done()
	defer r.lanes.remove(lane)
	p := &puller{r: r, backoff: minBackoff, cs: r.consumerSettings().laneSettings(lane)}
	for r.ctx.Err() == nil {
		if p.cons == nil && !p.openConsumer() {
			continue
		}
		got, err := p.fetchOne(lane)
		if err != nil {
			p.failed(err)
			continue
		}
		p.succeeded()
		if !got && drain && p.drained() {
			return
		}
	}
}

// fetchOne sends one pull request for the lane and attempts each message
// it is handed, one at a time, until the request ends. It reports whether
// it got any.
//
// The request ends on the server's side: when it expires (after
// jetstream.DefaultExpires; the server answers 408, and idle heartbeats
// tell a dead request from a quiet one meanwhile) or when laneBatch
// messages were handed out. Ending it on the client's side, with a
// deadline, would race with the server: a head handed out just as the
// client stopped listening would be lost in transit and come back only
// after the ack wait, holding its lane back that long, over and over
// under load. Only a runner that stops ends a request early.
func (p *puller) fetchOne(lane int) (bool, error) {
	r := p.r
	start := time.Now()
	batch, err := p.cons.Fetch(laneBatch, jetstream.FetchContext(r.ctx))
	if err != nil {
		return false, err
	}
	got := false
	for msg := range batch.Messages() {
		got = true
		r.held.add(msg)
		r.gone.fetched(start)
		select {
		case r.slots <- struct{}{}:
			r.handle(msg, lane)
			<-r.slots
		case <-r.ctx.Done():
			_ = msg.Nak()
			r.held.done(msg)
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
		return got, err
	}
	return got, nil
}

// drained reports whether a draining lane is empty; it deletes the lane's
// consumer then.
func (p *puller) drained() bool {
	r := p.r
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	info, err := p.cons.Info(ctx)
	if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
		return false
	}
	if err := r.e.q.deleteConsumer(ctx, p.cs.name()); err != nil {
		r.log.Debug("cannot delete a drained lane's consumer; the server deletes it when inactive",
			zap.Int("lane", p.cs.lane), zap.Error(err))
	}
	r.log.Info("lane left by a change of order_by or lanes drained", zap.Int("lane", p.cs.lane))
	return true
}

// watchLanes starts a draining loop for every lane with messages that no
// loop runs: after lanes shrank, or order_by was removed, the events
// already stored in such lanes are delivered in their order. It looks
// at start, then every watchLanesEvery.
func (r *runner) watchLanes() {
	defer r.wg.Done()
	for {
		ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
		counts, err := r.e.q.laneCounts(ctx, r.name)
		cancel()
		if err == nil {
			for lane := range counts {
				if d := r.cfg(); d.orderPath == nil || lane >= d.Lanes {
					r.startLane(lane, true)
				}
			}
		}
		if !sleepCtx(r.ctx, watchLanesEvery) {
			return
		}
	}
}

// allConsumers are the settings of every consumer the destination's
// deliveries are handed out by: its own and its running lanes'.
func (r *runner) allConsumers() []consumerSettings {
	cs := r.consumerSettings()
	out := []consumerSettings{cs}
	for _, lane := range r.lanes.list() {
		out = append(out, cs.laneSettings(lane))
	}
	return out
}

// laneRetry hands a lane's failed head back for its retry after delay:
// it stays the lane's head, pending in the consumer, so that nothing
// behind it is handed out meanwhile.
func (r *runner) laneRetry(d *delivery, delay time.Duration) {
	due := time.Now().Add(delay)
	if err := d.msg.NakWithDelay(delay); err != nil {
		d.log().Debug("nak failed; the message comes back after its ack wait", zap.Error(err))
		due = time.Now().Add(r.e.ackWait)
	}
	r.stats.retryingAt(d.seq, due)
	key, _ := orderKey(d.msg.Data(), d.dest.orderPath)
	r.stats.block(d.lane, key, d.seq, due)
	d.log().Debug("ordered retry: the lane waits", zap.Time("at", due))
}
