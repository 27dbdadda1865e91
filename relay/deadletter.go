package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeadLetter describes one dead-lettered delivery. It never holds a
// response body or a credential; Event, the stored event JSON, is left out
// of its JSON form, which is what the admin API and the status page show.
type DeadLetter struct {
	// Seq identifies the dead letter (its stream sequence) for replay.
	Seq         uint64    `json:"id"`
	EventID     string    `json:"event_id"`
	Topic       string    `json:"topic"`
	Destination string    `json:"destination"`
	Attempts    int       `json:"attempts"`
	FirstSeen   time.Time `json:"first_seen"`
	DeadAt      time.Time `json:"dead_at"`
	LastStatus  int       `json:"last_status"`
	LastError   string    `json:"last_error"`
	Reason      string    `json:"reason"`
	Event       []byte    `json:"-"`
}

func deadLetterFromMsg(m *jetstream.RawStreamMsg) DeadLetter {
	h := m.Header
	dl := DeadLetter{
		Seq:         m.Sequence,
		EventID:     h.Get(HeaderEvent),
		Destination: h.Get(HeaderDestination),
		Attempts:    headerInt(h, HeaderAttempts),
		LastStatus:  headerInt(h, HeaderLastStatus),
		LastError:   h.Get(HeaderLastError),
		Reason:      h.Get(HeaderReason),
		Event:       m.Data,
	}
	var ev struct {
		Topic string `json:"topic"`
	}
	if json.Unmarshal(m.Data, &ev) == nil {
		dl.Topic = ev.Topic
	}
	dl.FirstSeen, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderFirstSeen))
	dl.DeadAt, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderDeadAt))
	return dl
}

// storeDeadLetter stores m in the dead-letter stream. The stream is
// bounded (QueueConfig.DeadLetterMaxBytes) and drops its oldest messages to
// make room; dropped is told how many this store pushed out, read from
// the stream's count before and after (on a cluster, concurrent stores of
// other nodes can blur it).
func (q *queue) storeDeadLetter(ctx context.Context, m *nats.Msg, dropped func(n uint64)) error {
	s, err := q.js.Stream(ctx, StreamDead)
	if err != nil {
		return err
	}
	before := s.CachedInfo().State
	full := before.Bytes+uint64(len(m.Data))+messageHeadroom > uint64(q.settings().DeadLetterMaxBytes)
	if _, err := q.js.PublishMsg(ctx, m); err != nil {
		return err
	}
	if !full {
		return nil
	}
	after, err := s.Info(ctx)
	if err != nil {
		return nil
	}
	if n := before.Msgs + 1; after.State.Msgs < n {
		dropped(n - after.State.Msgs)
	}
	return nil
}

func deadSubject(dest string) string {
	if dest == "" {
		return subjectDead + ">"
	}
	return subjectDead + dest
}

// DeadLetters lists up to limit dead letters of a destination ("" for
// all) from stream sequence after (exclusive), oldest first. It returns
// the sequence to pass as after for the next page, or 0 at the end.
func (e *Engine) DeadLetters(ctx context.Context, dest string, after uint64, limit int) ([]DeadLetter, uint64, error) {
	if dest != "" && !ValidName(dest) {
		return nil, 0, fmt.Errorf("invalid destination name %q", dest)
	}
	if limit <= 0 {
		limit = 100
	}
	s, err := e.q.js.Stream(ctx, StreamDead)
	if err != nil {
		return nil, 0, err
	}
	subj := deadSubject(dest)
	var out []DeadLetter
	seq := after + 1
	for len(out) < limit {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, 0, nil
		}
		if err != nil {
			return out, 0, err
		}
		out = append(out, deadLetterFromMsg(m))
		seq = m.Sequence + 1
	}
	return out, seq - 1, nil
}

// DeadLetterCount returns how many dead letters a destination ("" for all)
// has.
func (e *Engine) DeadLetterCount(ctx context.Context, dest string) (uint64, error) {
	s, err := e.q.js.Stream(ctx, StreamDead)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(deadSubject(dest)))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}

// Replay moves dead letters back to their destination's queue with a
// fresh retry budget (attempts 0, first seen now) and deletes them from
// the dead-letter stream. It returns how many were requeued.
func (e *Engine) Replay(ctx context.Context, seqs []uint64) (int, error) {
	s, err := e.q.js.Stream(ctx, StreamDead)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, seq := range seqs {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		dl := deadLetterFromMsg(m)
		if !ValidName(dl.Destination) {
			continue
		}
		out := &nats.Msg{
			Subject: outSubject(dl.Destination),
			Header: nats.Header{
				// A replay is a new delivery: its own id, so the
				// dedupe window does not drop it.
				jetstream.MsgIDHeader: {dl.EventID + "." + dl.Destination + ".replay." + strconv.FormatUint(seq, 10)},
				HeaderEvent:           {dl.EventID},
				HeaderFirstSeen:       {time.Now().UTC().Format(time.RFC3339Nano)},
				HeaderAttempts:        {"0"},
			},
			Data: m.Data,
		}
		if _, err := e.q.js.PublishMsg(ctx, out); err != nil {
			return n, err
		}
		if err := s.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return n, err
		}
		n++
	}
	return n, nil
}

// ReplayDestination replays every dead letter of a destination that was
// dead-lettered at or after since (the zero time means all of them), like
// Replay. It returns how many were requeued.
func (e *Engine) ReplayDestination(ctx context.Context, dest string, since time.Time) (int, error) {
	if !ValidName(dest) {
		return 0, fmt.Errorf("invalid destination name %q", dest)
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
