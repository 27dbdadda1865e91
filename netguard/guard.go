// Package netguard keeps outbound connections to addresses that tenants
// register (webhook destinations) off internal networks: it refuses
// loopback, private, link-local, shared (CGNAT), multicast, unspecified
// and reserved addresses, unless an operator allows them.
//
// The check runs on every connection, on the IP address the dialer is
// about to connect to, after DNS resolution (Guard.Control, used by
// Guard.Dialer, Guard.DialContext and NewClient). A name that resolved to a
// public address when it was registered and resolves to a private one
// later (DNS rebinding) is refused when it is dialed. CheckLiteral is the
// cheap, early check for registration time; it resolves nothing, and it is
// not what keeps deliveries safe.
//
// The package is free of Caddy.
package netguard

import (
	"net/netip"
	"net/url"
	"strings"
)

// The classes of refused addresses, as RefusedError.Class.
const (
	// ClassLoopback: 127.0.0.0/8, ::1, and names such as localhost.
	ClassLoopback = "loopback"
	// ClassPrivate: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7,
	// fec0::/10 (deprecated site-local), and names under .local and
	// .internal.
	ClassPrivate = "private"
	// ClassLinkLocal: 169.254.0.0/16 (cloud metadata services live at
	// 169.254.169.254) and fe80::/10.
	ClassLinkLocal = "link-local"
	// ClassCGNAT: 100.64.0.0/10, the address space shared by carriers'
	// NATs.
	ClassCGNAT = "cgnat"
	// ClassMulticast: 224.0.0.0/4 and ff00::/8.
	ClassMulticast = "multicast"
	// ClassUnspecified: 0.0.0.0 and ::, which reach the local host on many
	// systems.
	ClassUnspecified = "unspecified"
	// ClassReserved: the rest of 0.0.0.0/8 ("this network"), 192.0.0.0/24,
	// 198.18.0.0/15 (benchmarking), 240.0.0.0/4 (255.255.255.255 included)
	// and ::/96 (deprecated IPv4-compatible IPv6).
	ClassReserved = "reserved"
)

// refused lists the refused networks with their classes; the first match
// wins, so a narrower prefix comes before a wider one that holds it.
var refused = []struct {
	prefix netip.Prefix
	class  string
}{
	{netip.MustParsePrefix("0.0.0.0/32"), ClassUnspecified},
	{netip.MustParsePrefix("0.0.0.0/8"), ClassReserved},
	{netip.MustParsePrefix("10.0.0.0/8"), ClassPrivate},
	{netip.MustParsePrefix("100.64.0.0/10"), ClassCGNAT},
	{netip.MustParsePrefix("127.0.0.0/8"), ClassLoopback},
	{netip.MustParsePrefix("169.254.0.0/16"), ClassLinkLocal},
	{netip.MustParsePrefix("172.16.0.0/12"), ClassPrivate},
	{netip.MustParsePrefix("192.0.0.0/24"), ClassReserved},
	{netip.MustParsePrefix("192.168.0.0/16"), ClassPrivate},
	{netip.MustParsePrefix("198.18.0.0/15"), ClassReserved},
	{netip.MustParsePrefix("224.0.0.0/4"), ClassMulticast},
	{netip.MustParsePrefix("240.0.0.0/4"), ClassReserved},
	{netip.MustParsePrefix("::/128"), ClassUnspecified},
	{netip.MustParsePrefix("::1/128"), ClassLoopback},
	{netip.MustParsePrefix("::/96"), ClassReserved},
	{netip.MustParsePrefix("fc00::/7"), ClassPrivate},
	{netip.MustParsePrefix("fe80::/10"), ClassLinkLocal},
	{netip.MustParsePrefix("fec0::/10"), ClassPrivate},
	{netip.MustParsePrefix("ff00::/8"), ClassMulticast},
}

// The IPv6 networks that carry an IPv4 address, which is checked in their
// place.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: the IPv4 address in the last 4 bytes
	sixToFour = netip.MustParsePrefix("2002::/16")    // RFC 3056: the IPv4 address in bytes 2 to 5
)

// A Guard decides which addresses outbound connections may reach. Its
// zero value and a nil *Guard refuse every class and allow nothing more;
// a Guard is safe for concurrent use.
type Guard struct {
	allow []netip.Prefix
}

