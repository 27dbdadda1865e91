package caddymodule

import (
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
