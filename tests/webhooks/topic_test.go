package webhooks

import (
	"net/http"
	"slices"
	"testing"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestTopicRouting: one route takes Falabella's events and reads each
// one's topic from its "event" field. Webhooks of one topic, of the
// pattern "*", and of a topic with a CEL filter over the event's data get
// exactly the events they should; a body without the field is a 400 in
// the contract's envelope.
func TestTopicRouting(t *testing.T) {
	orders := newReceiver(t, nil)
	all := newReceiver(t, nil)
	products := newReceiver(t, nil)
	large := newReceiver(t, nil)
	start(t, config{
		webhooks: []string{"allow_network 127.0.0.0/8", trustedCA(t, orders.Server)},
		routes: `	route /falabella {
		hook_relay {
			topic_field event
			webhooks
		}
	}`,
	})

	hooks := []struct {
		rc     *receiver
		topic  string
		filter string
		want   []string // the orderId or sku of every event it gets
	}{
		{rc: orders, topic: "onOrderCreated", want: []string{"o-150", "o-50"}},
		{rc: all, topic: "*", want: []string{"o-150", "o-50", "p-1", "feed-1"}},
		{rc: products, topic: "onProductUpdated", want: []string{"p-1"}},
		{rc: large, topic: "onOrderCreated", filter: "data.total > 100", want: []string{"o-150"}},
	}
	ids := make([]uint64, len(hooks))
	for i, h := range hooks {
		w := map[string]any{"topic": h.topic, "address": h.rc.URL + "/falabella"}
		if h.filter != "" {
			w["filter"] = h.filter
		}
		ids[i] = apiA.create(t, w)
	}

	for _, body := range []string{
		`{"event":"onOrderCreated","payload":{"OrderId":150},"orderId":"o-150","total":150}`,
		`{"event":"onOrderCreated","payload":{"OrderId":50},"orderId":"o-50","total":50}`,
		`{"event":"onProductUpdated","payload":{"SellerSku":"p-1"},"sku":"p-1"}`,
		`{"event":"onFeedCompleted","payload":{"Feed":"feed-1"},"feed":"feed-1"}`,
	} {
		post(t, "/falabella", nil, body)
	}

	status, body := testutil.Post(t, baseURL+"/falabella", nil, []byte(`{"payload":{"OrderId":1}}`))
	if status != http.StatusBadRequest {
		t.Errorf("a body without the event field answered %d %s, want 400", status, body)
	} else if e := envelope(t, body); e.Errors[0].Title != "Bad Request" || e.Errors[0].StatusCode != "400" {
		t.Errorf("a body without the event field answered %s, want the Bad Request envelope", body)
	}

	for i, h := range hooks {
		h.rc.waitCount(t, len(h.want), "the events of "+h.topic)
		settled(t, webhookName(ids[i]))
	}
	for _, h := range hooks {
		var got []string
		for _, d := range h.rc.Got() {
			ev := eventOf(t, d)
			key := ev.field("orderId") + ev.field("sku") + ev.field("feed")
			if ev.Topic != ev.field("event") {
				t.Errorf("event %s was delivered with topic %q, want its event field", d.Body, ev.Topic)
			}
			got = append(got, key)
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(h.want))
		if !slices.Equal(got, want) {
			t.Errorf("the webhook of %q (filter %q) got %v, want %v", h.topic, h.filter, got, want)
		}
	}
}
