package caddymodule

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestConfigErrorsNameModuleOnce: Caddy prefixes a module's Provision and
// Validate errors with its id, so the modules' own errors do not repeat it.
func TestConfigErrorsNameModuleOnce(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	for _, c := range []struct {
		name string
		err  func() error
		want string
	}{
		{"hookrelay durations", (&App{DedupeWindow: -1}).Validate, "invalid queue configuration: durations cannot be negative"},
		{"hookrelay limits", (&App{QueueLimit: -1}).Validate, "invalid queue configuration: the queue limit and the dead-letter limit cannot be negative"},
		{"hookrelay tls", (&App{Storage: &StorageConfig{TLS: &StorageTLS{Cert: "c.pem"}}}).Validate, "invalid queue configuration: a client certificate needs its key, and a key its certificate"},
		{"hook_dashboard", (&Dashboard{DeadLetters: -1}).Validate, "dead_letters must be from 1 to 1000"},
		{"hook_normalize format", (&Normalize{Format: "xml"}).Validate, `unknown format "xml" (supported: ave_tracking)`},
		{"hook_normalize timezone", func() error { return (&Normalize{Format: "ave_tracking", Timezone: "Mars/Olympus"}).Provision(ctx) }, `unknown timezone "Mars/Olympus"`},
		{"hook_verify keys", (&Verify{}).Validate, "configure a secret, a public_key or a jwks URL"},
		{"hook_verify none", (&Verify{Secret: "s", Algorithms: []string{"none"}}).Validate, `the algorithm "none" is never allowed`},
		{"hook_verify empty secret", func() error {
			return (&Verify{Secret: "{env.HOOKRELAY_TEST_UNSET_SECRET}"}).Provision(ctx)
		}, "the secret resolved to an empty value"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.err()
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error %v, want one starting with %q", err, c.want)
			}
		})
	}

	// As Caddy reports it: the module id once.
	cfg := map[string]any{"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"s": map[string]any{
		"listen": []string{"127.0.0.1:0"},
		"routes": []any{map[string]any{"handle": []any{map[string]any{"handler": "hook_verify", "secret": "{env.HOOKRELAY_TEST_UNSET_SECRET}"}}}},
	}}}}}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var config caddy.Config
	if err := json.Unmarshal(raw, &config); err != nil {
		t.Fatal(err)
	}
	err = caddy.Validate(&config)
	if err == nil || !strings.Contains(err.Error(), "loading module 'hook_verify': provision http.handlers.hook_verify: the secret resolved to an empty value") {
		t.Errorf("caddy.Validate: %v", err)
	}
}
