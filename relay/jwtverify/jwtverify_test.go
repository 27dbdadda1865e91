package jwtverify

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestVerifyAlgorithms(t *testing.T) {
	k := keys()
	clk := newClock()
	v := newVerifier(t, Config{
		Secret: k.secret,
		PublicKeys: []PublicKey{
			{PEM: pkixPEM(t, &k.rsa1.PublicKey)},
			{PEM: pkixPEM(t, &k.p256a.PublicKey)},
			{PEM: pkixPEM(t, &k.p384.PublicKey)},
			{PEM: pkixPEM(t, &k.p521.PublicKey)},
			{PEM: pkixPEM(t, k.ed.Public())},
		},
		Now: clk.Now,
	})
	tests := []struct {
		alg string
		key any
	}{
		{"HS256", k.secret},
		{"HS384", k.secret},
		{"HS512", k.secret},
		{"RS256", k.rsa1},
		{"RS512", k.rsa1},
		{"PS256", k.rsa1},
		{"PS384", k.rsa1},
		{"ES256", k.p256a},
		{"ES384", k.p384},
		{"ES512", k.p521},
		{"EdDSA", k.ed},
	}
	for _, tt := range tests {
		t.Run(tt.alg, func(t *testing.T) {
			tok := sign(t, tt.alg, tt.key, claimsAt(map[string]any{"alg_used": tt.alg}), "")
			claims, err := v.Verify(tok)
			checkErr(t, err, 0, "")
			if claims["alg_used"] != tt.alg || claims["sub"] != "hub" {
				t.Fatalf("claims = %v", claims)
			}
		})
	}
}

func TestKIDSelection(t *testing.T) {
	k := keys()
	clk := newClock()
	labelled := newVerifier(t, Config{
		PublicKeys: []PublicKey{
			{KID: "a", PEM: pkixPEM(t, &k.rsa1.PublicKey)},
			{KID: "b", PEM: pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa2.PublicKey)})},
			{KID: "c", PEM: certPEM(t, k.p256a)},
			{KID: "d", PEM: pkixPEM(t, &k.p384.PublicKey)},
		},
		Now: clk.Now,
	})
	unlabelled := newVerifier(t, Config{
		PublicKeys: []PublicKey{
			{PEM: pkixPEM(t, &k.rsa1.PublicKey)},
			{PEM: pkixPEM(t, &k.rsa2.PublicKey)},
			{KID: "c", PEM: pkixPEM(t, &k.p256a.PublicKey)},
		},
		Now: clk.Now,
	})
	c := claimsAt(nil)
	tests := []struct {
		name   string
		v      *Verifier
		alg    string
		key    any
		kid    string
		status int
		detail string
	}{
		{"kid selects the second RSA key (PKCS #1 PEM)", labelled, "RS256", k.rsa2, "b", 0, ""},
		{"kid selects the first RSA key", labelled, "PS256", k.rsa1, "a", 0, ""},
		{"kid selects a certificate's key", labelled, "ES256", k.p256a, "c", 0, ""},
		{"kid names another key", labelled, "RS256", k.rsa2, "a", 401, DetailInvalid},
		{"unknown kid, every key labelled", labelled, "RS256", k.rsa2, "zzz", 401, DetailInvalid},
		{"kid of a key of another type", labelled, "ES384", k.p384, "c", 401, DetailInvalid},
		{"no kid tries each RSA key", labelled, "RS256", k.rsa2, "", 0, ""},
		{"no kid tries each key, ES384", labelled, "ES384", k.p384, "", 0, ""},
		{"no kid, signed by an unknown key", labelled, "ES256", k.p256b, "", 401, DetailInvalid},
		{"unknown kid falls back to unlabelled keys", unlabelled, "RS256", k.rsa2, "rotated", 0, ""},
		{"kid of the only P-256 key, wrong signer", unlabelled, "ES256", k.p256b, "c", 401, DetailInvalid},
		{"ES384 not allowed without a P-384 key", unlabelled, "ES384", k.p384, "", 401, DetailAlgorithm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.v.Verify(sign(t, tt.alg, tt.key, c, tt.kid))
			checkErr(t, err, tt.status, tt.detail)
		})
	}
}

