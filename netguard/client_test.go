package netguard

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testnet"
)

var allowLoopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// server is a test HTTP server that counts its connections and requests.
type server struct {
	*httptest.Server
	ln       *testnet.Listener
	requests atomic.Int64
}

// newServer starts a server listening on network ("tcp4" or "tcp6") at
// addr that answers with h, after counting the request; it skips the test
// when it cannot listen there, and closes with the test.
func newServer(t *testing.T, network, addr string, h http.HandlerFunc) *server {
	t.Helper()
	ln, err := testnet.Listen(network, addr)
	if err != nil {
		t.Skipf("cannot listen on %s %s: %v", network, addr, err)
	}
	s := &server{ln: ln}
	s.Server = &httptest.Server{
		Listener: s.ln,
		Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.requests.Add(1)
			h(w, r)
		})},
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func ok(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }

// assertNoConnection fails the test unless s accepted no connection and
// its handler was never called.
func (s *server) assertNoConnection(t *testing.T) {
	t.Helper()
	s.ln.AssertNoConnection(t)
	if n := s.requests.Load(); n != 0 {
		t.Errorf("the handler was called %d times, want never", n)
	}
}

// get requests url with c and returns the *RefusedError in the error
// chain, or nil when the request succeeded.
func get(t *testing.T, c *http.Client, url string) *RefusedError {
	t.Helper()
	res, err := c.Get(url)
	if err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("GET %s: %s, want 204", url, res.Status)
		}
		return nil
	}
	var refused *RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("GET %s failed with %v, want a *RefusedError in the chain", url, err)
	}
	return refused
}

func TestClientRefusesLoopback(t *testing.T) {
	for _, tt := range []struct{ network, addr string }{
		{"tcp4", "127.0.0.1:0"},
		{"tcp6", "[::1]:0"},
	} {
		t.Run(tt.addr, func(t *testing.T) {
			s := newServer(t, tt.network, tt.addr, ok)

			refused := get(t, NewClient(New(nil), ClientOptions{}), s.URL)
			if refused == nil {
				t.Fatal("the request to a loopback server succeeded")
			}
			want := netip.MustParseAddrPort(s.ln.Addr().String()).Addr()
			if refused.Class != ClassLoopback || refused.Addr != want || refused.Host != "" {
				t.Errorf("refused %+v, want a loopback refusal of %s with no host", refused, want)
			}
			s.assertNoConnection(t)

			if refused := get(t, NewClient(New(allowLoopback), ClientOptions{}), s.URL); refused != nil {
				t.Fatalf("the allowed request was refused: %v", refused)
			}
			if n := s.requests.Load(); n != 1 {
				t.Errorf("the server got %d requests, want 1", n)
			}
		})
	}
}

func TestNilGuardClientRefuses(t *testing.T) {
	s := newServer(t, "tcp4", "127.0.0.1:0", ok)
	if refused := get(t, NewClient(nil, ClientOptions{}), s.URL); refused == nil {
		t.Fatal("a client with a nil Guard reached a loopback server")
	}
	s.assertNoConnection(t)
}

func TestClientRefusesDNSRebinding(t *testing.T) {
	public := netip.MustParseAddr("93.184.216.34")
	loopback := netip.MustParseAddr("127.0.0.1")
	dns := testnet.NewDNS(t)
	dns.Set("rebind.test", public.String())
	resolver := dns.Resolver()
	s := newServer(t, "tcp4", "127.0.0.1:0", ok)
	url := "http://rebind.test:" + strconv.Itoa(s.ln.Addr().(*net.TCPAddr).Port) + "/"

	// At registration, the name resolves to a public address.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := resolver.LookupNetIP(ctx, "ip4", "rebind.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0] != public {
		t.Fatalf("rebind.test resolved to %v, want %s", addrs, public)
	}
	if err := CheckLiteral(url, New(nil)); err != nil {
		t.Fatalf("CheckLiteral(%q) = %v, want nil", url, err)
	}

	// At delivery, it resolves to loopback.
	dns.Set("rebind.test", loopback.String())
	refused := get(t, NewClient(New(nil), ClientOptions{Resolver: resolver}), url)
	if refused == nil {
		t.Fatal("the request reached the loopback server")
	}
	if refused.Host != "rebind.test" || refused.Addr != loopback || refused.Class != ClassLoopback {
		t.Errorf("refused %+v, want rebind.test at 127.0.0.1, loopback", refused)
	}
	want := "address refused: rebind.test resolves to 127.0.0.1, a loopback address (webhook addresses may not reach internal networks)"
	if refused.Error() != want {
		t.Errorf("Error() = %q, want %q", refused.Error(), want)
	}
	s.assertNoConnection(t)

	// The very same request passes when loopback is allowed.
	if refused := get(t, NewClient(New(allowLoopback), ClientOptions{Resolver: resolver}), url); refused != nil {
		t.Fatalf("the allowed request was refused: %v", refused)
	}
	if n := s.requests.Load(); n != 1 {
		t.Errorf("the server got %d requests, want 1", n)
	}
}

