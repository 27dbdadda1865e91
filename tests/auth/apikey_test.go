package auth

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestAPIKeyHeadersAndParams: an api_key authorization (Ventiapp's "api-key") sends its fixed
// headers on every delivery, together with the destination's own custom headers and URL params.
func TestAPIKeyHeadersAndParams(t *testing.T) {
	t.Setenv("K", "api-key-value-xX12345xXx")
	t.Setenv("HDR_SECRET", "custom-header-secret-41")
	t.Setenv("PARAM_SECRET", "custom-param-secret-42")
	dest := testutil.NewReceiver(t, nil)
	startCaddy(t, fmt.Sprintf(`
			to %s/webhooks/orders?existing=1 {
				name apikey
				header X-Tenant acme
				header X-Client-Secret {env.HDR_SECRET}
				param channel meli
				param sig {env.PARAM_SECRET}
				auth api_key {
					header API-KEY {env.K}
					header API-USER u
					header API-X-FORMAT json
				}
			}`, dest.URL))

	postAve(t, "apikey-1", "apikey-2")
	testutil.WaitFor(t, 20*time.Second, "two deliveries", func() bool { return dest.Count() == 2 })
	settled(t, "apikey")
	if n := dest.Count(); n != 2 {
		t.Fatalf("destination got %d requests, want 2", n)
	}

	for i, r := range dest.Got() {
		for name, want := range map[string]string{
			"API-KEY":         "api-key-value-xX12345xXx",
			"API-USER":        "u",
			"API-X-FORMAT":    "json",
			"X-Tenant":        "acme",
			"X-Client-Secret": "custom-header-secret-41",
			"Content-Type":    "application/json",
		} {
			if got := r.Header.Values(name); len(got) != 1 || got[0] != want {
				t.Errorf("delivery %d: %s = %q, want [%q]", i, name, got, want)
			}
		}
		if got := r.Header.Get("Authorization"); got != "" {
			t.Errorf("delivery %d: unexpected Authorization %q", i, got)
		}
		if r.Path != "/webhooks/orders" {
			t.Errorf("delivery %d: path %q", i, r.Path)
		}
		q, err := url.ParseQuery(r.Query)
		if err != nil {
			t.Fatalf("delivery %d: query %q: %v", i, r.Query, err)
		}
		want := url.Values{"existing": {"1"}, "channel": {"meli"}, "sig": {"custom-param-secret-42"}}
		if q.Encode() != want.Encode() {
			t.Errorf("delivery %d: query %q, want %q", i, r.Query, want.Encode())
		}
	}
}
