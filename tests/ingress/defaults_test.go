package ingress

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/caddymodule"
	"github.com/hookrelay/hookrelay/internal/testutil"
)

// readDefaultCaddyfile returns the repository's default Caddyfile.
func readDefaultCaddyfile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPublishedSecretsLogged loads the default Caddyfile (on test ports,
// with its log in a file) and requires an ERROR line at load for each
// published fallback secret it uses: the development HMAC secret and the
// demo receiver's signing secret. The values themselves are never logged.
// Set to private values, they are not reported.
func TestPublishedSecretsLogged(t *testing.T) {
	testutil.UnsetEnv(t, "HOOKRELAY_BIND")
	testutil.UnsetEnv(t, "HOOKRELAY_DEV_SECRET")
	testutil.UnsetEnv(t, "HOOKRELAY_DEMO_WHSEC")
	const demoWhsec = "whsec_ZGVtby1yZWNlaXZlci1zaWduaW5nLWtleS0xMjM0NQ=="

	dir := t.TempDir()
	queue := queueDir(t)
	receiverPort := strconv.Itoa(testutil.FreePort(t))
	config := func(logFile string) string {
		c := readDefaultCaddyfile(t)
		for _, r := range []struct{ old, new string }{
			{"\tadmin localhost:2019\n", "\tadmin " + caddyAt.AdminAddr() + "\n\tpersist_config off\n\tgrace_period 1s\n\tlog {\n\t\toutput file " + logFile + "\n\t\tformat json\n\t}\n"},
			{"\t\tstorage embedded\n", "\t\tstorage embedded " + queue + "\n"},
			{"\n:8080 {\n", "\n" + siteAddress + " {\n"},
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
	start(t, config(first))
	var got map[string]bool
	var logs string
	testutil.WaitFor(t, 10*time.Second, "both published secrets reported", func() bool {
		got, logs = published(first)
		return len(got) >= 2
	})
	// The log names each secret by what it is and the variable that
	// replaces it.
	for _, want := range []string{
		"the public development HMAC secret (set HOOKRELAY_DEV_SECRET)",
		"the public demo receiver signing secret (set HOOKRELAY_DEMO_WHSEC)",
	} {
		if !got[want] {
			t.Errorf("no ERROR line for %q; logs:\n%s", want, logs)
		}
	}
	for _, v := range []string{caddymodule.DevSecret, demoWhsec, strings.TrimPrefix(demoWhsec, "whsec_")} {
		if strings.Contains(logs, v) {
			t.Errorf("the log holds the published secret %q itself", v)
		}
	}

	// The same config with private secrets: a reload, and not a word.
	t.Setenv("HOOKRELAY_DEV_SECRET", "a-private-dev-secret-1f3c")
	t.Setenv("HOOKRELAY_DEMO_WHSEC", "whsec_cHJpdmF0ZS1kZW1vLXNpZ25pbmcta2V5LTk4NzY=")
	second := filepath.Join(dir, "second.log")
	start(t, config(second))
	testutil.WaitFor(t, 10*time.Second, "the reload in the log", func() bool {
		_, logs = published(second)
		return strings.Contains(logs, "load complete") || strings.Contains(logs, "relay started")
	})
	if got, logs = published(second); len(got) != 0 {
		t.Errorf("private secrets reported as published: %v\n%s", got, logs)
	}
}
