package relay

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// These tests run a runner's decisions (handle, settle and the ways a
// delivery finishes) without a queue: the message and the store are
// recorded in memory. The destinations are real loopback servers. The
// engine tests run the same code against a real JetStream server.

// fakeMsg is a fetched message that records how it was settled.
type fakeMsg struct {
	data  []byte
	hdr   nats.Header
	meta  jetstream.MsgMetadata
	mu    sync.Mutex
	acks  int
	naks  []time.Duration // -1 for a plain Nak
	inPro int
}

func newFakeMsg(id string, attempts int, firstSeen time.Time, delivered uint64) *fakeMsg {
	return &fakeMsg{
		data: []byte(`{"id":"` + id + `","topic":"t","data":{}}`),
		hdr:  storedHeader(id, attempts, formatTime(firstSeen)),
		meta: jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: 7}, NumDelivered: delivered, Timestamp: firstSeen},
	}
}

func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) { return &m.meta, nil }
func (m *fakeMsg) Data() []byte                              { return m.data }
func (m *fakeMsg) Headers() nats.Header                      { return m.hdr }
func (m *fakeMsg) Subject() string                           { return outSubject("app") }
func (m *fakeMsg) Reply() string                             { return "" }
func (m *fakeMsg) Ack() error                                { m.mu.Lock(); m.acks++; m.mu.Unlock(); return nil }
func (m *fakeMsg) DoubleAck(context.Context) error           { return m.Ack() }
func (m *fakeMsg) Nak() error                                { return m.NakWithDelay(-1) }
func (m *fakeMsg) NakWithDelay(d time.Duration) error {
	m.mu.Lock()
	m.naks = append(m.naks, d)
	m.mu.Unlock()
	return nil
}
func (m *fakeMsg) InProgress() error           { m.inPro++; return nil }
func (m *fakeMsg) Term() error                 { return errors.New("not used") }
func (m *fakeMsg) TermWithReason(string) error { return errors.New("not used") }

// fakeStore records what a runner stored.
type fakeStore struct {
	mu        sync.Mutex
	fail      error
	scheduled []scheduled
	dead      []deadRecord
	gone      bool
}

type scheduled struct {
	dest, id  string
	attempts  int
	firstSeen time.Time
	at        time.Time
}

func (s *fakeStore) openConsumer(context.Context, consumerSettings) (jetstream.Consumer, error) {
	return nil, errors.New("not used")
}

func (s *fakeStore) scheduleRetry(_ context.Context, dest, id string, attempts int, firstSeen, at time.Time, _ []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.scheduled = append(s.scheduled, scheduled{dest, id, attempts, firstSeen, at})
	return nil
}

func (s *fakeStore) storeDeadLetter(_ context.Context, r deadRecord, _ []byte, _ func(uint64)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.dead = append(s.dead, r)
	return nil
}

func (s *fakeStore) setConsumerState(_ context.Context, _ consumerSettings, _ time.Duration, gone bool) error {
	s.mu.Lock()
	s.gone = gone
	s.mu.Unlock()
	return nil
}

// observed records what the Observer was told.
type observed struct {
	mu       sync.Mutex
	outcomes []Outcome
}

func (o *observed) Attempt(_ string, out Outcome, _ time.Duration) {
	o.mu.Lock()
	o.outcomes = append(o.outcomes, out)
	o.mu.Unlock()
}
func (o *observed) DeadLettersDropped(uint64) {}

// testRunner returns a runner for d, with a fake store, outside any queue.
func testRunner(t *testing.T, d *Destination) (*runner, *fakeStore, *observed) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	obs := &observed{}
	e := &Engine{log: zap.NewNop(), client: NewClient(), nakMax: 2 * time.Minute, ackWait: DefaultAckWait, obs: obs, ctx: ctx}
	r := newRunner(e, d.withDefaults())
	st := &fakeStore{}
	r.store = st
	return r, st, obs
}

func answering(t *testing.T, status int) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestTransformFailureIsDeadLetteredAndRecorded(t *testing.T) {
	r, st, obs := testRunner(t, &Destination{Name: "app", URL: answering(t, 200),
		Transform: func([]byte) ([]byte, error) { return nil, errors.New("no field x") }})
	msg := newFakeMsg("ev1", 0, time.Now(), 1)
	r.handle(msg, noLane)
	if len(st.dead) != 1 || st.dead[0].reason != ReasonTransformFailed || st.dead[0].lastError != "transform: no field x" || st.dead[0].eventID != "ev1" {
		t.Fatalf("dead letters = %+v, want one transform_failed", st.dead)
	}
	if msg.acks != 1 || len(msg.naks) != 0 {
		t.Errorf("acks %d naks %v, want the message acknowledged once", msg.acks, msg.naks)
	}
	// The status page and the metrics agree.
	var s DestinationStatus
	r.stats.fill(&s)
	if s.Recent.DeadLetter != 1 || s.LastOutcome != OutcomeDeadLetter || s.LastError != "transform: no field x" {
		t.Errorf("status = %+v, want the dead letter recorded", s)
	}
	if len(obs.outcomes) != 1 || obs.outcomes[0] != OutcomeDeadLetter {
		t.Errorf("observer told %v, want [dead_letter]", obs.outcomes)
	}
}

