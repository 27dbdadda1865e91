// Package cluster tests hookrelay on a NATS JetStream cluster: a real
// three-server cluster started in the test process, and Caddy nodes built
// from cmd/caddy running as child processes that share it.
package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// secret is the HS256 key hook_verify checks on every node.
const secret = "cluster-test-secret-0123456789abcdef"

// destName is the destination every node shares: the same name means the
// same durable consumer, so each message is delivered by one node.
const destName = "erp"

// natsNode is one server of the test cluster. Its options are kept so it
// can be restarted on the same ports with the same store.
type natsNode struct {
	opts *server.Options
	mu   sync.Mutex
	srv  *server.Server
}

func (n *natsNode) server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// natsCluster is a three-server JetStream cluster on loopback ports.
type natsCluster struct {
	t     testing.TB
	nodes []*natsNode
}

// startNATSCluster starts three clustered JetStream servers, each with its
// own store in a temporary directory, and waits for a meta leader.
func startNATSCluster(t testing.TB) *natsCluster {
	t.Helper()
	const n = 3
	clientPorts := make([]int, n)
	routePorts := make([]int, n)
	for i := range n {
		clientPorts[i] = testutil.FreePort(t)
		routePorts[i] = testutil.FreePort(t)
	}
	c := &natsCluster{t: t}
	for i := range n {
		var routes []string
		for j := range n {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", routePorts[j]))
			}
		}
		opts := &server.Options{
			ServerName: fmt.Sprintf("hr-test-%d", i+1),
			Host:       "127.0.0.1",
			Port:       clientPorts[i],
			Cluster: server.ClusterOpts{
				Name: "hookrelay-test",
				Host: "127.0.0.1",
				Port: routePorts[i],
			},
			Routes:    server.RoutesFromStr(strings.Join(routes, ",")),
			JetStream: true,
			StoreDir:  filepath.Join(t.TempDir(), "js"),
			// As docs/cluster.md recommends, and as the embedded
			// queue does by default.
			SyncInterval: time.Second,
			NoSigs:       true,
			NoLog:        true,
		}
		c.nodes = append(c.nodes, &natsNode{opts: opts})
	}
	t.Cleanup(c.shutdownAll)
	for i := range c.nodes {
		c.start(i)
	}
	c.waitForLeader()
	return c
}

// start (re)starts server i with its original options.
func (c *natsCluster) start(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	srv, err := server.NewServer(nd.opts.Clone())
	if err != nil {
		c.t.Fatalf("nats server %d: %v", i+1, err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		c.t.Fatalf("nats server %d did not start", i+1)
	}
	nd.mu.Lock()
	nd.srv = srv
	nd.mu.Unlock()
}

// shutdown stops server i, as an operator or a crash would take it out
// of the cluster.
func (c *natsCluster) shutdown(i int) {
	nd := c.nodes[i]
	nd.mu.Lock()
	srv := nd.srv
	nd.srv = nil
	nd.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

func (c *natsCluster) shutdownAll() {
	for i := range c.nodes {
		c.shutdown(i)
	}
}

// waitForLeader waits until the running servers elected a JetStream meta
// leader and every one of them is current with it.
func (c *natsCluster) waitForLeader() {
	c.t.Helper()
	testutil.WaitFor(c.t, 60*time.Second, "a JetStream meta leader", func() bool {
		leader := false
		for _, nd := range c.nodes {
			srv := nd.server()
			if srv == nil {
				continue
			}
			if !srv.JetStreamIsCurrent() {
				return false
			}
			leader = leader || srv.JetStreamIsLeader()
		}
		return leader
	})
}

// streamLeader returns the index of the server leading the outgoing
// stream, or -1.
func (c *natsCluster) streamLeader() int {
	for i, nd := range c.nodes {
		if srv := nd.server(); srv != nil && srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, "HOOKRELAY_OUT") {
			return i
		}
	}
	return -1
}

// waitStreamLeader returns the index of the server leading the outgoing
// stream, failing the test when none leads it within 30 seconds: a test
// that means to take the leader down must not take down another server.
func (c *natsCluster) waitStreamLeader() int {
	c.t.Helper()
	leader := -1
	testutil.WaitFor(c.t, 30*time.Second, "a leader of the stream HOOKRELAY_OUT", func() bool {
		leader = c.streamLeader()
		return leader >= 0
	})
	return leader
}

// urls are the client URLs of the three servers.
func (c *natsCluster) urls() []string {
	out := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		out[i] = fmt.Sprintf("nats://127.0.0.1:%d", nd.opts.Port)
	}
	return out
}

