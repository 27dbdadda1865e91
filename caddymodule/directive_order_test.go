package caddymodule

import (
	"slices"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestDirectiveOrderOutsideRoute: written in any order outside a route
// block, the directives run in the order caddyfile.go registers them:
// hook_verify, hook_normalize, hook_relay, hook_webhooks, then the dashboard
// and the demo receiver, all before respond.
func TestDirectiveOrderOutsideRoute(t *testing.T) {
	const cfg = `:9482 {
	respond /never 204
	hook_demo_receiver
	hook_dashboard
	hook_webhooks {
		token t acme
	}
	hook_relay {
		to http://127.0.0.1:9/in
	}
	hook_normalize ave_tracking
	hook_verify {
		secret s
	}
}
`
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	walkAdapted(decodeAdapted(t, out), func(m map[string]any) {
		if h, ok := m["handler"].(string); ok && h != "subroute" {
			order = append(order, h)
		}
	})
	want := []string{"hook_verify", "hook_normalize", "hook_relay", "hook_webhooks", "hook_dashboard", "hook_demo_receiver", "static_response"}
	if !slices.Equal(order, want) {
		t.Errorf("handlers run in the order %v, want %v", order, want)
	}
}
