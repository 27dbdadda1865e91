package jwtverify

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"
)

// t0 is the fixed "now" of the tests.
var t0 = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

// clock is a settable clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testKeys are generated once per test binary; RSA generation is slow.
type testKeys struct {
	secret, otherSecret []byte
	rsa1, rsa2          *rsa.PrivateKey
	p256a, p256b        *ecdsa.PrivateKey
	p384, p521          *ecdsa.PrivateKey
	ed                  ed25519.PrivateKey
}

var keys = sync.OnceValue(func() *testKeys {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	k := &testKeys{
		secret:      []byte("0123456789abcdef0123456789abcdef"),
		otherSecret: []byte("fedcba9876543210fedcba9876543210"),
	}
	var err error
	k.rsa1, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.p256a, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.p256b, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.p384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	k.p521, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	must(err)
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	return k
})

// pkixPEM returns the "PUBLIC KEY" PEM of pub.
func pkixPEM(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// certPEM returns a self-signed certificate PEM for priv.
func certPEM(t testing.TB, priv *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "hub"},
		NotBefore:    t0.Add(-time.Hour),
		NotAfter:     t0.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// sign signs claims or fails the test.
func sign(t testing.TB, alg string, key any, claims map[string]any, kid string) string {
	t.Helper()
	s, err := Sign(alg, key, claims, kid)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claimsAt returns claims issued at t0 that expire an hour later.
func claimsAt(extra map[string]any) map[string]any {
	c := map[string]any{
		"iss": "aveonline",
		"aud": "my-shop",
		"sub": "hub",
		"iat": t0.Unix(),
		"exp": t0.Add(time.Hour).Unix(),
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

func newVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	v, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

// checkErr asserts that err is an *Error with status and detail.
func checkErr(t testing.TB, err error, status int, detail string) {
	t.Helper()
	if status == 0 {
		if err != nil {
			t.Fatalf("Verify: unexpected error %v", err)
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Verify: error %v (%T), want *Error %d %q", err, err, status, detail)
	}
	if e.Status != status || e.Detail != detail {
		t.Fatalf("Verify: got %d %q (%v), want %d %q", e.Status, e.Detail, e.Err, status, detail)
	}
}
