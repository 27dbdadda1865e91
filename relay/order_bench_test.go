package relay

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay/event"
)

// Ordered delivery's cost, measured. See bench/ordered.sh, which runs
// these alternately and prints the medians:
//
//	go test -run '^$' -bench '^BenchmarkOrderedVsUnordered$' -benchtime 1x -count 3 ./relay/
//	go test -run '^$' -bench '^BenchmarkOrderedBacklog100k$' -benchtime 1x ./relay/
//
// HOOKRELAY_ORDER_EVENTS sets the events of BenchmarkOrderedVsUnordered
// (default 20000) and HOOKRELAY_ORDER_BACKLOG those of
// BenchmarkOrderedBacklog100k (default 100000).

const (
	// orderBenchKeys is how many order keys the events spread over.
	orderBenchKeys = 1000
	// orderBenchEnqueuers enqueue at once, each the events of its own keys
	// in their order, orderBenchBatch events per Enqueue.
	orderBenchEnqueuers = 4
	orderBenchBatch     = 100
	// orderBenchPath is the ordered destinations' order_by.
	orderBenchPath = "data.shipment_id"
)

// seqSink is a loopback destination that answers status to every POST
// and checks, for the events it accepts (2xx), the order of each key's
// events: event seq of a key must come after seq-1 was accepted, and no
// two attempts of one key may overlap.
type seqSink struct {
	*httptest.Server
	status   atomic.Int32
	attempts atomic.Int64

	mu         sync.Mutex
	keys       map[string]*keyState
	want       int       // events expected
	delivered  int       // distinct events accepted
	dups       int       // events accepted again
	outOfOrder int       // events accepted before an earlier one of their key
	early      int       // attempts of an event before an earlier one of its key was accepted
	overlaps   int       // attempts that began while another of their key ran
	firstBad   string    // the first order violation, for the failure message
	doneAt     time.Time // when the want-th distinct event was accepted
	done       chan struct{}
}

type keyState struct {
	seen    []bool // seen[seq]: accepted
	next    int    // the lowest seq not accepted yet
	running int    // attempts under way
}

func newSeqSink(tb testing.TB, status int) *seqSink {
	tb.Helper()
	s := &seqSink{}
	s.status.Store(int32(status))
	s.reset(0)
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.Close)
	return s
}

// reset forgets what was received and expects want events.
func (s *seqSink) reset(want int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = make(map[string]*keyState, orderBenchKeys)
	s.want, s.delivered, s.dups, s.outOfOrder, s.early, s.overlaps = want, 0, 0, 0, 0, 0
	s.firstBad, s.doneAt = "", time.Time{}
	s.done = make(chan struct{})
}

// benchData is the part of a delivered event the sink reads.
type benchData struct {
	Data struct {
		Key string `json:"shipment_id"`
		Seq int    `json:"seq"`
	} `json:"data"`
}

func (s *seqSink) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.attempts.Add(1)
	var ev benchData
	if err := json.Unmarshal(body, &ev); err != nil || ev.Data.Seq < 1 {
		http.Error(w, "not a bench event", http.StatusBadRequest)
		return
	}
	key, seq := ev.Data.Key, ev.Data.Seq

	s.mu.Lock()
	k := s.keys[key]
	if k == nil {
		k = &keyState{next: 1}
		s.keys[key] = k
	}
	if seq > k.next {
		s.early++
		s.noteBad("key %s: event %d attempted before event %d was delivered", key, seq, k.next)
	}
	k.running++
	if k.running > 1 {
		s.overlaps++
		s.noteBad("key %s: event %d began while another attempt of the key ran", key, seq)
	}
	s.mu.Unlock()

	status := int(s.status.Load())
	w.WriteHeader(status)

	s.mu.Lock()
	defer s.mu.Unlock()
	k.running--
	if status < 200 || status > 299 {
		return
	}
	for len(k.seen) <= seq {
		k.seen = append(k.seen, false)
	}
	if k.seen[seq] {
		s.dups++
		return
	}
	k.seen[seq] = true
	if seq != k.next {
		s.outOfOrder++
		s.noteBad("key %s: event %d accepted before event %d", key, seq, k.next)
	}
	for k.next < len(k.seen) && k.seen[k.next] {
		k.next++
	}
	s.delivered++
	if s.delivered == s.want {
		s.doneAt = time.Now()
		close(s.done)
	}
}

