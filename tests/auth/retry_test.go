package auth

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestRejectedTokenRefreshedInSameAttempt: a destination answering 401 once makes hookrelay drop
// the token, fetch a fresh one and retry at once, within the same attempt; the delivery succeeds
// without waiting for the retry schedule (1 minute by default).
func TestRejectedTokenRefreshedInSameAttempt(t *testing.T) {
	const destName = "reject-once"
	te := newTokenEndpoint(t, func(n int) string {
		return fmt.Sprintf(`{"access_token":"reject-token-%d","expires_in":3600}`, n)
	})
	dest := testutil.NewReceiver(t, func(n int, _ *http.Request, _ []byte) (int, http.Header, []byte) {
		if n == 1 {
			return http.StatusUnauthorized, nil, nil
		}
		return http.StatusOK, nil, nil
	})
	startCaddy(t, fmt.Sprintf(`
			to %s/hook {
				name %s
				auth oauth {
					token_url %s/token
				}
			}`, dest.URL, destName, te.URL))

	postAve(t, "reject-1")
	testutil.WaitFor(t, 20*time.Second, "the delivery", func() bool { return attempts(t, destName, "delivered") == 1 })
	settled(t, destName)

	got := dest.Got()
	if len(got) != 2 {
		t.Fatalf("destination got %d requests, want 2 (401, then 200)", len(got))
	}
	if a, b := got[0].Header.Get("Authorization"), got[1].Header.Get("Authorization"); a != "Bearer reject-token-1" || b != "Bearer reject-token-2" {
		t.Errorf("Authorization of the two requests = %q, %q; want the first token, then a fresh one", a, b)
	}
	if a, b := got[0].Header.Get("webhook-id"), got[1].Header.Get("webhook-id"); a == "" || a != b {
		t.Errorf("webhook-id of the two requests = %q, %q; want the same event", a, b)
	}
	if n := te.Count(); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
	// One attempt, delivered: no retry was scheduled.
	if n := attempts(t, destName, "retry"); n != 0 {
		t.Errorf("%d attempts ended in a retry, want 0", n)
	}
}

// TestTokenEndpointDownRetries: deliveries whose token cannot be fetched are retried on the
// route's schedule, never dead-lettered, and delivered once the token endpoint is back.
func TestTokenEndpointDownRetries(t *testing.T) {
	t.Run("HTTP 500", func(t *testing.T) {
		const destName = "token-500"
		te := newTokenEndpoint(t, func(n int) string {
			return fmt.Sprintf(`{"access_token":"back-token-%d","expires_in":3600}`, n)
		})
		te.setFail(http.StatusInternalServerError)
		dest := testutil.NewReceiver(t, nil)
		startCaddy(t, fmt.Sprintf(`
			to %s/hook {
				name %s
				auth oauth {
					token_url %s/token
				}
			}
			retry {
				schedule 50ms
			}`, dest.URL, destName, te.URL))

		postAve(t, "down-500-1")
		testutil.WaitFor(t, 20*time.Second, "repeated token requests", func() bool { return te.Count() >= 3 })
		if n := dest.Count(); n != 0 {
			t.Fatalf("destination contacted %d times without a token", n)
		}
		te.setFail(0)
		testutil.WaitFor(t, 20*time.Second, "the delivery once the endpoint is back", func() bool { return dest.Count() >= 1 })

		if got := dest.Got()[0].Header.Get("Authorization"); got != fmt.Sprintf("Bearer back-token-%d", te.Count()) {
			t.Errorf("Authorization = %q, want the token of the last token request (#%d)", got, te.Count())
		}
		if n := attempts(t, destName, "dead_letter"); n != 0 {
			t.Errorf("%d attempts dead-lettered, want 0", n)
		}
		t.Logf("%d token requests, %d attempts retried before the delivery", te.Count(), attempts(t, destName, "retry"))
	})

	t.Run("closed port", func(t *testing.T) {
		const destName = "token-closed"
		// A port the test holds without listening: connections are refused until the test
		// starts the token endpoint on it, and nothing else can take it meanwhile.
		closed := testutil.ClosedPort(t)
		addr := closed.Addr
		dest := testutil.NewReceiver(t, nil)
		startCaddy(t, fmt.Sprintf(`
			to %s/hook {
				name %s
				auth oauth {
					token_url http://%s/token
				}
			}
			retry {
				schedule 50ms
			}`, dest.URL, destName, addr))

		postAve(t, "down-closed-1")
		testutil.WaitFor(t, 20*time.Second, "repeated attempts", func() bool { return attempts(t, destName, "retry") >= 3 })
		if n := dest.Count(); n != 0 {
			t.Fatalf("destination contacted %d times without a token", n)
		}

		ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"closed-port-token","expires_in":3600}`))
		}))
		ts.Listener.Close()
		ts.Listener = closed.Listen(t)
		ts.Start()
		t.Cleanup(ts.Close)

		testutil.WaitFor(t, 30*time.Second, "the delivery once the endpoint is up", func() bool { return dest.Count() >= 1 })
		if got := dest.Got()[0].Header.Get("Authorization"); got != "Bearer closed-port-token" {
			t.Errorf("Authorization = %q, want Bearer closed-port-token", got)
		}
		if n := attempts(t, destName, "dead_letter"); n != 0 {
			t.Errorf("%d attempts dead-lettered, want 0", n)
		}
	})
}
