package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookrelay/hookrelay/internal/testutil"
	"github.com/hookrelay/hookrelay/registry"
)

// The seed's tip webhook: the order executed, the merchant's reply, and
// the answer made of them.
const (
	dynOrder    = `{"order":{"order_id":"A1","total":"10.10","payment_method":"CARD","custom_fields":{}}}`
	dynReply    = `{"uuid":"u-1","tip":"1.20","total":"11.30"}`
	dynAnswer   = `{"order":{"custom_fields":{"tip":"1.20"},"order_id":"A1","total":"11.30"}}`
	dynTemplate = `{"order": {"order_id": "{{ .request.order.order_id }}", "total": "{{ .result.total }}", "custom_fields": {"tip": "{{ .result.tip }}"}}}`
)

// dynamicRegistration is the registration of event name at url.
func dynamicRegistration(event, url string) map[string]any {
	return map[string]any{
		"event_name":        event,
		"url":               url,
		"fields_update":     map[string]any{"fields": []string{"total"}, "custom_fields": []string{"tip"}},
		"response_body":     map[string]any{"fields": []string{"order_id", "total"}, "custom_fields": []string{"tip"}},
		"response_template": dynTemplate,
		"response_data":     dynReply,
		"request_data":      json.RawMessage(dynOrder),
	}
}

// dynamicKVLeader returns the index of the server leading the dynamic
// webhooks' bucket, or -1.
func (c *natsCluster) dynamicKVLeader() int {
	for i, nd := range c.nodes {
		if srv := nd.server(); srv != nil && srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, "KV_"+registry.DynamicBucket) {
			return i
		}
	}
	return -1
}

