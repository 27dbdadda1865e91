package relay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/relay/event"
)

// HeaderEvent carries the event id on stored messages; it is the
// webhook-id of every attempt.
const HeaderEvent = "Hookrelay-Event"

// ErrUnavailable is returned by Enqueue when the queue cannot store the
// events; the sender should retry.
var ErrUnavailable = errors.New("the queue cannot store the event right now")

// ErrFull is returned by Enqueue when the deliveries waiting take
// QueueConfig.MaxBytes or more; it wraps ErrUnavailable, since the sender's
// retry succeeds once they drain.
var ErrFull = fmt.Errorf("%w: the queue is full (its queue limit is reached)", ErrUnavailable)

// TooLargeError is returned by Enqueue when an event cannot be stored as
// one queue message. Nothing of the request was stored.
type TooLargeError struct {
	// Size is the event's encoded size, Limit the most an event may take.
	Size, Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("the event takes %d bytes, more than the queue's limit of %d bytes for one message", e.Size, e.Limit)
}

// messageHeadroom is what a stored message's headers may take at most
// (ids, times, the last error of a dead letter); an event may take the
// queue's max payload less this.
const messageHeadroom = 4 << 10

// Options configures an Engine.
type Options struct {
	Queue QueueConfig
	// Logger receives the engine's logs; nil means no logs.
	Logger *zap.Logger
	// HTTPClient sends deliveries; nil means a client that follows no
	// redirects. Per-attempt timeouts come from each Destination.
	HTTPClient *http.Client
	// Observer, when set, is told of every attempt.
	Observer Observer
	// NakMaxDelay is the longest retry delay kept in the consumer with
	// NakWithDelay; longer delays are re-published as scheduled messages.
	// 0 means 2 minutes.
	NakMaxDelay time.Duration
	// AckWait is how long a message handed to a node may go without word
	// from it before JetStream hands it out again: after a crash, what
	// the dead node held comes back after this long. A node that holds a
	// message tells JetStream every AckWait/3 that it still works on it,
	// however long the attempt takes. 0 means 6 seconds.
	AckWait time.Duration
	// ShutdownGrace is how long Close lets attempts under way finish
	// before it cancels them; 0 means 10 seconds.
	ShutdownGrace time.Duration
}

// Observer is told of every delivery attempt: the destination, the
// outcome ("delivered", "retry" or "dead_letter") and how long it took.
// It must be fast and safe for concurrent use.
type Observer interface {
	Attempt(destination string, outcome Outcome, took time.Duration)
	// DeadLettersDropped is told that n of the oldest dead letters were
	// dropped to make room for a new one (QueueConfig.DeadLetterMaxBytes).
	DeadLettersDropped(n uint64)
}

// Engine owns the queue connection and the delivery workers. It outlives
// configuration reloads: configurations register their destinations with
// Apply and withdraw them with Release.
type Engine struct {
	q      *queue
	log    *zap.Logger
	client *http.Client
	nakMax time.Duration
	obs    Observer
	// ackWait is the consumers' AckWait; grace is Close's ShutdownGrace.
	ackWait time.Duration
	grace   time.Duration
	// stopping counts workers that stopped pulling and are letting their
	// attempts finish.
	stopping sync.WaitGroup
	// outBytes is the delivery stream's size as last read (see
	// watchSize); -1 while unknown.
	outBytes atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	owners  []ownerSet
	runners map[string]*runner
	// dynamic are the destinations put with Put (registered webhooks),
	// which run beside the active configuration's.
	dynamic map[string]*Destination
	// sweepSoon asks the sweep to run now (see sweep).
	sweepSoon chan struct{}
	closed    bool
	// beating are the runners whose held messages the heartbeat keeps
	// (running or stopping).
	beating sync.Map // *runner -> struct{}

	// destStats holds a *destStats per destination name, kept across
	// runner restarts; see stats.go.
	destStats sync.Map

	// orders holds the orderSpec of each ordered destination by name,
	// read by Enqueue to pick each message's lane; written under mu.
	orders sync.Map
}

