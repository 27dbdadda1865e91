package ordertest

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Feeder posts the statuses of its keys in order within each key and
// shuffled across keys: a key's status k+1 is sent only once status k was
// answered 201, and each request holds the next statuses of up to batch
// random ready keys. A request not answered 201 is sent again (its
// statuses before any later one of their keys).
type Feeder struct {
	keys     []string
	statuses int

	mu    sync.Mutex
	next  []int // per key: statuses answered 201 so far
	ready []int // keys with no request under way and statuses left
	left  int   // keys with statuses left

	requests  atomic.Int64
	Accepted  atomic.Int64 // events answered 201
	refused   atomic.Int64 // requests answered another status
	transport atomic.Int64 // requests without an answer
	// Began is when Run started.
	Began    time.Time
	finished time.Time
}

// NewFeeder returns a feeder of statuses 0..statuses-1 of every key.
func NewFeeder(keys []string, statuses int) *Feeder {
	f := &Feeder{keys: keys, statuses: statuses, next: make([]int, len(keys)), left: len(keys)}
	for i := range keys {
		f.ready = append(f.ready, i)
	}
	return f
}

// Total is how many events the feeder sends in all.
func (f *Feeder) Total() int { return len(f.keys) * f.statuses }

// take picks up to n random ready keys; done is true when no key has
// statuses left.
func (f *Feeder) take(n int) (picked []int, done bool) {
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
func (f *Feeder) give(keys []int, accepted bool) {
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

// Start runs Run in a goroutine of its own. done is closed once Run
// returned; stop ends it, if it still runs, and waits for it to return.
// stop may be called more than once.
func (f *Feeder) Start(senders, batch int, send func([]byte) int) (done <-chan struct{}, stop func()) {
	quit := make(chan struct{})
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		f.Run(quit, senders, batch, send)
	}()
	var once sync.Once
	return fed, func() {
		once.Do(func() { close(quit) })
		<-fed
	}
}

// Wait waits until the run that Start began (done, stop) ends; after
// within it stops the run and fails the test.
func (f *Feeder) Wait(t testing.TB, done <-chan struct{}, stop func(), within time.Duration) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(within):
		stop()
		t.Fatalf("the senders did not finish in %v: %s", within, f.Summary())
	}
}

// Run sends from senders goroutines, batch statuses a request, until every
// status was answered 201 or stop is closed. send posts a body and returns
// the status, 0 when no answer came.
func (f *Feeder) Run(stop <-chan struct{}, senders, batch int, send func([]byte) int) {
	f.Began = time.Now()
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
				evs := make([]Ev, len(keys))
				f.mu.Lock()
				for i, k := range keys {
					evs[i] = Ev{f.keys[k], f.next[k]}
				}
				f.mu.Unlock()
				f.requests.Add(1)
				status := send(StatusPayload(evs...))
				switch status {
				case http.StatusCreated:
					f.Accepted.Add(int64(len(keys)))
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

// Acked returns, per key, how many of its statuses were answered 201
// (statuses 0..n-1).
func (f *Feeder) Acked() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := make(map[string]int, len(f.keys))
	for i, k := range f.keys {
		m[k] = f.next[i]
	}
	return m
}

// Summary tells how the feeding went: requests, events answered 201 and
// at what rate, requests refused or without an answer.
func (f *Feeder) Summary() string {
	took := time.Since(f.Began)
	f.mu.Lock()
	if !f.finished.IsZero() {
		took = f.finished.Sub(f.Began)
	}
	f.mu.Unlock()
	return fmt.Sprintf("%d requests, %d events answered 201 in %v (%.0f/s), %d requests refused, %d without an answer",
		f.requests.Load(), f.Accepted.Load(), took.Round(time.Millisecond), float64(f.Accepted.Load())/took.Seconds(),
		f.refused.Load(), f.transport.Load())
}