// queueServer returns the URL of the NATS server the node's queue last
// connected to, from its log; "" when it logged none.
func (n *hubNode) queueServer() string {
	n.mu.Lock()
	log := n.runs[len(n.runs)-1].Log()
	n.mu.Unlock()
	server := ""
	for line := range strings.Lines(log) {
		var entry struct {
			Msg    string `json:"msg"`
			Server string `json:"server"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Server != "" &&
			(entry.Msg == "queue connected" || entry.Msg == "queue connection restored") {
			server = entry.Server
		}
	}
	return server
}

// execute runs the tenant's webhook of event on the node and returns
// the status, the headers and the body; status 0 when the request failed.
func (a webhookAPI) execute(event string) (int, http.Header, []byte) {
	req, err := http.NewRequest(http.MethodPost, a.node.base+"/api/v1/merchants/acme/webhooks/"+event+"/execute",
		strings.NewReader(dynOrder))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.node.client.Do(req)
	if err != nil {
		return 0, nil, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestClusterDynamicWebhook: two relay nodes on a three-server NATS
// cluster (R3) share the merchants' dynamic webhooks. Registered through
// node a, a webhook executes through node b within a second, its answer
// signed with the secret node a showed; deleted through node b, node a
// answers 404 within a second. With the server leading the bucket shut
// down, registration and execution keep working once the cluster has
// re-elected.
func TestClusterDynamicWebhook(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a NATS cluster and two Caddy processes")
	}
	c := startNATSCluster(t)
	setSealKey(t)
	merchant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, dynReply)
	}))
	t.Cleanup(merchant.Close)
	st := clusterStorage(c.urls())
	a := startHubNode(t, "a", st, "")
	b := startHubNode(t, "b", st, "")
	const hooks = "/v1/merchants/acme/webhooks"

	register := func(n *hubNode, event string) string {
		t.Helper()
		status, body := n.api(t, acmeToken).call(http.MethodPost, hooks, dynamicRegistration(event, merchant.URL+"/"+event))
		var out struct {
			Secret string `json:"secret"`
		}
		if status != http.StatusCreated || json.Unmarshal(body, &out) != nil || out.Secret == "" {
			t.Fatalf("node %s: registering %s answered %d: %.300s", n.name, event, status, body)
		}
		return out.Secret
	}
	checkAnswer := func(n *hubNode, secret string, status int, h http.Header, body []byte) {
		t.Helper()
		if status != http.StatusOK || string(body) != dynAnswer {
			t.Fatalf("node %s: execute answered %d %s, want 200 %s", n.name, status, body, dynAnswer)
		}
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, h); err != nil {
			t.Errorf("node %s: the answer does not verify with the secret shown at registration: %v", n.name, err)
		}
	}

	secret := register(a, "tip")
	registered := time.Now()
	var status int
	var h http.Header
	var body []byte
	testutil.WaitFor(t, 10*time.Second, "node b to execute the webhook registered on node a", func() bool {
		status, h, body = b.api(t, acmeToken).execute("tip")
		return status != http.StatusNotFound
	})
	if took := time.Since(registered); took > liveWithin {
		t.Errorf("node b executed the webhook registered on node a %v after the registration answer; the registry promises %v", took, liveWithin)
	}
	checkAnswer(b, secret, status, h, body)
	if status, body := b.api(t, globexToken).call(http.MethodGet, hooks, nil); status != http.StatusForbidden {
		t.Errorf("another tenant listing acme's dynamic webhooks on node b: %d %s", status, body)
	}

	if status, body := b.api(t, acmeToken).call(http.MethodDelete, hooks+"/tip", nil); status != http.StatusNoContent {
		t.Fatalf("node b: delete answered %d %s", status, body)
	}
	deleted := time.Now()
	testutil.WaitFor(t, 10*time.Second, "node a to answer 404 for the webhook deleted on node b", func() bool {
		status, _, _ := a.api(t, acmeToken).execute("tip")
		getStatus, _ := a.api(t, acmeToken).call(http.MethodGet, hooks+"/tip", nil)
		return status == http.StatusNotFound && getStatus == http.StatusNotFound
	})
	if took := time.Since(deleted); took > liveWithin {
		t.Errorf("node a answered 404 %v after node b deleted the webhook; the registry promises %v", took, liveWithin)
	}

	// Replacements of one event name racing through both nodes: each
	// either wins or, having met another's change, tries again; none is
	// refused as the registry being unavailable. Then a delete racing
	// through both: one deletes, the other finds it gone or changed.
	register(a, "race")
	raceStatus := func(n *hubNode, method, path string, body []byte) int {
		req, err := http.NewRequest(method, n.base+"/api"+path, bytes.NewReader(body))
		if err != nil {
			return -1
		}
		req.Header.Set("Authorization", "Bearer "+acmeToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := n.client.Do(req)
		if err != nil {
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	race := func(method, path string, body func(i int) []byte) map[int]int {
		const racers = 8
		statuses := make(chan int, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			n := []*hubNode{a, b}[i%2]
			wg.Go(func() {
				<-start
				statuses <- raceStatus(n, method, path, body(i))
			})
		}
		close(start)
		wg.Wait()
		close(statuses)
		count := map[int]int{}
		for s := range statuses {
			count[s]++
		}
		return count
	}
	replaced := race(http.MethodPost, hooks, func(i int) []byte {
		b, _ := json.Marshal(dynamicRegistration("race", fmt.Sprintf("%s/race-%d", merchant.URL, i)))
		return b
	})
	if replaced[http.StatusOK] == 0 || replaced[http.StatusOK]+replaced[http.StatusConflict] != 8 {
		t.Errorf("8 replacements racing through both nodes answered %v (status: count), want 200s (409s for those that lost "+
			"every try), never 503: the registry is not unavailable, the webhook changed meanwhile", replaced)
	}
	deleted2 := race(http.MethodDelete, hooks+"/race", func(int) []byte { return nil })
	if deleted2[http.StatusNoContent] != 1 || deleted2[http.StatusNoContent]+deleted2[http.StatusNotFound]+deleted2[http.StatusConflict] != 8 {
		t.Errorf("8 deletes racing through both nodes answered %v (status: count), want one 204 and 404s or 409s, never 503", deleted2)
	}

	// One NATS server down: the one node a's queue is connected to. A
	// webhook registered before still runs, registration works again once
	// the cluster has re-elected, and node a executes a webhook
	// registered through node b.
	before := register(a, "before")
	victim := slices.Index(c.urls(), a.queueServer())
	if victim < 0 {
		t.Fatalf("node a's queue server %q is none of %v", a.queueServer(), c.urls())
	}
	leader := c.dynamicKVLeader()
	c.shutdown(victim)
	down := time.Now()
	t.Logf("shut down nats server %d, node a's (node b's: %s; the bucket's leader: server %d)",
		victim+1, b.queueServer(), leader+1)
	var after string
	testutil.WaitFor(t, 60*time.Second, "a registration through node b with a NATS server down", func() bool {
		status, body := b.api(t, acmeToken).call(http.MethodPost, hooks, dynamicRegistration("after", merchant.URL+"/after"))
		var out struct {
			Secret string `json:"secret"`
		}
		if status == http.StatusCreated && json.Unmarshal(body, &out) == nil {
			after = out.Secret
			return true
		}
		if status != http.StatusServiceUnavailable && status != 0 {
			t.Fatalf("node b: registering with a NATS server down answered %d %s, want 201 (or 503 until the re-election)", status, body)
		}
		return false
	})
	registeredAfter := time.Now()
	t.Logf("registered through node b %v after the NATS server went down", registeredAfter.Sub(down).Round(time.Millisecond))
	testutil.WaitFor(t, 60*time.Second, "node a to execute the webhook registered through node b with a NATS server down", func() bool {
		status, h, body = a.api(t, acmeToken).execute("after")
		return status != http.StatusNotFound
	})
	took := time.Since(registeredAfter)
	t.Logf("node a executed it %v after the registration", took.Round(time.Millisecond))
	// The node's watch of the bucket can stall after the reconnection
	// until nats.go notices missed heartbeats (15-20 s, in about a third
	// of the runs); the registry's lag check replaces a watcher that
	// stayed behind the bucket over two checks, a second apart.
	if took > 5*time.Second {
		t.Errorf("node a, whose NATS server went down, executed the webhook registered through node b %v after the registration "+
			"(404 until then); want within 5s of a server's death (%v otherwise)", took.Round(time.Millisecond), liveWithin)
	}
	checkAnswer(a, after, status, h, body)
	status, h, body = b.api(t, acmeToken).execute("before")
	checkAnswer(b, before, status, h, body)
	status, h, body = a.api(t, acmeToken).execute("before")
	checkAnswer(a, before, status, h, body)
}
