package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// ErrUnknownDestination is returned for a destination name that no
// running configuration defines.
var ErrUnknownDestination = errors.New("no running destination has that name")

// RecentWindow is how far back DestinationStatus.Recent counts attempts.
const RecentWindow = 5 * time.Minute

const (
	// bucketWidth is the resolution of the recent-outcomes ring.
	bucketWidth = 10 * time.Second
	numBuckets  = int(RecentWindow / bucketWidth)
	// numRecentAttempts is how many of the last attempts are kept.
	numRecentAttempts = 10
	// pauseForever is how long Pause pauses a consumer: until Resume.
	pauseForever = 100 * 365 * 24 * time.Hour
	// resumeDelay is when Resume ends a pause (see setConsumerState).
	resumeDelay = 50 * time.Millisecond
	// staleRetry is how long after its due time a short retry this node
	// handed back is forgotten if it never came back here (another node
	// of a cluster took it).
	staleRetry = 10 * time.Minute
)

// Outcomes counts attempts by outcome.
type Outcomes struct {
	Delivered  uint64 `json:"delivered"`
	Retry      uint64 `json:"retry"`
	DeadLetter uint64 `json:"dead_letter"`
}

func (o *Outcomes) add(out Outcome, n uint64) {
	switch out {
	case OutcomeDelivered:
		o.Delivered += n
	case OutcomeRetry:
		o.Retry += n
	default:
		o.DeadLetter += n
	}
}

// Attempt is one recent delivery attempt. Error never holds a response
// body or a credential.
type Attempt struct {
	At      time.Time `json:"at"`
	Outcome Outcome   `json:"outcome"`
	Status  int       `json:"status"`
	Error   string    `json:"error,omitempty"`
}

// DestinationStatus is a snapshot of one running destination.
//
// Pending, InFlight, Scheduled and DeadLetters come from JetStream and are
// the same on every node of a cluster. RetryWaiting, NextAttempt, the last
// attempt and Recent are what this node saw: its short retries (those kept
// in the consumer with NakWithDelay) are not known after a restart until
// they come back, and attempts made by other nodes are not counted.
type DestinationStatus struct {
	Name string `json:"name"`
	// Pending counts messages stored and not yet handed to a worker.
	Pending uint64 `json:"pending"`
	// InFlight counts messages handed out and not yet settled: being
	// attempted, or waiting in the consumer for a short retry.
	InFlight int `json:"in_flight"`
	// Redelivered counts in-flight messages handed out more than once.
	Redelivered int `json:"redelivered"`
	// RetryWaiting counts short retries this node handed back with a
	// delay and that have not come back yet.
	RetryWaiting int `json:"retry_waiting"`
	// Scheduled counts long retries parked as scheduled messages.
	Scheduled uint64 `json:"scheduled"`
	// InRetry is RetryWaiting plus Scheduled.
	InRetry uint64 `json:"in_retry"`
	// NextAttempt is when the earliest waiting retry is due; nil when no
	// retry waits. For scheduled retries it is the time of the oldest
	// parked one, which is close to, but not always, the earliest.
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	// LastStatus is the HTTP status of the last attempt, 0 when it got no
	// answer or none was made.
	LastStatus int `json:"last_status"`
	// LastOutcome is the last attempt's outcome: delivered, retry or
	// dead_letter; empty when none was made.
	LastOutcome Outcome `json:"last_outcome,omitempty"`
	// LastError says why the last attempt failed.
	LastError string `json:"last_error,omitempty"`
	// LastAttempt is when the last attempt ended.
	LastAttempt *time.Time `json:"last_attempt,omitempty"`
	// Recent counts the attempts of the last RecentWindow by outcome.
	Recent Outcomes `json:"recent"`
	// RecentAttempts are the last few attempts, newest first.
	RecentAttempts []Attempt `json:"recent_attempts"`
	// Paused is true while the destination's consumer is paused.
	Paused bool `json:"paused"`
	// CircuitOpen is true while this node holds back pulls because the
	// destination keeps failing.
	CircuitOpen bool `json:"circuit_open"`
	// DeadLetters counts the destination's stored dead letters.
	DeadLetters uint64 `json:"dead_letters"`
	// Gone is true when the destination answered 410 Gone: it is paused
	// and its events wait, stored, until an operator resumes it.
	Gone bool `json:"gone"`
	// GoneSince is when it answered 410; nil unless Gone.
	GoneSince *time.Time `json:"gone_since,omitempty"`
	// Ordered is true for a destination with an order_by key.
	Ordered bool `json:"ordered"`
	// Lanes is an ordered destination's number of lanes; 0 when unordered.
	Lanes int `json:"lanes,omitempty"`
	// BlockedLanes counts the lanes whose first event failed and waits
	// for its retry, holding back the later events of the lane, as this
	// node saw them (like RetryWaiting).
	BlockedLanes int `json:"blocked_lanes"`
	// OldestBlockedSince is when the longest-blocked lane's first event
	// first failed (as far as this node saw); nil when no lane is blocked.
	OldestBlockedSince *time.Time `json:"oldest_blocked_since,omitempty"`
	// OldestBlockedKey is that event's order key, at most 128 bytes of it.
	OldestBlockedKey string `json:"oldest_blocked_key,omitempty"`
}

