package delivery

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestSignedAveEventIsDeliveredNormalizedAndSigned sends a signed Ave
// request through Caddy and checks what the destination gets: the
// normalized event, the Standard Webhooks headers (verified with the
// official library), the custom header and param.
func TestSignedAveEventIsDeliveredNormalizedAndSigned(t *testing.T) {
	s := newSink(t, nil)
	tc := caddyAt.NewTester(t)
	load(t, tc, globalOptions(queueDir(t))+fmt.Sprintf(`
:%d {
	route /ave {
		hook_verify {
			secret %s
			algorithms HS256
		}
		hook_normalize ave_tracking
		hook_relay {
			topic shipments/tracking
			to %s/hooks/tracking?x=1 {
				name ingress_erp
				header X-Source aveonline
				param tenant acme
				secret %s
			}
		}
	}
}
`, httpPort, verifySecret, s.URL, whsec))

	before := time.Now().UTC().Add(-time.Second)
	postAve(t, "/ave", "consecutivo123")
	testutil.WaitFor(t, 15*time.Second, "the delivery", func() bool { return s.recorded() >= 1 })
	d := s.deliveries()[0]

	if got := d.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
	if got := d.Header.Get("X-Source"); got != "aveonline" {
		t.Errorf("X-Source = %q, want aveonline", got)
	}
	q, err := url.ParseQuery(d.Query)
	if err != nil || q.Get("tenant") != "acme" || q.Get("x") != "1" {
		t.Errorf("query = %q, want tenant=acme and the URL's own x=1", d.Query)
	}
	if d.Header.Get("webhook-timestamp") == "" {
		t.Error("no webhook-timestamp")
	}
	if !strings.HasPrefix(d.Header.Get("webhook-signature"), "v1,") {
		t.Errorf("webhook-signature = %q, want v1,<base64>", d.Header.Get("webhook-signature"))
	}
	wh, err := standardwebhooks.NewWebhook(whsec)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(d.Body, d.Header); err != nil {
		t.Errorf("the official Standard Webhooks library refuses the signature: %v", err)
	}

	var ev struct {
		ID         string         `json:"id"`
		Topic      string         `json:"topic"`
		Source     string         `json:"source"`
		ReceivedAt time.Time      `json:"received_at"`
		Data       map[string]any `json:"data"`
	}
	dec := json.NewDecoder(strings.NewReader(string(d.Body)))
	if err := dec.Decode(&ev); err != nil {
		t.Fatalf("body is not the normalized event: %v\n%s", err, d.Body)
	}
	if d.WebhookID != ev.ID || !strings.HasPrefix(ev.ID, "evt_") || len(ev.ID) != len("evt_")+26 {
		t.Errorf("webhook-id = %q, event id = %q: want the same evt_<26 chars>", d.WebhookID, ev.ID)
	}
	if ev.Topic != "shipments/tracking" || ev.Source != "aveonline" {
		t.Errorf("topic, source = %q, %q", ev.Topic, ev.Source)
	}
	if ev.ReceivedAt.Before(before) || ev.ReceivedAt.After(time.Now().Add(time.Second)) || ev.ReceivedAt.Location() != time.UTC {
		t.Errorf("received_at = %v, want now in UTC", ev.ReceivedAt)
	}
	wantData := map[string]any{
		"shipment_id":  "consecutivo123",
		"status":       map[string]any{"code": "4", "name": "EN ENTREGA", "at": "2022-12-11T11:04:43-05:00"},
		"incident":     map[string]any{"code": "NOVEDAD", "name": "DIRECCION ERRONEA", "at": "2022-12-11T11:31:00-05:00", "state": "EJECUTADA"},
		"replacement":  map[string]any{"tracking_number": "123-444-222", "kind": "return"},
		"document_url": "https://laruta.com/docs/1.pdf",
		"notes":        "no se encuentra la dirección",
	}
	if !reflect.DeepEqual(ev.Data, wantData) {
		got, _ := json.MarshalIndent(ev.Data, "", "  ")
		want, _ := json.MarshalIndent(wantData, "", "  ")
		t.Errorf("data =\n%s\nwant\n%s", got, want)
	}
	if n := s.attempts(); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

// TestRawModeRelaysTheBodyAsOneEvent uses hook_relay without
// hook_normalize: the raw JSON body becomes the data of one event.
func TestRawModeRelaysTheBodyAsOneEvent(t *testing.T) {
	s := newSink(t, nil)
	tc := caddyAt.NewTester(t)
	load(t, tc, globalOptions(queueDir(t))+fmt.Sprintf(`
:%d {
	hook_relay /raw {
		topic orders/created
		to %s/orders {
			name raw_orders
			secret %s
		}
	}
}
`, httpPort, s.URL, whsec))

	raw := `{"order":{"id":42,"lines":[{"sku":"A-1","qty":2}]},"note":"tal cual"}`
	status, body, _, err := post(baseURL+"/raw", nil, []byte(raw))
	if err != nil || status != http.StatusCreated || string(body) != successBody {
		t.Fatalf("POST /raw = %d %s %v, want 201", status, body, err)
	}
	// Not JSON: refused, nothing queued.
	status, _, _, _ = post(baseURL+"/raw", nil, []byte(`{"order":`))
	if status != http.StatusBadRequest {
		t.Errorf("invalid JSON answered %d, want 400", status)
	}

	testutil.WaitFor(t, 15*time.Second, "the delivery", func() bool { return s.recorded() >= 1 })
	d := s.deliveries()[0]
	var ev struct {
		ID     string          `json:"id"`
		Topic  string          `json:"topic"`
		Source string          `json:"source"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(d.Body, &ev); err != nil {
		t.Fatalf("body: %v\n%s", err, d.Body)
	}
	if ev.Topic != "orders/created" || ev.ID == "" || d.WebhookID != ev.ID {
		t.Errorf("event = %s (webhook-id %q)", d.Body, d.WebhookID)
	}
	if string(ev.Data) != raw {
		t.Errorf("data = %s, want the raw body %s", ev.Data, raw)
	}
	wh, _ := standardwebhooks.NewWebhook(whsec)
	if err := wh.Verify(d.Body, d.Header); err != nil {
		t.Errorf("signature: %v", err)
	}
	if n := s.attempts(); n != 1 {
		t.Errorf("%d attempts, want exactly 1 (one event, and the invalid body queues nothing)", n)
	}
}