// rawToken assembles a token from raw header and claims JSON and a signature.
func rawToken(header, claims string, sig []byte) string {
	e := base64.RawURLEncoding
	return e.EncodeToString([]byte(header)) + "." + e.EncodeToString([]byte(claims)) + "." + e.EncodeToString(sig)
}

func TestRefusals(t *testing.T) {
	k := keys()
	clk := newClock()
	rsaPEM := pkixPEM(t, &k.rsa1.PublicKey)
	base := Config{
		Secret:     k.secret,
		PublicKeys: []PublicKey{{PEM: rsaPEM}, {PEM: pkixPEM(t, &k.p256a.PublicKey)}},
		Issuer:     "aveonline",
		Audience:   []string{"other", "my-shop"},
		Now:        clk.Now,
	}
	withLeeway := base
	withLeeway.Leeway = 30 * time.Second
	rsaOnly := Config{PublicKeys: []PublicKey{{PEM: rsaPEM}}, Now: clk.Now}
	hsAndRS := Config{Secret: k.secret, PublicKeys: []PublicKey{{PEM: rsaPEM}}, Algorithms: []string{"HS256", "RS256"}, Now: clk.Now}
	onlyRS256 := base
	onlyRS256.Algorithms = []string{"RS256", "HS256"}
	maxAge := base
	maxAge.MaxAge = 10 * time.Minute
	noChecks := Config{Secret: k.secret, Now: clk.Now}
	noExp := maxAge
	noExp.AllowMissingExp = true

	hs := func(extra map[string]any) string { return sign(t, "HS256", k.secret, claimsAt(extra), "") }
	good := hs(nil)
	parts := strings.Split(good, ".")

	tests := []struct {
		name   string
		cfg    Config
		token  string
		status int
		detail string
	}{
		{"valid", base, good, 0, ""},
		{"expired", base, hs(map[string]any{"exp": t0.Add(-time.Second).Unix()}), 401, DetailExpired},
		{"expired within leeway", withLeeway, hs(map[string]any{"exp": t0.Add(-20 * time.Second).Unix()}), 0, ""},
		{"expired beyond leeway", withLeeway, hs(map[string]any{"exp": t0.Add(-40 * time.Second).Unix()}), 401, DetailExpired},
		{"nbf in the future", base, hs(map[string]any{"nbf": t0.Add(time.Minute).Unix()}), 401, DetailNotYetValid},
		{"nbf within leeway", withLeeway, hs(map[string]any{"nbf": t0.Add(20 * time.Second).Unix()}), 0, ""},
		{"no exp is refused", base, hs(map[string]any{"exp": nil}), 401, DetailNoExpiry},
		{"no exp is refused, without any other check", noChecks, hs(map[string]any{"exp": nil, "iss": nil, "aud": nil}), 401, DetailNoExpiry},
		{"no exp, signed with another key", base, sign(t, "HS256", k.otherSecret, claimsAt(map[string]any{"exp": nil}), ""), 401, DetailInvalid},
		{"no exp with allow_missing_exp", noExp, hs(map[string]any{"exp": nil}), 0, ""},
		{"no exp with allow_missing_exp, too old", noExp, hs(map[string]any{"exp": nil, "iat": t0.Add(-11 * time.Minute).Unix()}), 401, DetailTooOld},
		{"no exp and no iat with allow_missing_exp", noExp, hs(map[string]any{"exp": nil, "iat": nil}), 401, DetailTooOld},
		{"expired with allow_missing_exp", noExp, hs(map[string]any{"exp": t0.Add(-time.Second).Unix()}), 401, DetailExpired},
		{"exp not a number", base, hs(map[string]any{"exp": "tomorrow"}), 401, DetailInvalid},
		{"wrong issuer", base, hs(map[string]any{"iss": "mallory"}), 401, DetailIssuer},
		{"missing issuer", base, hs(map[string]any{"iss": nil}), 401, DetailIssuer},
		{"wrong audience", base, hs(map[string]any{"aud": "someone-else"}), 401, DetailAudience},
		{"audience list containing one accepted", base, hs(map[string]any{"aud": []string{"x", "my-shop"}}), 0, ""},
		{"missing audience", base, hs(map[string]any{"aud": nil}), 401, DetailAudience},
		{"wrong secret", base, sign(t, "HS256", k.otherSecret, claimsAt(nil), ""), 401, DetailInvalid},
		{"wrong ECDSA key", base, sign(t, "ES256", k.p256b, claimsAt(nil), ""), 401, DetailInvalid},
		{"wrong RSA key", base, sign(t, "RS256", k.rsa2, claimsAt(nil), ""), 401, DetailInvalid},
		{"alg none", noChecks, rawToken(`{"alg":"none","typ":"JWT"}`, `{"sub":"x"}`, nil), 401, DetailAlgorithm},
		{"alg None", noChecks, rawToken(`{"alg":"None"}`, `{"sub":"x"}`, nil), 401, DetailAlgorithm},
		{"HS256 with the RSA PEM as secret, RSA only", rsaOnly, sign(t, "HS256", rsaPEM, claimsAt(nil), ""), 401, DetailAlgorithm},
		{"HS256 with the RSA PEM as secret, HS256 allowed", hsAndRS, sign(t, "HS256", rsaPEM, claimsAt(nil), ""), 401, DetailInvalid},
		{"alg not in allow-list", onlyRS256, sign(t, "PS256", k.rsa1, claimsAt(nil), ""), 401, DetailAlgorithm},
		{"ES256 not in allow-list", onlyRS256, sign(t, "ES256", k.p256a, claimsAt(nil), ""), 401, DetailAlgorithm},
		{"unknown alg", base, rawToken(`{"alg":"HS1024"}`, `{}`, []byte("x")), 401, DetailAlgorithm},
		{"truncated to two segments", base, parts[0] + "." + parts[1][:len(parts[1])/2], 400, DetailMalformed},
		{"truncated inside the header", base, good[:len(parts[0])-3], 400, DetailMalformed},
		{"signature one char short", base, good[:len(good)-1], 401, DetailInvalid},
		{"signature of impossible length", base, good[:len(good)-2], 400, DetailMalformed},
		{"empty signature", base, parts[0] + "." + parts[1] + ".", 401, DetailInvalid},
		{"non-base64url character", base, parts[0] + "." + parts[1][:5] + "!" + parts[1][6:] + "." + parts[2], 400, DetailMalformed},
		{"standard base64 character", base, parts[0] + "." + parts[1][:5] + "+" + parts[1][6:] + "." + parts[2], 400, DetailMalformed},
		{"padding", base, parts[0] + "." + parts[1] + "." + parts[2] + "=", 400, DetailMalformed},
		{"two segments", base, parts[0] + "." + parts[1], 400, DetailMalformed},
		{"four segments", base, good + ".x", 400, DetailMalformed},
		{"empty", base, "", 400, DetailMalformed},
		{"header not JSON", base, rawToken(`HS256`, `{}`, nil), 400, DetailMalformed},
		{"header a JSON array", base, rawToken(`["HS256"]`, `{}`, nil), 400, DetailMalformed},
		{"header null", base, rawToken(`null`, `{}`, nil), 400, DetailMalformed},
		{"header without alg", base, rawToken(`{"typ":"JWT"}`, `{}`, nil), 400, DetailMalformed},
		{"alg not a string", base, rawToken(`{"alg":256}`, `{}`, nil), 400, DetailMalformed},
		{"claims not JSON", base, rawToken(`{"alg":"HS256"}`, `sub=x`, nil), 400, DetailMalformed},
		{"claims a JSON string", base, rawToken(`{"alg":"HS256"}`, `"x"`, nil), 400, DetailMalformed},
		{"claims truncated JSON", base, rawToken(`{"alg":"HS256"}`, `{"sub":`, nil), 400, DetailMalformed},
		{"too long", base, strings.Repeat("a", MaxTokenLength+1), 400, DetailMalformed},
		{"max_age honoured", maxAge, hs(map[string]any{"iat": t0.Add(-9 * time.Minute).Unix()}), 0, ""},
		{"max_age exceeded", maxAge, hs(map[string]any{"iat": t0.Add(-11 * time.Minute).Unix()}), 401, DetailTooOld},
		{"iat missing with max_age", maxAge, hs(map[string]any{"iat": nil}), 401, DetailTooOld},
		{"iat in the future with max_age", maxAge, hs(map[string]any{"iat": t0.Add(time.Hour).Unix()}), 401, DetailNotYetValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.CacheSize = -1
			v := newVerifier(t, cfg)
			claims, err := v.Verify(tt.token)
			checkErr(t, err, tt.status, tt.detail)
			if err == nil && claims == nil {
				t.Fatal("nil claims without error")
			}
		})
	}
}

