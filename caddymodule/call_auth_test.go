package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestCallAuthenticated: what counts as an earlier authentication for
// hook_call. Only what the authenticating handlers set counts:
// hook_verify's hook.verified variable (the bool it sets; claims alone, or
// the text a vars directive would set, do not) and a non-empty
// {http.auth.user.id} from Caddy's authentication handler; the candidate
// id of a failed basic_auth does not.
func TestCallAuthenticated(t *testing.T) {
	for _, tc := range []struct {
		name string
		vars map[string]any
		repl map[string]any
		want bool
	}{
		{"nothing", nil, nil, false},
		{"hook_verify verified", map[string]any{"hook.verified": true}, nil, true},
		{"hook.verified as text", map[string]any{"hook.verified": "true"}, nil, false},
		{"claims without verification", map[string]any{"hook.claims.sub": "deuna"}, nil, false},
		{"basic_auth user", nil, map[string]any{"http.auth.user.id": "deuna"}, true},
		{"empty user id", nil, map[string]any{"http.auth.user.id": ""}, false},
		{"failed candidate", nil, map[string]any{"http.auth.candidate.id": "deuna"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/tip", nil)
			vars := map[string]any{}
			for k, v := range tc.vars {
				vars[k] = v
			}
			repl := caddy.NewReplacer()
			for k, v := range tc.repl {
				repl.Set(k, v)
			}
			ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars)
			ctx = context.WithValue(ctx, caddy.ReplacerCtxKey, repl)
			if got := authenticated(r.WithContext(ctx)); got != tc.want {
				t.Errorf("authenticated = %v, want %v", got, tc.want)
			}
			// A request without Caddy's per-request values is not
			// authenticated, and does not panic.
			if authenticated(r) {
				t.Error("a bare request counts as authenticated")
			}
		})
	}
}
