package jwtverify

import (
	"testing"
)

// BenchmarkVerify measures a cache hit and a full verification (cache
// disabled) per algorithm.
func BenchmarkVerify(b *testing.B) {
	k := keys()
	clk := newClock()
	for _, bb := range []struct {
		alg string
		key any
		cfg Config
	}{
		{"HS256", k.secret, Config{Secret: k.secret}},
		{"ES256", k.p256a, Config{PublicKeys: []PublicKey{{PEM: pkixPEM(b, &k.p256a.PublicKey)}}}},
		{"RS256", k.rsa1, Config{PublicKeys: []PublicKey{{PEM: pkixPEM(b, &k.rsa1.PublicKey)}}}},
	} {
		tok := sign(b, bb.alg, bb.key, claimsAt(nil), "")
		b.Run(bb.alg, func(b *testing.B) {
			for _, mode := range []string{"hit", "miss"} {
				b.Run(mode, func(b *testing.B) {
					cfg := bb.cfg
					cfg.Now = clk.Now
					cfg.Issuer = "aveonline"
					cfg.Audience = []string{"my-shop"}
					if mode == "miss" {
						cfg.CacheSize = -1
					}
					v := newVerifier(b, cfg)
					if _, err := v.Verify(tok); err != nil {
						b.Fatal(err)
					}
					if v.cache != nil {
						v.cache.Wait()
					}
					b.ReportAllocs()
					for b.Loop() {
						if _, err := v.Verify(tok); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
