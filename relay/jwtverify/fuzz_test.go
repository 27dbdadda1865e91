package jwtverify

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary token strings to a verifier with a secret, an
// ECDSA key, issuer, audience, max_age and the cache on: Verify must never
// panic, and must either return claims or an *Error with Status 400 or 401
// that does not quote the token.
func FuzzVerify(f *testing.F) {
	k := keys()
	clk := newClock()
	v := newVerifier(f, Config{
		Secret:     k.secret,
		PublicKeys: []PublicKey{{KID: "ec", PEM: pkixPEM(f, &k.p256a.PublicKey)}},
		Issuer:     "aveonline",
		Audience:   []string{"my-shop"},
		Leeway:     time.Minute,
		MaxAge:     time.Hour,
		Now:        clk.Now,
	})
	good := sign(f, "HS256", k.secret, claimsAt(nil), "")
	for _, seed := range []string{
		good,
		sign(f, "ES256", k.p256a, claimsAt(nil), "ec"),
		sign(f, "ES256", k.p256a, claimsAt(map[string]any{"exp": "soon", "iat": 1e300}), ""),
		sign(f, "HS256", k.secret, claimsAt(map[string]any{"aud": []any{1, nil}, "nbf": -1e308}), ""),
		rawToken(`{"alg":"none"}`, `{}`, nil),
		rawToken(`{"alg":"HS256","crit":[]}`, `{}`, []byte("sig")),
		rawToken(`{"alg":"ES256","kid":7}`, `{"exp":1}`, make([]byte, 64)),
		rawToken(`{"alg":"HS256"}`, `null`, nil),
		"", ".", "..", "...", "a.b.c", "e30.e30.", "e30.e30.e30", good + "=", good[:len(good)-2],
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := v.Verify(token)
		if err == nil {
			if claims == nil {
				t.Fatal("nil claims and nil error")
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %T is not *Error", err)
		}
		if e.Status != 400 && e.Status != 401 {
			t.Fatalf("status %d", e.Status)
		}
		if e.Detail == "" {
			t.Fatal("empty detail")
		}
		if len(token) >= 16 && strings.Contains(err.Error(), token) {
			t.Fatalf("error %q quotes the token", err)
		}
	})
}
