package webhooks

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestTenantIsolation: two tenants register a webhook of the same topic.
// Neither sees, changes or deletes the other's (404, as an unknown id),
// and each list shows only its own. An event stamped with a tenant
// reaches only that tenant's webhook; an event of a route that stamps
// none reaches both.
func TestTenantIsolation(t *testing.T) {
	recvA := newReceiver(t, nil)
	recvB := newReceiver(t, nil)
	start(t, config{
		webhooks: []string{"allow_network 127.0.0.0/8", trustedCA(t, recvA.Server)},
		routes: fmt.Sprintf(`	route /tenant-events {
		hook_relay {
			topic %s
			tenant {http.request.header.X-Tenant}
			webhooks
		}
	}`, topic),
	})

	idA := apiA.create(t, map[string]any{"topic": topic, "address": recvA.URL + "/a"})
	idB := apiB.create(t, map[string]any{"topic": topic, "address": recvB.URL + "/b"})

	t.Run("api", func(t *testing.T) {
		for _, c := range []struct {
			who  api
			name string
			own  uint64
		}{{apiA, "A", idA}, {apiB, "B", idB}} {
			if ids := c.who.list(t); !slices.Equal(ids, []uint64{c.own}) {
				t.Errorf("%s's Ventiapp list = %v, want only its own [%d]", c.name, ids, c.own)
			}
			if ids := c.who.listNative(t); !slices.Equal(ids, []uint64{c.own}) {
				t.Errorf("%s's native list = %v, want only its own [%d]", c.name, ids, c.own)
			}
			if status, body := c.who.call(t, http.MethodGet, fmt.Sprintf("/v1/webhooks/%d", c.own), nil); status != http.StatusOK {
				t.Errorf("%s's GET of its own webhook answered %d %s, want 200", c.name, status, body)
			}
		}

		own := fmt.Sprintf("/v1/webhooks/%d", idA)
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{http.MethodGet, own, nil},
			{http.MethodPatch, own, map[string]any{"address": recvB.URL + "/stolen"}},
			{http.MethodPost, own + "/rotate", nil},
			{http.MethodPost, own + "/test", nil},
			{http.MethodDelete, own, nil},
			{http.MethodPost, "/api/webhooks/delete", map[string]any{"webhook": map[string]any{"id": idA}}},
		} {
			status, body := apiB.call(t, c.method, c.path, c.body)
			if status != http.StatusNotFound {
				t.Errorf("B's %s %s on A's webhook answered %d %s, want 404", c.method, c.path, status, body)
				continue
			}
			if e := envelope(t, body); e.Errors[0].StatusCode != "404" {
				t.Errorf("B's %s %s answered %s, want the 404 envelope", c.method, c.path, body)
			}
		}
		// A's webhook is untouched.
		status, body := apiA.call(t, http.MethodGet, own, nil)
		if status != http.StatusOK {
			t.Fatalf("A's webhook after B's attempts: %d %s", status, body)
		}
		if ids := apiA.list(t); !slices.Equal(ids, []uint64{idA}) {
			t.Errorf("A's list after B's attempts = %v, want [%d]", ids, idA)
		}
	})

	// Only A's webhook gets A's event, only B's gets B's. Each tenant's
	// queue settles before the other's event is posted, so that nothing
	// can still arrive late.
	post(t, "/tenant-events", http.Header{"X-Tenant": {tenantA}}, `{"orderId":"tenant-a-1"}`)
	recvA.waitCount(t, 1, "A's event at A's webhook")
	settled(t, webhookName(idA))
	settled(t, webhookName(idB))
	post(t, "/tenant-events", http.Header{"X-Tenant": {tenantB}}, `{"orderId":"tenant-b-1"}`)
	recvB.waitCount(t, 1, "B's event at B's webhook")
	settled(t, webhookName(idA))
	settled(t, webhookName(idB))
	if a, b := recvA.Count(), recvB.Count(); a != 1 || b != 1 {
		t.Fatalf("after one event of each tenant A's webhook got %d, B's %d; want 1 each", a, b)
	}
	if ev := eventOf(t, recvA.Got()[0]); ev.field("orderId") != "tenant-a-1" || ev.Tenant != tenantA {
		t.Errorf("A's webhook got %s, want A's event", recvA.Got()[0].Body)
	}
	if ev := eventOf(t, recvB.Got()[0]); ev.field("orderId") != "tenant-b-1" || ev.Tenant != tenantB {
		t.Errorf("B's webhook got %s, want B's event", recvB.Got()[0].Body)
	}

	// A sender the tenant route cannot place is refused, not broadcast.
	status, resp := testutil.Post(t, baseURL+"/tenant-events", nil, []byte(`{"orderId":"nobody-1"}`))
	if status != http.StatusUnauthorized || len(envelope(t, resp).Errors) != 1 {
		t.Fatalf("an event without a tenant on a tenant route answered %d %s, want 401 in the envelope", status, resp)
	}

	// A route that stamps no tenant reaches both.
	post(t, eventsPath, nil, `{"orderId":"everyone-1"}`)
	recvA.waitCount(t, 2, "the untenanted event at A's webhook")
	recvB.waitCount(t, 2, "the untenanted event at B's webhook")
	settled(t, webhookName(idA))
	settled(t, webhookName(idB))
	for name, rc := range map[string]*receiver{"A": recvA, "B": recvB} {
		got := rc.Got()
		if len(got) != 2 || eventOf(t, got[1]).field("orderId") != "everyone-1" {
			t.Errorf("%s's webhook got %d requests, want its own event and the untenanted one", name, len(got))
		}
	}
}
