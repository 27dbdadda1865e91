// Package testnet holds the network fakes of the tests of the address
// guard: a DNS server whose answers a test changes, and a listener that
// counts the connections it accepts.
package testnet

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is a DNS server on 127.0.0.1 (UDP): it answers A and AAAA queries
// for the names a test sets, with no TTL, so that a test can make a name
// resolve to one address and then another (DNS rebinding), and every
// other query with no answer.
type DNS struct {
	conn  net.PacketConn
	mu    sync.Mutex
	names map[string][]netip.Addr // lower-case FQDN -> addresses
}

// NewDNS starts a server, stopped when the test ends.
func NewDNS(t testing.TB) *DNS {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &DNS{conn: conn, names: map[string][]netip.Addr{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serve()
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

// Addr is the server's host:port.
func (s *DNS) Addr() string { return s.conn.LocalAddr().String() }

// Set makes name resolve to addrs (A records for IPv4 ones, AAAA for
// IPv6 ones); no addrs makes it resolve to nothing.
func (s *DNS) Set(name string, addrs ...string) {
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, netip.MustParseAddr(a))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names[fqdn(name)] = out
}

func fqdn(name string) string {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

func (s *DNS) lookup(name string) []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.names[fqdn(name)]
}

// Resolver resolves through the server only.
func (s *DNS) Resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, s.Addr())
		},
	}
}

// Resolve looks name up through the server, as a client with Resolver
// would.
func (s *DNS) Resolve(t testing.TB, name string) []netip.Addr {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := s.Resolver().LookupNetIP(ctx, "ip", name)
	if err != nil {
		t.Fatalf("resolving %s: %v", name, err)
	}
	return addrs
}

func (s *DNS) serve() {
	buf := make([]byte, 512)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		out := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
		out.EnableCompression()
		_ = out.StartQuestions()
		_ = out.Question(q)
		_ = out.StartAnswers()
		if q.Class == dnsmessage.ClassINET {
			rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 0}
			for _, a := range s.lookup(q.Name.String()) {
				switch {
				case q.Type == dnsmessage.TypeA && a.Is4():
					_ = out.AResource(rh, dnsmessage.AResource{A: a.As4()})
				case q.Type == dnsmessage.TypeAAAA && a.Is6():
					_ = out.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
				}
			}
		}
		msg, err := out.Finish()
		if err != nil {
			continue
		}
		_, _ = s.conn.WriteTo(msg, from)
	}
}
