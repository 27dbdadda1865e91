package webhooks

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/internal/testnet"
)

// trap is an https server on a loopback address that counts every
// connection it accepts: the target that refused addresses must never
// reach.
type trap struct {
	*httptest.Server
	ln *testnet.Listener
}

// newTrap listens on addr ("127.0.0.1:0", "[::1]:<port>"); it returns nil
// when it cannot listen there (no IPv6 loopback).
func newTrap(t *testing.T, addr string) *trap {
	t.Helper()
	ln, err := testnet.Listen("tcp", addr)
	if err != nil {
		return nil
	}
	tr := &trap{ln: ln}
	tr.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	tr.Listener.Close()
	tr.Listener = tr.ln
	tr.StartTLS()
	t.Cleanup(tr.Close)
	return tr
}

// assertNoConnection fails the test unless the trap accepted no
// connection.
func (tr *trap) assertNoConnection(t *testing.T) { tr.ln.AssertNoConnection(t) }

// TestSSRFRefused: with no allow_network, webhooks registered at names
// that resolve to internal addresses (a name that resolved to a public
// address when it was registered and to loopback at delivery included)
// are dead-lettered with reason address_refused and a last error naming
// the class of the address, and the loopback server behind them accepts
// no connection; an oauth login at such a name is refused too, before
// any connection to it. Literal internal addresses and localhost are
// refused at registration with a 422 pointing at /webhook/address.
func TestSSRFRefused(t *testing.T) {
	target := newTrap(t, "127.0.0.1:0")
	port := target.ln.Addr().(*net.TCPAddr).Port
	target6 := newTrap(t, fmt.Sprintf("[::1]:%d", port))
	dns := testnet.NewDNS(t)
	dns.Set("loop.test", "127.0.0.1")
	dns.Set("private.test", "10.0.0.1")
	dns.Set("metadata.test", "169.254.169.254")
	dns.Set("loop6.test", "::1")
	dns.Set("rebind.test", "93.184.216.34")
	dns.Set("login.test", "127.0.0.1")
	dns.Set("oauth-app.test", "127.0.0.1")
	start(t, config{webhooks: []string{"resolver " + dns.Addr(), trustedCA(t, target.Server)}})

	t.Run("literal addresses are refused at registration", func(t *testing.T) {
		for _, addr := range []string{
			"https://127.0.0.1/", "https://[::1]/", "https://10.0.0.1/", "https://169.254.169.254/", "https://localhost/",
			fmt.Sprintf("https://127.0.0.1:%d/hook", port),
		} {
			status, body := apiA.call(t, http.MethodPost, "/api/webhooks/create",
				map[string]any{"webhook": map[string]any{"topic": topic, "address": addr}})
			if status != http.StatusUnprocessableEntity {
				t.Errorf("registering %s answered %d %s, want 422", addr, status, body)
				continue
			}
			e := envelope(t, body)
			if len(e.Errors) != 1 || e.Errors[0].Source == nil || e.Errors[0].Source.Pointer != "/webhook/address" || e.Errors[0].StatusCode != "422" {
				t.Errorf("registering %s answered %s, want one 422 entry pointing at /webhook/address", addr, body)
			}
		}
		if ids := apiA.list(t); len(ids) != 0 {
			t.Errorf("refused registrations left webhooks %v", ids)
		}
	})

	// The class each name's address is refused as, in the last error.
	refusals := map[string]string{
		"loop.test":     "loop.test resolves to 127.0.0.1, a loopback address",
		"private.test":  "private.test resolves to 10.0.0.1, a private address",
		"metadata.test": "metadata.test resolves to 169.254.169.254, a link-local address",
		"loop6.test":    "loop6.test resolves to ::1, a loopback address",
		"rebind.test":   "rebind.test resolves to 127.0.0.1, a loopback address",
	}
	ids := map[string]uint64{}
	for name := range refusals {
		ids[name] = apiA.create(t, map[string]any{"topic": topic, "address": fmt.Sprintf("https://%s:%d/hook", name, port)})
	}
	// rebind.test was public when it was registered, and turns to
	// loopback before the delivery.
	if got := dns.Resolve(t, "rebind.test"); len(got) != 1 || got[0] != netip.MustParseAddr("93.184.216.34") {
		t.Fatalf("rebind.test resolved to %v at registration, want 93.184.216.34", got)
	}
	dns.Set("rebind.test", "127.0.0.1")

	oauthID := apiA.create(t, map[string]any{
		"topic":   topic,
		"address": fmt.Sprintf("https://oauth-app.test:%d/hook", port),
		"authorization": map[string]any{
			"authType":     "oauth",
			"addressLogin": fmt.Sprintf("https://login.test:%d/token", port),
			"body":         map[string]any{"client_id": "c", "client_secret": "s"},
		},
	})

	post(t, eventsPath, nil, `{"orderId":"ssrf-1","total":1}`)

	for name, want := range refusals {
		dest := webhookName(ids[name])
		dls := waitDeadLetters(t, dest, 1)
		settled(t, dest)
		if len(dls) != 1 || dls[0].Reason != "address_refused" || !strings.Contains(dls[0].LastError, want) {
			t.Errorf("%s (%s): dead letters %+v, want one with reason address_refused and an error saying %q", name, dest, dls, want)
		}
	}
	dest := webhookName(oauthID)
	dls := waitDeadLetters(t, dest, 1)
	settled(t, dest)
	if len(dls) != 1 || dls[0].Reason != "address_refused" || !strings.Contains(dls[0].LastError, "login.test resolves to 127.0.0.1, a loopback address") {
		t.Errorf("oauth login at login.test: dead letters %+v, want one with reason address_refused naming login.test", dls)
	}

	target.assertNoConnection(t)
	if target6 != nil {
		target6.assertNoConnection(t)
	}
}