// orderSpec is how an ordered destination's events find their lane.
type orderSpec struct {
	path  []string
	lanes int
}

// subjectFor is the subject of the delivery of the stored event body to
// dest: the destination's own, or for an ordered destination the one of
// the lane of the event's key.
func (e *Engine) subjectFor(dest string, body []byte) string {
	v, ok := e.orders.Load(dest)
	if !ok {
		return outSubject(dest)
	}
	spec := v.(orderSpec)
	key, has := orderKey(body, spec.path)
	return laneSubject(dest, laneOf(key, has, spec.lanes))
}

// setOrderLocked records how d's events find their lane; nil d, or an
// unordered one, forgets it.
func (e *Engine) setOrderLocked(name string, d *Destination) {
	if d == nil || d.orderPath == nil {
		e.orders.Delete(name)
		return
	}
	e.orders.Store(name, orderSpec{path: d.orderPath, lanes: d.Lanes})
}

type ownerSet struct {
	owner any
	dests map[string]*Destination
}

// Open starts (embedded) or connects to (external) the queue, ensures its
// streams, and returns an engine with no destinations yet.
func Open(opts Options) (*Engine, error) {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	q, err := openQueue(ctx, opts.Queue, log)
	if err != nil {
		cancel()
		return nil, err
	}
	client := opts.HTTPClient
	if client == nil {
		client = NewClient()
	}
	nakMax := opts.NakMaxDelay
	if nakMax <= 0 {
		nakMax = 2 * time.Minute
	}
	ackWait := opts.AckWait
	if ackWait <= 0 {
		ackWait = DefaultAckWait
	}
	grace := opts.ShutdownGrace
	if grace <= 0 {
		grace = 10 * time.Second
	}
	e := &Engine{
		q:         q,
		log:       log,
		client:    client,
		nakMax:    nakMax,
		ackWait:   ackWait,
		grace:     grace,
		obs:       opts.Observer,
		ctx:       ctx,
		cancel:    cancel,
		runners:   make(map[string]*runner),
		dynamic:   make(map[string]*Destination),
		sweepSoon: make(chan struct{}, 1),
	}
	e.outBytes.Store(-1)
	go e.watchSize()
	go e.heartbeat()
	go e.sweep()
	return e, nil
}

// watchSize reads the delivery stream's size every half second while a
// queue limit is set, for Enqueue to check against.
func (e *Engine) watchSize() {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	full := false
	for {
		if limit := e.q.settings().MaxBytes; limit > 0 {
			ctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
			if n, err := e.q.deliveriesBytes(ctx); err == nil {
				e.outBytes.Store(n)
				if now := n >= limit; now != full {
					full = now
					if full {
						e.log.Warn("the queue limit is reached; ingress answers 503 until deliveries drain",
							zap.Int64("limit_bytes", limit), zap.Int64("stored_bytes", n))
					} else {
						e.log.Info("the queue is below its limit again; ingress stores events")
					}
				}
			}
			cancel()
		} else {
			e.outBytes.Store(-1)
		}
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// deadLettersDropped logs and reports dead letters dropped to make room.
func (e *Engine) deadLettersDropped(n uint64) {
	e.log.Warn("the dead-letter store is full; its oldest dead letters were dropped to make room",
		zap.Uint64("dropped", n), zap.Int64("limit_bytes", e.q.settings().DeadLetterMaxBytes))
	if e.obs != nil {
		e.obs.DeadLettersDropped(n)
	}
}

// QueueConfig returns the queue configuration the engine was opened with, defaults
// applied.
func (e *Engine) QueueConfig() QueueConfig { return e.q.settings() }

// Reconfigure applies a later configuration's storage settings to the
// running queue, which must be the same store (the same QueueConfig.Key).
// The dedupe window, the dead-letter retention and the number of
// replicas are stream settings and are updated in place. The fsync
// settings (SyncAlways, SyncInterval) belong to the embedded server and
// take effect at its next start; restartNeeded reports that they differ.
func (e *Engine) Reconfigure(ctx context.Context, st QueueConfig) (restartNeeded bool, err error) {
	return e.q.reconfigure(ctx, st)
}

// DefaultAckWait is the consumers' AckWait unless Options.AckWait says
// otherwise.
const DefaultAckWait = 6 * time.Second

// Close stops every worker, letting attempts in flight finish for up to
// the ShutdownGrace, and shuts the queue down.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	runners := e.runners
	e.runners = map[string]*runner{}
	e.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.stop(e.grace)
		}()
	}
	wg.Wait()
	// Workers a reload replaced may still be finishing attempts: give
	// them the same grace, then cancel what is left (their attempts run
	// under the engine's context).
	stopped := make(chan struct{})
	go func() {
		e.stopping.Wait()
		close(stopped)
	}()
	t := time.NewTimer(e.grace)
	select {
	case <-stopped:
	case <-t.C:
	}
	t.Stop()
	e.cancel()
	<-stopped
	e.q.close()
	return nil
}

