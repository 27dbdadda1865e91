package caddymodule

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/internal/testutil"
	"github.com/hookrelay/hookrelay/relay"
)

// benchWriter is a reusable ResponseWriter that keeps only the status.
type benchWriter struct {
	h      http.Header
	status int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(status int)      { w.status = status }
func (w *benchWriter) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkIngress measures the hook_verify + hook_normalize chain per
// request, with a token already in the verifier's cache and a one-guide
// payload, against a plain handler that writes the same 201; and the
// same chain ending in hook_relay, which stores the event for one
// destination in an embedded queue and waits for its acknowledgement.
//
//	go test -run '^$' -bench '^BenchmarkIngress$' -benchmem ./caddymodule/
func BenchmarkIngress(b *testing.B) {
	const secret = "bench-ingress-secret"
	token := testutil.Sign(b, "HS256", []byte(secret), testutil.Claims(nil), "")
	payload := testutil.AvePayload("guia-1")

	plain := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		writeSuccess(w)
		return nil
	})
	for _, bc := range []struct {
		name    string
		handler caddyhttp.Handler
	}{
		{"verify+normalize", newIngressChain(b, secret, DefaultMaxBody)},
		{"plain201", plain},
		{"verify+normalize+relay", newRelayChain(b, secret)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			base := httptest.NewRequest(http.MethodPost, "/hooks/ave", nil)
			base.Header.Set("Content-Type", "application/json")
			// hook_verify removes the token header once verified: put it
			// back on each request without allocating.
			sigKey, sigVal := http.CanonicalHeaderKey("Ave-Hub-signature"), []string{token}
			rd := bytes.NewReader(payload)
			body := io.NopCloser(rd)
			w := &benchWriter{h: make(http.Header, 4)}
			serve := func() {
				rd.Reset(payload)
				r := base.WithContext(context.WithValue(context.Background(), caddyhttp.VarsCtxKey, make(map[string]any, 8)))
				r.Body = body
				r.Header[sigKey] = sigVal
				r.ContentLength = int64(len(payload))
				clear(w.h)
				w.status = 0
				if err := bc.handler.ServeHTTP(w, r); err != nil {
					b.Fatal(err)
				}
				if w.status != http.StatusCreated {
					b.Fatalf("status %d", w.status)
				}
			}
			// Fill the token cache (its writes are asynchronous).
			for range 100 {
				serve()
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			for b.Loop() {
				serve()
			}
		})
	}
}

// newRelayChain is newIngressChain's hook_verify and hook_normalize
// followed by hook_relay (one destination, never delivered to) on an
// embedded queue of its own.
func newRelayChain(b *testing.B, secret string) caddyhttp.Handler {
	b.Helper()
	e, err := relay.Open(relay.Options{Queue: relay.QueueConfig{Dir: b.TempDir()}, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	h := &RelayHandler{
		Topic: "shipments/tracking",
		app:   &App{engine: &pooledEngine{Engine: e}},
		names: []string{"erp"},
		log:   zap.NewNop(),
	}
	rest := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return h.ServeHTTP(w, r, nil)
	})
	chain := newIngressChainTo(b, secret, DefaultMaxBody, rest)
	// Caddy's server puts a replacer in every request's context.
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return chain.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer())))
	})
}
