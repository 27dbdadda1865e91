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

func TestClaimVar(t *testing.T) {
	for _, name := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "tenant", "", "hook.claims.x"} {
		if got := claimVar(name); got != "hook.claims."+name {
			t.Errorf("claimVar(%q) = %q", name, got)
		}
	}
}
