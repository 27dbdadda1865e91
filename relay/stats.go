package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
	// resumeDelay is when Resume ends a pause. The server's
	// ResumeConsumer does not wake the pull requests that wait on the
	// paused consumer (nats-server 2.15: they are served only at their
	// expiry), while a pause that ends on its own does; so Resume moves
	// the end of the pause to a moment from now.
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
	case Delivered:
		o.Delivered += n
	case Retry:
		o.Retry += n
	default:
		o.DeadLetter += n
	}
}

// Attempt is one recent delivery attempt. Error never holds a response
// body or a credential.
type Attempt struct {
	At      time.Time `json:"at"`
	Outcome string    `json:"outcome"`
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
	LastOutcome string `json:"last_outcome,omitempty"`
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
}

func newDestStats(now func() time.Time) *destStats {
	if now == nil {
		now = time.Now
	}
	return &destStats{now: now, retryDue: make(map[uint64]time.Time)}
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
	if out == Delivered {
		errText = ""
	}
	s.last = Attempt{At: now, Outcome: out.String(), Status: status, Error: errText}
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
}

// Stats returns a snapshot of every running destination, sorted by name.
func (e *Engine) Stats(ctx context.Context) ([]DestinationStatus, error) {
	return e.status(ctx, e.Destinations())
}

// DestinationStatus returns a snapshot of one running destination.
func (e *Engine) DestinationStatus(ctx context.Context, name string) (DestinationStatus, error) {
	if e.worker(name) == nil {
		return DestinationStatus{}, fmt.Errorf("%w: %q", ErrUnknownDestination, name)
	}
	out, err := e.status(ctx, []string{name})
	if err != nil {
		return DestinationStatus{}, err
	}
	return out[0], nil
}

func (e *Engine) worker(name string) *destWorker {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.workers[name]
}

func (e *Engine) status(ctx context.Context, names []string) ([]DestinationStatus, error) {
	slices.Sort(names)
	scheduled, err := e.subjectCounts(ctx, StreamOut, subjectSchedule+">")
	if err != nil {
		return nil, err
	}
	dead, err := e.subjectCounts(ctx, StreamDead, subjectDead+">")
	if err != nil {
		return nil, err
	}
	out := make([]DestinationStatus, 0, len(names))
	for _, name := range names {
		st := DestinationStatus{Name: name, Scheduled: scheduled[name], DeadLetters: dead[name]}
		c, err := e.q.js.Consumer(ctx, StreamOut, consumerName(name))
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			// Not created yet: nothing was handed out.
		case err != nil:
			return nil, fmt.Errorf("reading the consumer of %s: %w", name, err)
		default:
			info := c.CachedInfo()
			st.Pending = info.NumPending
			st.InFlight = info.NumAckPending
			st.Redelivered = info.NumRedelivered
			st.Paused = info.Paused
		}
		e.stats(name).fill(&st)
		if st.Scheduled > 0 {
			if at, ok := e.firstScheduled(ctx, name); ok && (st.NextAttempt == nil || at.Before(*st.NextAttempt)) {
				st.NextAttempt = &at
			}
		}
		st.InRetry = uint64(st.RetryWaiting) + st.Scheduled
		if w := e.worker(name); w != nil {
			st.CircuitOpen = w.failures.Load() >= breakerThreshold
		}
		out = append(out, st)
	}
	return out, nil
}

// subjectCounts counts a stream's messages on filter by destination, the
// third token of hookrelay subjects.
func (e *Engine) subjectCounts(ctx context.Context, stream, filter string) (map[string]uint64, error) {
	s, err := e.q.js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("reading stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("reading stream %s: %w", stream, err)
	}
	counts := make(map[string]uint64)
	for subj, n := range info.State.Subjects {
		parts := strings.SplitN(subj, ".", 4)
		if len(parts) >= 3 {
			counts[parts[2]] += n
		}
	}
	return counts, nil
}

// firstScheduled reads the due time of the oldest parked retry of dest.
func (e *Engine) firstScheduled(ctx context.Context, dest string) (time.Time, bool) {
	s, err := e.q.js.Stream(ctx, StreamOut)
	if err != nil {
		return time.Time{}, false
	}
	m, err := s.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subjectSchedule+dest+".>"))
	if err != nil {
		return time.Time{}, false
	}
	at, ok := strings.CutPrefix(m.Header.Get("Nats-Schedule"), "@at ")
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, at)
	return t, err == nil
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
	w := e.worker(name)
	if w == nil {
		return fmt.Errorf("%w: %q", ErrUnknownDestination, name)
	}
	do := func() error {
		e.consumerMu.Lock()
		defer e.consumerMu.Unlock()
		until := time.Now().Add(resumeDelay)
		if pause {
			until = time.Now().Add(pauseForever)
		}
		_, err := e.q.js.PauseConsumer(ctx, StreamOut, consumerName(name), until)
		return err
	}
	err := do()
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		// The worker has not created it yet; do it now.
		if _, err = w.consumer(); err != nil {
			return err
		}
		err = do()
	}
	return err
}

// pausedUntil returns the pause deadline of an existing consumer, so that
// updating its configuration does not resume it.
func (q *queue) pausedUntil(ctx context.Context, consumer string) *time.Time {
	c, err := q.js.Consumer(ctx, StreamOut, consumer)
	if err != nil {
		return nil
	}
	info := c.CachedInfo()
	if !info.Paused || info.Config.PauseUntil == nil {
		return nil
	}
	return info.Config.PauseUntil
}
