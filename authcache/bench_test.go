package authcache

import (
	"context"
	"net/http"
	"sync"
	"testing"
)

const benchDestination = "https://erp.internal/hooks/tracking"

func warmOAuth(b *testing.B) *OAuth {
	b.Helper()
	te := newTokenEndpoint(b, nil)
	c := newTestCache(b)
	o, err := c.OAuth(OAuthConfig{TokenURL: te.URL, TokenKey: "auth_token"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := o.Token(context.Background()); err != nil {
		b.Fatal(err)
	}
	return o
}

// BenchmarkAuthorizeWarm is the per-delivery cost of OAuth with a warm cache: build the
// delivery request and authorize it.
func BenchmarkAuthorizeWarm(b *testing.B) {
	o := warmOAuth(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, benchDestination, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := o.Authorize(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthorizeWarmOnly is Authorize alone, on a reused request.
func BenchmarkAuthorizeWarmOnly(b *testing.B) {
	o := warmOAuth(b)
	ctx := context.Background()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, benchDestination, nil)
	b.ReportAllocs()
	for b.Loop() {
		if err := o.Authorize(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthorizeWarmParallel is BenchmarkAuthorizeWarm from GOMAXPROCS goroutines.
func BenchmarkAuthorizeWarmParallel(b *testing.B) {
	o := warmOAuth(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, benchDestination, nil)
			if err := o.Authorize(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAPIKey is the per-delivery cost of an API key (two headers): build the request and
// authorize it.
func BenchmarkAPIKey(b *testing.B) {
	k := APIKey([]Pair{{"API-KEY", "xxX12345xXxKey"}, {"API-USER", "username1"}})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, benchDestination, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := k.Authorize(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTokenRequestsPer10kConcurrent starts each iteration with a cold cache and makes
// 10,000 Authorize calls from 64 goroutines; it reports the token requests they caused
// (token-reqs/10k, 1 when singleflight and the cache work).
func BenchmarkTokenRequestsPer10kConcurrent(b *testing.B) {
	const calls, goroutines = 10000, 64
	te := newTokenEndpoint(b, nil)
	ctx := context.Background()
	iters := 0
	for b.Loop() {
		iters++
		c, err := NewCache(0, nil)
		if err != nil {
			b.Fatal(err)
		}
		o, err := c.OAuth(OAuthConfig{TokenURL: te.URL, TokenKey: "auth_token"})
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := g; i < calls; i += goroutines {
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, benchDestination, nil)
					if err := o.Authorize(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		c.Close()
	}
	b.ReportMetric(float64(te.n.Load())/float64(iters), "token-reqs/10k")
}