// Depth is how many messages wait for the destination: pending, in
// flight and scheduled.
func (s DestinationStatus) Depth() uint64 {
	return s.Pending + uint64(s.InFlight) + s.Scheduled
}

// destStats is what the workers record about a destination. It lives on
// the engine, so a worker restarted by a reload keeps its history.
type destStats struct {
	now func() time.Time

	mu      sync.Mutex
	buckets [numBuckets]struct {
		slot   int64
		counts Outcomes
	}
	last     Attempt
	recent   [numRecentAttempts]Attempt
	nRecent  int // attempts ever recorded, for the ring position
	retryDue map[uint64]time.Time
	// blocked are the lanes whose head failed and waits for its retry,
	// as this node saw them.
	blocked map[int]blockedLane

	// The oldest parked retry's due time, as last read.
	firstSched        time.Time
	firstSchedOK      bool
	firstSchedRead    time.Time
	firstSchedReading bool
}

func newDestStats(now func() time.Time) *destStats {
	if now == nil {
		now = time.Now
	}
	return &destStats{now: now, retryDue: make(map[uint64]time.Time), blocked: make(map[int]blockedLane)}
}

// blockedLane is a lane whose head waits for a retry.
type blockedLane struct {
	key   string
	seq   uint64    // the head's stream sequence
	since time.Time // when this node first saw it fail
	due   time.Time // its retry
}

// block notes that lane's head, the message with stream sequence seq and
// order key key, failed and is due again at due.
func (s *destStats) block(lane int, key string, seq uint64, due time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blocked[lane]
	if !ok || b.seq != seq {
		b = blockedLane{key: key, seq: seq, since: s.now()}
	}
	b.due = due
	s.blocked[lane] = b
}

// unblock notes that lane's head was settled.
func (s *destStats) unblock(lane int) {
	s.mu.Lock()
	delete(s.blocked, lane)
	s.mu.Unlock()
}

// laneTaken notes that lane handed out the message with stream sequence
// seq: a blocked head of another sequence was settled by another node.
func (s *destStats) laneTaken(lane int, seq uint64) {
	s.mu.Lock()
	if b, ok := s.blocked[lane]; ok && b.seq != seq {
		delete(s.blocked, lane)
	}
	s.mu.Unlock()
}

// stats returns the destination's record, creating it on first use.
func (e *Engine) stats(name string) *destStats {
	if s, ok := e.destStats.Load(name); ok {
		return s.(*destStats)
	}
	s, _ := e.destStats.LoadOrStore(name, newDestStats(nil))
	return s.(*destStats)
}

// record notes an attempt that ended now.
func (s *destStats) record(out Outcome, status int, errText string) {
	now := s.now()
	slot := now.UnixNano() / int64(bucketWidth)
	s.mu.Lock()
	defer s.mu.Unlock()
	b := &s.buckets[slot%int64(numBuckets)]
	if b.slot != slot {
		b.slot, b.counts = slot, Outcomes{}
	}
	b.counts.add(out, 1)
	if out == OutcomeDelivered {
		errText = ""
	}
	s.last = Attempt{At: now, Outcome: out, Status: status, Error: errText}
	s.recent[s.nRecent%numRecentAttempts] = s.last
	s.nRecent++
}

// retryingAt notes that the message with stream sequence seq was handed
// back to the consumer for a retry at due.
func (s *destStats) retryingAt(seq uint64, due time.Time) {
	s.mu.Lock()
	s.retryDue[seq] = due
	s.mu.Unlock()
}

// taken notes that the message with stream sequence seq came back.
func (s *destStats) taken(seq uint64) {
	s.mu.Lock()
	delete(s.retryDue, seq)
	s.mu.Unlock()
}

