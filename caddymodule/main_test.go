package caddymodule

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestMain keeps what the unit tests provision (a default embedded queue
// under Caddy's data directory, Caddy's storage) out of the real data and
// config directories. Most tests that run a Caddy server are in
// tests/ingress and the other tests packages; the webhook API's and the
// registry's operations tests run one here, on ports of their own.
func TestMain(m *testing.M) { testutil.RunIsolated(m, nil, nil) }

// ingressSecret is the HMAC secret of the unit tests' verifiers.
const ingressSecret = "integration-test-hmac-secret-0123456789"

// The contract's bodies.
const wantSuccess = `{"status":"success","message":"Your webhook event was received successfully","status_code":201}`

func wantEnvelope(title, status, detail string) string {
	return `{"errors":[{"title":"` + title + `","detail":"` + detail + `","status_code":"` + status + `"}]}`
}

func want401(detail string) string { return wantEnvelope("Unauthenticated", "401", detail) }
func want400(detail string) string { return wantEnvelope("Bad Request", "400", detail) }

// newIngressChain provisions hook_verify (HS256 with secret) and
// hook_normalize (ave_tracking, maxBody) with a real caddy.Context, as Caddy
// would, and returns the two as one handler, followed by one that answers
// the contract's 201 as hook_relay does once the events are stored.
func newIngressChain(tb testing.TB, secret string, maxBody int64) caddyhttp.Handler {
	tb.Helper()
	end := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		writeSuccess(w)
		return nil
	})
	return newIngressChainTo(tb, secret, maxBody, end)
}

// newIngressChainTo is newIngressChain with end after hook_normalize.
func newIngressChainTo(tb testing.TB, secret string, maxBody int64, end caddyhttp.Handler) caddyhttp.Handler {
	tb.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	tb.Cleanup(cancel)
	v := &Verify{Secret: secret, Algorithms: []string{"HS256"}}
	if err := v.Provision(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := v.Validate(); err != nil {
		tb.Fatal(err)
	}
	n := &Normalize{Format: "ave_tracking", MaxBody: maxBody}
	if err := n.Provision(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := n.Validate(); err != nil {
		tb.Fatal(err)
	}
	// Refusals are logged at Debug: encode them, but into the void, so a
	// fuzzing run neither floods the output nor skips the logging code.
	quiet := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.DebugLevel))
	v.log, n.log = quiet, quiet
	normalize := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return n.ServeHTTP(w, r, end)
	})
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return v.ServeHTTP(w, r, normalize)
	})
}

// withCaddyVars gives a request the per-request variables Caddy's server sets
// up, where hook_verify puts the claims.
func withCaddyVars(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{}))
}