// Apply registers a configuration's destinations under owner. The most
// recently applied owner's set is the one that runs; releasing it falls
// back to the previous one, so a configuration that fails to start does
// not leave its settings behind. Destination names must be unique.
func (e *Engine) Apply(owner any, dests []*Destination) error {
	set := make(map[string]*Destination, len(dests))
	for _, d := range dests {
		if err := d.Validate(); err != nil {
			return err
		}
		if _, dup := set[d.Name]; dup {
			return fmt.Errorf("destination %q: %w", d.Name, ErrDuplicateName)
		}
		if _, ok := WebhookID(d.Name); ok || d.Name == WebhooksLabel {
			return fmt.Errorf("destination %q: %w", d.Name, ErrReservedName)
		}
		set[d.Name] = d.withDefaults()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("relay engine is closed")
	}
	e.owners = deleteOwner(e.owners, owner)
	e.owners = append(e.owners, ownerSet{owner: owner, dests: set})
	e.reconcileLocked()
	return nil
}

// Release withdraws an owner's destinations.
func (e *Engine) Release(owner any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.owners = deleteOwner(e.owners, owner)
	if !e.closed {
		e.reconcileLocked()
	}
}

func deleteOwner(s []ownerSet, owner any) []ownerSet {
	out := s[:0]
	for _, o := range s {
		if o.owner != owner {
			out = append(out, o)
		}
	}
	return out
}

// reconcileLocked makes the running workers match the active set.
func (e *Engine) reconcileLocked() {
	var active map[string]*Destination
	if n := len(e.owners); n > 0 {
		active = e.owners[n-1].dests
	}
	for name, w := range e.runners {
		if _, ok := e.dynamic[name]; ok {
			continue
		}
		d, ok := active[name]
		if !ok || !sameRunner(d, w.cfg()) {
			// A worker for the new settings starts pulling at once
			// beside it.
			e.retireLocked(name, w)
			continue
		}
		w.setCfg(d)
	}
	for name, d := range active {
		if _, ok := e.runners[name]; ok {
			continue
		}
		w := newRunner(e, d)
		e.runners[name] = w
		w.start()
	}
	// The lanes events are stored in follow the active configuration;
	// put destinations keep theirs (see Put and Remove).
	e.orders.Range(func(k, _ any) bool {
		name := k.(string)
		_, put := e.dynamic[name]
		if _, ok := active[name]; !ok && !put {
			e.orders.Delete(name)
		}
		return true
	})
	for name, d := range active {
		e.setOrderLocked(name, d)
	}
}

// sameRunner reports whether a runner of a's settings can take b's: the
// settings its consumers and pull loops are made of are the same.
func sameRunner(a, b *Destination) bool {
	return a.Workers == b.Workers && a.MaxPending == b.MaxPending && a.OrderBy == b.OrderBy && a.Lanes == b.Lanes
}

