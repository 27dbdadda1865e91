// Package call holds hookrelay's Caddy-level tests of body templates and of
// hook_call (DEUNA's dynamic webhooks): a real in-process Caddy (caddytest)
// in front of loopback destinations, config refusals with precise template
// errors, signed answers, the examples/ configs kept in step with their
// adapted JSON, and a call-versus-reverse_proxy benchmark.
package call

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	// hookrelay's modules, for the in-process Caddy that caddytest runs.
	_ "github.com/hookrelay/hookrelay"
	"github.com/hookrelay/hookrelay/internal/testutil"
)

// The in-process Caddy of this package: it owns admin port 3030 and HTTP
// ports 9380-9399. deadPort is in that range and never listened on.
const (
	adminPort = 3030
	adminURL  = "http://localhost:3030"
	baseURL   = "http://127.0.0.1:9380"
	deadPort  = 9399
)

// globalOptions go at the top of every config of this package.
const globalOptions = `
	admin localhost:3030
	http_port 9380
	https_port 9743
	auto_https off
	skip_install_trust
`

// baseDir holds every test's files and queue directories. It is removed
// after the whole package ran, when no config uses it any more.
var baseDir string

func TestMain(m *testing.M) {
	testutil.RunIsolated(m, func(dir string) { baseDir = dir }, nil)
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

// newTester returns a caddytest tester on this package's admin port.
func newTester(t testing.TB) *caddytest.Tester {
	return caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{
		AdminPort:          adminPort,
		TestRequestTimeout: 15 * time.Second,
		LoadRequestTimeout: 30 * time.Second,
	})
}

// config is a Caddyfile with this package's global options, extra global
// options (such as a hookrelay block) and the site on port 9380.
func config(extraGlobal, site string) string {
	return "{" + globalOptions + extraGlobal + "\n}\n\n:9380 {\n" + site + "\n}\n"
}

// load loads a config and fails the test if it is refused.
func load(t testing.TB, tc *caddytest.Tester, caddyfile string) {
	t.Helper()
	tc.InitServer(caddyfile, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
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
