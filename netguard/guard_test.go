package netguard

import (
	"errors"
	"net/netip"
	"testing"
)

func TestCheck(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tests := []struct {
		addr  string
		allow []netip.Prefix
		class string // "" when the address may be dialed
	}{
		{addr: "127.0.0.1", class: ClassLoopback},
		{addr: "127.255.255.254", class: ClassLoopback},
		{addr: "10.1.2.3", class: ClassPrivate},
		{addr: "172.16.0.1", class: ClassPrivate},
		{addr: "172.31.255.255", class: ClassPrivate},
		{addr: "192.168.1.1", class: ClassPrivate},
		{addr: "169.254.169.254", class: ClassLinkLocal},
		{addr: "100.64.0.1", class: ClassCGNAT},
		{addr: "224.0.0.1", class: ClassMulticast},
		{addr: "0.0.0.0", class: ClassUnspecified},
		{addr: "0.1.2.3", class: ClassReserved},
		{addr: "192.0.0.8", class: ClassReserved},
		{addr: "198.18.0.1", class: ClassReserved},
		{addr: "240.0.0.1", class: ClassReserved},
		{addr: "255.255.255.255", class: ClassReserved},
		{addr: "::1", class: ClassLoopback},
		{addr: "::", class: ClassUnspecified},
		{addr: "::7f00:1", class: ClassReserved}, // IPv4-compatible 127.0.0.1
		{addr: "fe80::1", class: ClassLinkLocal},
		{addr: "fe80::1%eth0", class: ClassLinkLocal},
		{addr: "fc00::1", class: ClassPrivate},
		{addr: "fd12:3456::1", class: ClassPrivate},
		{addr: "fec0::1", class: ClassPrivate},
		{addr: "ff02::1", class: ClassMulticast},
		{addr: "::ffff:10.0.0.1", class: ClassPrivate},
		{addr: "::ffff:127.0.0.1", class: ClassLoopback},
		{addr: "::ffff:169.254.169.254", class: ClassLinkLocal},
		{addr: "64:ff9b::7f00:1", class: ClassLoopback},
		{addr: "64:ff9b::a9fe:a9fe", class: ClassLinkLocal},
		{addr: "2002:7f00:1::", class: ClassLoopback},
		{addr: "2002:a00:1::", class: ClassPrivate},

		{addr: "8.8.8.8"},
		{addr: "1.1.1.1"},
		{addr: "172.32.0.1"},
		{addr: "100.128.0.1"},
		{addr: "2606:4700::1111"},
		{addr: "::ffff:8.8.8.8"},
		{addr: "64:ff9b::808:808"}, // NAT64 of 8.8.8.8
		{addr: "2002:808:808::"},   // 6to4 of 8.8.8.8

		{addr: "127.0.0.1", allow: loopback},
		{addr: "::ffff:127.0.0.1", allow: loopback},
		{addr: "64:ff9b::7f00:1", allow: loopback},
		{addr: "10.0.0.1", allow: loopback, class: ClassPrivate},
		{addr: "::1", allow: loopback, class: ClassLoopback},
		{addr: "10.9.8.7", allow: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}},
	}
	for _, tt := range tests {
		name := tt.addr
		if tt.allow != nil {
			name += " allow " + tt.allow[0].String()
		}
		t.Run(name, func(t *testing.T) {
			ip := netip.MustParseAddr(tt.addr)
			err := New(tt.allow).Check(ip)
			if tt.class == "" {
				if err != nil {
					t.Fatalf("Check(%s) = %v, want nil", ip, err)
				}
				return
			}
			var refused *RefusedError
			if !errors.As(err, &refused) {
				t.Fatalf("Check(%s) = %v, want a *RefusedError", ip, err)
			}
			if refused.Class != tt.class || refused.Addr != ip {
				t.Errorf("Check(%s) refused %s as %q, want %q", ip, refused.Addr, refused.Class, tt.class)
			}
		})
	}
}

func TestCheckNilGuard(t *testing.T) {
	var g *Guard
	if err := g.Check(netip.MustParseAddr("127.0.0.1")); err == nil {
		t.Error("a nil Guard let 127.0.0.1 through")
	}
	if err := g.Check(netip.MustParseAddr("8.8.8.8")); err != nil {
		t.Errorf("a nil Guard refused 8.8.8.8: %v", err)
	}
	if err := g.Check(netip.Addr{}); err == nil {
		t.Error("the zero Addr was let through")
	}
}

