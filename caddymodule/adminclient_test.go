package caddymodule

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeAdmin is an admin API that answers each path with a fixed status and
// body, and records the requests it got.
type fakeAdmin struct {
	answers map[string]struct {
		status int
		body   string
	}
	mu  sync.Mutex
	got []*http.Request
}

func (f *fakeAdmin) requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.got...)
}

func (f *fakeAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	f.mu.Lock()
	f.got = append(f.got, r)
	f.mu.Unlock()
	a, ok := f.answers[r.Method+" "+r.URL.Path]
	if !ok {
		a.status, a.body = http.StatusNotFound, `{"error":"not found"}`
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

func newFakeAdmin() *fakeAdmin {
	return &fakeAdmin{answers: map[string]struct {
		status int
		body   string
	}{
		"GET /hookrelay/destinations":              {200, `{"destinations":[{"name":"erp","pending":3}]}`},
		"POST /hookrelay/destinations/erp/pause":   {200, `{"destination":"erp","paused":true}`},
		"POST /hookrelay/destinations/nope/pause":  {404, `{"error":"no running destination has that name"}`},
		"POST /hookrelay/destinations/down/resume": {502, "bad gateway\n"},
		"POST /hookrelay/dead_letters/replay":      {503, `{"error":"hookrelay is not running"}`},
	}}
}

// TestAdminClient runs the CLI's admin commands against a fake admin API
// over TCP and over a unix socket: the answers are decoded, the admin API's
// JSON errors become "<method> <path>: HTTP <status>: <error>", and any
// other error answer or a failed connection names the address.
func TestAdminClient(t *testing.T) {
	fake := newFakeAdmin()
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	tcp := strings.TrimPrefix(srv.URL, "http://")

	dir, err := os.MkdirTemp("", "hr-admin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	usrv := &http.Server{Handler: fake}
	go func() { _ = usrv.Serve(ln) }()
	t.Cleanup(func() { usrv.Close() })

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.Addr().String()
	closed.Close()

	for _, addr := range []string{tcp, "unix/" + sock, "unix/" + sock + "|0222"} {
		t.Run(addr, func(t *testing.T) {
			fake.mu.Lock()
			fake.got = nil
			fake.mu.Unlock()
			for _, c := range []struct {
				args    []string
				out     string
				wantErr string
			}{
				{args: []string{"status"}, out: "erp"},
				{args: []string{"pause", "erp"}, out: "erp paused"},
				{args: []string{"pause", "nope"}, wantErr: "POST /hookrelay/destinations/nope/pause: HTTP 404: no running destination has that name"},
				{args: []string{"resume", "down"}, wantErr: "POST /hookrelay/destinations/down/resume at " + addr + ": HTTP 502: bad gateway"},
				{args: []string{"replay", "7"}, wantErr: "POST /hookrelay/dead_letters/replay: HTTP 503: hookrelay is not running"},
			} {
				out, err := runHookrelayCommand(t, append(c.args, "--address", addr)...)
				switch {
				case c.wantErr == "" && err != nil:
					t.Errorf("%v: %v", c.args, err)
				case c.wantErr == "" && !strings.Contains(out, c.out):
					t.Errorf("%v printed %q, want it to hold %q", c.args, out, c.out)
				case c.wantErr != "" && (err == nil || err.Error() != c.wantErr):
					t.Errorf("%v: error %v, want %q", c.args, err, c.wantErr)
				}
			}
			for _, r := range fake.requests() {
				wantOrigin := "http://" + tcp
				if strings.HasPrefix(addr, "unix/") {
					wantOrigin = ""
				}
				if got := r.Header.Get("Origin"); got != wantOrigin {
					t.Errorf("%s %s: Origin %q, want %q", r.Method, r.URL.Path, got, wantOrigin)
				}
				if r.Method == http.MethodPost && r.URL.Path == "/hookrelay/dead_letters/replay" && r.Header.Get("Content-Type") != "application/json" {
					t.Errorf("replay sent Content-Type %q", r.Header.Get("Content-Type"))
				}
			}
		})
	}

	if _, err := runHookrelayCommand(t, "status", "--address", refused); err == nil || !strings.Contains(err.Error(), "GET /hookrelay/destinations at "+refused+": ") {
		t.Errorf("an admin API that is not listening: %v", err)
	}
	if _, err := runHookrelayCommand(t, "status", "--address", "localhost:1-3"); err == nil || !strings.Contains(err.Error(), "invalid admin address") {
		t.Errorf("a port range: %v", err)
	}
}

// TestWebhooksCLI runs 'caddy hookrelay webhooks ...' and 'status'
// against a real Caddy's admin API: create prints the secret once, list
// shows each webhook's tenant and state (broken once the seal key
// changes, with why), rotate and delete; status adds a line about the
// registered webhooks when the registry runs. Nothing printed holds a
// credential given to create.
func TestWebhooksCLI(t *testing.T) {
	e := newWebhooksEnv(t)
	addr := webhooksCaddy.AdminAddr()
	run := func(args ...string) (string, error) {
		t.Helper()
		out, err := runHookrelayCommand(t, append(args, "--address", addr)...)
		e.saw(out)
		if err != nil {
			e.saw(err.Error())
		}
		return out, err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out
	}

	e.load(webhooksOpts{noRegistry: true})
	if out := must("status"); strings.Contains(out, "registered webhooks") || !strings.Contains(out, "static") {
		t.Errorf("status without the registry:\n%s", out)
	}
	if _, err := run("webhooks", "list"); err == nil || !strings.Contains(err.Error(), "HTTP 404: "+errRegistryOff) {
		t.Errorf("list without the registry: %v", err)
	}

	e.load(webhooksOpts{})
	if out := must("status"); !strings.Contains(out, "no destinations are running") || !strings.Contains(out, "registered webhooks: 0, 0 broken") {
		t.Errorf("status with an empty registry:\n%s", out)
	}
	created := map[string]string{} // id -> secret
	for _, c := range []struct{ tenant, topic, path string }{
		{"acme", webhookTopic, "/ok"}, {"acme", "orders/*", "/orders"}, {"globex", webhookTopic, "/ok"},
	} {
		out := must("webhooks", "create", "--tenant", c.tenant, "--topic", c.topic, "--url", e.recv.url+c.path,
			"--api-key-header", "X-Api-Key="+credAPIKey, "--header", "X-Custom="+credHeader)
		var id, secret string
		for _, line := range strings.Split(out, "\n") {
			if rest, ok := strings.CutPrefix(line, "created webhook "); ok {
				id, _, _ = strings.Cut(rest, " ")
			}
			if rest, ok := strings.CutPrefix(line, "signing secret, shown only this once: "); ok {
				secret = rest
			}
		}
		if id == "" || !strings.HasPrefix(secret, "whsec_") || !strings.Contains(out, "for tenant "+c.tenant) {
			t.Fatalf("create printed:\n%s", out)
		}
		created[id] = secret
	}

	out := must("webhooks", "list")
	lines := strings.Split(out, "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "LAST ATTEMPT") ||
		!strings.Contains(out, "3 of 3 webhooks, 0 broken") {
		t.Fatalf("list printed:\n%s", out)
	}
	for _, line := range lines[1:4] {
		f := strings.Fields(line)
		if _, ok := created[f[0]]; !ok || (f[1] != "acme" && f[1] != "globex") || f[4] != "running" || f[5] != "0" {
			t.Errorf("list row %q: want a created id, its tenant, running, 0 queued", line)
		}
	}
	if out := must("webhooks", "list", "--tenant", "globex"); !strings.Contains(out, "1 of 1 webhooks") || strings.Contains(out, "acme") {
		t.Errorf("list --tenant globex:\n%s", out)
	}
	if out := must("webhooks", "list", "--limit", "2"); !strings.Contains(out, "2 of 3 webhooks, 0 broken; more with --after ") {
		t.Errorf("list --limit 2:\n%s", out)
	}
	if out := must("status"); !strings.Contains(out, "registered webhooks: 3, 0 broken") {
		t.Errorf("status:\n%s", out)
	}

	// A delivery shows as the last attempt.
	e.send()
	eventually(t, "two deliveries", func() bool { return e.recv.count("/ok") >= 2 })
	eventually(t, "the last attempts in the list", func() bool {
		out, err := run("webhooks", "list", "--tenant", "globex")
		return err == nil && strings.Contains(out, " 200 ")
	})

	var someID string
	for id := range created {
		someID = id
		break
	}
	out = must("webhooks", "rotate", someID)
	if !strings.Contains(out, "new signing secret, shown only this once: whsec_") || strings.Contains(out, created[someID]) {
		t.Errorf("rotate printed:\n%s", out)
	}
	if out := must("webhooks", "delete", "wh-"+someID); !strings.Contains(out, "deleted webhook "+someID+" of tenant ") {
		t.Errorf("delete printed:\n%s", out)
	}
	if _, err := run("webhooks", "delete", someID); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Errorf("delete twice: %v", err)
	}
	if _, err := run("webhooks", "rotate", "nope"); err == nil || !strings.Contains(err.Error(), "invalid webhook id") {
		t.Errorf("rotate nope: %v", err)
	}
	_, err := run("webhooks", "create", "--tenant", "acme", "--topic", webhookTopic, "--url", "ftp://example.com",
		"--api-key-header", "X-Api-Key="+credAPIKey)
	if err == nil || !strings.Contains(err.Error(), "HTTP 422") || !strings.Contains(err.Error(), "/address: ") {
		t.Errorf("create with an ftp address: %v", err)
	}
	if _, err := run("webhooks", "create", "--tenant", "acme", "--topic", webhookTopic, "--url", e.recv.url,
		"--api-key-header", credAPIKey); err == nil || !strings.Contains(err.Error(), "use Name=value") {
		t.Errorf("an --api-key-header without a name: %v", err)
	}
	if _, err := run("webhooks", "create", "--tenant", "acme"); err == nil || !strings.Contains(err.Error(), "required") {
		t.Errorf("create without a topic: %v", err)
	}

	// Another seal key: the stored credentials no longer open.
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOOKRELAY_TEST_OTHER_SEAL_KEY", base64.StdEncoding.EncodeToString(key))
	e.load(webhooksOpts{sealKeyEnv: "HOOKRELAY_TEST_OTHER_SEAL_KEY"})
	out = must("webhooks", "list")
	if !strings.Contains(out, "2 of 2 webhooks, 2 broken") || strings.Count(out, "broken: the webhook's credentials cannot be opened") != 2 {
		t.Errorf("list with another seal key:\n%s", out)
	}
	if out := must("status"); !strings.Contains(out, "registered webhooks: 2, 2 broken") {
		t.Errorf("status with another seal key:\n%s", out)
	}
}
