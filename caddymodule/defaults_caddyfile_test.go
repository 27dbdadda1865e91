package caddymodule

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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

// unsetEnv unsets name for the test and restores it after.
func unsetEnv(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "") // restores the old value at the end
	os.Unsetenv(name)
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

	unsetEnv(t, "HOOKRELAY_BIND")
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

// TestPublishedSecretsLogged loads the default Caddyfile (on test ports,
// with its log in a file) and requires an ERROR line at load for each
// published fallback secret it uses: the development HMAC secret and the
// demo receiver's signing secret. The values themselves are never logged.
// Set to private values, they are not reported.
func TestPublishedSecretsLogged(t *testing.T) {
	unsetEnv(t, "HOOKRELAY_BIND")
	unsetEnv(t, "HOOKRELAY_DEV_SECRET")
	unsetEnv(t, "HOOKRELAY_DEMO_WHSEC")
	const demoWhsec = "whsec_ZGVtby1yZWNlaXZlci1zaWduaW5nLWtleS0xMjM0NQ=="

	dir := t.TempDir()
	queue := ingressQueueDir(t)
	receiverPort := strconv.Itoa(testutil.FreePort(t))
	config := func(logFile string) string {
		c := readDefaultCaddyfile(t)
		for _, r := range []struct{ old, new string }{
			{"\tadmin localhost:2019\n", "\tadmin " + ingressAdmin + "\n\tpersist_config off\n\tgrace_period 1s\n\tlog {\n\t\toutput file " + logFile + "\n\t\tformat json\n\t}\n"},
			{"\t\tstorage embedded\n", "\t\tstorage embedded " + queue + "\n"},
			{"\n:8080 {\n", "\n:9080 {\n"},
			{"127.0.0.1:8081", "127.0.0.1:" + receiverPort},
		} {
			if !strings.Contains(c, r.old) {
				t.Fatalf("the default Caddyfile no longer contains %q; update this test", r.old)
			}
			c = strings.ReplaceAll(c, r.old, r.new)
		}
		return c
	}

	type line struct {
		Level  string `json:"level"`
		Msg    string `json:"msg"`
		Secret string `json:"secret"`
	}
	published := func(logFile string) (map[string]bool, string) {
		b, _ := os.ReadFile(logFile)
		got := map[string]bool{}
		for _, l := range strings.Split(string(b), "\n") {
			var ln line
			if json.Unmarshal([]byte(l), &ln) == nil && strings.HasPrefix(ln.Msg, "a published secret is in use") {
				if ln.Level != "error" {
					t.Errorf("published secret logged at %q, want error: %s", ln.Level, l)
				}
				got[ln.Secret] = true
			}
		}
		return got, string(b)
	}

	first := filepath.Join(dir, "first.log")
	startIngressCaddy(t, config(first))
	var got map[string]bool
	var logs string
	testutil.WaitFor(t, 10*time.Second, "both published secrets reported", func() bool {
		got, logs = published(first)
		return len(got) >= 2
	})
	for _, want := range []string{publishedSecrets[DevSecret], publishedSecrets[demoWhsec]} {
		if !got[want] {
			t.Errorf("no ERROR line for %q; logs:\n%s", want, logs)
		}
	}
	for _, v := range []string{DevSecret, demoWhsec, strings.TrimPrefix(demoWhsec, "whsec_")} {
		if strings.Contains(logs, v) {
			t.Errorf("the log holds the published secret %q itself", v)
		}
	}

	// The same config with private secrets: a reload, and not a word.
	t.Setenv("HOOKRELAY_DEV_SECRET", "a-private-dev-secret-1f3c")
	t.Setenv("HOOKRELAY_DEMO_WHSEC", "whsec_cHJpdmF0ZS1kZW1vLXNpZ25pbmcta2V5LTk4NzY=")
	second := filepath.Join(dir, "second.log")
	startIngressCaddy(t, config(second))
	testutil.WaitFor(t, 10*time.Second, "the reload in the log", func() bool {
		_, logs = published(second)
		return strings.Contains(logs, "load complete") || strings.Contains(logs, "relay started")
	})
	if got, logs = published(second); len(got) != 0 {
		t.Errorf("private secrets reported as published: %v\n%s", got, logs)
	}
}
