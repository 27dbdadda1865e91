// Package cluster tests hookrelay on a NATS JetStream cluster: a real
// three-server cluster started in the test process, and Caddy nodes built
// from cmd/caddy running as child processes that share it.
package cluster

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/hookrelay/hookrelay/internal/testutil"
	"github.com/hookrelay/hookrelay/relay"
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
	return relayNodeConfig(adminPort, httpPort, storage, receiver, name, destName, "timeout 1s", "1s")
}

// relayNodeConfig is nodeConfig's Caddyfile with the destination's name,
// more lines of its block, and the route's retry schedule.
func relayNodeConfig(adminPort, httpPort int, storage, receiver, name, dest, destLines, schedule string) string {
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
				%s
			}
			retry {
				schedule %s
			}
		}
	}
}
`, debug, adminPort, storage, httpPort, secret, receiver, dest, name, destLines, schedule)
}

// clusterStorage is the storage block pointing a node at the cluster.
func clusterStorage(urls []string) string {
	return fmt.Sprintf("storage nats %s {\n\t\t\treplicas 3\n\t\t}", strings.Join(urls, " "))
}

// startNode runs a relay node as a child process.
func startNode(t testing.TB, name, storage, receiver string) *node {
	t.Helper()
	return startNodeWith(t, name, storage, receiver, nodeConfig)
}

// startNodeWith runs a relay node of config's Caddyfile as a child
// process.
func startNodeWith(t testing.TB, name, storage, receiver string,
	config func(adminPort, httpPort int, storage, receiver, name string) string) *node {
	t.Helper()
	bin := testutil.CaddyBinary(t)
	adminPort, httpPort := testutil.FreePort(t), testutil.FreePort(t)
	dir := t.TempDir()
	admin := fmt.Sprintf("127.0.0.1:%d", adminPort)
	c := testutil.StartCaddy(t, bin, dir, admin, config(adminPort, httpPort, storage, receiver, name))
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
				target := liveNode(nodes, i)
				if target == nil {
					return
				}
				s.send(target.url)
			}
		}()
	}
	wg.Wait()
}

// sealEnv is the environment variable the webhook nodes read their seal
// key from ({env.SEAL}); every node of a test must share it.
const sealEnv = "SEAL"

// setSealKey gives the test's child processes a fresh random seal key.
func setSealKey(t *testing.T) {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	t.Setenv(sealEnv, base64.StdEncoding.EncodeToString(key))
}

// hubTopic is the topic of the events posted to a hub node's /events.
const hubTopic = "orders/created"

// Tenants of the webhook API and their static Bearer tokens.
const (
	acmeToken   = "acme-api-token-0123456789abcdef"
	globexToken = "globex-api-token-0123456789abcdef"
)

// hubNodeConfig is a Caddyfile for a node that runs the webhook registry:
// the given storage, the webhooks block (loopback addresses over http
// allowed, more options in extra), the webhook API (Ventiapp's
// /api/webhooks/...) with one token per tenant, and /events relaying the raw body as an event of hubTopic
// to the registered webhooks.
func hubNodeConfig(adminPort, httpPort int, storage, extra string) string {
	debug := ""
	if os.Getenv("HOOKRELAY_TEST_DEBUG") != "" {
		debug = "debug"
	}
	return fmt.Sprintf(`{
	%s
	admin 127.0.0.1:%d
	auto_https off
	skip_install_trust
	hookrelay {
		%s
		webhooks {
			seal_key {env.%s}
			allow_network 127.0.0.0/8
			allow_http
			%s
		}
	}
}