func TestCritHeaderRefused(t *testing.T) {
	k := keys()
	v := newVerifier(t, Config{Secret: k.secret, Now: newClock().Now})
	// Sign by hand: golang-jwt would happily ignore crit.
	claims := fmt.Sprintf(`{"sub":"x","exp":%d}`, t0.Add(time.Hour).Unix())
	tok := signRaw(t, `{"alg":"HS256","crit":["b64"],"b64":false}`, claims, k.secret)
	_, err := v.Verify(tok)
	checkErr(t, err, 401, DetailInvalid)
	// The same token without crit passes, so crit is what was refused.
	_, err = v.Verify(signRaw(t, `{"alg":"HS256"}`, claims, k.secret))
	checkErr(t, err, 0, "")
}

// signRaw signs header and claims JSON with HS256 as they are.
func signRaw(t testing.TB, header, claims string, secret []byte) string {
	t.Helper()
	e := base64.RawURLEncoding
	signing := e.EncodeToString([]byte(header)) + "." + e.EncodeToString([]byte(claims))
	sig, err := jwt.SigningMethodHS256.Sign(signing, secret)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + e.EncodeToString(sig)
}

func TestNewErrors(t *testing.T) {
	k := keys()
	rsaPEM := pkixPEM(t, &k.rsa1.PublicKey)
	der, err := x509.MarshalPKCS8PrivateKey(k.p256a)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	garbage := []byte("-----BEGIN PUBLIC KEY-----\nc2VjcmV0LWlzaC1ieXRlcw==\n-----END PUBLIC KEY-----\n")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"none", Config{Secret: k.secret, Algorithms: []string{"HS256", "none"}}, `"none" is never allowed`},
		{"NONE", Config{Secret: k.secret, Algorithms: []string{"NONE"}}, `"none" is never allowed`},
		{"unknown algorithm", Config{Secret: k.secret, Algorithms: []string{"HS1024"}}, `unknown algorithm "HS1024"`},
		{"lower-case algorithm", Config{Secret: k.secret, Algorithms: []string{"hs256"}}, `unknown algorithm "hs256"`},
		{"RS256 with only a secret", Config{Secret: k.secret, Algorithms: []string{"RS256"}}, "RS256 needs an RSA public key"},
		{"HS256 with only public keys", Config{PublicKeys: []PublicKey{{PEM: rsaPEM}}, Algorithms: []string{"HS256"}}, "HS256 needs a secret"},
		{"ES384 with a P-256 key", Config{PublicKeys: []PublicKey{{PEM: pkixPEM(t, &k.p256a.PublicKey)}}, Algorithms: []string{"ES384"}}, "ES384 needs an ECDSA P-384"},
		{"no keys", Config{}, "no key configured"},
		{"secret is a PEM", Config{Secret: rsaPEM}, "looks like a PEM"},
		{"not PEM", Config{PublicKeys: []PublicKey{{KID: "k1", PEM: k.secret}}}, `public key #1 (kid "k1"): no PEM block`},
		{"bad PEM body", Config{PublicKeys: []PublicKey{{PEM: rsaPEM}, {PEM: garbage}}}, "public key #2"},
		{"private key", Config{PublicKeys: []PublicKey{{PEM: privPEM}}}, "PRIVATE KEY; configure the public key only"},
		{"two keys in one PEM", Config{PublicKeys: []PublicKey{{PEM: append(append([]byte{}, rsaPEM...), rsaPEM...)}}}, "more than one key"},
		{"JWKS URL not http", Config{JWKSURL: "ftp://hub.example/jwks.json"}, "JWKS URL must be"},
		{"JWKS URL plain http", Config{JWKSURL: "http://hub.example/jwks.json"}, "JWKS URL must be https"},
		{"allow_missing_exp without max_age", Config{Secret: k.secret, AllowMissingExp: true}, "without exp needs max_age"},
		{"JWKS URL relative", Config{JWKSURL: "/jwks.json"}, "JWKS URL must be"},
		{"negative leeway", Config{Secret: k.secret, Leeway: -time.Second}, "leeway"},
		{"negative max_age", Config{Secret: k.secret, MaxAge: -time.Second}, "max_age"},
		{"bad cache size", Config{Secret: k.secret, CacheSize: -2}, "cache size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := New(context.Background(), tt.cfg)
			if err == nil {
				v.Close()
				t.Fatal("New succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Fatalf("error %q does not contain %q", msg, tt.want)
			}
			for _, secret := range [][]byte{k.secret, rsaPEM, privPEM, garbage, der} {
				if strings.Contains(msg, string(secret)) || strings.Contains(msg, "c2VjcmV0") {
					t.Fatalf("error %q leaks key material", msg)
				}
			}
		})
	}
}

