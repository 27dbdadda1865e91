package ingress

import (
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// jwksServer is a loopback JWKS endpoint whose key set the test replaces.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	set     []byte
	fetches int
}

func newJWKSServer(t *testing.T) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		set := s.set
		s.fetches++
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(set)
	}))
	t.Cleanup(s.Close)
	return s
}

// serve replaces the key set.
func (s *jwksServer) serve(t *testing.T, keys ...map[string]string) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.set = b
	s.mu.Unlock()
}

func (s *jwksServer) fetchCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

func ed25519JWK(kid string, pub ed25519.PublicKey) map[string]string {
	return map[string]string{"kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig", "alg": "EdDSA",
		"x": base64.RawURLEncoding.EncodeToString(pub)}
}

func rsaJWK(kid string, pub *rsa.PublicKey) map[string]string {
	return map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes())}
}

// TestIngressJWKSRotation verifies tokens against a JWKS served over real
// loopback HTTP (allowed by jwks_insecure_http), through Caddy: a token
// naming a kid that appeared after a rotation is accepted once the set is
// fetched again.
func TestIngressJWKSRotation(t *testing.T) {
	k := signingKeys(t)
	jwks := newJWKSServer(t)
	jwks.serve(t, ed25519JWK("ed-2026-01", k.edPub), rsaJWK("rsa-2026-01", &k.rsa.PublicKey))

	sink := newSink(t)
	tester := start(t, globals(sink.globals)+"\n"+siteAddress+` {
	bind 127.0.0.1
	route /hooks/jwks {
		hook_verify {
			jwks `+jwks.URL+`/.well-known/jwks.json
			jwks_insecure_http
			algorithms EdDSA RS256
		}
		hook_normalize ave_tracking
`+sink.relay("ingress_jwks")+`	}
}
`)
	payload := testutil.AvePayload("guia-1")
	post := func(tok string) response {
		return postHook(t, tester, "/hooks/jwks", map[string]string{"Ave-Hub-signature": tok}, payload, false)
	}

	post(testutil.Sign(t, "EdDSA", k.ed, testutil.Claims(nil), "ed-2026-01")).expect(t, 201, wantSuccess)
	post(testutil.Sign(t, "RS256", k.rsa, testutil.Claims(nil), "rsa-2026-01")).expect(t, 201, wantSuccess)
	// A key of the set does not verify another key's signature.
	post(testutil.Sign(t, "EdDSA", k.ed2, testutil.Claims(nil), "ed-2026-01")).expect(t, 401, want401("The signature is invalid."))
	// HS256 signed with a key of the set as the secret: no HMAC here.
	post(testutil.Sign(t, "HS256", []byte(k.edPub), testutil.Claims(nil), "ed-2026-01")).expect(t, 401, want401("The token algorithm is not allowed."))
	before := jwks.fetchCount()
	if before < 1 {
		t.Fatalf("the JWKS was fetched %d times", before)
	}

	// The hub rotates: the new key joins the set. A token with its kid
	// makes the verifier fetch the set again, and is accepted.
	jwks.serve(t, ed25519JWK("ed-2026-01", k.edPub), ed25519JWK("ed-2026-07", k.ed2Pub), rsaJWK("rsa-2026-01", &k.rsa.PublicKey))
	post(testutil.Sign(t, "EdDSA", k.ed2, testutil.Claims(nil), "ed-2026-07")).expect(t, 201, wantSuccess)
	rotated := jwks.fetchCount()
	if rotated != before+1 {
		t.Errorf("the unknown kid made %d fetches of the JWKS, want 1", rotated-before)
	}
	// The old key still works while it is in the set, and the new one keeps
	// working without another fetch.
	post(testutil.Sign(t, "EdDSA", k.ed, testutil.Claims(map[string]any{"jti": "2"}), "ed-2026-01")).expect(t, 201, wantSuccess)
	post(testutil.Sign(t, "EdDSA", k.ed2, testutil.Claims(map[string]any{"jti": "3"}), "ed-2026-07")).expect(t, 201, wantSuccess)
	if n := jwks.fetchCount(); n != rotated {
		t.Errorf("known kids made %d more fetches of the JWKS, want none", n-rotated)
	}
}