func TestRefusedError(t *testing.T) {
	tests := []struct {
		err  *RefusedError
		want string
	}{
		{
			&RefusedError{Addr: netip.MustParseAddr("127.0.0.1"), Class: ClassLoopback, Host: "example.com"},
			"address refused: example.com resolves to 127.0.0.1, a loopback address (webhook addresses may not reach internal networks)",
		},
		{
			&RefusedError{Addr: netip.MustParseAddr("::"), Class: ClassUnspecified},
			"address refused: ::, an unspecified address (webhook addresses may not reach internal networks)",
		},
		{
			&RefusedError{Class: ClassPrivate, Host: "db.internal"},
			"address refused: db.internal names a private address (webhook addresses may not reach internal networks)",
		},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q\nwant      %q", got, tt.want)
		}
	}
	e := &RefusedError{}
	if e.DeadLetterReason() != "address_refused" || !e.Permanent() {
		t.Errorf("DeadLetterReason() = %q, Permanent() = %v", e.DeadLetterReason(), e.Permanent())
	}
}

func TestCheckLiteral(t *testing.T) {
	tests := []struct {
		url   string
		class string // "" when the URL passes
		err   bool   // an error that is not a *RefusedError
	}{
		{url: "https://example.com/hook"},
		{url: "https://8.8.8.8/hook"},
		{url: "https://[2606:4700::1111]:8443/hook"},
		{url: "https://hooks.internal.example.com/"},
		{url: "http://rebind.test/"}, // a name: only the dial can tell
		{url: "http://2130706433/"},  // not an IP address to Go; refused when dialed
		{url: "/relative"},
		{url: "http://127.0.0.1:8080/", class: ClassLoopback},
		{url: "http://[::1]/", class: ClassLoopback},
		{url: "http://[::ffff:127.0.0.1]/", class: ClassLoopback},
		{url: "http://[fe80::1%25eth0]/", class: ClassLinkLocal},
		{url: "http://10.0.0.5/", class: ClassPrivate},
		{url: "http://169.254.169.254/latest/meta-data/", class: ClassLinkLocal},
		{url: "http://0.0.0.0/", class: ClassUnspecified},
		{url: "http://localhost:9000/", class: ClassLoopback},
		{url: "http://LocalHost./", class: ClassLoopback},
		{url: "http://api.localhost/", class: ClassLoopback},
		{url: "http://printer.local/", class: ClassPrivate},
		{url: "http://metadata.google.internal/", class: ClassPrivate},
		{url: "http://user:pw@db.INTERNAL:5432/", class: ClassPrivate},
		{url: "http://[::1", err: true},
		{url: "http://a b/", err: true},
	}
	for _, tt := range tests {
		err := CheckLiteral(tt.url, New(nil))
		var refused *RefusedError
		isRefused := errors.As(err, &refused)
		switch {
		case tt.err:
			if err == nil || isRefused {
				t.Errorf("CheckLiteral(%q) = %v, want a parse error", tt.url, err)
			}
		case tt.class == "":
			if err != nil {
				t.Errorf("CheckLiteral(%q) = %v, want nil", tt.url, err)
			}
		case !isRefused:
			t.Errorf("CheckLiteral(%q) = %v, want a *RefusedError", tt.url, err)
		case refused.Class != tt.class:
			t.Errorf("CheckLiteral(%q) refused as %q, want %q", tt.url, refused.Class, tt.class)
		}
	}

	if err := CheckLiteral("http://127.0.0.1/", New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})); err != nil {
		t.Errorf("CheckLiteral refused an allowed address: %v", err)
	}
}

func FuzzCheckLiteral(f *testing.F) {
	for _, seed := range []string{
		"https://example.com/hook",
		"http://127.0.0.1:8080/",
		"http://[::ffff:10.0.0.1]/",
		"http://[fe80::1%25eth0]:80/",
		"http://[64:ff9b::7f00:1]/",
		"http://localhost./",
		"http://0x7f.1/",
		"http://[::1",
		"",
	} {
		f.Add(seed)
	}
	g := New([]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")})
	f.Fuzz(func(t *testing.T, raw string) {
		err := CheckLiteral(raw, g)
		var refused *RefusedError
		if errors.As(err, &refused) {
			if refused.Class == "" {
				t.Errorf("CheckLiteral(%q) refused with no class", raw)
			}
			_ = refused.Error()
		}
	})
}
