package cluster

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
	"github.com/hookrelay/hookrelay/relay"
)

// liveWithin is the registry's promise: a webhook created on one node
// takes effect on every node within this time.
const liveWithin = time.Second

// TestClusterWebhookLiveOnEveryNode: two nodes on one NATS cluster share
// the webhook registry. A webhook created on node A takes events posted to
// node B within a second of A's answer, signed with the secret given to
// A; B lists it. Deleted on B, it takes no more events on either node and
// its destination leaves both nodes.
func TestClusterWebhookLiveOnEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a NATS cluster and two Caddy processes")
	}
	c := startNATSCluster(t)
	setSealKey(t)
	secrets := map[string]string{
		"/live":    "whsec_" + base64.StdEncoding.EncodeToString([]byte("live-webhook-signing-key-0123456789")),
		"/witness": "whsec_" + base64.StdEncoding.EncodeToString([]byte("witness-webhook-signing-key-0123456789")),
	}
	sink := newHookSink(t, nil, secrets)
	st := clusterStorage(c.urls())
	a := startHubNode(t, "a", st, "")
	b := startHubNode(t, "b", st, "")

	// Another tenant's webhook on the same topic, created on B, keeps
	// taking events after the delete: once it got them, the deleted one
	// would have too.
	witness := b.api(t, globexToken).create(sink.srv.URL+"/witness", secrets["/witness"])

	live := a.api(t, acmeToken).create(sink.srv.URL+"/live", secrets["/live"])
	created := time.Now()
	name := relay.WebhookName(live.ID)
	// Events posted to B before B runs the webhook are not routed to it;
	// post one every 50ms until the first one reaches the webhook.
	var last time.Time
	seq := 0
	testutil.WaitFor(t, 10*time.Second, "an event posted to node b delivered to the webhook created on node a", func() bool {
		if _, ok := sink.firstAt("/live"); ok {
			return true
		}
		if time.Since(last) >= 50*time.Millisecond {
			last = time.Now()
			seq++
			if status := b.post(fmt.Sprintf("before-%03d", seq)); status != http.StatusCreated {
				t.Fatalf("node b answered %d to an event", status)
			}
		}
		return false
	})
	first, _ := sink.firstAt("/live")
	took := first.Sub(created)
	t.Logf("created on node a; an event posted to node b delivered %v after the create answer (%d posted)", took.Round(time.Millisecond), seq)
	if took > liveWithin {
		t.Errorf("the webhook created on node a took events posted to node b only %v after the create answer; the registry promises %v", took, liveWithin)
	}

	if ids := b.api(t, acmeToken).list(); !slices.Contains(ids, live.ID) {
		t.Errorf("node b lists %v for the tenant, without the webhook %d created on node a", ids, live.ID)
	}
	if ids := b.api(t, globexToken).list(); !slices.Equal(ids, []uint64{witness.ID}) {
		t.Errorf("node b lists %v for the other tenant, want only its own webhook %d", ids, witness.ID)
	}

	for _, n := range []*hubNode{a, b} {
		if _, code := n.destination(t, name); code != http.StatusOK {
			t.Fatalf("node %s: the admin API answers %d for destination %s of a live webhook", n.name, code, name)
		}
		if code := n.webhook(t, live.ID); code != http.StatusOK {
			t.Fatalf("node %s: the admin API answers %d for the live webhook %d", n.name, code, live.ID)
		}
	}

	b.api(t, acmeToken).delete(live.ID)
	for _, n := range []*hubNode{a, b} {
		testutil.WaitFor(t, 10*time.Second, "webhook "+name+" to leave node "+n.name+"'s admin API", func() bool {
			_, code := n.destination(t, name)
			return code == http.StatusNotFound && n.webhook(t, live.ID) == http.StatusNotFound
		})
		if ids := n.api(t, acmeToken).list(); slices.Contains(ids, live.ID) {
			t.Errorf("node %s still lists the deleted webhook %d: %v", n.name, live.ID, ids)
		}
	}

	var after []string
	for _, n := range []*hubNode{a, b} {
		for i := range 5 {
			order := fmt.Sprintf("after-%s-%d", n.name, i)
			if status := n.post(order); status != http.StatusCreated {
				t.Fatalf("node %s answered %d to an event", n.name, status)
			}
			after = append(after, order)
		}
	}
	testutil.WaitFor(t, 30*time.Second, "the witness webhook to get the events posted after the delete", func() bool {
		return len(sink.missing([]string{"/witness"}, after)) == 0
	})
	for _, order := range after {
		if sink.has("/live", order) {
			t.Errorf("event %s, posted after the delete, was delivered to the deleted webhook", order)
		}
	}
	sink.check(t)
}