func TestNewAllowsExactlyConfiguredKeys(t *testing.T) {
	k := keys()
	v := newVerifier(t, Config{
		Secret:     k.secret,
		PublicKeys: []PublicKey{{PEM: pkixPEM(t, &k.p384.PublicKey)}},
	})
	var got []string
	for _, a := range SupportedAlgorithms() {
		if v.allowed[a] {
			got = append(got, a)
		}
	}
	want := []string{"HS256", "HS384", "HS512", "ES384"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("allowed = %v, want %v", got, want)
	}
}

func TestSign(t *testing.T) {
	k := keys()
	for _, tt := range []struct {
		name string
		alg  string
		key  any
	}{
		{"none", "none", nil},
		{"unknown", "HS1024", k.secret},
		{"empty secret", "HS256", []byte{}},
		{"RSA key for HS256", "HS256", k.rsa1},
		{"P-256 key for ES384", "ES384", k.p256a},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Sign(tt.alg, tt.key, map[string]any{"sub": "x"}, ""); err == nil {
				t.Fatal("Sign succeeded")
			}
		})
	}
}

func TestErrorType(t *testing.T) {
	v := newVerifier(t, Config{Secret: keys().secret, CacheSize: -1})
	_, err := v.Verify("a.b")
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Unwrap() == nil {
		t.Fatalf("err = %#v", err)
	}
	if !strings.HasPrefix(err.Error(), "jwtverify: "+DetailMalformed+": ") {
		t.Fatalf("Error() = %q", err.Error())
	}
}

