package testutil

import (
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay/jwtverify"
)

// Claims returns a valid claim set, issued now and expiring in an hour,
// with extra merged in; a nil value in extra removes the claim.
func Claims(extra map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// Sign returns a compact JWT over claims, signed with alg and key (see
// jwtverify.Sign for the key types), with kid in its header when kid is
// not empty. A refused key ends the test.
func Sign(t testing.TB, alg string, key any, claims map[string]any, kid string) string {
	t.Helper()
	tok, err := jwtverify.Sign(alg, key, claims, kid)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// HS256 returns a token signed with secret, valid for an hour from now,
// with extra claims merged in (a nil value removes the claim).
func HS256(t testing.TB, secret string, extra map[string]any) string {
	t.Helper()
	return Sign(t, "HS256", []byte(secret), Claims(extra), "")
}