// earlyAttempts returns how many attempts were of an event whose key's
// earlier event was not accepted yet, and the first order violation.
func (s *seqSink) earlyAttempts() (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.early, s.firstBad
}

func (s *seqSink) noteBad(format string, args ...any) {
	if s.firstBad == "" {
		s.firstBad = fmt.Sprintf(format, args...)
	}
}

// result is what the sink saw: distinct events accepted, duplicates, out
// of order, overlapping, and the first violation.
func (s *seqSink) result() (delivered, dups, outOfOrder, overlaps int, firstBad string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.delivered, s.dups, s.outOfOrder, s.overlaps, s.firstBad
}

// openBenchEngine is openEngine for benchmarks: no logs.
func openBenchEngine(tb testing.TB, opts Options) *Engine {
	tb.Helper()
	if opts.Queue.Dir == "" && len(opts.Queue.URLs) == 0 {
		opts.Queue.Dir = tb.TempDir()
	}
	e, err := Open(opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

// orderWorkload is n events over keys keys, shuffled across keys and in
// order (seq 1, 2, ...) within each key, split among the enqueuers by key
// so that each key's events are stored by one enqueuer, in order.
func orderWorkload(run string, n, keys, enqueuers int, seed uint64) [][]event.Event {
	return newWorkload(run, keys, enqueuers, seed).next(n)
}

// workload makes the events of orderWorkload a part at a time: each part
// continues the keys' sequences.
type workload struct {
	run             string
	keys, enqueuers int
	rng             *rand.Rand
	seq             []int
}

func newWorkload(run string, keys, enqueuers int, seed uint64) *workload {
	return &workload{run: run, keys: keys, enqueuers: enqueuers, rng: rand.New(rand.NewPCG(seed, 0x0dde)), seq: make([]int, keys)}
}

// next returns the next n events, split among the enqueuers.
func (w *workload) next(n int) [][]event.Event {
	order := make([]int, n)
	for i := range order {
		order[i] = i % w.keys
	}
	w.rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
	out := make([][]event.Event, w.enqueuers)
	received := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, k := range order {
		w.seq[k]++
		seq := w.seq[k]
		key := fmt.Sprintf("SHP%07d", k)
		data := fmt.Sprintf(`{"shipment_id":%q,"seq":%d,"guia":"0141500%05d","status":{"code":"4","name":"EN TRANSITO"},`+
			`"novedades":[{"codigo":"N%d","fecha":"2026-01-01 08:00:00","detalle":"Entrega programada para el siguiente dia habil"}],`+
			`"origen":"BOGOTA","destino":"MEDELLIN","valor":125000.5}`, key, seq, k, seq)
		ev := event.Event{
			ID:         event.NewID("bench", w.run, key, strconv.Itoa(seq)),
			Topic:      "shipments/tracking",
			Source:     "ave",
			ReceivedAt: received,
			Data:       json.RawMessage(data),
		}
		out[k%w.enqueuers] = append(out[k%w.enqueuers], ev)
	}
	return out
}

// enqueueAll stores the enqueuers' events, each enqueuer in its order,
// orderBenchBatch at a time.
func enqueueAll(tb testing.TB, e *Engine, dest string, parts [][]event.Event) {
	tb.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(parts))
	for _, evs := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < len(evs); i += orderBenchBatch {
				batch := evs[i:min(i+orderBenchBatch, len(evs))]
				if err := e.Enqueue(context.Background(), batch, []string{dest}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatalf("Enqueue: %v", err)
	}
}

func envCount(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkOrderedVsUnordered delivers the same events (HOOKRELAY_ORDER_EVENTS,
// default 20000, over 1000 keys, shuffled across keys and in order within
// each) to a loopback receiver answering 200, through an unordered
// destination and through an ordered one (order_by data.shipment_id,
// default lanes and workers), and reports the events delivered per second
// from the first Enqueue until the receiver accepted the last one. The
// ordered run fails if the receiver saw a key's events out of order or
// overlapping. Each iteration uses a fresh destination, after a warm-up
// of one event per key.
func BenchmarkOrderedVsUnordered(b *testing.B) {
	n := envCount("HOOKRELAY_ORDER_EVENTS", 20000)
	for _, mode := range []struct {
		name    string
		orderBy string
	}{
		{"unordered", ""},
		{"ordered", orderBenchPath},
	} {
		b.Run(mode.name, func(b *testing.B) {
			sink := newSeqSink(b, http.StatusOK)
			e := openBenchEngine(b, Options{})
			var total time.Duration
			var enqueueTotal time.Duration
			var lastOutOfOrder int
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				dest := fmt.Sprintf("%s_%d", mode.name, i)
				if err := e.Apply("bench", []*Destination{{Name: dest, URL: sink.URL, OrderBy: mode.orderBy}}); err != nil {
					b.Fatal(err)
				}
				// Warm-up: consumers created, connections open.
				sink.reset(orderBenchKeys)
				enqueueAll(b, e, dest, orderWorkload(dest+"-warm", orderBenchKeys, orderBenchKeys, orderBenchEnqueuers, uint64(i)))
				waitSink(b, sink, 2*time.Minute)
				settledTB(b, e, dest)

				parts := orderWorkload(dest, n, orderBenchKeys, orderBenchEnqueuers, uint64(i)+1)
				sink.reset(n)
				runtime.GC()
				b.StartTimer()
				start := time.Now()
				enqueueAll(b, e, dest, parts)
				enqueued := time.Since(start)
				doneAt := waitSink(b, sink, 10*time.Minute)
				b.StopTimer()
				total += doneAt.Sub(start)
				enqueueTotal += enqueued

				delivered, dups, outOfOrder, overlaps, firstBad := sink.result()
				early, _ := sink.earlyAttempts()
				if delivered != n {
					b.Fatalf("%d of %d events delivered", delivered, n)
				}
				if mode.orderBy != "" && (outOfOrder > 0 || early > 0 || overlaps > 0) {
					b.Fatalf("ordered destination: %d events accepted out of order, %d attempted before their key's earlier event was delivered, %d overlapping attempts of one key; first: %s",
						outOfOrder, early, overlaps, firstBad)
				}
				if dups > 0 {
					b.Logf("%s: %d duplicate deliveries", dest, dups)
				}
				lastOutOfOrder = outOfOrder
			}
			events := float64(n) * float64(b.N)
			b.ReportMetric(events/total.Seconds(), "events/s")
			b.ReportMetric(events/enqueueTotal.Seconds(), "enqueued/s")
			b.ReportMetric(float64(lastOutOfOrder), "out-of-order")
		})
	}
}

// waitSink waits until the sink accepted every event it expects and
// returns when it accepted the last one.
func waitSink(tb testing.TB, s *seqSink, within time.Duration) time.Time {
	tb.Helper()
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	select {
	case <-done:
	case <-time.After(within):
		delivered, dups, ooo, overlaps, bad := s.result()
		tb.Fatalf("after %v: %d of %d events delivered (%d duplicates, %d out of order, %d overlapping; %s)", within, delivered, s.want, dups, ooo, overlaps, bad)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.doneAt
}

// settledTB waits until nothing of dest is pending or in flight.
func settledTB(tb testing.TB, e *Engine, dest string) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := e.DestinationStatus(context.Background(), dest)
		if err != nil {
			tb.Fatal(err)
		}
		if st.Pending == 0 && st.InFlight == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not settle: %+v", dest, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// backlogReport is what orderedBacklog measured.
type backlogReport struct {
	heapBefore, heapAfter uint64 // runtime HeapInuse, bytes
	rssBefore, rssAfter   uint64 // VmRSS, bytes; 0 where not readable
	maxInFlight           int    // the most in_flight any sample saw
	status                DestinationStatus
	enqueue               time.Duration
	attempts              int64
	early                 int    // attempts of an event before its key's earlier one was accepted
	firstBad              string // the first of those
}

// orderedBacklog enqueues n events over 1000 keys to an ordered
// destination whose receiver answers 503 with a retry an hour later, waits
// until the lanes' first events failed, and samples the status for a
// while: the blocked lanes must hold back their later events without
// holding them in the consumer's ack window.
func orderedBacklog(tb testing.TB, n int) backlogReport {
	tb.Helper()
	sink := newSeqSink(tb, http.StatusServiceUnavailable)
	e := openBenchEngine(tb, Options{})
	const dest = "dead_erp"
	d := &Destination{
		Name:    dest,
		URL:     sink.URL,
		OrderBy: orderBenchPath,
		Retry:   RetryPolicy{Schedule: []time.Duration{time.Hour}},
	}
	if err := e.Apply("bench", []*Destination{d}); err != nil {
		tb.Fatal(err)
	}
	var rep backlogReport
	rep.heapBefore, rep.rssBefore = memInUse()

	// The events are made a part at a time, so that the memory measured
	// is the engine's and the queue's, not the workload's.
	w := newWorkload("backlog", orderBenchKeys, orderBenchEnqueuers, 7)
	const part = 5000
	for done := 0; done < n; done += part {
		parts := w.next(min(part, n-done))
		start := time.Now()
		enqueueAll(tb, e, dest, parts)
		rep.enqueue += time.Since(start)
	}

	status := func() DestinationStatus {
		st, err := e.DestinationStatus(context.Background(), dest)
		if err != nil {
			tb.Fatal(err)
		}
		rep.maxInFlight = max(rep.maxInFlight, st.InFlight)
		return st
	}
	// The first events of the lanes fail: wait until attempts were made
	// and everything enqueued is accounted for.
	deadline := time.Now().Add(time.Minute)
	for {
		st := status()
		if sink.attempts.Load() > 0 && st.Depth() == uint64(n) {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after a minute: %d attempts, depth %d (pending %d, in flight %d, scheduled %d), want attempts and a depth of %d",
				sink.attempts.Load(), st.Depth(), st.Pending, st.InFlight, st.Scheduled, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Steady state: sample for a while longer, then until each message in
	// flight is a blocked lane's head (an attempt may still be under way).
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		rep.status = status()
		time.Sleep(50 * time.Millisecond)
	}
	for end := time.Now().Add(5 * time.Second); rep.status.InFlight != rep.status.BlockedLanes && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
		rep.status = status()
	}
	rep.attempts = sink.attempts.Load()
	rep.early, rep.firstBad = sink.earlyAttempts()
	rep.heapAfter, rep.rssAfter = memInUse()
	return rep
}

// memInUse returns the heap in use after a collection and the process's
// resident set once the memory freed is returned to the system (0 where
// /proc is not there).
func memInUse() (heap, rss uint64) {
	debug.FreeOSMemory() // a collection, and the freed memory returned
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, vmRSS()
}

// vmRSS reads VmRSS from /proc/self/status, in bytes.
func vmRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var kb uint64
		if _, err := fmt.Sscanf(sc.Text(), "VmRSS: %d kB", &kb); err == nil {
			return kb << 10
		}
	}
	return 0
}

// TestOrderedBacklogDoesNotPinAckWindow: events waiting behind the failed
// first events of their lanes stay stored, not handed out: in_flight never
// exceeds the lanes, whatever the backlog.
func TestOrderedBacklogDoesNotPinAckWindow(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 3000
	}
	rep := orderedBacklog(t, n)
	st := rep.status
	t.Logf("%d events enqueued in %v; %d attempts; status: pending %d, in_flight %d (max seen %d), scheduled %d, blocked lanes %d of %d, oldest blocked key %q",
		n, rep.enqueue.Round(time.Millisecond), rep.attempts, st.Pending, st.InFlight, rep.maxInFlight, st.Scheduled, st.BlockedLanes, st.Lanes, st.OldestBlockedKey)
	t.Logf("heap in use %.1f MB -> %.1f MB, RSS %.1f MB -> %.1f MB", mb(rep.heapBefore), mb(rep.heapAfter), mb(rep.rssBefore), mb(rep.rssAfter))
	if !st.Ordered || st.Lanes != DefaultLanes {
		t.Errorf("status ordered %v, lanes %d; want true, %d", st.Ordered, st.Lanes, DefaultLanes)
	}
	if rep.maxInFlight > st.Lanes || rep.maxInFlight > DefaultLanes {
		t.Errorf("in_flight reached %d with %d lanes: the backlog is held in the ack window", rep.maxInFlight, DefaultLanes)
	}
	if st.InFlight != st.BlockedLanes {
		t.Errorf("in_flight %d, blocked lanes %d: something else than the blocked heads is held", st.InFlight, st.BlockedLanes)
	}
	if st.BlockedLanes < 1 || st.BlockedLanes > DefaultLanes {
		t.Errorf("blocked lanes = %d, want 1..%d", st.BlockedLanes, DefaultLanes)
	}
	if st.OldestBlockedSince == nil || st.OldestBlockedKey == "" {
		t.Errorf("blocked lanes without the oldest's time or key: since %v, key %q", st.OldestBlockedSince, st.OldestBlockedKey)
	}
	if d := st.Depth(); d != uint64(n) {
		t.Errorf("depth = %d (pending %d + in flight %d + scheduled %d), want the %d events", d, st.Pending, st.InFlight, st.Scheduled, n)
	}
	// Each lane's first event was tried once (its retry is an hour
	// away), and nothing behind it went out.
	if rep.attempts > DefaultLanes {
		t.Errorf("%d attempts, more than the %d lanes' first events", rep.attempts, DefaultLanes)
	}
	if rep.early > 0 {
		t.Errorf("%d attempts of events whose key's earlier event was not delivered; first: %s", rep.early, rep.firstBad)
	}
}

// BenchmarkOrderedBacklog100k reports the memory of the process (heap in
// use after a collection, and RSS) and the destination's in_flight with
// HOOKRELAY_ORDER_BACKLOG (default 100000) ordered events waiting on a
// destination answering 503.
func BenchmarkOrderedBacklog100k(b *testing.B) {
	n := envCount("HOOKRELAY_ORDER_BACKLOG", 100000)
	var rep backlogReport
	for i := 0; i < b.N; i++ {
		rep = orderedBacklog(b, n)
	}
	b.ReportMetric(mb(rep.heapAfter), "heap-MB")
	b.ReportMetric(mb(rep.heapAfter)-mb(rep.heapBefore), "heap-growth-MB")
	b.ReportMetric(mb(rep.rssAfter), "rss-MB")
	b.ReportMetric(float64(rep.status.InFlight), "in_flight")
	b.ReportMetric(float64(rep.maxInFlight), "max_in_flight")
	b.ReportMetric(float64(rep.status.BlockedLanes), "blocked_lanes")
	b.ReportMetric(float64(n)/rep.enqueue.Seconds(), "enqueued/s")
	if rep.maxInFlight > DefaultLanes {
		b.Errorf("in_flight reached %d with %d lanes", rep.maxInFlight, DefaultLanes)
	}
}

func mb(bytes uint64) float64 { return float64(bytes) / (1 << 20) }
