package delivery

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestIngressAnswers503WhenTheQueueCannotStore points the queue at a NATS
// URL where nothing listens: Caddy still starts (a cluster that is down
// must not keep the edge down), and ingress answers the contract's 503,
// never 201, so the sender retries.
func TestIngressAnswers503WhenTheQueueCannotStore(t *testing.T) {
	s := newSink(t, nil)
	// Refuses connections for the whole test: no NATS server can start there.
	closed := testutil.ClosedPort(t)
	config := caddyAt.Globals(fmt.Sprintf("\thookrelay {\n\t\tstorage nats nats://%s {\n\t\t\treplicas 1\n\t\t}\n\t}", closed.Addr)) + fmt.Sprintf(`
:%d {
	route /ave {
		hook_verify {
			secret %s
			algorithms HS256
		}
		hook_normalize ave_tracking
		hook_relay {
			topic shipments/tracking
			to %s {
				name unavailable_dest
			}
		}
	}
	hook_relay /raw {
		topic raw/things
		to %s {
			name unavailable_raw
		}
	}
}
`, httpPort, verifySecret, s.URL, s.URL)
	load(t, caddyAt.NewTester(t), config)
	const created201 = `hookrelay_ingress_requests_total{code="201"}`
	before := metric(t, created201)

	for i, req := range []struct {
		path   string
		header http.Header
		body   []byte
	}{
		{"/ave", signedHeader(t), testutil.AvePayload("unavailable-1", "unavailable-2")},
		{"/ave", signedHeader(t), testutil.AvePayload("unavailable-3")},
		{"/raw", nil, []byte(`{"hello":"world"}`)},
	} {
		status, body, header, err := post(baseURL+req.path, req.header, req.body)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if status != http.StatusServiceUnavailable {
			t.Errorf("request %d to %s: %d %s, want 503", i, req.path, status, body)
			continue
		}
		if ct := header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("request %d: Content-Type %q", i, ct)
		}
		var env struct {
			Errors []struct {
				Title      string `json:"title"`
				Detail     string `json:"detail"`
				StatusCode string `json:"status_code"`
			} `json:"errors"`
		}
		if err := json.Unmarshal(body, &env); err != nil || len(env.Errors) != 1 ||
			env.Errors[0].Title != "Service Unavailable" || env.Errors[0].StatusCode != "503" || env.Errors[0].Detail == "" {
			t.Errorf("request %d: body %s, want the contract's 503 envelope", i, body)
		}
	}
	// The counter is process-wide; no request of this test added a 201.
	if after := metric(t, created201); after != before {
		t.Errorf("201s counted went from %v to %v", before, after)
	}
	if n := s.attempts(); n != 0 {
		t.Errorf("%d deliveries from a queue that stored nothing", n)
	}
}