// Put runs a destination that belongs to no configuration, such as a
// webhook registered over the API (named WebhookName(id)), or updates the
// one of that name. It runs beside the active configuration's
// destinations, across reloads, until Remove. Settings that need a new
// consumer (Workers, MaxPending) restart its runner, letting attempts
// under way finish.
func (e *Engine) Put(d *Destination) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if _, ok := WebhookID(d.Name); !ok {
		return fmt.Errorf("destination %q: only registered webhooks' names (wh-<number>) can be put", d.Name)
	}
	d = d.withDefaults()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("relay engine is closed")
	}
	e.dynamic[d.Name] = d
	e.setOrderLocked(d.Name, d)
	if w, ok := e.runners[d.Name]; ok {
		if sameRunner(d, w.cfg()) {
			w.setCfg(d)
			return nil
		}
		e.retireLocked(d.Name, w)
		e.startLazyLocked(d)
	}
	// Its runner starts when it has messages: at the next Enqueue to
	// it, or at the sweep, which comes soon after a Put.
	select {
	case e.sweepSoon <- struct{}{}:
	default:
	}
	return nil
}

// startLazyLocked starts a put destination's runner.
func (e *Engine) startLazyLocked(d *Destination) *runner {
	w := newRunner(e, d)
	w.lazy = true
	e.runners[d.Name] = w
	w.start()
	return w
}

// wake makes sure a put destination's runner runs on this node: it has
// messages.
func (e *Engine) wake(name string) *runner {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	if w, ok := e.runners[name]; ok {
		w.woken.Add(1)
		return w
	}
	d, ok := e.dynamic[name]
	if !ok {
		return nil
	}
	return e.startLazyLocked(d)
}

// endIdle takes an idle lazy runner out, unless it was woken since seq
// (messages came meanwhile) or replaced.
func (e *Engine) endIdle(w *runner, seq uint64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.runners[w.name] != w || w.woken.Load() != seq {
		return false
	}
	delete(e.runners, w.name)
	return true
}

// sweepEvery is how often the engine looks for put destinations with
// messages and no runner here: parked retries that came due, events
// stored by a node that stopped, or at a start.
const sweepEvery = 10 * time.Second

// sweep wakes the put destinations that have messages waiting, every
// sweepEvery and soon after a Put.
func (e *Engine) sweep() {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		case <-e.sweepSoon:
			// Let a burst of Puts (a registry loading) land first.
			if !sleepCtx(e.ctx, 200*time.Millisecond) {
				return
			}
		}
		e.mu.Lock()
		n := len(e.dynamic)
		e.mu.Unlock()
		if n == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
		names, err := e.q.waitingWebhooks(ctx)
		cancel()
		if err != nil {
			e.log.Debug("cannot list the registered webhooks with deliveries waiting", zap.Error(err))
			continue
		}
		for _, name := range names {
			e.wake(name)
		}
	}
}

// Remove stops a destination put with Put, letting attempts under way
// finish. Its stored deliveries stay; Forget drops them.
func (e *Engine) Remove(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.dynamic[name]; !ok {
		return
	}
	delete(e.dynamic, name)
	e.setOrderLocked(name, nil)
	if w, ok := e.runners[name]; ok {
		e.retireLocked(name, w)
	}
}

// Forget removes a destination put with Put and drops what the queue
// holds for it: its waiting deliveries, its parked retries and its
// consumer. Its dead letters stay for their retention. It is for a
// webhook deleted over the API; running it on every node is safe.
func (e *Engine) Forget(ctx context.Context, name string) error {
	e.Remove(name)
	e.destStats.Delete(name)
	return e.q.forget(ctx, name)
}

// retireLocked stops a runner in the background, letting its attempts
// finish (a cancelled attempt would be made twice).
func (e *Engine) retireLocked(name string, w *runner) {
	delete(e.runners, name)
	e.stopping.Add(1)
	go func() {
		defer e.stopping.Done()
		w.stop(w.stopGrace())
	}()
}

