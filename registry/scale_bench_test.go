package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/relay"
)

// BenchmarkRegistryScale registers many webhooks on one node (the
// embedded queue, in this process) and reports what they cost at rest
// (resident memory and heap, CPU over an idle window), the time from a
// create to its first delivery, the create rate, and then what it takes
// when one event per known topic reaches all of them at once (every
// runner and consumer active together: the time until all delivered, and
// the resident memory then). It is one measurement, not a loop:
//
//	go test -run '^$' -bench RegistryScale -benchtime 1x -timeout 30m ./registry/
//
// HOOKRELAY_BENCH_WEBHOOKS (default 10000), HOOKRELAY_BENCH_IDLE (the
// idle window, default 60s) and HOOKRELAY_BENCH_WARM (the quiet time
// before it, default 10s) change the run; HOOKRELAY_BENCH_HEAP writes a
// heap profile at rest to that file.
func BenchmarkRegistryScale(b *testing.B) {
	n := envInt("HOOKRELAY_BENCH_WEBHOOKS", 10000)
	idle := envDuration("HOOKRELAY_BENCH_IDLE", 60*time.Second)
	warm := envDuration("HOOKRELAY_BENCH_WARM", 10*time.Second)
	var delivered atomic.Int64
	firstAt := make(chan time.Time, 100)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		delivered.Add(1)
		if strings.HasPrefix(r.URL.Path, "/probe") {
			select {
			case firstAt <- time.Now():
			default:
			}
		}
	}))
	defer sink.Close()

	log := zap.NewNop()
	if os.Getenv("HOOKRELAY_BENCH_LOG") != "" {
		log, _ = zap.NewDevelopment(zap.IncreaseLevel(zap.WarnLevel))
	}
	eng, err := relay.Open(relay.Options{Queue: relay.QueueConfig{Dir: b.TempDir()}, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	kv, err := eng.KeyValue(ctx, Bucket, "bench")
	if err != nil {
		b.Fatal(err)
	}
	settings := testSettings(b, newSealKey(b))
	reg, err := Open(ctx, kv, eng, settings, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()

	b.ResetTimer()
	start := time.Now()
	for i := range n {
		topic := KnownTopics[i%len(KnownTopics)]
		if _, _, err := reg.Create(ctx, "tenant-"+strconv.Itoa(i%100), Input{Topic: topic, Address: sink.URL + "/w"}); err != nil {
			b.Fatal(err)
		}
	}
	createRate := float64(n) / time.Since(start).Seconds()
	b.StopTimer()

	// Registered and idle: what they cost at rest.
	time.Sleep(warm)
	runtime.GC()
	rss := rssBytes()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if path := os.Getenv("HOOKRELAY_BENCH_HEAP"); path != "" {
		if f, err := os.Create(path); err == nil {
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	cpu0 := cpuTime()
	time.Sleep(idle)
	idleCPU := (cpuTime() - cpu0).Seconds() / idle.Seconds()

	// Create to first delivery, five times, beside all of them.
	var lat []time.Duration
	for i := range 5 {
		topic := "bench/probe" + strconv.Itoa(i)
		t0 := time.Now()
		if _, _, err := reg.Create(ctx, "probe", Input{Topic: topic, Address: sink.URL + "/probe"}); err != nil {
			b.Fatal(err)
		}
		enqueue(b, &env{eng: eng, reg: reg}, topic, "", `{"probe":true}`)
		select {
		case at := <-firstAt:
			lat = append(lat, at.Sub(t0))
		case <-time.After(30 * time.Second):
			b.Fatal("a new webhook got no delivery in 30s")
		}
	}

	// Then every one of them is live at once: one event of each known
	// topic reaches all, which runs every webhook's runner and consumer
	// together (the worst case for memory).
	live := time.Now()
	for _, topic := range KnownTopics {
		enqueue(b, &env{eng: eng, reg: reg}, topic, "", `{"probe":false}`)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for delivered.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	allLive := time.Since(live)
	if got := delivered.Load(); got < int64(n) {
		b.Fatalf("only %d of %d webhooks delivered", got, n)
	}
	peak := rssBytes()
	slices.Sort(lat)
	b.ReportMetric(float64(n), "webhooks")
	b.ReportMetric(float64(rss)/(1<<20), "rss_MB")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap_inuse_MB")
	b.ReportMetric(float64(peak)/(1<<20), "rss_all_active_MB")
	b.ReportMetric(idleCPU*100, "idle_cpu_%")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "create_to_delivery_ms")
	b.ReportMetric(createRate, "creates/s")
	b.ReportMetric(allLive.Seconds(), "all_active_delivered_s")
}

// BenchmarkFanout stores events of a topic that 1 or 100 webhooks take:
// ns/op is the time to route and durably store one event (the ingress
// cost without HTTP), stored_B/event the queue bytes it takes. The
// webhooks are paused, so that everything stays stored.
//
//	go test -run '^$' -bench Fanout -benchtime 2000x ./registry/
func BenchmarkFanout(b *testing.B) {
	for _, k := range []int{1, 100} {
		b.Run(fmt.Sprintf("webhooks=%d", k), func(b *testing.B) {
			eng, err := relay.Open(relay.Options{Queue: relay.QueueConfig{Dir: b.TempDir()}, Logger: zap.NewNop()})
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			ctx := context.Background()
			kv, err := eng.KeyValue(ctx, Bucket, "bench")
			if err != nil {
				b.Fatal(err)
			}
			reg, err := Open(ctx, kv, eng, testSettings(b, newSealKey(b)), zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			defer reg.Close()
			for i := range k {
				w, _, err := reg.Create(ctx, "t", Input{Topic: "orders/created", Address: "http://127.0.0.1:9/x"})
				if err != nil {
					b.Fatal(err)
				}
				if err := eng.Pause(ctx, relay.WebhookName(w.ID)); err != nil {
					b.Fatal(i, err)
				}
			}
			e := &env{eng: eng, reg: reg}
			data := `{"orderId":1234,"channel":"meli","total":660.0,"currency":"MXN","items":[{"sku":"A-1","qty":2}]}`
			before, _ := eng.StoredBytes(ctx)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				enqueue(b, e, "orders/created", "", data[:len(data)-1]+`,"n":`+strconv.Itoa(i)+`}`)
			}
			b.StopTimer()
			time.Sleep(600 * time.Millisecond)
			after, _ := eng.StoredBytes(ctx)
			b.ReportMetric(float64(after-before)/float64(b.N), "stored_B/event")
		})
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// rssBytes is the process's resident set size.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// cpuTime is the CPU the process used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
