package caddymodule

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// dashboardJSON reads the status page's state.
func (e *webhooksEnv) dashboardJSON() (dashboardState, string) {
	e.t.Helper()
	resp, err := http.Get(webhooksCaddy.BaseURL() + "/status?format=json")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /status?format=json = %d %s", resp.StatusCode, b)
	}
	e.saw(string(b))
	var st dashboardState
	if err := json.Unmarshal(b, &st); err != nil {
		e.t.Fatal(err)
	}
	return st, string(b)
}

// TestDashboardWebhooks: the status page's state has no webhooks while
// the registry is off; with it, their total, the count per tenant and
// each one's tenant, topic, host (not its path or query), state and
// queue, and never a credential or a signing secret.
func TestDashboardWebhooks(t *testing.T) {
	e := newWebhooksEnv(t)
	e.load(webhooksOpts{noRegistry: true})
	if st, raw := e.dashboardJSON(); st.Webhooks != nil || strings.Contains(raw, `"webhooks"`) {
		t.Errorf("webhooks without the registry: %s", raw)
	}

	e.load(webhooksOpts{})
	a1 := e.create("acme", webhookTopic, "/ok/acme-path")
	a2 := e.create("acme", "orders/created", "/ok/acme-path")
	g1 := e.create("globex", webhookTopic, "/ok/globex-path")
	var paused pauseResponse
	e.adminJSON(http.MethodPost, "/hookrelay/destinations/"+a2.Webhook.Destination+"/pause", nil, http.StatusOK, &paused)

	st, raw := e.dashboardJSON()
	w := st.Webhooks
	if w == nil || w.Total != 3 || w.Broken != 0 || w.TenantsTotal != 2 || len(w.Webhooks) != 3 {
		t.Fatalf("webhooks = %s", raw)
	}
	if len(w.Tenants) != 2 || w.Tenants[0] != (dashboardTenant{"acme", 2}) || w.Tenants[1] != (dashboardTenant{"globex", 1}) {
		t.Errorf("tenants = %+v", w.Tenants)
	}
	host := strings.TrimPrefix(e.recv.url, "http://")
	want := map[uint64]dashboardWebhook{
		a1.Webhook.ID: {ID: a1.Webhook.ID, Destination: a1.Webhook.Destination, Tenant: "acme", Topic: webhookTopic, Host: host, State: "running"},
		a2.Webhook.ID: {ID: a2.Webhook.ID, Destination: a2.Webhook.Destination, Tenant: "acme", Topic: "orders/created", Host: host, State: "paused"},
		g1.Webhook.ID: {ID: g1.Webhook.ID, Destination: g1.Webhook.Destination, Tenant: "globex", Topic: webhookTopic, Host: host, State: "running"},
	}
	for i, h := range w.Webhooks {
		if i > 0 && h.ID <= w.Webhooks[i-1].ID {
			t.Errorf("webhooks not in id order: %d after %d", h.ID, w.Webhooks[i-1].ID)
		}
		if h != want[h.ID] {
			t.Errorf("webhook %+v, want %+v", h, want[h.ID])
		}
	}
	for _, s := range []string{"acme-path", "globex-path", "whsec_", a1.Secret} {
		if strings.Contains(raw, s) {
			t.Errorf("the state shows %q: %s", s, raw)
		}
	}

	// The page has the section its script fills.
	resp, err := http.Get(webhooksCaddy.BaseURL() + "/status")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, id := range []string{`id="webhooks"`, `id="webhook-tenants"`, `id="webhook-list"`} {
		if !strings.Contains(string(page), id) {
			t.Errorf("the page has no %s", id)
		}
	}
}
