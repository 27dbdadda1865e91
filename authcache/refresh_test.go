package authcache_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/authcache"
	"github.com/hookrelay/hookrelay/internal/testutil"
)

// A token is served from the cache until RefreshBefore before its expiry
// (10% of its lifetime, at least 5s, when RefreshBefore is 0) and
// replaced from that instant on: not a nanosecond earlier, not later.
func TestRefreshBefore(t *testing.T) {
	tests := []struct {
		name          string
		expiresIn     int // seconds, in the token response
		refreshBefore time.Duration
		// replacedAt is when, after the first fetch, the token is
		// replaced; 0 means it is never cached.
		replacedAt time.Duration
	}{
		{"refresh_before 10m of an hour", 3600, 10 * time.Minute, 50 * time.Minute},
		{"refresh_before 1s of an hour", 3600, time.Second, time.Hour - time.Second},
		{"refresh_before 30s of 100s", 100, 30 * time.Second, 70 * time.Second},
		{"default: 10% of an hour", 3600, 0, 54 * time.Minute},
		{"default: 10% of a minute", 60, 0, 54 * time.Second},
		{"default: at least 5s", 20, 0, 15 * time.Second},
		{"refresh_before as long as the lifetime", 3600, time.Hour, 0},
		{"refresh_before longer than the lifetime", 3600, 2 * time.Hour, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"access_token":"tok-%d","expires_in":%d}`, n.Add(1), tt.expiresIn)
			}))
			t.Cleanup(srv.Close)
			start := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
			clk := testutil.NewClock(start)
			c, err := authcache.NewCache(0, nil, authcache.WithClock(clk.Now))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			o, err := c.OAuth(authcache.OAuthConfig{TokenURL: srv.URL, RefreshBefore: tt.refreshBefore})
			if err != nil {
				t.Fatal(err)
			}
			token := func(at time.Duration, want string) {
				t.Helper()
				clk.Set(start.Add(at))
				got, err := o.Token(t.Context())
				if err != nil {
					t.Fatalf("Token at +%v: %v", at, err)
				}
				if got != want {
					t.Fatalf("Token at +%v = %s, want %s", at, got, want)
				}
			}

			token(0, "tok-1")
			if tt.replacedAt == 0 {
				// Not cached: every call fetches.
				token(0, "tok-2")
				token(time.Second, "tok-3")
				return
			}
			token(time.Second, "tok-1")
			token(tt.replacedAt-time.Nanosecond, "tok-1")
			token(tt.replacedAt, "tok-2")
			// The new token counts its lifetime from its own request.
			token(tt.replacedAt+tt.replacedAt-time.Nanosecond, "tok-2")
			token(tt.replacedAt+tt.replacedAt, "tok-3")
			if got := c.Stats().Fetches; got != 3 {
				t.Errorf("token requests = %d, want 3", got)
			}
		})
	}
}