// fill copies what this node recorded into st.
func (s *destStats) fill(st *DestinationStatus) {
	now := s.now()
	cur := now.UnixNano() / int64(bucketWidth)
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Recent = Outcomes{}
	for i := range s.buckets {
		b := &s.buckets[i]
		if b.slot > cur-int64(numBuckets) && b.slot <= cur {
			st.Recent.Delivered += b.counts.Delivered
			st.Recent.Retry += b.counts.Retry
			st.Recent.DeadLetter += b.counts.DeadLetter
		}
	}
	if !s.last.At.IsZero() {
		at := s.last.At
		st.LastAttempt = &at
		st.LastStatus = s.last.Status
		st.LastOutcome = s.last.Outcome
		st.LastError = s.last.Error
	}
	n := min(s.nRecent, numRecentAttempts)
	st.RecentAttempts = make([]Attempt, 0, n)
	for i := 1; i <= n; i++ {
		st.RecentAttempts = append(st.RecentAttempts, s.recent[(s.nRecent-i)%numRecentAttempts])
	}
	var next time.Time
	for seq, due := range s.retryDue {
		if now.Sub(due) > staleRetry {
			delete(s.retryDue, seq)
			continue
		}
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	st.RetryWaiting = len(s.retryDue)
	if !next.IsZero() {
		st.NextAttempt = &next
	}
	var oldest *blockedLane
	for lane, b := range s.blocked {
		if now.Sub(b.due) > staleRetry {
			// Another node of a cluster took it and settled it.
			delete(s.blocked, lane)
			continue
		}
		if oldest == nil || b.since.Before(oldest.since) {
			oldest = &b
		}
	}
	st.BlockedLanes = len(s.blocked)
	if oldest != nil {
		since := oldest.since
		st.OldestBlockedSince = &since
		st.OldestBlockedKey = shownKey(oldest.key)
	}
}

// Stats returns a snapshot of every running destination, sorted by name.
//
// It covers the configuration's destinations; a registered webhook's
// status is DestinationStatus of its name, and StatusOf reads several.
func (e *Engine) Stats(ctx context.Context) ([]DestinationStatus, error) {
	return e.status(ctx, e.Destinations())
}

// DestinationStatus returns a snapshot of one running destination.
func (e *Engine) DestinationStatus(ctx context.Context, name string) (DestinationStatus, error) {
	if !e.known(name) {
		return DestinationStatus{}, fmt.Errorf("%w: %q", ErrUnknownDestination, name)
	}
	out, err := e.status(ctx, []string{name})
	if err != nil {
		return DestinationStatus{}, err
	}
	return out[0], nil
}

// StatusOf returns snapshots of the named running destinations, such as
// a page of registered webhooks; names that do not run are left out.
func (e *Engine) StatusOf(ctx context.Context, names []string) ([]DestinationStatus, error) {
	run := make([]string, 0, len(names))
	for _, n := range names {
		if e.known(n) {
			run = append(run, n)
		}
	}
	return e.status(ctx, run)
}

// known reports whether name is a running destination or a put one
// (whose runner may be idle).
func (e *Engine) known(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, running := e.runners[name]
	_, put := e.dynamic[name]
	return running || put
}

func (e *Engine) runner(name string) *runner {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runners[name]
}

func (e *Engine) status(ctx context.Context, names []string) ([]DestinationStatus, error) {
	slices.Sort(names)
	dead, err := e.q.deadLetterCounts(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]DestinationStatus, 0, len(names))
	for _, name := range names {
		st := DestinationStatus{Name: name, DeadLetters: dead[name]}
		info, err := e.q.consumerInfo(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("reading the consumer of %s: %w", name, err)
		}
		if info != nil { // nil: not created yet, nothing was handed out
			st.Pending = info.NumPending
			st.InFlight = info.NumAckPending
			st.Redelivered = info.NumRedelivered
			st.Paused = info.Paused
			if since, ok := goneSince(info); ok {
				st.Gone = true
				if !since.IsZero() {
					st.GoneSince = &since
				}
			}
		}
		if err := e.laneStatus(ctx, name, &st); err != nil {
			return nil, fmt.Errorf("reading the lanes of %s: %w", name, err)
		}
		st.Scheduled = e.q.scheduledCount(ctx, name)
		ds := e.stats(name)
		ds.fill(&st)
		if st.Scheduled > 0 {
			if at, ok := e.firstScheduledCached(ds, name); ok && (st.NextAttempt == nil || at.Before(*st.NextAttempt)) {
				st.NextAttempt = &at
			}
		}
		st.InRetry = uint64(st.RetryWaiting) + st.Scheduled
		if r := e.runner(name); r != nil {
			st.CircuitOpen = r.breaker.isOpen()
		}
		out = append(out, st)
	}
	return out, nil
}

