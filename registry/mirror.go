package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// mirror follows a key-value bucket on this node: a watcher applies each
// change under mu, and callers wait until a revision, or a condition, is
// applied. The registry of webhooks and that of dynamic webhooks each
// embed one.
type mirror struct {
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.RWMutex
	rev     uint64        // the last bucket revision applied
	ready   bool          // the initial values are applied
	changed chan struct{} // closed and replaced whenever something is applied
}

// follow watches kv and calls apply, under mu, with each entry (never
// the nil that ends the initial values) until stop. It returns once the
// stored entries are applied, or ctx ends; past ctx they go on loading
// in the background.
func (m *mirror) follow(ctx context.Context, kv jetstream.KeyValue, apply func(jetstream.KeyValueEntry)) error {
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.done = make(chan struct{})
	m.changed = make(chan struct{})
	w, err := kv.WatchAll(m.ctx)
	if err != nil {
		m.cancel()
		close(m.done)
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	go m.watch(kv, w, apply)
	m.waitUntil(ctx, func() bool { return m.ready })
	return nil
}

// stop stops watching; it waits until the watcher ended.
func (m *mirror) stop() {
	m.cancel()
	<-m.done
}

// lagCheck is how often the watcher is checked against the bucket.
var lagCheck = time.Second

// watch applies the bucket's changes until stop. The watcher
// re-subscribes by itself after a disconnection, but after a server's
// death it can take it 15-20 s to notice; so every lagCheck (1 s) the bucket's
// last revision is read, and a watcher that stayed behind it over two
// checks is replaced by one that resumes after the last revision applied.
func (m *mirror) watch(kv jetstream.KeyValue, w jetstream.KeyWatcher, apply func(jetstream.KeyValueEntry)) {
	defer close(m.done)
	defer func() { _ = w.Stop() }()
	tick := time.NewTicker(lagCheck)
	defer tick.Stop()
	behind := uint64(0) // the revision the last check found the watcher behind
	for {
		select {
		case <-m.ctx.Done():
			return
		case kve, ok := <-w.Updates():
			if !ok {
				return
			}
			m.applyOne(kve, apply)
		case <-tick.C:
			last, ok := m.bucketRev(kv)
			m.mu.RLock()
			rev, ready := m.rev, m.ready
			m.mu.RUnlock()
			switch {
			case !ok || !ready || last <= rev:
				behind = 0
			case behind == 0 || rev >= behind:
				behind = last // behind now, or moving on: give it until the next check
			default:
				nw, err := kv.WatchAll(m.ctx, jetstream.ResumeFromRevision(rev+1))
				if err != nil {
					continue
				}
				_ = w.Stop()
				w, behind = nw, 0
			}
		}
	}
}

// bucketRev is the bucket's last revision; false when it cannot be read.
func (m *mirror) bucketRev(kv jetstream.KeyValue) (uint64, bool) {
	ctx, cancel := context.WithTimeout(m.ctx, time.Second)
	defer cancel()
	st, err := kv.Status(ctx)
	if err != nil {
		return 0, false
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok || bs.StreamInfo() == nil {
		return 0, false
	}
	return bs.StreamInfo().State.LastSeq, true
}

func (m *mirror) applyOne(kve jetstream.KeyValueEntry, apply func(jetstream.KeyValueEntry)) {
	m.mu.Lock()
	defer func() {
		close(m.changed)
		m.changed = make(chan struct{})
		m.mu.Unlock()
	}()
	if kve == nil {
		m.ready = true
		return
	}
	if kve.Revision() > m.rev {
		m.rev = kve.Revision()
	}
	apply(kve)
}

// waitRev waits, at most 5s, until this node applied revision rev, so
// that a caller reads its own write before it is answered.
func (m *mirror) waitRev(ctx context.Context, rev uint64) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m.waitUntil(ctx, func() bool { return m.rev >= rev })
}

// waitUntil waits until cond, read under mu, holds after some change the
// watcher applied, or until ctx ends.
func (m *mirror) waitUntil(ctx context.Context, cond func() bool) {
	for {
		m.mu.RLock()
		ok, ch := cond(), m.changed
		m.mu.RUnlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// conflict reports whether a write with an expected revision failed
// because the key changed meanwhile (or is gone). A replicated bucket
// reports it with another code than a single server; both are
// ErrKeyRevisionMismatch.
func conflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) ||
		errors.Is(err, jetstream.ErrKeyNotFound)
}
