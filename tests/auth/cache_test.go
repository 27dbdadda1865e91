package auth

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// Token lifetime of TestTokenCacheUnderConcurrency: the endpoint says expiresIn seconds and the
// config refreshes refreshBefore earlier, so a token is served for tokenTTL after it was
// requested. tokenTTL must comfortably exceed the time 1,000 deliveries take under -race (0.3s
// on an idle 2-CPU machine, 2s on a busy one), and is about the test's idle wait for the expiry.
const (
	expiresIn     = 12
	refreshBefore = 2 * time.Second
	tokenTTL      = expiresIn*time.Second - refreshBefore
)

// TestTokenCacheUnderConcurrency delivers 1,000 events to one destination across 32 workers and
// counts the token requests: exactly one while the token lives, and exactly one more for the
// deliveries after it expired.
func TestTokenCacheUnderConcurrency(t *testing.T) {
	const (
		phase1   = 1000
		perPost  = 250
		phase2   = 200
		destName = "cache-32w"
	)
	te := newTokenEndpoint(t, func(n int) string {
		return fmt.Sprintf(`{"access_token":"cache-token-%d","expires_in":%d}`, n, expiresIn)
	})

	var mu sync.Mutex
	byToken := map[string]int{} // Authorization value -> deliveries
	ids := map[string]bool{}    // webhook-id values seen
	dest := testutil.NewReceiver(t, func(_ int, r *http.Request, _ []byte) (int, http.Header, []byte) {
		mu.Lock()
		byToken[r.Header.Get("Authorization")]++
		ids[r.Header.Get("webhook-id")] = true
		mu.Unlock()
		return http.StatusOK, nil, nil
	})
	delivered := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(ids)
	}

	startCaddy(t, fmt.Sprintf(`
			to %s/hook {
				name %s
				workers 32
				auth oauth {
					token_url %s/token
					refresh_before %s
				}
			}`, dest.URL, destName, te.URL, refreshBefore))

	// Phase 1: 1,000 deliveries while the first token lives.
	start := time.Now()
	for i := 0; i < phase1; i += perPost {
		postAve(t, guideIDs("cache-a", i, perPost)...)
	}
	testutil.WaitFor(t, 60*time.Second, "1,000 deliveries", func() bool { return delivered() >= phase1 })
	took := time.Since(start)

	tokens := te.Got()
	mu.Lock()
	first := map[string]int{}
	for k, v := range byToken {
		first[k] = v
	}
	mu.Unlock()
	t.Logf("phase 1: %d deliveries (%d requests to the destination) over 32 workers in %v made %d token request(s)",
		delivered(), dest.Count(), took.Round(time.Millisecond), len(tokens))
	if len(tokens) != 1 {
		t.Fatalf("%d token requests for the first %d deliveries, want 1 (deliveries by token: %v; they took %v, the token is served for %v)",
			len(tokens), phase1, first, took, tokenTTL)
	}
	if first["Bearer cache-token-1"] != dest.Count() || len(first) != 1 {
		t.Fatalf("deliveries by Authorization = %v, want all %d with Bearer cache-token-1", first, dest.Count())
	}

	// Let the token reach its refresh time. It was requested no later than the endpoint saw it.
	expiry := tokens[0].At.Add(tokenTTL)
	testutil.WaitFor(t, tokenTTL+10*time.Second, "the token's expiry", func() bool { return time.Now().After(expiry) })
	if n := te.Count(); n != 1 {
		t.Fatalf("%d token requests while idle, want still 1", n)
	}

	// Phase 2: more deliveries after the expiry share one new token.
	postAve(t, guideIDs("cache-b", 0, phase2)...)
	testutil.WaitFor(t, 60*time.Second, "the deliveries after the expiry", func() bool { return delivered() >= phase1+phase2 })
	mu.Lock()
	second := byToken["Bearer cache-token-2"]
	mu.Unlock()
	t.Logf("phase 2: %d deliveries after the expiry made %d more token request(s)", phase2, te.Count()-1)
	if n := te.Count(); n != 2 {
		t.Fatalf("%d token requests in total, want 2 (one more after the expiry)", n)
	}
	if second != phase2 {
		t.Fatalf("%d deliveries carried the second token, want %d", second, phase2)
	}
	t.Logf("token requests per delivery: %d per %d", te.Count(), phase1+phase2)
}

// BenchmarkTokenRequestsPerDeliveries delivers b.N events end to end through Caddy to one
// destination with 32 workers and reports the token requests made per 10,000 deliveries, for a
// long-lived token and for one served 200ms only (expires_in 0.3, refresh_before 100ms). Run it with
// -benchtime=10000x for exactly 10,000 deliveries.
func BenchmarkTokenRequestsPerDeliveries(b *testing.B) {
	for _, bc := range []struct {
		name          string
		expiresIn     string
		refreshBefore time.Duration
	}{
		{"token_lives_1h", "3600", 0},
		{"token_served_200ms", "0.3", 100 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			te := newTokenEndpoint(b, func(n int) string {
				return fmt.Sprintf(`{"access_token":"bench-token-%d","expires_in":%s}`, n, bc.expiresIn)
			})
			dest := testutil.NewReceiver(b, nil)
			rb := ""
			if bc.refreshBefore > 0 {
				rb = "refresh_before " + bc.refreshBefore.String()
			}
			startCaddy(b, fmt.Sprintf(`
			to %s/hook {
				name bench-%s
				workers 32
				auth oauth {
					token_url %s/token
					%s
				}
			}`, dest.URL, bc.name, te.URL, rb))

			prefix := fmt.Sprintf("bench-%s-%d", bc.name, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i += 1000 {
				postAve(b, guideIDs(prefix, i, min(1000, b.N-i))...)
			}
			testutil.WaitFor(b, 5*time.Minute, "the deliveries", func() bool { return dest.Count() >= b.N })
			b.StopTimer()
			b.ReportMetric(float64(te.Count())*10000/float64(b.N), "token-requests/10k-deliveries")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