// node is a Caddy child process running the relay.
type node struct {
	name  string // the X-Node header its deliveries carry
	url   string // the webhook endpoint
	caddy *testutil.Caddy
	dead  atomic.Bool
}

// nodeConfig is a Caddyfile for one relay node: the given storage block,
// and the verify/normalize/relay route delivering to receiver with an
// X-Node header naming the node.
func nodeConfig(adminPort, httpPort int, storage, receiver, name string) string {
	debug := ""
	if os.Getenv("HOOKRELAY_TEST_DEBUG") != "" {
		debug = "debug"
	}
	return fmt.Sprintf(`{
	%s
	admin 127.0.0.1:%d
	auto_https off
	hookrelay {
		%s
	}
}

http://127.0.0.1:%d {
	route /hook {
		hook_verify {
			secret %s
			algorithms HS256
		}
		hook_normalize ave_tracking
		hook_relay {
			topic shipments/tracking
			to %s/deliveries {
				name %s
				header X-Node %s
				timeout 1s
			}
			retry {
				schedule 1s
			}
		}
	}
}
`, debug, adminPort, storage, httpPort, secret, receiver, destName, name)
}

// clusterStorage is the storage block pointing a node at the cluster.
func clusterStorage(urls []string) string {
	return fmt.Sprintf("storage nats %s {\n\t\t\treplicas 3\n\t\t}", strings.Join(urls, " "))
}

// startNode runs a relay node as a child process.
func startNode(t testing.TB, name, storage, receiver string) *node {
	t.Helper()
	bin := testutil.CaddyBinary(t)
	adminPort, httpPort := testutil.FreePort(t), testutil.FreePort(t)
	dir := t.TempDir()
	admin := fmt.Sprintf("127.0.0.1:%d", adminPort)
	c := testutil.StartCaddy(t, bin, dir, admin, nodeConfig(adminPort, httpPort, storage, receiver, name))
	nd := &node{name: name, url: fmt.Sprintf("http://127.0.0.1:%d/hook", httpPort), caddy: c}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node %s log:\n%s", name, tail(c.Log(), 60))
		}
		if dir := os.Getenv("HOOKRELAY_TEST_LOGS"); dir != "" {
			_ = os.WriteFile(filepath.Join(dir, t.Name()+"-"+name+".log"), []byte(c.Log()), 0o644)
		}
	})
	return nd
}

