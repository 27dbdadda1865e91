package testutil

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// InProcess describes the in-process Caddy (caddytest) of one test
// package: the ports its configs use. Caddy's listeners are written into
// the config text, and caddytest reaches the admin API at a port fixed in
// its own config, so these are fixed numbers; each package has its own,
// and the packages' tests run one package at a time.
type InProcess struct {
	AdminPort, HTTPPort, HTTPSPort int
}

// AdminAddr is the admin API's listen address, "localhost:<port>".
func (p InProcess) AdminAddr() string { return fmt.Sprintf("localhost:%d", p.AdminPort) }

// AdminURL is the admin API's base URL.
func (p InProcess) AdminURL() string { return "http://" + p.AdminAddr() }

// BaseURL is the base URL of the site on HTTPPort, on 127.0.0.1.
func (p InProcess) BaseURL() string { return fmt.Sprintf("http://127.0.0.1:%d", p.HTTPPort) }

// Globals returns the global options block every config of the package
// starts with (its admin address and ports, no automatic HTTPS, no trust
// store changes) with more options appended, one argument per option,
// each of which may span lines.
func (p InProcess) Globals(options ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin %s\n\thttp_port %d\n\thttps_port %d\n\tauto_https off\n\tskip_install_trust\n",
		p.AdminAddr(), p.HTTPPort, p.HTTPSPort)
	for _, o := range options {
		b.WriteString(o)
		if !strings.HasSuffix(o, "\n") {
			b.WriteByte('\n')
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// NewTester returns a caddytest tester on the package's admin port.
func (p InProcess) NewTester(t testing.TB) *caddytest.Tester {
	t.Helper()
	return caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{
		AdminPort:          p.AdminPort,
		LoadRequestTimeout: 60 * time.Second,
		TestRequestTimeout: 30 * time.Second,
	})
}

// Load runs a Caddyfile in the in-process Caddy (a reload when one runs)
// and, when the test ends, unloads it, so that its queue is closed before
// the next test opens its own. A failed load ends the test.
func (p InProcess) Load(t testing.TB, tc *caddytest.Tester, caddyfile string) {
	t.Helper()
	// Registered before InitServer so that it runs after caddytest's own
	// cleanup, which dumps the running config of a failed test.
	t.Cleanup(func() {
		if err := p.Unload(); err != nil {
			t.Errorf("unloading the config: %v", err)
		}
	})
	tc.InitServer(caddyfile, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
}

// Unload replaces the running config with one that only runs the admin
// API; the hookrelay app of the previous config stops and closes its
// queue.
func (p InProcess) Unload() error {
	body := fmt.Sprintf(`{"admin":{"listen":%q}}`, p.AdminAddr())
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Post(p.AdminURL()+"/load", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("POST /load: %d %s", resp.StatusCode, b)
	}
	return nil
}

// QueueCounts is what the admin API says a destination's queue holds.
type QueueCounts struct {
	Pending  uint64 `json:"pending"`
	InFlight int    `json:"in_flight"`
	InRetry  uint64 `json:"in_retry"`
}

// Settled reports whether nothing waits for the destination: nothing
// pending, nothing handed to a worker, no retry waiting.
func (q QueueCounts) Settled() bool { return q.Pending == 0 && q.InFlight == 0 && q.InRetry == 0 }

// WaitSettled waits until the admin API at adminURL reports that the
// queue holds nothing more for the destination, so that no attempt can
// follow, and fails the test after within. Assert "nothing more arrived"
// after it, not after a sleep.
func WaitSettled(t testing.TB, adminURL, dest string, within time.Duration) {
	t.Helper()
	var last QueueCounts
	var lastErr error
	client := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(within)
	for {
		last, lastErr = queueCounts(client, adminURL, dest)
		if lastErr == nil && last.Settled() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue of %s did not settle within %v: %+v %v", dest, within, last, lastErr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func queueCounts(client *http.Client, adminURL, dest string) (QueueCounts, error) {
	var q QueueCounts
	err := DestinationStatus(client, adminURL, dest, &q)
	return q, err
}

// DestinationStatus decodes GET /hookrelay/destinations/<dest> of the
// admin API at adminURL into into. It does not fail the test, so it is
// safe in goroutines.
func DestinationStatus(client *http.Client, adminURL, dest string, into any) error {
	resp, err := client.Get(adminURL + "/hookrelay/destinations/" + dest)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /hookrelay/destinations/%s: %d %s", dest, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, into); err != nil {
		return fmt.Errorf("GET /hookrelay/destinations/%s: %v: %s", dest, err, b)
	}
	return nil
}

// ToBlock is a hook_relay `to` block of a Caddyfile, indented for a
// route's hook_relay: the destination url named name, with more lines of
// its options.
func ToBlock(url, name string, lines ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\t\t\tto %s {\n\t\t\t\tname %s\n", url, name)
	for _, l := range lines {
		fmt.Fprintf(&b, "\t\t\t\t%s\n", l)
	}
	b.WriteString("\t\t\t}")
	return b.String()
}
