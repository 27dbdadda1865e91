package cluster

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// TestBenchClusterThroughput measures ingress and deliveries per second
// with two relay nodes on the three-server cluster against one node on
// the embedded queue, on this machine. It is a measurement, not a test:
// it runs only with HOOKRELAY_BENCH_CLUSTER=1, and asserts nothing about
// speed.
//
//	HOOKRELAY_BENCH_CLUSTER=1 go test -count=1 -run TestBenchClusterThroughput -v ./tests/cluster/
//
// HOOKRELAY_BENCH_EVENTS (default 20000) and HOOKRELAY_BENCH_CONC (default
// 64) set the load: one event per webhook, that many in flight at once,
// spread evenly over the nodes.
func TestBenchClusterThroughput(t *testing.T) {
	if os.Getenv("HOOKRELAY_BENCH_CLUSTER") != "1" {
		t.Skip("set HOOKRELAY_BENCH_CLUSTER=1 to measure")
	}
	n := envInt("HOOKRELAY_BENCH_EVENTS", 20000)
	c := envInt("HOOKRELAY_BENCH_CONC", 64)

	embDst := newSink(t)
	emb := []*node{startNode(t, "e", "storage embedded", embDst.URL)}
	embIn, embOut := measure(t, emb, embDst, "emb", n, c)

	cl := startNATSCluster(t)
	clDst := newSink(t)
	st := clusterStorage(cl.urls())
	pair := []*node{startNode(t, "a", st, clDst.URL), startNode(t, "b", st, clDst.URL)}
	clIn, clOut := measure(t, pair, clDst, "cl", n, c)

	_, _, perNode := clDst.stats()
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("%d events, %d in flight, %d CPUs, load average %.14s", n, c, runtime.NumCPU(), load)
	t.Logf("%-34s %10s %14s", "", "ingress/s", "deliveries/s")
	t.Logf("%-34s %10.0f %14.0f", "1 node, embedded queue", embIn, embOut)
	t.Logf("%-34s %10.0f %14.0f", "2 nodes, 3-server cluster, R3", clIn, clOut)
	t.Logf("%-34s %10.2f %14.2f", "ratio cluster / embedded", clIn/embIn, clOut/embOut)
	t.Logf("cluster deliveries by node: %v", perNode)
}

// measure warms the nodes up, then sends n one-event webhooks with conc
// in flight and returns the 201s per second and the deliveries per
// second, both from the first request to the last 201 or delivery.
func measure(t *testing.T, nodes []*node, dst *sink, prefix string, n, conc int) (ingress, deliveries float64) {
	t.Helper()
	warm := newSender(t, prefix+"-warm")
	warm.load(context.Background(), nodes, conc, 200)
	waitDelivered(t, dst, warm.ackedIDs(), 60*time.Second)

	s := newSender(t, prefix)
	start := time.Now()
	s.load(context.Background(), nodes, conc, n)
	in := time.Since(start)
	acked := s.ackedIDs()
	waitDelivered(t, dst, acked, 5*time.Minute)
	out := time.Since(start)
	if len(acked) != n {
		t.Errorf("%s: %d of %d answered 201; %s", prefix, len(acked), n, s.summary())
	}
	distinct, dups, _ := dst.stats()
	t.Logf("%s: %d 201s in %v, all delivered after %v (%d duplicate deliveries of %d)", prefix, len(acked), in.Round(time.Millisecond), out.Round(time.Millisecond), dups, distinct)
	return float64(len(acked)) / in.Seconds(), float64(len(acked)) / out.Seconds()
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
