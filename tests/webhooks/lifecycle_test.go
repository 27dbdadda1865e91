package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookrelay/hookrelay/internal/testutil"
	"github.com/hookrelay/hookrelay/relay"
)

// TestCreateIsLive: a webhook is live when its create is answered: an
// event posted right after reaches it within a second of the answer, as
// the registry promises.
func TestCreateIsLive(t *testing.T) {
	rc := newReceiver(t, nil)
	start(t, config{webhooks: []string{"allow_network 127.0.0.0/8", trustedCA(t, rc.Server)}})

	id := apiA.create(t, map[string]any{"topic": topic, "address": rc.URL + "/live"})
	created := time.Now()
	post(t, eventsPath, nil, `{"orderId":"live-1"}`)
	rc.waitCount(t, 1, "the first delivery")
	settled(t, webhookName(id))

	got := rc.Got()
	if len(got) != 1 || eventOf(t, got[0]).field("orderId") != "live-1" {
		t.Fatalf("the webhook got %d requests, want the one event", len(got))
	}
	took := got[0].At.Sub(created)
	if took >= time.Second {
		t.Errorf("the first event reached the webhook %v after its create was answered, want under 1s", took)
	}
	t.Logf("the first event reached the webhook %v after its create was answered", took)
}

// queueServer is a NATS server with JetStream on loopback that the test
// reads while Caddy uses it as its queue: the embedded queue cannot be
// reached from outside the Caddy process.
type queueServer struct {
	url string
	js  jetstream.JetStream
}

// newQueueServer starts the server and connects to it; both stop when
// the test ends, after Caddy's config is unloaded.
func newQueueServer(t *testing.T) *queueServer {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("the NATS server did not start")
	}
	t.Cleanup(func() {
		if err := caddyAt.Unload(); err != nil {
			t.Errorf("unloading the config: %v", err)
		}
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &queueServer{url: srv.ClientURL(), js: js}
}

// held returns how many messages the outgoing stream holds for dest:
// waiting, in flight or parked for a retry.
func (q *queueServer) held(t *testing.T, dest string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := q.js.Stream(ctx, relay.StreamOut)
	if err != nil {
		t.Fatalf("stream %s: %v", relay.StreamOut, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatalf("stream %s: %v", relay.StreamOut, err)
	}
	n := 0
	for subj, c := range info.State.Subjects {
		if slices.Contains(strings.Split(subj, "."), dest) {
			n += int(c)
		}
	}
	return n
}

// TestDeleteStopsDelivery: once a webhook is deleted, it stops: its
// destination is gone from the admin API, the deliveries queued for it
// are dropped from the queue, and a new event of its topic is not
// delivered to it (while another webhook of the topic gets it).
func TestDeleteStopsDelivery(t *testing.T) {
	q := newQueueServer(t)
	doomed := newReceiver(t, nil)
	sentinel := newReceiver(t, nil)
	start(t, config{
		storage:  fmt.Sprintf("nats %s {\n\t\t\treplicas 1\n\t\t}", q.url),
		webhooks: []string{"allow_network 127.0.0.0/8", trustedCA(t, doomed.Server)},
	})
	id := apiA.create(t, map[string]any{"topic": topic, "address": doomed.URL + "/doomed"})
	sentinelID := apiA.create(t, map[string]any{"topic": topic, "address": sentinel.URL + "/sentinel"})
	name := webhookName(id)

	post(t, eventsPath, nil, `{"orderId":"delete-1"}`)
	doomed.waitCount(t, 1, "the first event")
	settled(t, name)

	// Two more events wait for it while it is paused.
	if status, body := admin(t, http.MethodPost, "/hookrelay/destinations/"+name+"/pause", ""); status != http.StatusOK {
		t.Fatalf("pausing %s answered %d %s", name, status, body)
	}
	post(t, eventsPath, nil, `{"orderId":"delete-2"}`)
	post(t, eventsPath, nil, `{"orderId":"delete-3"}`)
	if n := q.held(t, name); n != 2 {
		t.Fatalf("the queue holds %d messages for %s, want the 2 posted while it is paused", n, name)
	}

	status, body := apiA.remove(t, id)
	if status != http.StatusOK {
		t.Fatalf("delete answered %d %s, want 200", status, body)
	}
	var out struct {
		Webhook ventiappWebhook `json:"webhook"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Webhook.ID != id || out.Webhook.Message != "Webhook deleted" {
		t.Errorf("delete answered %s, want the webhook with \"Webhook deleted\"", body)
	}
	testutil.WaitFor(t, 5*time.Second, name+" gone from the admin API", func() bool {
		status, _ := admin(t, http.MethodGet, "/hookrelay/destinations/"+name, "")
		return status == http.StatusNotFound
	})
	testutil.WaitFor(t, 10*time.Second, "the queued deliveries of "+name+" dropped", func() bool {
		return q.held(t, name) == 0
	})
	if ids := apiA.list(t); !slices.Equal(ids, []uint64{sentinelID}) {
		t.Errorf("the list after the delete = %v, want [%d]", ids, sentinelID)
	}
	if status, body := apiA.remove(t, id); status != http.StatusNotFound {
		t.Errorf("deleting it again answered %d %s, want 404", status, body)
	}

	// A new event reaches the other webhook of the topic, not this one.
	post(t, eventsPath, nil, `{"orderId":"delete-4"}`)
	testutil.WaitFor(t, 20*time.Second, "the new event at the other webhook", func() bool {
		for _, d := range sentinel.Got() {
			if eventOf(t, d).field("orderId") == "delete-4" {
				return true
			}
		}
		return false
	})
	settled(t, webhookName(sentinelID))
	if n := q.held(t, name); n != 0 {
		t.Errorf("the new event was stored %d times for the deleted webhook", n)
	}
	if got := doomed.Got(); len(got) != 1 {
		t.Errorf("the deleted webhook got %d requests, want only the one before it was paused", len(got))
	}
}
