package caddymodule

import (
	"context"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// provisionVerify provisions and validates v with a real caddy.Context, as
// Caddy would, and returns it.
func provisionVerify(t testing.TB, v *Verify) *Verify {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := v.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(); err != nil {
		t.Fatal(err)
	}
	return v
}
