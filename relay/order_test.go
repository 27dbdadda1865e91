package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay/event"
)

// orderedEvent is status n of shipment key.
func orderedEvent(key string, n int) event.Event {
	data := fmt.Sprintf(`{"shipment_id":%q,"n":%d}`, key, n)
	return event.Event{ID: event.NewID("order-test", key, fmt.Sprint(n)), Topic: "t", Source: "test", ReceivedAt: time.Now(), Data: json.RawMessage(data)}
}

// orderSink checks, as attempts come, that no status of a key is
// attempted before the one before it was answered 2xx.
type orderSink struct {
	t          *testing.T
	mu         sync.Mutex
	next       map[string]int // the next status each key may be attempted with
	delivered  int
	duplicates int
	violations []string
	fail       func(key string, n int) int // the status to answer
}

func (s *orderSink) serve(w http.ResponseWriter, r *http.Request) {
	var ev struct {
		Data struct {
			Key string `json:"shipment_id"`
			N   int    `json:"n"`
		} `json:"data"`
	}
	if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	k, n := ev.Data.Key, ev.Data.N
	s.mu.Lock()
	want := s.next[k]
	switch {
	case n > want:
		s.violations = append(s.violations, fmt.Sprintf("%s: status %d attempted before %d was delivered", k, n, want))
	case n < want-1:
		s.violations = append(s.violations, fmt.Sprintf("%s: status %d attempted after %d was delivered", k, n, want-1))
	}
	s.mu.Unlock()
	status := http.StatusOK
	if s.fail != nil {
		status = s.fail(k, n)
	}
	s.mu.Lock()
	if status < 300 {
		if n == want {
			s.next[k] = n + 1
			s.delivered++
		} else {
			s.duplicates++
		}
	}
	s.mu.Unlock()
	w.WriteHeader(status)
}

func (s *orderSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.delivered
}

