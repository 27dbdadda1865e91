// Package call holds hookrelay's Caddy-level tests of body templates and of
// hook_call (DEUNA's dynamic webhooks): a real in-process Caddy (caddytest)
// in front of loopback destinations, config refusals with precise template
// errors, signed answers, the examples/ configs kept in step with their
// adapted JSON, and a call-versus-reverse_proxy benchmark.
package call

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	// hookrelay's modules, for the in-process Caddy that caddytest runs.
	_ "github.com/hookrelay/hookrelay"
	"github.com/hookrelay/hookrelay/internal/testutil"
)

// caddyAt is the in-process Caddy of this package (it owns 3030 and
// 9380-9399; 9743 for the https_port its configs never use).
var caddyAt = testutil.InProcess{AdminPort: 3030, HTTPPort: 9380, HTTPSPort: 9743}

var (
	adminURL = caddyAt.AdminURL()
	baseURL  = caddyAt.BaseURL()
)

// deadPort is in the package's range and never listened on.
const deadPort = 9399

// baseDir holds every test's files and queue directories. It is removed
// after the whole package ran, when no config uses it any more.
var baseDir string

func TestMain(m *testing.M) {
	testutil.RunIsolated(m, func(dir string) { baseDir = dir }, func() { _ = caddyAt.Unload() })
}

// testDir returns a fresh directory under baseDir for one test.
func testDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp(baseDir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+"-")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeFile writes text to dir/name and returns the path.
func writeFile(t testing.TB, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// config is a Caddyfile with this package's global options, extra global
// options (such as a hookrelay block) and the site on the package's HTTP
// port.
func config(extraGlobal, site string) string {
	return caddyAt.Globals(extraGlobal) + fmt.Sprintf("\n:%d {\n", caddyAt.HTTPPort) + site + "\n}\n"
}

// loadError posts caddyfile to the running Caddy's /load and returns the
// error it was refused with; it fails the test if the config was
// accepted. The previous config keeps running.
func loadError(t testing.TB, caddyfile string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, adminURL+"/load", strings.NewReader(caddyfile))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		t.Fatalf("the config was accepted; want it refused:\n%s", caddyfile)
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		return string(body)
	}
	return e.Error
}

// emptyConfig is loaded first by tests that only expect refusals, so that
// the in-process Caddy runs.
var emptyConfig = config("", "\trespond /healthz 200")
