package relay

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
)

// DeadLetter describes one dead-lettered delivery. It never holds a
// response body or a credential; Event, the stored event JSON, is left out
// of its JSON form, which is what the admin API and the status page show.
type DeadLetter struct {
	// Seq identifies the dead letter (its stream sequence) for replay.
	Seq         uint64           `json:"id"`
	EventID     string           `json:"event_id"`
	Topic       string           `json:"topic"`
	Destination string           `json:"destination"`
	Attempts    int              `json:"attempts"`
	FirstSeen   time.Time        `json:"first_seen"`
	DeadAt      time.Time        `json:"dead_at"`
	LastStatus  int              `json:"last_status"`
	LastError   string           `json:"last_error"`
	Reason      DeadLetterReason `json:"reason"`
	Event       []byte           `json:"-"`
}

func deadLetterFromMsg(seq uint64, h nats.Header, data []byte) DeadLetter {
	dl := DeadLetter{
		Seq:         seq,
		EventID:     h.Get(HeaderEvent),
		Destination: h.Get(HeaderDestination),
		Attempts:    headerInt(h, HeaderAttempts),
		LastStatus:  headerInt(h, HeaderLastStatus),
		LastError:   h.Get(HeaderLastError),
		Reason:      DeadLetterReason(h.Get(HeaderReason)),
		Event:       data,
	}
	var ev struct {
		Topic string `json:"topic"`
	}
	if json.Unmarshal(data, &ev) == nil {
		dl.Topic = ev.Topic
	}
	dl.FirstSeen, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderFirstSeen))
	dl.DeadAt, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderDeadAt))
	return dl
}

// DeadLetters lists up to limit dead letters of a destination ("" for
// all) from stream sequence after (exclusive), oldest first. It returns
// the sequence to pass as after for the next page, or 0 at the end.
func (e *Engine) DeadLetters(ctx context.Context, dest string, after uint64, limit int) ([]DeadLetter, uint64, error) {
	if dest != "" {
		if err := CheckName(dest); err != nil {
			return nil, 0, err
		}
	}
	if limit <= 0 {
		limit = 100
	}
	return e.q.deadLetters(ctx, dest, after, limit)
}

// DeadLetterCount returns how many dead letters a destination ("" for all)
// has.
func (e *Engine) DeadLetterCount(ctx context.Context, dest string) (uint64, error) {
	counts, err := e.q.deadLetterCounts(ctx, dest)
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range counts {
		n += c
	}
	return n, nil
}

// Replay moves dead letters back to their destination's queue with a
// fresh retry budget (attempts 0, first seen now) and deletes them from
// the dead-letter stream. It returns how many were requeued; the dead
// letters of a deleted registered webhook stay where they are.
func (e *Engine) Replay(ctx context.Context, seqs []uint64) (int, error) {
	n := 0
	for _, seq := range seqs {
		dest, err := e.q.requeue(ctx, seq, e.replayable)
		if err != nil {
			return n, err
		}
		if dest != "" {
			n++
			if _, ok := WebhookID(dest); ok {
				e.wake(dest)
			}
		}
	}
	return n, nil
}

// replayable reports whether a dead letter of dest may be requeued: not
// when dest is a registered webhook that was deleted, whose subject no
// runner would ever read.
func (e *Engine) replayable(dest string) bool {
	if _, ok := WebhookID(dest); !ok {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.dynamic[dest]
	return ok
}

// ReplayDestination replays every dead letter of a destination that was
// dead-lettered at or after since (the zero time means all of them), like
// Replay. It returns how many were requeued.
func (e *Engine) ReplayDestination(ctx context.Context, dest string, since time.Time) (int, error) {
	if err := CheckName(dest); err != nil {
		return 0, err
	}
	var seqs []uint64
	for after := uint64(0); ; {
		dls, next, err := e.DeadLetters(ctx, dest, after, 1000)
		if err != nil {
			return 0, err
		}
		for _, dl := range dls {
			if since.IsZero() || !dl.DeadAt.Before(since) {
				seqs = append(seqs, dl.Seq)
			}
		}
		if next == 0 {
			break
		}
		after = next
	}
	return e.Replay(ctx, seqs)
}