func TestOrderedLanesKeepOrderPerKeyThroughRetries(t *testing.T) {
	const keys, statuses = 60, 8
	sink := &orderSink{t: t, next: map[string]int{}}
	var failMu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	sink.fail = func(string, int) int {
		failMu.Lock()
		defer failMu.Unlock()
		if rng.IntN(5) == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	srv := newReceiver(t, nil)
	srv.Config.Handler = http.HandlerFunc(sink.serve)
	e := openEngine(t, Options{})
	d := &Destination{Name: "ordered", URL: srv.URL, OrderBy: "data.shipment_id", Lanes: 4, Workers: 4,
		Retry: RetryPolicy{Schedule: []time.Duration{20 * time.Millisecond, 50 * time.Millisecond}}}
	if err := e.Apply(t, []*Destination{d}); err != nil {
		t.Fatal(err)
	}
	// Status n of every key is stored before status n+1 of any.
	for n := range statuses {
		var evs []event.Event
		for k := range keys {
			evs = append(evs, orderedEvent(fmt.Sprintf("s%03d", k), n))
		}
		if err := e.Enqueue(context.Background(), evs, []string{"ordered"}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for sink.count() < keys*statuses && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.violations) > 0 {
		t.Fatalf("%d order violations, first: %v", len(sink.violations), sink.violations[:min(5, len(sink.violations))])
	}
	if sink.delivered != keys*statuses {
		t.Fatalf("delivered %d of %d", sink.delivered, keys*statuses)
	}
	t.Logf("duplicates: %d", sink.duplicates)
}

func TestOrderedLaneWaitsForItsHeadOnly(t *testing.T) {
	stuck := make(chan struct{})
	sink := &orderSink{t: t, next: map[string]int{}}
	sink.fail = func(k string, n int) int {
		if k == "stuck" && n == 0 {
			select {
			case <-stuck:
			default:
				return http.StatusServiceUnavailable
			}
		}
		return http.StatusOK
	}
	srv := newReceiver(t, nil)
	srv.Config.Handler = http.HandlerFunc(sink.serve)
	e := openEngine(t, Options{})
	// The second step is the long one: the stuck head waits there.
	d := &Destination{Name: "ordered", URL: srv.URL, OrderBy: "data.shipment_id", Lanes: 8,
		Retry: RetryPolicy{Schedule: []time.Duration{10 * time.Millisecond, 2 * time.Second}}}
	if err := e.Apply(t, []*Destination{d}); err != nil {
		t.Fatal(err)
	}
	// Keys of other lanes than the stuck key's flow; the few keys that
	// share its lane wait behind it.
	stuckLane := laneOf("stuck", true, 8)
	var evs []event.Event
	flowing, sharing := 0, 0
	for k := range 50 {
		if laneOf(fmt.Sprintf("k%02d", k), true, 8) == stuckLane {
			sharing++
		} else {
			flowing++
		}
	}
	for n := range 5 {
		evs = append(evs, orderedEvent("stuck", n))
		for k := range 50 {
			evs = append(evs, orderedEvent(fmt.Sprintf("k%02d", k), n))
		}
	}
	if sharing == 0 || flowing == 0 {
		t.Fatalf("the keys should spread over the stuck key's lane and others: %d share it", sharing)
	}
	if err := e.Enqueue(context.Background(), evs, []string{"ordered"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for sink.count() < 5*flowing && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// A little longer: nothing of the stuck lane may come through.
	time.Sleep(300 * time.Millisecond)
	if got := sink.count(); got != 5*flowing {
		t.Fatalf("delivered %d while one key was stuck; want the %d events of the %d keys of other lanes", got, 5*flowing, flowing)
	}
	st, err := e.DestinationStatus(context.Background(), "ordered")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Ordered || st.Lanes != 8 || st.BlockedLanes != 1 || st.OldestBlockedKey != "stuck" || st.OldestBlockedSince == nil {
		t.Fatalf("status while stuck: %+v", st)
	}
	if waiting := 5 * (1 + sharing); st.InFlight != 1 || st.Pending+uint64(st.InFlight) != uint64(waiting) {
		t.Fatalf("status while stuck: pending %d, in flight %d; want %d stored, one in flight (the stuck lane's head)", st.Pending, st.InFlight, waiting)
	}
	close(stuck)
	deadline = time.Now().Add(20 * time.Second)
	for sink.count() < 255 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	sink.mu.Lock()
	if len(sink.violations) > 0 || sink.delivered != 255 {
		t.Fatalf("delivered %d of 255; violations: %v", sink.delivered, sink.violations)
	}
	sink.mu.Unlock()
	st, _ = e.DestinationStatus(context.Background(), "ordered")
	if st.BlockedLanes != 0 {
		t.Fatalf("a lane is still blocked after its head was delivered: %+v", st)
	}
}

// CONTRACT §6: a retrying event holds back only the later events of its
// key (and of the keys that share its lane), never the whole destination.
// Here the first events of five keys (five lanes) fail, and events of 50
// other keys, in the other lanes, come a few seconds later: they must be
// delivered at once, not after the circuit's cool-down.
func TestOrderedFailingKeysDoNotHoldOtherLanes(t *testing.T) {
	const lanes = 32
	var failing, healthy []string
	used := map[int]bool{}
	for i := 0; len(failing) < breakerThreshold; i++ {
		if k := fmt.Sprintf("BAD%d", i); !used[laneOf(k, true, lanes)] {
			used[laneOf(k, true, lanes)] = true
			failing = append(failing, k)
		}
	}
	for i := 0; len(healthy) < 50; i++ {
		if k := fmt.Sprintf("OK%d", i); !used[laneOf(k, true, lanes)] {
			healthy = append(healthy, k)
		}
	}
	rc := newReceiver(t, nil)
	e := openEngine(t, Options{})
	err := e.Apply("cfg", []*Destination{{Name: "erp", URL: rc.URL, OrderBy: "data.shipment_id", Lanes: lanes,
		Retry: RetryPolicy{Schedule: []time.Duration{time.Hour}}}})
	if err != nil {
		t.Fatal(err)
	}
	events := func(keys []string) []event.Event {
		var evs []event.Event
		for _, k := range keys {
			evs = append(evs, event.Event{ID: event.NewID("br", k), Topic: "t", Source: "test", ReceivedAt: time.Now(),
				Data: []byte(fmt.Sprintf(`{"shipment_id":%q}`, k))})
		}
		return evs
	}
	isBad := func(r received) bool { return strings.Contains(string(r.body), `"BAD`) }
	count := func(bad bool) int {
		n := 0
		for _, r := range rc.got() {
			if isBad(r) == bad {
				n++
			}
		}
		return n
	}
	rc.answer = func(n int, r *http.Request) (int, http.Header) {
		if isBad(rc.got()[n-1]) {
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusOK, nil
	}
	if err := e.Enqueue(context.Background(), events(failing), []string{"erp"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the failing heads", func() bool { return count(true) >= len(failing) })
	// Let every lane's pull request expire (fetchExpiry) and come back to
	// the circuit's gate.
	time.Sleep(fetchExpiry + time.Second)
	start := time.Now()
	if err := e.Enqueue(context.Background(), events(healthy), []string{"erp"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second+100*time.Millisecond, "5s", func() bool { return time.Since(start) >= 5*time.Second || count(false) == len(healthy) })
	in5s := count(false)
	for time.Since(start) < 60*time.Second && count(false) < len(healthy) {
		time.Sleep(10 * time.Millisecond)
	}
	st, _ := e.DestinationStatus(context.Background(), "erp")
	t.Logf("healthy events: %d of %d delivered within 5s, all %d after %v; circuit open %v, blocked lanes %d",
		in5s, len(healthy), count(false), time.Since(start).Round(time.Millisecond), st.CircuitOpen, st.BlockedLanes)
	if in5s < len(healthy) {
		t.Errorf("the failing first events of %d keys held back the other lanes: %d of %d events of other keys delivered within 5s", len(failing), in5s, len(healthy))
	}
}

// The lane an event is stored in follows the configuration: ordered while
// the active configuration orders the destination, on the destination's
// own subject once it does not, or is gone; a put destination keeps its
// order across configurations.
func TestOrderFollowsTheConfiguration(t *testing.T) {
	e := openEngine(t, Options{})
	body := []byte(`{"data":{"shipment_id":"s-1"}}`)
	lane := laneSubject("erp", laneOf("s-1", true, 4))
	apply := func(ds ...*Destination) {
		t.Helper()
		if err := e.Apply("cfg", ds); err != nil {
			t.Fatal(err)
		}
	}
	apply(&Destination{Name: "erp", URL: "http://127.0.0.1:1/", OrderBy: "data.shipment_id", Lanes: 4})
	if err := e.Put(&Destination{Name: WebhookName(7), URL: "http://127.0.0.1:1/", OrderBy: "data.shipment_id", Lanes: 4}); err != nil {
		t.Fatal(err)
	}
	hook := laneSubject(WebhookName(7), laneOf("s-1", true, 4))
	for _, c := range []struct {
		step string
		ds   []*Destination
		want string
	}{
		{"ordered", []*Destination{{Name: "erp", URL: "http://127.0.0.1:1/", OrderBy: "data.shipment_id", Lanes: 4}}, lane},
		{"unordered", []*Destination{{Name: "erp", URL: "http://127.0.0.1:1/"}}, outSubject("erp")},
		{"ordered again", []*Destination{{Name: "erp", URL: "http://127.0.0.1:1/", OrderBy: "data.shipment_id", Lanes: 4}}, lane},
		{"gone", nil, outSubject("erp")},
	} {
		apply(c.ds...)
		if got := e.subjectFor("erp", body); got != c.want {
			t.Errorf("%s: erp's event stored on %s, want %s", c.step, got, c.want)
		}
		if got := e.subjectFor(WebhookName(7), body); got != hook {
			t.Errorf("%s: the put webhook's event stored on %s, want %s", c.step, got, hook)
		}
	}
	e.Remove(WebhookName(7))
	if got := e.subjectFor(WebhookName(7), body); got != outSubject(WebhookName(7)) {
		t.Errorf("a removed webhook's event stored on %s", got)
	}
}
