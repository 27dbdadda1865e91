package ordertest

import (
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Attempt is one request a Sink received.
type Attempt struct {
	Ev
	EventID string // the webhook-id header
	Node    string // the X-Node header
	Config  string // the X-Config header
	Start   time.Time
	// End is when the answer was decided, just before it was written: the
	// relay cannot have had the answer before.
	End time.Time
	// Answer is the status answered; 0 when the sink hung until the
	// client gave up (or the test released it).
	Answer int
	// Abandoned is true when the client was gone before the answer was
	// written: it never read it.
	Abandoned bool
	// Cut is true when the body arrived shorter than its Content-Length
	// (the sender died mid-request); such an attempt is not decoded.
	Cut bool
	// Malformed is true when the body could not be decoded.
	Malformed bool
	Body      []byte
}

// OK reports whether the attempt was answered 2xx.
func (a Attempt) OK() bool { return a.Answer >= 200 && a.Answer < 300 }

// Hang, returned by a script, makes the sink hold the request until the
// client gives up or the test releases it.
const Hang = -1

// Sink is a loopback destination that records every attempt with its key
// and status, and answers what its script says.
type Sink struct {
	URL    string
	srv    *httptest.Server
	script func(a Attempt) int
	// Decode reads the event of a delivered body (decodeAve, Ave events,
	// unless the test sets another before the first attempt).
	Decode func(body []byte) (Ev, bool)
	// OKDelay is how long a 2xx answer takes, so that two attempts of
	// one key made at once would overlap in the record.
	OKDelay time.Duration

	release     chan struct{}
	releaseOnce sync.Once

	mu       sync.Mutex
	atts     []Attempt
	ok       map[Ev]int     // 2xx answers per event
	attempts map[Ev]int     // attempts per event, answered or not
	perKey   map[string]int // attempts per key, answered or not
	// Arrived counts the requests that arrived, decoded or not.
	Arrived atomic.Int64
}

// NewSink starts a sink on 127.0.0.1 that decodes Ave events and answers
// script (200 when nil).
func NewSink(t testing.TB, script func(a Attempt) int) *Sink {
	t.Helper()
	s := &Sink{script: script, Decode: decodeAve, release: make(chan struct{}),
		ok: map[Ev]int{}, attempts: map[Ev]int{}, perKey: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	// Release hung requests before closing the server, which waits for them.
	t.Cleanup(func() { s.ReleaseAll(); s.srv.Close() })
	return s
}

// ReleaseAll ends every hung request, now and later.
func (s *Sink) ReleaseAll() { s.releaseOnce.Do(func() { close(s.release) }) }

func (s *Sink) serve(w http.ResponseWriter, r *http.Request) {
	a := Attempt{Start: time.Now(), EventID: r.Header.Get("webhook-id"), Node: r.Header.Get("X-Node"),
		Config: r.Header.Get("X-Config"), Ev: Ev{Status: -1}}
	s.Arrived.Add(1)
	body, err := io.ReadAll(r.Body)
	a.Body = body
	a.Cut = err != nil || (r.ContentLength >= 0 && int64(len(body)) != r.ContentLength)
	answer := http.StatusServiceUnavailable
	if !a.Cut {
		e, ok := s.Decode(body)
		a.Malformed = !ok
		if ok {
			a.Ev = e
			s.mu.Lock()
			s.attempts[e]++
			s.perKey[e.Key]++
			s.mu.Unlock()
			answer = http.StatusOK
			if s.script != nil {
				answer = s.script(a)
			}
		}
	}
	if answer == Hang {
		select {
		case <-r.Context().Done():
		case <-s.release:
		}
		a.End = time.Now()
		s.record(a)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if answer >= 200 && answer < 300 && s.OKDelay > 0 {
		time.Sleep(s.OKDelay)
	}
	a.Answer = answer
	a.Abandoned = r.Context().Err() != nil
	a.End = time.Now()
	s.record(a)
	w.WriteHeader(answer)
}

func (s *Sink) record(a Attempt) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.atts = append(s.atts, a)
	if a.OK() && !a.Cut && !a.Malformed {
		s.ok[a.Ev]++
	}
}

// All returns every attempt recorded so far (an attempt is recorded when
// it is answered, or when a hung one ends).
func (s *Sink) All() []Attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.atts)
}

// Of returns the recorded attempts of key, by start.
func (s *Sink) Of(key string) []Attempt {
	var out []Attempt
	for _, a := range s.All() {
		if a.Key == key {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b Attempt) int { return a.Start.Compare(b.Start) })
	return out
}

// Delivered returns how many times e was answered 2xx.
func (s *Sink) Delivered(e Ev) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok[e]
}

// AttemptsOf returns how many attempts of e arrived (answered or not).
func (s *Sink) AttemptsOf(e Ev) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[e]
}

// ArrivedOf returns how many attempts of key arrived (answered or not).
func (s *Sink) ArrivedOf(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perKey[key]
}

// missing counts the events of acked (key -> statuses 0..n-1) never
// answered 2xx, and returns up to 5 of them.
func (s *Sink) missing(acked map[string]int) (int, []Ev) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	var some []Ev
	for k, c := range acked {
		for i := range c {
			if s.ok[Ev{k, i}] == 0 {
				n++
				if len(some) < 5 {
					some = append(some, Ev{k, i})
				}
			}
		}
	}
	return n, some
}

// WaitDelivered waits until every event of acked was answered 2xx.
func (s *Sink) WaitDelivered(t *testing.T, acked map[string]int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n, some := s.missing(acked)
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events answered 201 were not delivered within %v, e.g. %v", n, within, some)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Flaky is a script failing about rate of the attempts at random: half
// of those answer 503, half hang until the client gives up.
func Flaky(rate float64) func(Attempt) int {
	return func(Attempt) int {
		switch r := rand.Float64(); {
		case r < rate/2:
			return http.StatusServiceUnavailable
		case r < rate:
			return Hang
		default:
			return http.StatusOK
		}
	}
}
