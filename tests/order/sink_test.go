package order

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ev is one event of the tests: status number Status (0-based) of key Key.
type ev struct {
	Key    string
	Status int
}

func (e ev) String() string { return fmt.Sprintf("%s#%d", e.Key, e.Status) }

// statusGuide is an Ave guide event for status k of shipment id: its
// status code is k+1 (a code of "0" would read as absent) and its time k
// minutes after a fixed start, so that every status of a shipment is its
// own event (event ids derive from the normalized data).
func statusGuide(e ev) string {
	at := time.Date(2022, 12, 11, 8, 0, 0, 0, time.UTC).Add(time.Duration(e.Status) * time.Minute)
	return fmt.Sprintf(`{"id_envio":%q,"cod_estado":"%d","nombre_estado":"ESTADO %d","fecha_estado":%q}`,
		e.Key, e.Status+1, e.Status+1, at.Format(time.DateTime))
}

// statusPayload is an Ave tracking body with one guide per event, in order.
func statusPayload(evs ...ev) []byte {
	guides := make([]string, len(evs))
	for i, e := range evs {
		guides[i] = statusGuide(e)
	}
	return []byte(`{"tipo":"json","body":[` + strings.Join(guides, ",") + `]}`)
}

// decodeAve reads the key (data.shipment_id) and status (data.status.code
// minus one) of a delivered normalized Ave event.
func decodeAve(body []byte) (ev, bool) {
	var e struct {
		Data struct {
			ShipmentID string `json:"shipment_id"`
			Status     struct {
				Code string `json:"code"`
			} `json:"status"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &e) != nil || e.Data.ShipmentID == "" {
		return ev{}, false
	}
	code, err := strconv.Atoi(e.Data.Status.Code)
	if err != nil || code < 1 {
		return ev{}, false
	}
	return ev{Key: e.Data.ShipmentID, Status: code - 1}, true
}

// attempt is one request an orderSink received.
type attempt struct {
	ev
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

func (a attempt) ok() bool { return a.Answer >= 200 && a.Answer < 300 }

// hang, returned by a script, makes the sink hold the request until the
// client gives up or the test releases it.
const hang = -1

// orderSink is a loopback destination that records every attempt with
// its key and status, and answers what its script says.
type orderSink struct {
	URL    string
	srv    *httptest.Server
	script func(a attempt) int
	decode func(body []byte) (ev, bool)
	// okDelay is how long a 2xx answer takes, so that two attempts of
	// one key made at once would overlap in the record.
	okDelay time.Duration

	release     chan struct{}
	releaseOnce sync.Once

	mu       sync.Mutex
	atts     []attempt
	ok       map[ev]int     // 2xx answers per event
	attempts map[ev]int     // attempts per event, answered or not
	perKey   map[string]int // attempts per key, answered or not
	arrived  atomic.Int64
}

// newOrderSink starts a sink on 127.0.0.1 that decodes Ave events and
// answers script (200 when nil).
func newOrderSink(t testing.TB, script func(a attempt) int) *orderSink {
	t.Helper()
	s := &orderSink{script: script, decode: decodeAve, release: make(chan struct{}),
		ok: map[ev]int{}, attempts: map[ev]int{}, perKey: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	// Release hung requests before closing the server, which waits for them.
	t.Cleanup(func() { s.releaseAll(); s.srv.Close() })
	return s
}

// releaseAll ends every hung request, now and later.
func (s *orderSink) releaseAll() { s.releaseOnce.Do(func() { close(s.release) }) }

func (s *orderSink) serve(w http.ResponseWriter, r *http.Request) {
	a := attempt{Start: time.Now(), EventID: r.Header.Get("webhook-id"), Node: r.Header.Get("X-Node"),
		Config: r.Header.Get("X-Config"), ev: ev{Status: -1}}
	s.arrived.Add(1)
	body, err := io.ReadAll(r.Body)
	a.Body = body
	a.Cut = err != nil || (r.ContentLength >= 0 && int64(len(body)) != r.ContentLength)
	answer := http.StatusServiceUnavailable
	if !a.Cut {
		e, ok := s.decode(body)
		a.Malformed = !ok
		if ok {
			a.ev = e
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
	if answer == hang {
		select {
		case <-r.Context().Done():
		case <-s.release:
		}
		a.End = time.Now()
		s.record(a)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if answer >= 200 && answer < 300 && s.okDelay > 0 {
		time.Sleep(s.okDelay)
	}
	a.Answer = answer
	a.Abandoned = r.Context().Err() != nil
	a.End = time.Now()
	s.record(a)
	w.WriteHeader(answer)
}

func (s *orderSink) record(a attempt) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.atts = append(s.atts, a)
	if a.ok() && !a.Cut && !a.Malformed {
		s.ok[a.ev]++
	}
}

// all returns every attempt recorded so far (an attempt is recorded when
// it is answered, or when a hung one ends).
func (s *orderSink) all() []attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.atts)
}

// of returns the recorded attempts of key, by start.
func (s *orderSink) of(key string) []attempt {
	var out []attempt
	for _, a := range s.all() {
		if a.Key == key {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b attempt) int { return a.Start.Compare(b.Start) })
	return out
}

// delivered returns how many times e was answered 2xx.
func (s *orderSink) delivered(e ev) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok[e]
}

// attemptsOf returns how many attempts of e arrived (answered or not).
func (s *orderSink) attemptsOf(e ev) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[e]
}

// arrivedOf returns how many attempts of key arrived (answered or not).
func (s *orderSink) arrivedOf(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perKey[key]
}

// missing counts the events of acked (key -> statuses 0..n-1) never
// answered 2xx, and returns up to 5 of them.
func (s *orderSink) missing(acked map[string]int) (int, []ev) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	var some []ev
	for k, c := range acked {
		for i := range c {
			if s.ok[ev{k, i}] == 0 {
				n++
				if len(some) < 5 {
					some = append(some, ev{k, i})
				}
			}
		}
	}
	return n, some
}

// waitDelivered waits until every event of acked was answered 2xx.
func (s *orderSink) waitDelivered(t *testing.T, acked map[string]int, within time.Duration) {
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

// flaky is a script failing about rate of the attempts at random: half
// of those answer 503, half hang until the client gives up.
func flaky(rate float64) func(attempt) int {
	return func(attempt) int {
		switch r := rand.Float64(); {
		case r < rate/2:
			return http.StatusServiceUnavailable
		case r < rate:
			return hang
		default:
			return http.StatusOK
		}
	}
}

// feeder posts the statuses of its keys in order within each key and
// shuffled across keys: a key's status k+1 is sent only once status k was
// answered 201, and each request holds the next statuses of up to batch
// random ready keys. A request not answered 201 is sent again (its
// statuses before any later one of their keys).
type feeder struct {
	keys     []string
	statuses int

	mu    sync.Mutex
	next  []int // per key: statuses answered 201 so far
	ready []int // keys with no request under way and statuses left
	left  int   // keys with statuses left

	requests  atomic.Int64
	accepted  atomic.Int64 // events answered 201
	refused   atomic.Int64 // requests answered another status
	transport atomic.Int64 // requests without an answer
	began     time.Time
	finished  time.Time
}

func newFeeder(keys []string, statuses int) *feeder {
	f := &feeder{keys: keys, statuses: statuses, next: make([]int, len(keys)), left: len(keys)}
	for i := range keys {
		f.ready = append(f.ready, i)
	}
	return f
}

// total is how many events the feeder sends in all.
func (f *feeder) total() int { return len(f.keys) * f.statuses }

// take picks up to n random ready keys; done is true when no key has
// statuses left.
func (f *feeder) take(n int) (picked []int, done bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.left == 0 {
		return nil, true
	}
	for len(picked) < n && len(f.ready) > 0 {
		i := rand.IntN(len(f.ready))
		picked = append(picked, f.ready[i])
		f.ready[i] = f.ready[len(f.ready)-1]
		f.ready = f.ready[:len(f.ready)-1]
	}
	return picked, false
}

// give hands keys back, advanced when their statuses were answered 201.
func (f *feeder) give(keys []int, accepted bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		if accepted {
			f.next[k]++
			if f.next[k] == f.statuses {
				f.left--
				continue
			}
		}
		f.ready = append(f.ready, k)
	}
	if f.left == 0 && f.finished.IsZero() {
		f.finished = time.Now()
	}
}

// run sends from senders goroutines, batch statuses a request, until every
// status was answered 201 or stop is closed. send posts a body and returns
// the status, 0 when no answer came.
func (f *feeder) run(stop <-chan struct{}, senders, batch int, send func([]byte) int) {
	f.began = time.Now()
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				keys, done := f.take(batch)
				if done {
					return
				}
				if len(keys) == 0 {
					time.Sleep(time.Millisecond)
					continue
				}
				evs := make([]ev, len(keys))
				f.mu.Lock()
				for i, k := range keys {
					evs[i] = ev{f.keys[k], f.next[k]}
				}
				f.mu.Unlock()
				f.requests.Add(1)
				status := send(statusPayload(evs...))
				switch status {
				case http.StatusCreated:
					f.accepted.Add(int64(len(keys)))
				case 0:
					f.transport.Add(1)
				default:
					f.refused.Add(1)
				}
				f.give(keys, status == http.StatusCreated)
				if status != http.StatusCreated {
					time.Sleep(20 * time.Millisecond) // Caddy down or reloading
				}
			}
		}()
	}
	wg.Wait()
}

// acked returns, per key, how many of its statuses were answered 201
// (statuses 0..n-1).
func (f *feeder) acked() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := make(map[string]int, len(f.keys))
	for i, k := range f.keys {
		m[k] = f.next[i]
	}
	return m
}

func (f *feeder) summary() string {
	took := time.Since(f.began)
	f.mu.Lock()
	if !f.finished.IsZero() {
		took = f.finished.Sub(f.began)
	}
	f.mu.Unlock()
	return fmt.Sprintf("%d requests, %d events answered 201 in %v (%.0f/s), %d requests refused, %d without an answer",
		f.requests.Load(), f.accepted.Load(), took.Round(time.Millisecond), float64(f.accepted.Load())/took.Seconds(),
		f.refused.Load(), f.transport.Load())
}

// orderStats tallies the attempts checkOrder looked at.
type orderStats struct {
	attempts, delivered, duplicates, hung, failed, cut, abandoned int
	first, last                                                   time.Time
}

func (s orderStats) String() string {
	return fmt.Sprintf("%d attempts: %d answered 2xx (%d of them duplicates), %d answered an error, %d hung until the client gave up, %d cut, %d abandoned",
		s.attempts, s.delivered, s.duplicates, s.failed, s.hung, s.cut, s.abandoned)
}

// settles reports whether an answer settles the event for the relay: a
// 2xx, or one that dead-letters it at once (a 4xx other than 408, 409,
// 410, 425 and 429).
func settles(answer int) bool {
	if answer >= 200 && answer < 300 {
		return true
	}
	switch answer {
	case 408, 409, 410, 425, 429:
		return false
	}
	return answer >= 400 && answer < 500
}

// checkOrder checks every attempt against the ordering contract, key by
// key. acked holds, per key, how many of its statuses (0..n-1) were
// answered 201; a key not in acked is an error. It checks:
//
//   - in order, one at a time: an attempt of status k+1 never began before
//     status k was answered (2xx, or an answer that dead-letters it);
//   - the statuses answered 2xx, adjacent repeats (duplicates) collapsed,
//     are 0, 1, 2, ... in that order: a status delivered again after a
//     later one, or one skipped, is an error;
//   - no loss: every acknowledged status was answered 2xx;
//   - no overlap: two attempts of a key both answered (not hung, not
//     abandoned by the client) never overlapped at the receiver.
//
// Duplicates are counted and logged, not errors.
func checkOrder(t *testing.T, atts []attempt, acked map[string]int) orderStats {
	t.Helper()
	var st orderStats
	byKey := map[string][]attempt{}
	var malformed []string
	for _, a := range atts {
		st.attempts++
		if st.first.IsZero() || a.Start.Before(st.first) {
			st.first = a.Start
		}
		if a.End.After(st.last) && a.ok() {
			st.last = a.End
		}
		switch {
		case a.Cut:
			st.cut++
			continue
		case a.Malformed:
			malformed = append(malformed, fmt.Sprintf("%.200s", a.Body))
			continue
		}
		switch {
		case a.Answer == 0:
			st.hung++
		case a.ok():
			st.delivered++
		default:
			st.failed++
		}
		if a.Abandoned {
			st.abandoned++
		}
		byKey[a.Key] = append(byKey[a.Key], a)
	}
	if len(malformed) > 0 {
		t.Errorf("%d attempts could not be decoded, first: %s", len(malformed), malformed[0])
	}

	const shown = 8
	var early, reordered, lost, overlaps, unknown, dups []string
	for key, as := range byKey {
		n, known := acked[key]
		if !known {
			unknown = append(unknown, key)
			continue
		}
		slices.SortFunc(as, func(a, b attempt) int { return a.Start.Compare(b.Start) })
		early = append(early, earlyAttempts(key, as)...)
		// The statuses answered 2xx, in the order they were received.
		var seq []int
		var prev attempt
		for _, a := range as {
			if !a.ok() {
				continue
			}
			if len(seq) > 0 && seq[len(seq)-1] == a.Status {
				st.duplicates++
				dups = append(dups, fmt.Sprintf("key %s: status %d answered 2xx at %s (node %q, config %q) and again at %s (node %q, config %q)",
					key, a.Status, prev.End.Format("15:04:05.000000"), prev.Node, prev.Config, a.Start.Format("15:04:05.000000"), a.Node, a.Config))
				continue
			}
			seq = append(seq, a.Status)
			prev = a
		}
		inOrder := true
		for i, s := range seq {
			if s != i {
				inOrder = false
			}
		}
		if !inOrder {
			reordered = append(reordered, fmt.Sprintf("key %s: statuses delivered (2xx) in the order %v", key, seq))
		} else if len(seq) < n {
			lost = append(lost, fmt.Sprintf("key %s: statuses 0..%d answered 201, only 0..%d delivered", key, n-1, len(seq)-1))
		}
		overlaps = append(overlaps, overlapping(key, as)...)
	}
	// Keys never attempted at all.
	for key, n := range acked {
		if n > 0 && len(byKey[key]) == 0 {
			lost = append(lost, fmt.Sprintf("key %s: statuses 0..%d answered 201, none delivered", key, n-1))
		}
	}
	report := func(what string, list []string) {
		if len(list) == 0 {
			return
		}
		slices.Sort(list)
		t.Errorf("%s: %d, e.g.:\n\t%s", what, len(list), strings.Join(list[:min(shown, len(list))], "\n\t"))
	}
	report("attempts that began before the previous status of their key was answered", early)
	report("keys whose statuses were delivered out of order (or skipped)", reordered)
	report("keys with statuses answered 201 and never delivered (lost)", lost)
	report("attempts of one key that overlapped at the receiver", overlaps)
	report("attempts of keys never sent", unknown)
	if st.duplicates > 0 {
		slices.Sort(dups)
		t.Logf("%d duplicate deliveries (a status answered 2xx again right after itself, allowed), e.g.:\n\t%s",
			st.duplicates, strings.Join(dups[:min(shown, len(dups))], "\n\t"))
	}
	return st
}

// earlyAttempts checks that the attempts of one key (sorted by start) come
// in order, one at a time: an attempt of status k+1 never began before
// status k was answered (2xx, or an answer that dead-letters it). It
// returns the attempts that began too early.
func earlyAttempts(key string, as []attempt) []string {
	answered := map[int]time.Time{} // when each status was first answered
	for _, a := range as {
		if settles(a.Answer) && !a.Abandoned {
			if at, ok := answered[a.Status]; !ok || a.End.Before(at) {
				answered[a.Status] = a.End
			}
		}
	}
	var out []string
	for _, a := range as {
		if a.Status == 0 {
			continue
		}
		prev, ok := answered[a.Status-1]
		if !ok || !prev.Before(a.Start) {
			when := "it never was"
			if ok {
				when = fmt.Sprintf("it was at %s, %v later", prev.Format("15:04:05.000000"), prev.Sub(a.Start))
			}
			out = append(out, fmt.Sprintf("key %s: an attempt of status %d (answered %d, webhook-id %s, node %q) began at %s, before status %d was answered (%s)",
				key, a.Status, a.Answer, a.EventID, a.Node, a.Start.Format("15:04:05.000000"), a.Status-1, when))
		}
	}
	return out
}

// overlapping checks that no two attempts of one key (sorted by start)
// that were both answered (not hung, not abandoned by the client)
// overlapped at the receiver, and returns those that did.
func overlapping(key string, as []attempt) []string {
	var out []string
	var last attempt
	for _, a := range as {
		if a.Answer == 0 || a.Abandoned {
			continue
		}
		if !last.End.IsZero() && a.Start.Before(last.End) {
			out = append(out, fmt.Sprintf("key %s: status %d (answered %d, %s-%s) overlaps status %d (answered %d, %s-%s)",
				key, a.Status, a.Answer, a.Start.Format("15:04:05.000000"), a.End.Format("15:04:05.000000"),
				last.Status, last.Answer, last.Start.Format("15:04:05.000000"), last.End.Format("15:04:05.000000")))
		}
		if a.End.After(last.End) {
			last = a
		}
	}
	return out
}