func TestClientFollowsNoRedirect(t *testing.T) {
	target := newServer(t, "tcp4", "127.0.0.1:0", ok)
	redirect := newServer(t, "tcp4", "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	})

	res, err := NewClient(New(allowLoopback), ClientOptions{}).Get(redirect.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != target.URL {
		t.Errorf("got %s to %q, want the 302 to %s", res.Status, res.Header.Get("Location"), target.URL)
	}
	target.assertNoConnection(t)
}

func TestClientTLS(t *testing.T) {
	s := httptest.NewTLSServer(http.HandlerFunc(ok))
	t.Cleanup(s.Close)
	roots := x509.NewCertPool()
	roots.AddCert(s.Certificate())

	c := NewClient(New(allowLoopback), ClientOptions{RootCAs: roots})
	if refused := get(t, c, s.URL); refused != nil {
		t.Fatalf("refused: %v", refused)
	}
	if _, err := NewClient(New(allowLoopback), ClientOptions{}).Get(s.URL); err == nil {
		t.Error("a certificate not from the system roots was trusted")
	}
}

func TestNewClientTransport(t *testing.T) {
	tr := NewClient(New(nil), ClientOptions{}).Transport.(*http.Transport)
	if tr.Proxy != nil {
		t.Error("the client uses a proxy")
	}
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.MinVersion < 0x0303 {
		t.Error("the client allows TLS older than 1.2")
	}
}

func TestControl(t *testing.T) {
	g := New(nil)
	tests := []struct {
		network, address string
		refused          bool // with a *RefusedError
		ok               bool
	}{
		{network: "tcp4", address: "8.8.8.8:443", ok: true},
		{network: "tcp6", address: "[2606:4700::1111]:443", ok: true},
		{network: "tcp4", address: "127.0.0.1:80", refused: true},
		{network: "tcp6", address: "[::1]:80", refused: true},
		{network: "tcp6", address: "[fe80::1%eth0]:80", refused: true},
		{network: "tcp6", address: "[::ffff:10.0.0.1]:80", refused: true},
		{network: "udp4", address: "8.8.8.8:53"},
		{network: "udp6", address: "[2606:4700::1111]:53"},
		{network: "unix", address: "/run/docker.sock"},
		{network: "tcp4", address: "example.com:80"},
	}
	for _, tt := range tests {
		err := g.Control(tt.network, tt.address, nil)
		var refused *RefusedError
		switch {
		case tt.ok && err != nil:
			t.Errorf("Control(%s, %s) = %v, want nil", tt.network, tt.address, err)
		case tt.refused && !errors.As(err, &refused):
			t.Errorf("Control(%s, %s) = %v, want a *RefusedError", tt.network, tt.address, err)
		case !tt.ok && err == nil:
			t.Errorf("Control(%s, %s) = nil, want an error", tt.network, tt.address)
		}
	}
}

func TestDialerChainsControl(t *testing.T) {
	var called atomic.Int64
	base := &net.Dialer{Control: func(string, string, syscall.RawConn) error {
		called.Add(1)
		return nil
	}}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := New(nil).Dialer(base).DialContext(ctx, "tcp", ln.Addr().String()); err == nil {
		t.Fatal("the guarded dialer reached 127.0.0.1")
	}
	if n := called.Load(); n != 0 {
		t.Errorf("the base Control ran %d times for a refused address, want never", n)
	}
	c, err := New(allowLoopback).Dialer(base).DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if n := called.Load(); n != 1 {
		t.Errorf("the base Control ran %d times, want once", n)
	}
	if base.ControlContext != nil {
		t.Error("Dialer changed its base")
	}
}

func TestDialContextRefusesUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	dial := New(allowLoopback).DialContext(nil)
	if c, err := dial(context.Background(), "udp", pc.LocalAddr().String()); err == nil {
		c.Close()
		t.Fatal("a UDP dial was let through")
	}
}