// TestWebhooksSurviveKill9: webhooks registered on a node with the
// embedded queue, and the deliveries waiting for their receiver, survive
// kill -9: after a restart on the same directory the API lists the same
// webhooks and every (event, webhook) delivery arrives once the receiver
// is up. Duplicates are allowed, losses are not.
func TestWebhooksSurviveKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Caddy as a child process")
	}
	setSealKey(t)
	down := testutil.ClosedPort(t)
	queue := filepath.Join(t.TempDir(), "queue")
	n := startHubNode(t, "solo", "storage embedded "+queue, `retry {
				schedule 1s
			}
			min_retry_delay 1s`)

	type hook struct {
		tenant, token, path string
		id                  uint64
	}
	hooks := []*hook{
		{tenant: "acme", token: acmeToken, path: "/acme-1"},
		{tenant: "acme", token: acmeToken, path: "/acme-2"},
		{tenant: "globex", token: globexToken, path: "/globex-1"},
	}
	secrets := map[string]string{}
	want := map[string][]uint64{} // tenant -> ids, as the API lists them
	var paths []string
	for i, h := range hooks {
		secrets[h.path] = "whsec_" + base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "kill9-webhook-%d-signing-key-0123456789", i))
		h.id = n.api(t, h.token).create("http://"+down.Addr+h.path, secrets[h.path]).ID
		want[h.tenant] = append(want[h.tenant], h.id)
		paths = append(paths, h.path)
	}
	for _, ids := range want {
		slices.Sort(ids)
	}
	listed := func() map[string][]uint64 {
		return map[string][]uint64{"acme": n.api(t, acmeToken).list(), "globex": n.api(t, globexToken).list()}
	}
	if got := listed(); !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("the API lists %v, want %v", got, want)
	}

	var orders []string
	for i := range 20 {
		order := fmt.Sprintf("kill9-%02d", i)
		if status := n.post(order); status != http.StatusCreated {
			t.Fatalf("event %s answered %d", order, status)
		}
		orders = append(orders, order)
	}
	for _, h := range hooks {
		name := relay.WebhookName(h.id)
		testutil.WaitFor(t, 30*time.Second, "a failed attempt to "+name, func() bool {
			st, code := n.destination(t, name)
			return code == http.StatusOK && st.Recent.Retry > 0
		})
	}

	n.kill()
	n.restart(t)
	sink := newHookSink(t, down.Listen(t), secrets)

	if got := listed(); !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("after kill -9 the API lists %v, want the webhooks created before it: %v", got, want)
	}
	var miss []string
	defer func() {
		if len(miss) > 0 {
			t.Logf("%d of the %d deliveries were lost after kill -9, e.g. %v", len(miss), len(paths)*len(orders), miss[:min(5, len(miss))])
		}
	}()
	testutil.WaitFor(t, 45*time.Second, "every delivery after the restart", func() bool {
		miss = sink.missing(paths, orders)
		return len(miss) == 0
	})
	t.Logf("all %d deliveries arrived after the restart; %d duplicates", len(paths)*len(orders), sink.duplicates())
	sink.check(t)
}
