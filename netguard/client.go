package netguard

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// Control checks the address that a dialer is about to connect to, once
// the name is resolved; it fits net.Dialer.Control. It returns Check's
// error for an address that is refused, and an error for any network
// other than tcp4 and tcp6.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp4", "tcp6":
	default:
		return fmt.Errorf("netguard: network %q refused: only TCP connections may be made", network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("netguard: refusing to connect to %q: not an IP address and port", address)
	}
	return g.Check(ap.Addr())
}

// Dialer returns a copy of base (nil: a zero net.Dialer) whose connections
// the guard checks first. A Control or ControlContext that base already
// has runs after the guard's check, and only for addresses that pass.
// Its errors carry no Host; DialContext adds it.
func (g *Guard) Dialer(base *net.Dialer) *net.Dialer {
	d := new(net.Dialer)
	if base != nil {
		*d = *base
	}
	nextCtx, next := d.ControlContext, d.Control
	d.Control = nil
	d.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		if err := g.Control(network, address, c); err != nil {
			return err
		}
		switch {
		case nextCtx != nil:
			return nextCtx(ctx, network, address, c)
		case next != nil:
			return next(network, address, c)
		}
		return nil
	}
	return d
}

// DialContext returns a dial function, for http.Transport.DialContext,
// that dials with g.Dialer(d). When an address is refused it returns the
// *RefusedError with Host set to the name that was dialed, so that the
// error says which name led to the address.
func (g *Guard) DialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	guarded := g.Dialer(d)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := guarded.DialContext(ctx, network, addr)
		var refusal *RefusedError
		if err == nil || !errors.As(err, &refusal) {
			return conn, err
		}
		named := *refusal
		if host, _, err := net.SplitHostPort(addr); err == nil {
			if _, err := netip.ParseAddr(host); err != nil {
				named.Host = host // a name, not an IP address
			}
		}
		return nil, &named
	}
}

// ClientOptions are the settings of NewClient's client.
type ClientOptions struct {
	// RootCAs verifies servers' certificates. Default: the system's roots.
	RootCAs *x509.CertPool
	// Resolver resolves names. Default: net.DefaultResolver.
	Resolver *net.Resolver
	// DialTimeout bounds making one connection, resolving its name
	// included. Default: 10s.
	DialTimeout time.Duration
}

// NewClient returns an HTTP client for tenants' addresses, whose every
// connection g checks: a name that resolved to a public address when it
// was registered and resolves to an internal one at delivery is refused
// then, with a *RefusedError in the error chain (errors.As finds it through
// the *url.Error that Do returns). It uses no proxy, so that a proxy from
// the environment cannot carry a request around the guard; it follows no
// redirects (Do returns a 3xx as the response), so that a destination
// cannot send it to an address it did not check; it speaks TLS 1.2 or
// later, and keeps up to 1024 idle connections, 64 per host.
func NewClient(g *Guard, opts ClientOptions) *http.Client {
	timeout := opts.DialTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Resolver: opts.Resolver}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DialContext = g.DialContext(dialer)
	tr.TLSClientConfig = &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12}
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
