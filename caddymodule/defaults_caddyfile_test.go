package caddymodule

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// readDefaultCaddyfile returns the repository's default Caddyfile.
func readDefaultCaddyfile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// listenAddresses adapts a Caddyfile and returns every HTTP server's
// listen addresses.
func listenAddresses(t *testing.T, caddyfile string) map[string][]string {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen []string `json:"listen"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for name, srv := range cfg.Apps.HTTP.Servers {
		got[name] = srv.Listen
	}
	return got
}

// TestDefaultCaddyfileListensOnLoopback: the default Caddyfile accepts
// tokens signed with a published secret, so, unless HOOKRELAY_BIND says
// otherwise, every site it serves listens on the loopback interface only.
// http://localhost:8080 keeps working.
func TestDefaultCaddyfileListensOnLoopback(t *testing.T) {
	caddyfile := readDefaultCaddyfile(t)

	testutil.UnsetEnv(t, "HOOKRELAY_BIND")
	servers := listenAddresses(t, caddyfile)
	if len(servers) == 0 {
		t.Fatal("the default Caddyfile has no HTTP server")
	}
	var relayPort bool
	for name, addrs := range servers {
		if len(addrs) == 0 {
			t.Errorf("server %s listens on every interface (no listen address)", name)
		}
		for _, a := range addrs {
			host, port, err := net.SplitHostPort(a)
			if err != nil {
				t.Errorf("server %s: listen address %q: %v", name, a, err)
				continue
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				t.Errorf("server %s listens on %q, not on a loopback address", name, a)
			}
			relayPort = relayPort || port == "8080"
		}
	}
	if !relayPort {
		t.Errorf("no server listens on port 8080, which the quick start uses: %v", servers)
	}

	// Told otherwise, the relay's site listens where it is told.
	t.Setenv("HOOKRELAY_BIND", "0.0.0.0")
	var found bool
	for _, addrs := range listenAddresses(t, caddyfile) {
		for _, a := range addrs {
			found = found || a == "0.0.0.0:8080"
		}
	}
	if !found {
		t.Errorf("with HOOKRELAY_BIND=0.0.0.0, no server listens on 0.0.0.0:8080: %v", listenAddresses(t, caddyfile))
	}
}