// laneStatus adds what an ordered destination's lanes hold to st: their
// waiting and in-flight messages, read from the consumers of the lanes
// that hold any (the consumer of an empty lane has nothing to add).
func (e *Engine) laneStatus(ctx context.Context, name string, st *DestinationStatus) error {
	d, r := e.destination(name)
	if d != nil && d.orderPath != nil {
		st.Ordered, st.Lanes = true, d.Lanes
	} else if r == nil || len(r.lanes.list()) == 0 {
		return nil // unordered, and no lane left to drain
	}
	counts, err := e.q.laneCounts(ctx, name)
	if err != nil {
		return err
	}
	for lane, n := range counts {
		info, err := e.q.consumerInfoNamed(ctx, laneConsumerName(name, lane))
		if err != nil {
			return err
		}
		if info == nil {
			st.Pending += n // no node pulled from it yet
			continue
		}
		st.Pending += info.NumPending
		st.InFlight += info.NumAckPending
		st.Redelivered += info.NumRedelivered
	}
	return nil
}

// destination returns the settings of a running or put destination, and
// its runner on this node (nil when idle).
func (e *Engine) destination(name string) (*Destination, *runner) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.runners[name]
	if r != nil {
		return r.cfg(), r
	}
	return e.dynamic[name], nil
}

// firstScheduledEvery is how often the due time of a destination's oldest
// parked retry is read again. Parked retries are at least NakMaxDelay
// away, so this staleness does not mislead.
const firstScheduledEvery = 30 * time.Second

// firstScheduledCached returns the due time of dest's oldest parked retry
// as last read, and starts reading it again in the background when that
// is older than firstScheduledEvery: the read walks the server's index of
// parked subjects, one per retry, which must not slow a status call.
func (e *Engine) firstScheduledCached(ds *destStats, dest string) (time.Time, bool) {
	ds.mu.Lock()
	at, ok, readAt, reading := ds.firstSched, ds.firstSchedOK, ds.firstSchedRead, ds.firstSchedReading
	stale := !reading && ds.now().Sub(readAt) > firstScheduledEvery
	if stale {
		ds.firstSchedReading = true
	}
	ds.mu.Unlock()
	if stale {
		read := func() {
			ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
			defer cancel()
			at, ok := e.q.firstScheduled(ctx, dest)
			ds.mu.Lock()
			ds.firstSched, ds.firstSchedOK, ds.firstSchedRead, ds.firstSchedReading = at, ok, ds.now(), false
			ds.mu.Unlock()
		}
		if readAt.IsZero() {
			// The first read: wait for it, so a status has an answer.
			read()
			ds.mu.Lock()
			at, ok = ds.firstSched, ds.firstSchedOK
			ds.mu.Unlock()
		} else {
			go read()
		}
	}
	return at, ok
}

// Pause stops deliveries to a running destination until Resume: its
// consumer is paused in JetStream, so every node of a cluster stops, and
// the pause survives restarts and reloads. Messages keep being stored;
// attempts already under way finish.
func (e *Engine) Pause(ctx context.Context, name string) error {
	return e.setPaused(ctx, name, true)
}

// Resume lets deliveries to a paused destination go on.
func (e *Engine) Resume(ctx context.Context, name string) error {
	return e.setPaused(ctx, name, false)
}

func (e *Engine) setPaused(ctx context.Context, name string, pause bool) error {
	r := e.runner(name)
	if r == nil {
		// An idle registered webhook: its runner runs while it is paused
		// (see puller.idleOut).
		r = e.wake(name)
	}
	if r == nil {
		return fmt.Errorf("%w: %q", ErrUnknownDestination, name)
	}
	pauseFor := time.Duration(0)
	if pause {
		pauseFor = pauseForever
	}
	// Every consumer of the destination: its own, and its lanes' when
	// it is ordered. Resuming also clears a gone mark (a 410).
	for _, cs := range r.allConsumers() {
		if err := e.q.setConsumerState(ctx, cs, pauseFor, false); err != nil {
			return err
		}
	}
	if !pause {
		r.gone.clear()
	}
	return nil
}