// kill ends the node with SIGKILL.
func (n *node) kill() {
	n.dead.Store(true)
	n.caddy.Kill()
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// delivery is what the receiver saw of one successful delivery.
type delivery struct {
	webhookID string
	node      string
}

// sink is the destination: a loopback receiver that answers 200 and
// tallies deliveries by webhook-id and by node.
type sink struct {
	*testutil.Receiver
	t testing.TB

	mu         sync.Mutex
	byID       map[string]int    // webhook-id -> deliveries
	byShipment map[string]string // shipment id -> webhook-id
	byNode     map[string]int
	bad        []string

	// slow, when set, is how long the receiver takes to answer a
	// delivery from the given node.
	slow func(node string) time.Duration
}

// setSlow makes the receiver answer the given node's deliveries slowly.
func (s *sink) setSlow(slow func(node string) time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slow = slow
}

func newSink(t testing.TB) *sink {
	s := &sink{t: t, byID: map[string]int{}, byShipment: map[string]string{}, byNode: map[string]int{}}
	s.Receiver = testutil.NewReceiver(t, s.answer)
	return s
}

func (s *sink) answer(_ int, r *http.Request, body []byte) (int, http.Header, []byte) {
	var ev struct {
		ID   string `json:"id"`
		Data struct {
			ShipmentID string `json:"shipment_id"`
		} `json:"data"`
	}
	id := r.Header.Get("webhook-id")
	err := json.Unmarshal(body, &ev)
	s.mu.Lock()
	slow := s.slow
	s.mu.Unlock()
	if slow != nil {
		if d := slow(r.Header.Get("X-Node")); d > 0 {
			time.Sleep(d) // a slow destination, not a wait for work
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || ev.ID != id || ev.Data.ShipmentID == "" {
		s.bad = append(s.bad, fmt.Sprintf("webhook-id %q body %.200s", id, body))
		return http.StatusOK, nil, nil
	}
	s.byID[id]++
	s.byShipment[ev.Data.ShipmentID] = id
	s.byNode[r.Header.Get("X-Node")]++
	return http.StatusOK, nil, nil
}

// delivered reports whether every shipment was delivered at least once.
func (s *sink) delivered(shipments []string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sh := range shipments {
		if _, ok := s.byShipment[sh]; !ok {
			return false
		}
	}
	return true
}

// missing returns the shipments not delivered yet.
func (s *sink) missing(shipments []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, sh := range shipments {
		if _, ok := s.byShipment[sh]; !ok {
			out = append(out, sh)
		}
	}
	return out
}

// stats returns the distinct events delivered, the deliveries beyond the
// first of each, and the deliveries per node.
func (s *sink) stats() (distinct, duplicates int, perNode map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	perNode = make(map[string]int, len(s.byNode))
	for k, v := range s.byNode {
		perNode[k] = v
	}
	for _, n := range s.byID {
		distinct++
		duplicates += n - 1
	}
	return distinct, duplicates, perNode
}

// check fails the test on malformed deliveries.
func (s *sink) check() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.bad) > 0 {
		s.t.Errorf("%d malformed deliveries, first: %s", len(s.bad), s.bad[0])
	}
}

// sender posts one-event webhooks and remembers which got 201.
type sender struct {
	t      testing.TB
	prefix string
	token  string
	client *http.Client
	seq    atomic.Int64

	mu       sync.Mutex
	acked    []string // shipment ids answered 201
	statuses map[int]int
	errs     int
	bad      []string // answers that break the contract
}

func newSender(t testing.TB, prefix string) *sender {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &sender{
		t:        t,
		prefix:   prefix,
		token:    testutil.HS256(t, secret, nil),
		client:   &http.Client{Transport: tr, Timeout: 30 * time.Second},
		statuses: map[int]int{},
	}
}

// send posts a new event to url and returns its shipment id and the
// status (0 when the request failed).
func (s *sender) send(url string) (string, int) {
	sh := fmt.Sprintf("%s-%06d", s.prefix, s.seq.Add(1))
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(testutil.AvePayload(sh)))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Ave-Hub-signature", s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		s.mu.Lock()
		s.errs++
		s.mu.Unlock()
		return sh, 0
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.statuses[resp.StatusCode]++
	switch resp.StatusCode {
	case http.StatusCreated:
		s.acked = append(s.acked, sh)
	case http.StatusServiceUnavailable:
		if msg := checkUnavailable(resp, body); msg != "" {
			s.bad = append(s.bad, msg)
		}
	default:
		s.bad = append(s.bad, fmt.Sprintf("%s: status %d: %.200s", sh, resp.StatusCode, body))
	}
	return sh, resp.StatusCode
}

// checkUnavailable returns what is wrong with a 503 answer, or "".
func checkUnavailable(resp *http.Response, body []byte) string {
	var env struct {
		Errors []struct {
			Title      string `json:"title"`
			Detail     string `json:"detail"`
			StatusCode string `json:"status_code"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &env); err != nil || len(env.Errors) != 1 {
		return fmt.Sprintf("503 body is not the contract's envelope: %.200s", body)
	}
	e := env.Errors[0]
	if e.Title != "Service Unavailable" || e.StatusCode != "503" || e.Detail == "" {
		return fmt.Sprintf("503 envelope entry is wrong: %+v", e)
	}
	if resp.Header.Get("Retry-After") == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return fmt.Sprintf("503 headers are wrong: %v", resp.Header)
	}
	return ""
}

// ackedIDs returns the shipments answered 201 so far.
func (s *sender) ackedIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.acked...)
}

func (s *sender) ackedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

func (s *sender) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("statuses %v, transport errors %d", s.statuses, s.errs)
}

// check fails the test on answers that break the contract.
func (s *sender) check() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.bad) > 0 {
		s.t.Errorf("%d answers break the contract, first: %s", len(s.bad), s.bad[0])
	}
}

// load sends events from conc goroutines, alternating between the live
// nodes, until ctx ends or max events were sent (0: no limit). It returns
// when every sender goroutine is done.
func (s *sender) load(ctx context.Context, nodes []*node, conc, max int) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if max > 0 && i >= max {
					return
				}
				var target *node
				for k := range nodes {
					if n := nodes[(i+k)%len(nodes)]; !n.dead.Load() {
						target = n
						break
					}
				}
				if target == nil {
					return
				}
				s.send(target.url)
			}
		}()
	}
	wg.Wait()
}
