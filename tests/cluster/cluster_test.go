package cluster

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// conc is how many webhooks are in flight at once during the load.
const conc = 6

// relayPair starts the cluster, the destination and two relay nodes on it.
func relayPair(t *testing.T) (*natsCluster, *sink, []*node) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a NATS cluster and two Caddy processes")
	}
	c := startNATSCluster(t)
	dst := newSink(t)
	st := clusterStorage(c.urls())
	nodes := []*node{
		startNode(t, "a", st, dst.URL),
		startNode(t, "b", st, dst.URL),
	}
	return c, dst, nodes
}

// background runs the load until the returned stop is called; stop waits
// for the requests in flight.
func background(s *sender, nodes []*node) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.load(ctx, nodes, conc, 0)
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// waitDelivered waits until every shipment that got a 201 was delivered.
func waitDelivered(t *testing.T, dst *sink, acked []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !dst.delivered(acked) {
		if time.Now().After(deadline) {
			miss := dst.missing(acked)
			t.Fatalf("%d of %d events answered 201 were never delivered (lost), e.g. %v", len(miss), len(acked), miss[:min(5, len(miss))])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// report logs the tallies and checks the duplicate rate against limit
// (a fraction of the events; negative means report only).
func report(t *testing.T, s *sender, dst *sink, acked int, limit float64) map[string]int {
	t.Helper()
	distinct, dups, perNode := dst.stats()
	t.Logf("201s: %d; %s; delivered: %d distinct events, %d duplicate deliveries (%.2f%%); by node: %v",
		acked, s.summary(), distinct, dups, 100*float64(dups)/float64(max(distinct, 1)), perNode)
	if limit >= 0 && float64(dups) >= limit*float64(max(distinct, 1)) {
		t.Errorf("%d duplicate deliveries for %d events: more than %.0f%%", dups, distinct, 100*limit)
	}
	s.check()
	dst.check()
	return perNode
}

// TestClusterSharesDeliveries: two relay nodes on one cluster share each
// destination's consumer; every event is delivered, by one node or the
// other, with (next to) no duplicates.
func TestClusterSharesDeliveries(t *testing.T) {
	_, dst, nodes := relayPair(t)
	s := newSender(t, "share")
	const n = 300
	s.load(context.Background(), nodes, conc, n)
	acked := s.ackedIDs()
	if len(acked) != n {
		t.Fatalf("%d of %d webhooks answered 201 on a healthy cluster; %s", len(acked), n, s.summary())
	}
	waitDelivered(t, dst, acked, 60*time.Second)
	perNode := report(t, s, dst, len(acked), 0.01)
	for _, nd := range nodes {
		if perNode[nd.name] == 0 {
			t.Errorf("node %s delivered nothing: the destination's deliveries are not shared (%v)", nd.name, perNode)
		}
	}
}

// TestClusterSurvivesNATSServerLoss: shutting down one NATS server (the
// stream's leader) under load loses no event that got a 201, and ingress
// answers 201 again once the cluster has re-elected.
func TestClusterSurvivesNATSServerLoss(t *testing.T) {
	c, dst, nodes := relayPair(t)
	s := newSender(t, "natsloss")
	stop := background(s, nodes)
	defer stop()
	testutil.WaitFor(t, 60*time.Second, "100 webhooks stored before the failure", func() bool { return s.ackedCount() >= 100 })

	victim := c.waitStreamLeader()
	c.shutdown(victim)
	atLoss := s.ackedCount()
	t.Logf("shut down nats server %d (stream leader) after %d 201s", victim+1, atLoss)
	// Requests in flight at the failure may still complete; beyond them,
	// 201s mean the surviving servers took over.
	testutil.WaitFor(t, 90*time.Second, "201s again after the re-election", func() bool { return s.ackedCount() >= atLoss+conc+50 })
	stop()

	// Messages handed out through the lost server come back after the
	// consumer's short AckWait: within seconds, not the minute and a half
	// they took when the AckWait was twice the timeout plus 30s.
	acked := s.ackedIDs()
	stopped := time.Now()
	waitDelivered(t, dst, acked, 30*time.Second)
	t.Logf("every event answered 201 delivered %v after the load stopped", time.Since(stopped).Round(10*time.Millisecond))
	report(t, s, dst, len(acked), -1)
}

// TestClusterSurvivesRelayNodeLoss: a relay node killed with SIGKILL under
// load leaves its unacknowledged deliveries to the other node, which
// delivers every event that got a 201.
func TestClusterSurvivesRelayNodeLoss(t *testing.T) {
	_, dst, nodes := relayPair(t)
	// Node b's deliveries are slow, so it dies with deliveries in flight
	// and fetched messages waiting for a worker.
	dst.setSlow(func(node string) time.Duration {
		if node == "b" {
			return 100 * time.Millisecond
		}
		return 0
	})
	s := newSender(t, "relayloss")
	stop := background(s, nodes)
	defer stop()
	testutil.WaitFor(t, 60*time.Second, "100 webhooks stored before the failure", func() bool { return s.ackedCount() >= 100 })

	_, _, before := dst.stats()
	nodes[1].kill()
	atLoss := s.ackedCount()
	t.Logf("killed relay node b after %d 201s; deliveries so far by node: %v", atLoss, before)
	testutil.WaitFor(t, 60*time.Second, "100 more 201s from the surviving node", func() bool { return s.ackedCount() >= atLoss+conc+100 })
	stop()

	acked := s.ackedIDs()
	// What node b had fetched but not acknowledged comes back to node a
	// after the consumer's AckWait (seconds).
	stopped := time.Now()
	waitDelivered(t, dst, acked, 30*time.Second)
	t.Logf("every event answered 201 delivered %v after the load stopped", time.Since(stopped).Round(10*time.Millisecond))
	perNode := report(t, s, dst, len(acked), -1)
	if perNode["a"] <= before["a"] {
		t.Errorf("node a delivered nothing after node b died: %v", perNode)
	}
}

// TestClusterDownAnswers503AndRecovers: with every NATS server down,
// ingress answers the contract's 503 and never 201, also on a node that
// starts during the outage; once the servers are back (same stores, same
// ports) ingress answers 201 again, delivery resumes by itself, and
// nothing answered 201 before is lost.
func TestClusterDownAnswers503AndRecovers(t *testing.T) {
	c, dst, nodes := relayPair(t)
	// Slow deliveries leave a backlog for the outage to pause.
	dst.setSlow(func(string) time.Duration { return 200 * time.Millisecond })
	s := newSender(t, "down")
	stop := background(s, nodes)
	testutil.WaitFor(t, 60*time.Second, "100 webhooks stored before the outage", func() bool { return s.ackedCount() >= 100 })

	c.shutdownAll()
	stop()
	before := s.ackedIDs()
	dst.setSlow(nil)
	t.Logf("cluster shut down under load after %d 201s; %d of them not delivered yet", len(before), len(dst.missing(before)))

	var refused []string // answered 503 while the cluster was down
	for _, nd := range nodes {
		testutil.WaitFor(t, 30*time.Second, "node "+nd.name+" to log the lost connection", func() bool {
			return strings.Contains(nd.caddy.Log(), "queue connection lost")
		})
	}
	// A node that starts while the cluster is down starts all the same.
	late := startNode(t, "c", clusterStorage(c.urls()), dst.URL)
	nodes = append(nodes, late)
	for _, nd := range nodes {
		testutil.WaitFor(t, 60*time.Second, "node "+nd.name+" to answer", func() bool {
			sh, status := s.send(nd.url)
			if status == http.StatusCreated {
				t.Fatalf("node %s answered 201 to %s with the cluster down", nd.name, sh)
			}
			if status == http.StatusServiceUnavailable {
				refused = append(refused, sh)
			}
			return status != 0
		})
		for range 5 {
			sh, status := s.send(nd.url)
			if status != http.StatusServiceUnavailable {
				t.Fatalf("node %s answered %d to %s with the cluster down, want 503", nd.name, status, sh)
			}
			refused = append(refused, sh)
		}
	}
	s.check()

	for i := range c.nodes {
		c.start(i)
	}
	c.waitForLeader()
	for _, nd := range nodes {
		testutil.WaitFor(t, 90*time.Second, "node "+nd.name+" to answer 201 again", func() bool {
			_, status := s.send(nd.url)
			return status == http.StatusCreated
		})
		want := "queue connection restored"
		if nd == late {
			want = "queue connected"
		}
		if !strings.Contains(nd.caddy.Log(), want) {
			t.Errorf("node %s did not log %q", nd.name, want)
		}
	}
	acked := s.ackedIDs()
	// Deliveries in flight at the outage come back after the ack wait.
	waitDelivered(t, dst, acked, 90*time.Second)
	report(t, s, dst, len(acked), -1)
	// Nothing was held in a buffer while disconnected and sent later.
	if n := len(refused) - len(dst.missing(refused)); n > 0 {
		t.Errorf("%d of the %d events answered 503 during the outage were stored after all", n, len(refused))
	}
	for _, nd := range nodes {
		log := nd.caddy.Log()
		t.Logf("node %s logged the delivery pause: %v, the resumption: %v", nd.name,
			strings.Contains(log, "delivery pauses until it answers") || strings.Contains(log, "cannot create the destination's consumer"),
			strings.Contains(log, "delivery resumed"))
	}
}

// TestClusterRebuiltFromScratch: when the cluster comes back without its
// state (every store lost, or the streams deleted), the nodes create the
// streams and consumers again by themselves: ingress answers 201 again and
// new events are delivered, without restarting Caddy.
func TestClusterRebuiltFromScratch(t *testing.T) {
	c, dst, nodes := relayPair(t)
	s := newSender(t, "rebuilt")
	s.load(context.Background(), nodes, conc, 50)
	waitDelivered(t, dst, s.ackedIDs(), 60*time.Second)

	c.shutdownAll()
	for i, nd := range c.nodes {
		nd.opts.StoreDir = t.TempDir()
		c.start(i)
	}
	c.waitForLeader()
	before := s.ackedCount()
	for _, nd := range nodes {
		testutil.WaitFor(t, 90*time.Second, "node "+nd.name+" to answer 201 on the rebuilt cluster", func() bool {
			_, status := s.send(nd.url)
			return status == http.StatusCreated
		})
	}
	s.load(context.Background(), nodes, conc, 50)
	after := s.ackedIDs()[before:]
	if len(after) < 50 {
		t.Errorf("only %d of the webhooks after the rebuild answered 201; %s", len(after), s.summary())
	}
	waitDelivered(t, dst, after, 60*time.Second)
	report(t, s, dst, len(after), -1)
}
