package jwtverify

import (
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// Sign returns a compact JWT over claims, signed with alg and key, with kid in
// its header when kid is not empty. It is a development helper (the
// `caddy hookrelay token` command, tests and examples); verification never
// uses it.
//
// key is the []byte secret for HS256/384/512, an *rsa.PrivateKey for RS* and
// PS*, an *ecdsa.PrivateKey on the algorithm's curve for ES*, or an
// ed25519.PrivateKey for EdDSA. alg must be one of [SupportedAlgorithms];
// "none" is refused. Errors never include the key.
func Sign(alg string, key any, claims map[string]any, kid string) (string, error) {
	if _, ok := algFamily[alg]; !ok {
		return "", fmt.Errorf("jwtverify: cannot sign with algorithm %q", truncate(alg))
	}
	if b, ok := key.([]byte); ok && len(b) == 0 {
		return "", errors.New("jwtverify: empty secret")
	}
	t := jwt.NewWithClaims(jwt.GetSigningMethod(alg), jwt.MapClaims(claims))
	if kid != "" {
		t.Header["kid"] = kid
	}
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("jwtverify: signing %s with a %T: %w", alg, key, err)
	}
	return s, nil
}