http://127.0.0.1:%d {
	bind 127.0.0.1
	route /api/* {
		hook_webhooks {
			token %s acme
			token %s globex
		}
	}
	route /events {
		hook_relay {
			topic %s
			webhooks
		}
	}
}
`, debug, adminPort, storage, sealEnv, extra, httpPort, acmeToken, globexToken, hubTopic)
}

// hubNode is a Caddy child process running the webhook registry, its API
// and an event route (hubNodeConfig). It can be killed and restarted on
// the same directory, ports and config.
type hubNode struct {
	name      string
	bin, dir  string
	adminAddr string
	config    string
	base      string // http://127.0.0.1:<port>
	client    *http.Client

	mu   sync.Mutex
	runs []*testutil.Caddy // every start, the current one last
}

// startHubNode runs a hub node as a child process.
func startHubNode(t *testing.T, name, storage, extra string) *hubNode {
	t.Helper()
	adminPort, httpPort := testutil.FreePort(t), testutil.FreePort(t)
	n := &hubNode{
		name:      name,
		bin:       testutil.CaddyBinary(t),
		dir:       t.TempDir(),
		adminAddr: fmt.Sprintf("127.0.0.1:%d", adminPort),
		config:    hubNodeConfig(adminPort, httpPort, storage, extra),
		base:      fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		client:    &http.Client{Timeout: 15 * time.Second},
	}
	t.Cleanup(func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		for i, c := range n.runs {
			if t.Failed() {
				t.Logf("node %s (start %d) log:\n%s", name, i+1, tail(c.Log(), 60))
			}
			if dir := os.Getenv("HOOKRELAY_TEST_LOGS"); dir != "" {
				_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%s-%d.log", t.Name(), name, i+1)), []byte(c.Log()), 0o644)
			}
		}
	})
	n.start(t)
	return n
}

// start runs the node's Caddy and waits for its admin API.
func (n *hubNode) start(t *testing.T) {
	t.Helper()
	c := testutil.StartCaddy(t, n.bin, n.dir, n.adminAddr, n.config)
	n.mu.Lock()
	n.runs = append(n.runs, c)
	n.mu.Unlock()
}

// kill ends the node's Caddy with SIGKILL.
func (n *hubNode) kill() {
	n.mu.Lock()
	c := n.runs[len(n.runs)-1]
	n.mu.Unlock()
	c.Kill()
}

// restart starts the node again on the same directory, ports and config.
func (n *hubNode) restart(t *testing.T) { n.start(t) }

// post sends one event to /events, its data {"order": order}, and returns
// the status; 0 when the request failed.
func (n *hubNode) post(order string) int {
	body := fmt.Sprintf(`{"order":%q}`, order)
	resp, err := n.client.Post(n.base+"/events", "application/json", strings.NewReader(body))
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// destination returns what the node's admin API says of a destination,
// and the status of the answer (404 for one the node does not run).
func (n *hubNode) destination(t *testing.T, name string) (relay.DestinationStatus, int) {
	t.Helper()
	var st relay.DestinationStatus
	code := n.adminGet(t, "/hookrelay/destinations/"+name, &st)
	return st, code
}

// webhook returns the status of the admin API's answer for the
// registered webhook id (404 for one the node does not hold).
func (n *hubNode) webhook(t *testing.T, id uint64) int {
	t.Helper()
	var v map[string]any
	return n.adminGet(t, fmt.Sprintf("/hookrelay/webhooks/%d", id), &v)
}

// adminGet reads path of the admin API into v when it answers 200, and
// returns the status.
func (n *hubNode) adminGet(t *testing.T, path string, v any) int {
	t.Helper()
	resp, err := n.client.Get("http://" + n.adminAddr + path)
	if err != nil {
		t.Fatalf("node %s: GET %s: %v", n.name, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("node %s: GET %s: %v: %.300s", n.name, path, err, b)
		}
	}
	return resp.StatusCode
}

// webhookAPI calls a hub node's webhook API (Ventiapp's shapes) as the
// tenant of token.
type webhookAPI struct {
	t     *testing.T
	node  *hubNode
	token string
}

func (n *hubNode) api(t *testing.T, token string) webhookAPI {
	return webhookAPI{t: t, node: n, token: token}
}

// call sends a request to the API and returns the status and body.
func (a webhookAPI) call(method, path string, body any) (int, []byte) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.node.base+"/api"+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.node.client.Do(req)
	if err != nil {
		a.t.Fatalf("node %s: %s /api%s: %v", a.node.name, method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// apiWebhook is a webhook as Ventiapp's create, list and delete show it.
type apiWebhook struct {
	ID         uint64 `json:"id"`
	Address    string `json:"address"`
	Topic      string `json:"topic"`
	CreatedAt  string `json:"created_at"`
	APIVersion string `json:"api_version"`
	Message    string `json:"message"`
}

// create registers a webhook of hubTopic at address, signed with secret,
// and returns it.
func (a webhookAPI) create(address, secret string) apiWebhook {
	a.t.Helper()
	in := map[string]any{"webhook": map[string]any{"topic": hubTopic, "address": address, "secret": secret}}
	status, body := a.call(http.MethodPost, "/webhooks/create", in)
	var out struct {
		Webhook apiWebhook `json:"webhook"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &out) != nil {
		a.t.Fatalf("node %s: create answered %d: %.300s", a.node.name, status, body)
	}
	w := out.Webhook
	if w.ID == 0 || w.Address != address || w.Topic != hubTopic || w.Message != "Webhook created" {
		a.t.Fatalf("node %s: create answered %s", a.node.name, body)
	}
	return w
}

// list returns the ids of the tenant's webhooks.
func (a webhookAPI) list() []uint64 {
	a.t.Helper()
	status, body := a.call(http.MethodGet, "/webhooks/list", nil)
	var out struct {
		Webhooks []apiWebhook `json:"webhooks"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &out) != nil {
		a.t.Fatalf("node %s: list answered %d: %.300s", a.node.name, status, body)
	}
	ids := make([]uint64, len(out.Webhooks))
	for i, w := range out.Webhooks {
		ids[i] = w.ID
	}
	slices.Sort(ids)
	return ids
}

// delete deletes the tenant's webhook id.
func (a webhookAPI) delete(id uint64) {
	a.t.Helper()
	status, body := a.call(http.MethodPost, "/webhooks/delete", map[string]any{"webhook": map[string]any{"id": id}})
	var out struct {
		Webhook apiWebhook `json:"webhook"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &out) != nil {
		a.t.Fatalf("node %s: delete answered %d: %.300s", a.node.name, status, body)
	}
	if out.Webhook.ID != id || out.Webhook.Message != "Webhook deleted" {
		a.t.Fatalf("node %s: delete answered %s", a.node.name, body)
	}
}

// hookSink receives registered webhooks' deliveries, each webhook at its
// own path. It checks every delivery's Standard Webhooks signature with
// the secret of its path and tallies deliveries by path and by the order
// of the event's data.
type hookSink struct {
	srv     *httptest.Server
	secrets map[string]string // path -> signing secret

	mu    sync.Mutex
	got   map[string]map[string]int // path -> order -> deliveries
	first map[string]time.Time      // path -> when its first delivery arrived
	bad   []string
}

// newHookSink starts a sink on l, or on a new loopback port when l is nil,
// for webhooks whose paths and secrets secrets holds.
func newHookSink(t *testing.T, l net.Listener, secrets map[string]string) *hookSink {
	t.Helper()
	s := &hookSink{secrets: secrets, got: map[string]map[string]int{}, first: map[string]time.Time{}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	if l != nil {
		s.srv.Listener.Close()
		s.srv.Listener = l
	}
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *hookSink) serve(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	body, _ := io.ReadAll(r.Body)
	var ev struct {
		ID    string `json:"id"`
		Topic string `json:"topic"`
		Data  struct {
			Order string `json:"order"`
		} `json:"data"`
	}
	err := json.Unmarshal(body, &ev)
	id := r.Header.Get("webhook-id")
	s.mu.Lock()
	defer s.mu.Unlock()
	secret, known := s.secrets[r.URL.Path]
	switch {
	case !known:
		s.bad = append(s.bad, "delivery to unknown path "+r.URL.Path)
	case err != nil || ev.ID != id || ev.Topic != hubTopic || ev.Data.Order == "":
		s.bad = append(s.bad, fmt.Sprintf("%s: webhook-id %q body %.200s", r.URL.Path, id, body))
	case !signedWith(secret, r.Header, body):
		s.bad = append(s.bad, fmt.Sprintf("%s: signature %q does not verify with the webhook's secret", r.URL.Path, r.Header.Get("webhook-signature")))
	default:
		if s.got[r.URL.Path] == nil {
			s.got[r.URL.Path] = map[string]int{}
			s.first[r.URL.Path] = at
		}
		s.got[r.URL.Path][ev.Data.Order]++
	}
	w.WriteHeader(http.StatusOK)
}

// signedWith reports whether one of the Standard Webhooks signatures of
// header is the HMAC-SHA256 of the message with secret.
func signedWith(secret string, header http.Header, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.", header.Get("webhook-id"), header.Get("webhook-timestamp"))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return slices.Contains(strings.Fields(header.Get("webhook-signature")), want)
}

// firstAt returns when the first delivery to path arrived.
func (s *hookSink) firstAt(path string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.first[path]
	return at, ok
}

// has reports whether the event of order was delivered to path.
func (s *hookSink) has(path, order string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[path][order] > 0
}

// missing returns the (path, order) deliveries not made yet, as
// "path order".
func (s *hookSink) missing(paths, orders []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range paths {
		for _, o := range orders {
			if s.got[p][o] == 0 {
				out = append(out, p+" "+o)
			}
		}
	}
	return out
}

// duplicates counts the deliveries beyond the first of each.
func (s *hookSink) duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, byOrder := range s.got {
		for _, c := range byOrder {
			n += c - 1
		}
	}
	return n
}

// check fails the test on malformed or badly signed deliveries.
func (s *hookSink) check(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.bad) > 0 {
		t.Errorf("%d bad deliveries, first: %s", len(s.bad), s.bad[0])
	}
}

// liveNode is the first node from nodes[i], going round, that is not
// dead; nil when every one is.
func liveNode(nodes []*node, i int) *node {
	for k := range nodes {
		if n := nodes[(i+k)%len(nodes)]; !n.dead.Load() {
			return n
		}
	}
	return nil
}