// New returns a Guard that refuses the internal classes of addresses
// except those in allow, which an operator trusts (say 10.1.0.0/16 for a
// destination inside the cluster). An IPv4-mapped IPv6 prefix counts as
// its IPv4 prefix; invalid prefixes are ignored.
func New(allow []netip.Prefix) *Guard {
	g := &Guard{}
	for _, p := range allow {
		if !p.IsValid() {
			continue
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		g.allow = append(g.allow, p.Masked())
	}
	return g
}

// Check returns nil when ip may be dialed, and a *RefusedError otherwise.
// An IPv4-mapped IPv6 address is checked as its IPv4 address, and so is
// the IPv4 address inside a NAT64 (64:ff9b::/96) or 6to4 (2002::/16)
// address. An address in an allowed prefix always passes.
func (g *Guard) Check(ip netip.Addr) error {
	if class := g.class(ip); class != "" {
		return &RefusedError{Addr: ip, Class: class}
	}
	return nil
}

// class returns the class of ip when it is refused, and "" when it may be
// dialed.
func (g *Guard) class(ip netip.Addr) string {
	ip = ip.Unmap().WithZone("") // a prefix never holds an address with a zone
	if !ip.IsValid() {
		return ClassUnspecified
	}
	if g.allows(ip) {
		return ""
	}
	for _, r := range refused {
		if r.prefix.Contains(ip) {
			return r.class
		}
	}
	if v4, ok := embeddedIPv4(ip); ok {
		return g.class(v4)
	}
	return ""
}

// allows reports whether ip is in an allowed prefix.
func (g *Guard) allows(ip netip.Addr) bool {
	if g == nil {
		return false
	}
	for _, p := range g.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// embeddedIPv4 returns the IPv4 address that a NAT64 or 6to4 address
// carries.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// RefusedError is an address that a Guard refuses.
type RefusedError struct {
	// Addr is the refused address; it is invalid when CheckLiteral
	// refused a name.
	Addr netip.Addr
	// Class is why the address is refused: one of the Class constants.
	Class string
	// Host is the name that was dialed, or "" when an IP address was.
	Host string
}

// classText describes each class in Error's message.
var classText = map[string]string{
	ClassLoopback:    "a loopback address",
	ClassPrivate:     "a private address",
	ClassLinkLocal:   "a link-local address",
	ClassCGNAT:       "a shared (CGNAT) address",
	ClassMulticast:   "a multicast address",
	ClassUnspecified: "an unspecified address",
	ClassReserved:    "a reserved address",
}

// Error says what was refused and why, in words meant for the tenant who
// registered the address.
func (e *RefusedError) Error() string {
	what, ok := classText[e.Class]
	if !ok {
		what = "an address of class " + e.Class
	}
	const why = " (webhook addresses may not reach internal networks)"
	switch {
	case !e.Addr.IsValid():
		return "address refused: " + e.Host + " names " + what + why
	case e.Host != "":
		return "address refused: " + e.Host + " resolves to " + e.Addr.String() + ", " + what + why
	}
	return "address refused: " + e.Addr.String() + ", " + what + why
}

// DeadLetterReason is the reason the relay records when it dead-letters a
// delivery that was refused.
func (e *RefusedError) DeadLetterReason() string { return "address_refused" }

// Permanent reports that a retry cannot succeed: the address stays
// refused until the destination or the guard's allow list changes.
func (e *RefusedError) Permanent() bool { return true }

// CheckLiteral is the registration-time check of a webhook URL: it returns
// a *RefusedError when the URL's host is an IP address that g refuses, or
// a name that can only be internal: localhost and names under .localhost
// (loopback), .local and .internal (private). It resolves no name, so a
// URL that passes can still be refused when it is dialed; and it checks no
// more of the URL's form than url.Parse does. A URL with no host passes.
func CheckLiteral(rawURL string, g *Guard) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		return g.Check(ip)
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	switch {
	case name == "localhost", strings.HasSuffix(name, ".localhost"):
		return &RefusedError{Class: ClassLoopback, Host: host}
	case strings.HasSuffix(name, ".local"), strings.HasSuffix(name, ".internal"):
		return &RefusedError{Class: ClassPrivate, Host: host}
	}
	return nil
}