func TestCache(t *testing.T) {
	k := keys()
	clk := newClock()
	v := newVerifier(t, Config{Secret: k.secret, MaxAge: 10 * time.Minute, Now: clk.Now})

	verify := func(tok string) (Claims, error) {
		t.Helper()
		claims, err := v.Verify(tok)
		v.cache.Wait() // Sets are asynchronous.
		return claims, err
	}
	expectVerifications := func(want int64) {
		t.Helper()
		if got := v.verifications.Load(); got != want {
			t.Fatalf("verifications = %d, want %d", got, want)
		}
	}

	// A hit returns the same claims without checking the signature again.
	tok := sign(t, "HS256", k.secret, claimsAt(map[string]any{"exp": t0.Add(2 * time.Minute).Unix()}), "")
	first, err := verify(tok)
	checkErr(t, err, 0, "")
	expectVerifications(1)
	second, err := verify(tok)
	checkErr(t, err, 0, "")
	expectVerifications(1)
	if reflect.ValueOf(first).UnsafePointer() != reflect.ValueOf(second).UnsafePointer() {
		t.Fatal("a hit returned other claims")
	}

	// The cached entry does not outlive exp: past it, the token is verified
	// again and refused.
	clk.Add(119 * time.Second)
	_, err = verify(tok)
	checkErr(t, err, 0, "")
	expectVerifications(1)
	clk.Add(2 * time.Second)
	_, err = verify(tok)
	checkErr(t, err, 401, DetailExpired)
	expectVerifications(2)

	// Nor iat+max_age.
	clk.t = t0
	tok = sign(t, "HS256", k.secret, claimsAt(map[string]any{"iat": t0.Add(-9 * time.Minute).Unix(), "n": 2}), "")
	_, err = verify(tok)
	checkErr(t, err, 0, "")
	expectVerifications(3)
	_, err = verify(tok)
	checkErr(t, err, 0, "")
	expectVerifications(3)
	clk.Add(61 * time.Second)
	_, err = verify(tok)
	checkErr(t, err, 401, DetailTooOld)
	expectVerifications(4)

	// Nor MaxCacheTTL, even for a token that expires much later.
	clk.t = t0
	tok = sign(t, "HS256", k.secret, claimsAt(map[string]any{"exp": t0.Add(24 * time.Hour).Unix(), "n": 3}), "")
	_, err = verify(tok)
	checkErr(t, err, 0, "")
	expectVerifications(5)
	clk.Add(MaxCacheTTL - time.Second)
	_, err = verify(tok)
	checkErr(t, err, 0, "")
	expectVerifications(5)
	clk.Add(time.Second)
	_, err = verify(tok)
	checkErr(t, err, 0, "")
	expectVerifications(6)

	// Refusals are not cached.
	clk.t = t0
	bad := sign(t, "HS256", k.otherSecret, claimsAt(nil), "")
	for range 2 {
		_, err = verify(bad)
		checkErr(t, err, 401, DetailInvalid)
	}
	expectVerifications(8)
}

