package call

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// asyncRoute is an ingress route that normalizes Aveonline events and
// relays them to the given 'to' blocks.
func asyncRoute(path, tos string) string {
	return fmt.Sprintf(`	route %s {
		hook_normalize ave_tracking
		hook_relay {
			topic shipments/tracking
			retry {
				schedule 50ms
				max_age 1h
			}
%s
		}
	}
`, path, tos)
}

// storage is the hookrelay global option with a queue under dir.
func storage(dir string) string {
	return fmt.Sprintf("\n\thookrelay {\n\t\tstorage embedded %s\n\t}", filepath.Join(dir, "queue"))
}

// TestAsyncTemplateReshapesAveEvent sends an Aveonline webhook through a
// route whose destination has the Ave->ERP template of examples/ave-erp,
// and checks the body the ERP receives; a second destination's template
// fails on the live event (it passed its sample) and dead-letters the
// message without disturbing anything else.
func TestAsyncTemplateReshapesAveEvent(t *testing.T) {
	dir := testDir(t)
	erp := testutil.NewReceiver(t, nil)
	strict := testutil.NewReceiver(t, nil)
	erpTmpl, err := filepath.Abs(filepath.Join("..", "..", "examples", "ave-erp", "erp.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	// The built-in sample has a proof of delivery; the live event has none.
	strictTmpl := writeFile(t, dir, "strict.tmpl", "{\n  \"pod\": {{ json .data.proof_of_delivery.mime_type }}\n}\n")
	tos := fmt.Sprintf(`			to %s/erp {
				name erp_sync_test
				template %s
			}
			to %s/strict {
				name strict_sync_test
				template %s
			}`, erp.URL, erpTmpl, strict.URL, strictTmpl)
	tc := caddyAt.NewTester(t)
	caddyAt.Load(t, tc, config(storage(dir), asyncRoute("/ave", tos)))

	status, body := testutil.Post(t, baseURL+"/ave", nil, testutil.AvePayload("G-100"))
	if status != http.StatusCreated {
		t.Fatalf("ingress answered %d %s", status, body)
	}
	testutil.WaitFor(t, 15*time.Second, "the ERP delivery", func() bool { return erp.Count() >= 1 })
	got := erp.Got()[0]
	var doc map[string]any
	if err := json.Unmarshal(got.Body, &doc); err != nil {
		t.Fatalf("ERP body is not JSON: %v\n%s", err, got.Body)
	}
	if id := got.Header.Get("webhook-id"); doc["event_id"] != id || !strings.HasPrefix(id, "evt_") {
		t.Errorf("event_id %v, webhook-id %q; want the same evt_ id", doc["event_id"], id)
	}
	if day, _ := doc["received_on"].(string); !regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`).MatchString(day) {
		t.Errorf("received_on %q, want a date", day)
	}
	delete(doc, "event_id")
	delete(doc, "received_on")
	want := `{
		"document_type": "shipment_status",
		"tracking_number": "G-100",
		"status": {"code": "4", "name": "EN ENTREGA", "date": "2022-12-11 11:04:43"},
		"incident": {"code": "NOVEDAD", "name": "DIRECCION ERRONEA", "state": "EJECUTADA"},
		"replaced_by": "123-444-222",
		"document_url": "https://laruta.com/docs/1.pdf",
		"proof_of_delivery": false,
		"notes": "no se encuentra la dirección"
	}`
	if rest, _ := json.Marshal(doc); !jsonEqual(rest, want) {
		t.Errorf("ERP got\n%s\nwant\n%s", rest, want)
	}
	if ct := got.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}

	// The strict destination's render fails: a permanent failure, dead
	// letter at once with the reason, never a delivery.
	var dl deadLetter
	testutil.WaitFor(t, 15*time.Second, "the strict destination's dead letter", func() bool {
		dls := deadLetters(t, "strict_sync_test")
		if len(dls) == 0 {
			return false
		}
		dl = dls[0]
		return true
	})
	wantErr := fmt.Sprintf(`transform: template %q line 2: at <.data.proof_of_delivery.mime_type>: map has no entry for key "proof_of_delivery"`, strictTmpl)
	if dl.Reason != "transform_failed" || dl.LastError != wantErr || dl.Attempts != 1 {
		t.Errorf("dead letter %+v\nwant reason transform_failed, 1 attempt, last_error %s", dl, wantErr)
	}
	if n := strict.Count(); n != 0 {
		t.Errorf("strict destination got %d requests, want none", n)
	}
	// The relay still works.
	if status, body := testutil.Post(t, baseURL+"/ave", nil, testutil.AvePayload("G-101")); status != http.StatusCreated {
		t.Fatalf("second ingress answered %d %s", status, body)
	}
	testutil.WaitFor(t, 15*time.Second, "the second ERP delivery", func() bool { return erp.Count() >= 2 })
}

// deadLetter is what the admin API lists of one dead letter.
type deadLetter struct {
	EventID   string `json:"event_id"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error"`
	Reason    string `json:"reason"`
}

// deadLetters lists a destination's dead letters through the admin API.
func deadLetters(t testing.TB, dest string) []deadLetter {
	t.Helper()
	resp, err := http.Get(adminURL + "/hookrelay/dead_letters?destination=" + dest)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /hookrelay/dead_letters: %d %s", resp.StatusCode, b)
	}
	var out struct {
		DeadLetters []deadLetter `json:"dead_letters"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("GET /hookrelay/dead_letters: %v\n%s", err, b)
	}
	return out.DeadLetters
}

// TestAsyncTemplateRefused checks that a destination template that fails
// over its sample refuses the whole config, naming the template and the
// line, and that the previous config keeps running.
func TestAsyncTemplateRefused(t *testing.T) {
	dir := testDir(t)
	tc := caddyAt.NewTester(t)
	caddyAt.Load(t, tc, emptyConfig)

	// Over the built-in sample (a full normalized event).
	tmpl := writeFile(t, dir, "erp.tmpl", "{\n  \"guide\": {{ json .data.shipment_id }},\n  \"carrier\": {{ json .data.carrier.name }}\n}\n")
	msg := loadError(t, config(storage(dir), asyncRoute("/ave", fmt.Sprintf(`			to http://127.0.0.1:9399/erp {
				template %s
			}`, tmpl))))
	want := fmt.Sprintf(`checking the template over its sample: template %q line 3: at <.data.carrier.name>: map has no entry for key "carrier"`, tmpl)
	if !strings.Contains(msg, want) {
		t.Errorf("refused with\n%s\nwant it to contain\n%s", msg, want)
	}

	// Over a sample file, with output that is not JSON.
	sample := writeFile(t, dir, "sample.json", `{"data":{"shipment_id":"x\"y"}}`)
	msg = loadError(t, config(storage(dir), asyncRoute("/ave", fmt.Sprintf(`			to http://127.0.0.1:9399/erp {
				template `+"`"+`{"guide": "{{ .data.shipment_id }}"}`+"`"+`
				sample %s
			}`, sample))))
	if want := `template "template": output is not valid JSON`; !strings.Contains(msg, want) {
		t.Errorf("refused with\n%s\nwant it to contain\n%s", msg, want)
	}

	// The previous config still answers.
	resp, err := http.Get(baseURL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after the refusals /healthz answered %d", resp.StatusCode)
	}
}

// TestRawRouteTemplateSample: a route without hook_normalize relays the raw
// body as .data, so a template written for it does not fit the built-in
// normalized ave_tracking event. Without a sample it is refused with a note
// that says so; with its own sample it is checked over that and delivers.
func TestRawRouteTemplateSample(t *testing.T) {
	dir := testDir(t)
	rc := testutil.NewReceiver(t, nil)
	tc := caddyAt.NewTester(t)
	caddyAt.Load(t, tc, emptyConfig)
	tmpl := "`" + `{"order": {{ json .data.order_id }}}` + "`"
	raw := func(opts string) string {
		return fmt.Sprintf(`	route /orders {
		hook_relay {
			topic orders
			to %s/orders {
				name raw_orders_test
				template %s
%s
			}
		}
	}
`, rc.URL, tmpl, opts)
	}
	msg := loadError(t, config(storage(dir), raw("")))
	for _, want := range []string{`map has no entry for key "order_id"`, "set sample to a JSON file of its events"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refused with\n%s\nwant it to contain\n%s", msg, want)
		}
	}

	sample := writeFile(t, dir, "order.json", `{"id":"evt_x","topic":"orders","data":{"order_id":"o-1"}}`)
	caddyAt.Load(t, tc, config(storage(dir), raw("\t\t\t\tsample "+sample)))
	if status, body := testutil.Post(t, baseURL+"/orders", nil, []byte(`{"order_id":"o-7","more":1}`)); status != http.StatusCreated {
		t.Fatalf("ingress answered %d %s", status, body)
	}
	testutil.WaitFor(t, 15*time.Second, "the delivery", func() bool { return rc.Count() >= 1 })
	if got := rc.Got()[0].Body; !jsonEqual(got, `{"order":"o-7"}`) {
		t.Errorf("delivered %s", got)
	}
}