func TestSettle(t *testing.T) {
	firstSeen := time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		name      string
		status    int
		schedule  []time.Duration
		maxAge    time.Duration
		storeFail bool
		wantOut   Outcome
		wantAcks  int
		wantNaks  []time.Duration
		wantSched int
		wantDead  DeadLetterReason
		wantGone  bool
	}{
		{name: "delivered", status: 204, wantOut: OutcomeDelivered, wantAcks: 1},
		{name: "short retry stays in the consumer", status: 503, schedule: []time.Duration{time.Second}, wantOut: OutcomeRetry, wantNaks: []time.Duration{-2}},
		{name: "long retry is parked", status: 500, schedule: []time.Duration{time.Hour}, wantOut: OutcomeRetry, wantAcks: 1, wantSched: 1},
		{name: "parking fails: kept in the consumer", status: 500, schedule: []time.Duration{time.Hour}, storeFail: true, wantOut: OutcomeRetry, wantNaks: []time.Duration{2 * time.Minute}},
		{name: "permanent failure", status: 422, wantOut: OutcomeDeadLetter, wantAcks: 1, wantDead: ReasonPermanentFailure},
		{name: "gone", status: 410, wantOut: OutcomeDeadLetter, wantAcks: 1, wantDead: ReasonGone, wantGone: true},
		{name: "past max age", status: 500, maxAge: 30 * time.Minute, wantOut: OutcomeDeadLetter, wantAcks: 1, wantDead: ReasonMaxAge},
		{name: "dead letter not stored: retried in a minute", status: 422, storeFail: true, wantOut: OutcomeDeadLetter, wantNaks: []time.Duration{time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, st, obs := testRunner(t, &Destination{Name: "app", URL: answering(t, tc.status),
				Retry: RetryPolicy{Schedule: tc.schedule, MaxAge: tc.maxAge}})
			if tc.storeFail {
				st.fail = errors.New("queue down")
			}
			msg := newFakeMsg("ev1", 2, firstSeen, 1)
			r.handle(msg, noLane)
			if len(obs.outcomes) != 1 || obs.outcomes[0] != tc.wantOut {
				t.Errorf("outcomes %v, want [%v]", obs.outcomes, tc.wantOut)
			}
			if msg.acks != tc.wantAcks {
				t.Errorf("acks = %d, want %d", msg.acks, tc.wantAcks)
			}
			if len(msg.naks) != len(tc.wantNaks) {
				t.Fatalf("naks = %v, want %v", msg.naks, tc.wantNaks)
			}
			for i, want := range tc.wantNaks {
				got := msg.naks[i]
				if want == -2 { // a short retry: the schedule's delay, up to 10% more
					if got < time.Second || got > 1100*time.Millisecond {
						t.Errorf("nak delay %v, want 1s to 1.1s", got)
					}
				} else if got != want {
					t.Errorf("nak delay %v, want %v", got, want)
				}
			}
			if len(st.scheduled) != tc.wantSched {
				t.Fatalf("scheduled = %+v, want %d", st.scheduled, tc.wantSched)
			}
			if tc.wantSched == 1 {
				s := st.scheduled[0]
				// The third attempt (2 before, delivered once now).
				if s.id != "ev1" || s.attempts != 3 || !s.firstSeen.Equal(firstSeen) {
					t.Errorf("scheduled %+v, want ev1, 3 attempts, first seen kept", s)
				}
				if d := time.Until(s.at); d < 59*time.Minute || d > 67*time.Minute {
					t.Errorf("scheduled %v from now, want about an hour", d)
				}
			}
			if tc.wantDead != "" && (len(st.dead) != 1 || st.dead[0].reason != tc.wantDead || st.dead[0].status != tc.status || st.dead[0].attempts != 3) {
				t.Errorf("dead letters = %+v, want one %s with status %d after 3 attempts", st.dead, tc.wantDead, tc.status)
			}
			if st.gone != tc.wantGone || r.gone.isSet() != tc.wantGone {
				t.Errorf("gone = %v (node %v), want %v", st.gone, r.gone.isSet(), tc.wantGone)
			}
		})
	}
}

// A destination marked gone hands its messages back untried.
func TestGoneRunnerHandsMessagesBack(t *testing.T) {
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits++ }))
	t.Cleanup(srv.Close)
	r, _, obs := testRunner(t, &Destination{Name: "app", URL: srv.URL})
	r.gone.mark()
	msg := newFakeMsg("ev1", 0, time.Now(), 1)
	r.handle(msg, noLane)
	if hits != 0 || len(obs.outcomes) != 0 || msg.acks != 0 || len(msg.naks) != 1 || msg.naks[0] != time.Second {
		t.Errorf("hits %d outcomes %v acks %d naks %v; want the message handed back untried", hits, obs.outcomes, msg.acks, msg.naks)
	}
}