// TestCacheWithoutExp: a token without exp (allow_missing_exp) is cached
// until iat+max_age or MaxCacheTTL, never for ever.
func TestCacheWithoutExp(t *testing.T) {
	k := keys()
	clk := newClock()
	v := newVerifier(t, Config{Secret: k.secret, AllowMissingExp: true, MaxAge: time.Hour, Now: clk.Now})
	verify := func(tok string) error {
		t.Helper()
		_, err := v.Verify(tok)
		v.cache.Wait()
		return err
	}
	expectVerifications := func(want int64) {
		t.Helper()
		if got := v.verifications.Load(); got != want {
			t.Fatalf("verifications = %d, want %d", got, want)
		}
	}

	// Issued 58 minutes ago: cached, but only until iat+max_age.
	old := sign(t, "HS256", k.secret, claimsAt(map[string]any{"exp": nil, "iat": t0.Add(-58 * time.Minute).Unix()}), "")
	checkErr(t, verify(old), 0, "")
	checkErr(t, verify(old), 0, "")
	expectVerifications(1)
	clk.Add(2*time.Minute + time.Second)
	checkErr(t, verify(old), 401, DetailTooOld)
	expectVerifications(2)

	// Issued now: cached for MaxCacheTTL, then verified again.
	clk.t = t0
	fresh := sign(t, "HS256", k.secret, claimsAt(map[string]any{"exp": nil}), "")
	checkErr(t, verify(fresh), 0, "")
	clk.Add(MaxCacheTTL - time.Second)
	checkErr(t, verify(fresh), 0, "")
	expectVerifications(3)
	clk.Add(time.Second)
	checkErr(t, verify(fresh), 0, "")
	expectVerifications(4)
}

func TestCacheDisabled(t *testing.T) {
	k := keys()
	v := newVerifier(t, Config{Secret: k.secret, CacheSize: -1, Now: newClock().Now})
	tok := sign(t, "HS256", k.secret, claimsAt(nil), "")
	for range 3 {
		_, err := v.Verify(tok)
		checkErr(t, err, 0, "")
	}
	if got := v.verifications.Load(); got != 3 {
		t.Fatalf("verifications = %d, want 3", got)
	}
}

func TestCloseConcurrentWithVerify(t *testing.T) {
	k := keys()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := New(ctx, Config{Secret: k.secret, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, "HS256", k.secret, claimsAt(nil), "")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				if _, err := v.Verify(tok); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	cancel() // Closes the verifier through context.AfterFunc.
	wg.Wait()
	v.Close()
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("Verify after Close: %v", err)
	}
}

func TestCheckAlgorithm(t *testing.T) {
	for _, a := range SupportedAlgorithms() {
		if err := CheckAlgorithm(a); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	for _, c := range []struct {
		alg  string
		want error
	}{{"none", ErrAlgorithmNone}, {"None", ErrAlgorithmNone}, {"NONE", ErrAlgorithmNone}, {"HS1024", ErrUnknownAlgorithm}, {"hs256", ErrUnknownAlgorithm}, {"", ErrUnknownAlgorithm}} {
		if err := CheckAlgorithm(c.alg); !errors.Is(err, c.want) {
			t.Errorf("CheckAlgorithm(%q) = %v, want %v", c.alg, err, c.want)
		}
	}
	// Check refuses them too, before any key is read.
	if err := (Config{Secret: []byte("s"), Algorithms: []string{"HS256", "none"}}).Check(); !errors.Is(err, ErrAlgorithmNone) {
		t.Errorf("Check = %v, want ErrAlgorithmNone", err)
	}
}