// KeyValue opens, creating it if needed, a key-value bucket on the queue,
// replicated like its streams; the webhook registry keeps its webhooks
// in one.
func (e *Engine) KeyValue(ctx context.Context, bucket, description string) (jetstream.KeyValue, error) {
	return e.q.keyValue(ctx, bucket, description)
}

// StoredBytes returns the size of the deliveries waiting in the queue
// (stored, in flight and parked for a retry).
func (e *Engine) StoredBytes(ctx context.Context) (int64, error) {
	return e.q.deliveriesBytes(ctx)
}

// MaxEventSize is the largest encoded event the queue can store as one
// message: the server's max payload (which the embedded server sets to
// EmbeddedMaxPayload; a cluster's is read from its servers when
// connecting) less room for headers. It is 0 while the queue was never
// reached, when the limit is not known.
func (e *Engine) MaxEventSize() int64 {
	mp := e.q.maxPayload()
	if mp <= messageHeadroom {
		return 0
	}
	return mp - messageHeadroom
}

// Destinations returns the names of the running destinations of the
// configuration, without those put with Put (registered webhooks, which
// may be thousands).
func (e *Engine) Destinations() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	names := make([]string, 0, len(e.runners))
	for n := range e.runners {
		if _, put := e.dynamic[n]; !put {
			names = append(names, n)
		}
	}
	return names
}

// Enqueue stores one message per (event, destination) and returns once
// JetStream acknowledged every one of them. On error some may have been
// stored; a resend of the same events is deduplicated by message id
// within the dedupe window, so the sender's retry is safe.
func (e *Engine) Enqueue(ctx context.Context, events []event.Event, dests []string) error {
	if len(events) == 0 || len(dests) == 0 {
		return nil
	}
	each := make([][]string, len(events))
	for i := range each {
		each[i] = dests
	}
	return e.EnqueueEach(ctx, events, each)
}

// EnqueueEach is Enqueue with each event's own destinations: event i is
// stored once for each of dests[i] (an event of a topic that no
// destination takes is not stored at all).
func (e *Engine) EnqueueEach(ctx context.Context, events []event.Event, dests [][]string) error {
	n := 0
	for i := range events {
		n += len(dests[i])
	}
	if n == 0 {
		return nil
	}
	if !e.q.connected() {
		return ErrUnavailable
	}
	if limit := e.q.settings().MaxBytes; limit > 0 && e.outBytes.Load() >= limit {
		return ErrFull
	}
	// Encode and measure every event before the first publish, so that a
	// request with an event too large for the queue stores nothing.
	limit := e.MaxEventSize()
	msgs := make([]nats.Msg, 0, n)
	hv := newHeaderValues(events, n, formatTime(time.Now()))
	for i := range events {
		if len(dests[i]) == 0 {
			continue
		}
		ev := &events[i]
		body, err := ev.AppendJSON(make([]byte, 0, ev.EncodedLen()))
		if err != nil {
			return fmt.Errorf("encoding event: %w", err)
		}
		if limit > 0 && int64(len(body)) > limit {
			return &TooLargeError{Size: int64(len(body)), Limit: limit}
		}
		for _, dest := range dests[i] {
			msgs = append(msgs, nats.Msg{
				Subject: e.subjectFor(dest, body),
				Header:  hv.delivery(i, ev.ID+"."+dest),
				Data:    body,
			})
		}
	}
	if err := e.q.storeDeliveries(ctx, msgs); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	e.wakeAll(dests)
	return nil
}

// wakeAll wakes the registered webhooks among dests, once each.
func (e *Engine) wakeAll(dests [][]string) {
	var seen map[string]bool
	for _, ds := range dests {
		for _, d := range ds {
			if _, ok := WebhookID(d); !ok || seen[d] {
				continue
			}
			if seen == nil {
				seen = make(map[string]bool)
			}
			seen[d] = true
			e.wake(d)
		}
	}
}
