package jwtverify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// family is the kind of key an algorithm verifies with.
type family int

const (
	famHMAC    family = iota // []byte secret
	famRSA                   // *rsa.PublicKey: RS* and PS*
	famP256                  // *ecdsa.PublicKey on P-256: ES256
	famP384                  // *ecdsa.PublicKey on P-384: ES384
	famP521                  // *ecdsa.PublicKey on P-521: ES512
	famEd25519               // ed25519.PublicKey: EdDSA
	numFamilies
)

func (f family) needs() string {
	switch f {
	case famHMAC:
		return "a secret"
	case famRSA:
		return "an RSA public key or a JWKS URL"
	case famP256:
		return "an ECDSA P-256 public key or a JWKS URL"
	case famP384:
		return "an ECDSA P-384 public key or a JWKS URL"
	case famP521:
		return "an ECDSA P-521 public key or a JWKS URL"
	default:
		return "an Ed25519 public key or a JWKS URL"
	}
}

// supportedAlgorithms is every algorithm the verifier knows, in a stable order.
var supportedAlgorithms = []string{
	"HS256", "HS384", "HS512",
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

var algFamily = map[string]family{
	"HS256": famHMAC, "HS384": famHMAC, "HS512": famHMAC,
	"RS256": famRSA, "RS384": famRSA, "RS512": famRSA,
	"PS256": famRSA, "PS384": famRSA, "PS512": famRSA,
	"ES256": famP256, "ES384": famP384, "ES512": famP521,
	"EdDSA": famEd25519,
}

// SupportedAlgorithms returns the JWS algorithms a [Verifier] can be
// configured with, in a stable order. "none" is never one of them.
func SupportedAlgorithms() []string {
	return slices.Clone(supportedAlgorithms)
}

// keyFamily returns the family of a public key, or false for a key type (or
// curve) that no supported algorithm verifies with.
func keyFamily(key any) (family, bool) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return famRSA, true
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return famP256, true
		case elliptic.P384():
			return famP384, true
		case elliptic.P521():
			return famP521, true
		}
	case ed25519.PublicKey:
		return famEd25519, true
	}
	return 0, false
}

type pemKey struct {
	kid string
	fam family
	key any
}

// parsePublicKey reads the first PEM block of b. Its errors never quote b.
func parsePublicKey(b []byte) (pemKey, error) {
	block, rest := pem.Decode(b)
	if block == nil {
		return pemKey{}, errors.New("no PEM block found")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return pemKey{}, fmt.Errorf("PEM block is a %s; configure the public key only", block.Type)
		}
		return pemKey{}, fmt.Errorf("unsupported PEM block type %q (want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)", block.Type)
	}
	if err != nil {
		return pemKey{}, fmt.Errorf("parsing %s: %w", block.Type, err)
	}
	// One key per entry; a certificate may be followed by its chain.
	for len(bytes.TrimSpace(rest)) > 0 {
		var next *pem.Block
		if next, rest = pem.Decode(rest); next == nil {
			break
		}
		if block.Type != "CERTIFICATE" || next.Type != "CERTIFICATE" {
			return pemKey{}, errors.New("more than one key in one PEM; configure each key on its own")
		}
	}
	fam, ok := keyFamily(key)
	if !ok {
		return pemKey{}, fmt.Errorf("unsupported public key type %T (want RSA, ECDSA P-256/P-384/P-521 or Ed25519)", key)
	}
	return pemKey{fam: fam, key: key}, nil
}

// looksLikePEM reports whether a secret is in fact a PEM block, the classic
// way to turn an RS256 setup into an HS256 forgery.
func looksLikePEM(b []byte) bool {
	return bytes.Contains(b, []byte("-----BEGIN "))
}

// CheckJWKSURL reports whether raw can be a JWKS URL: an absolute https URL,
// or http when allowHTTP is set. Its errors never quote the URL, whose query
// or userinfo may hold a credential.
func CheckJWKSURL(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("jwtverify: the JWKS URL must be an absolute https URL")
	}
	if u.Scheme == "http" && !allowHTTP {
		return errors.New("jwtverify: the JWKS URL must be https: keys fetched over plain http can be replaced on the way (allow http explicitly for tests and loopback)")
	}
	return nil
}

// RedactURL returns raw fit for a log line: without userinfo and fragment,
// and with the query replaced by "REDACTED", since either may carry an API
// key. A URL that does not parse is replaced whole.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "REDACTED"
	}
	u.User = nil
	u.Fragment, u.RawFragment = "", ""
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	return u.String()
}

// urlRedactor scrubs one URL's secret parts (query, userinfo, fragment) from error
// messages. The HTTP client quotes the request URL in its errors, and the
// JWKS libraries quote the URL they were given.
type urlRedactor struct {
	raw, redacted string
	secrets       []string
}

func newURLRedactor(raw string) *urlRedactor {
	r := &urlRedactor{raw: raw, redacted: RedactURL(raw)}
	if u, err := url.Parse(raw); err == nil {
		if u.RawQuery != "" {
			r.secrets = append(r.secrets, u.RawQuery, u.Query().Encode())
		}
		if u.Fragment != "" {
			r.secrets = append(r.secrets, u.EscapedFragment(), u.Fragment)
		}
		if u.User != nil {
			r.secrets = append(r.secrets, u.User.String(), u.User.Username())
			if p, ok := u.User.Password(); ok {
				r.secrets = append(r.secrets, p)
			}
		}
	}
	return r
}

// error returns err with the URL and its secret parts replaced. The result
// does not wrap err: unwrapping would give the unredacted message back.
func (r *urlRedactor) error(err error) error {
	if err == nil {
		return nil
	}
	msg := strings.ReplaceAll(err.Error(), r.raw, r.redacted)
	for _, s := range r.secrets {
		if s == "" {
			continue
		}
		msg = strings.ReplaceAll(msg, s, "REDACTED")
		if q := strconv.Quote(s); len(q) > 2 {
			msg = strings.ReplaceAll(msg, q[1:len(q)-1], "REDACTED")
		}
	}
	return errors.New(msg)
}

// httpsRedirectsOnly is the JWKS client's redirect policy: Go's default (at
// most 10), but never from https down to plain http.
func httpsRedirectsOnly(req *http.Request, via []*http.Request) error {
	if req.URL.Scheme != "https" {
		return errors.New("the JWKS URL redirected to a URL that is not https")
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// newJWKS builds the keyfunc for cfg.JWKSURL. Its refresh goroutine ends with
// ctx.
func newJWKS(ctx context.Context, cfg Config, redact *urlRedactor) (keyfunc.Keyfunc, error) {
	client := &http.Client{Timeout: jwksTimeout}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		client = &c
	}
	if client.CheckRedirect == nil && !cfg.JWKSInsecureHTTP {
		client.CheckRedirect = httpsRedirectsOnly
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	refresh := cfg.JWKSRefresh
	if refresh == 0 {
		refresh = DefaultJWKSRefresh
	}
	logged := redact.redacted
	base, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
		Client:      client,
		HTTPTimeout: jwksTimeout,
		// A token with an unknown kid waits at most this long for the
		// rate limiter and the fetch together; with one refresh a minute
		// allowed, a flood of unknown kids costs one fetch a minute and
		// fails fast otherwise.
		RateLimitWaitMax:  jwksTimeout,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(unknownKIDRefreshEvery), 1),
		RefreshInterval:   refresh,
		RefreshErrorHandlerFunc: func(string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				log.WarnContext(ctx, "JWKS refresh failed", "url", logged, "error", redact.error(err).Error())
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("jwtverify: JWKS %s: %v", logged, redact.error(err))
	}
	// Same storage, but keys marked for encryption are not used to verify.
	kf, err := keyfunc.New(keyfunc.Options{
		Ctx:          ctx,
		Storage:      base.Storage(),
		UseWhitelist: []jwkset.USE{jwkset.UseSig, ""},
	})
	if err != nil {
		return nil, fmt.Errorf("jwtverify: JWKS %s: %v", logged, redact.error(err))
	}
	return kf, nil
}

var errNoKey = errors.New("no configured key matches the token's algorithm and kid")

// keyfunc returns the candidate keys for a token: the secret for HS*, and
// for the other algorithms only public keys of the algorithm's type and
// curve. A token with a kid is checked against the PEM keys with that KID,
// else the JWKS key with that kid (which refreshes the JWKS, rate-limited,
// when it does not know it), else the PEM keys without a KID. A token without
// a kid is checked against every PEM and JWKS key of its type.
func (v *Verifier) keyfunc(t *jwt.Token) (any, error) {
	fam, ok := algFamily[t.Method.Alg()]
	if !ok || !v.allowed[t.Method.Alg()] {
		return nil, errors.New("algorithm not allowed") // Unreachable: precheck and WithValidMethods refuse it first.
	}
	if fam == famHMAC {
		if v.secret == nil {
			return nil, errNoKey
		}
		return v.secret, nil
	}
	var keys []jwt.VerificationKey
	rawKID, hasKID := t.Header["kid"]
	if hasKID {
		kid, ok := rawKID.(string)
		if !ok {
			return nil, errors.New("kid header is not a string")
		}
		for _, k := range v.pem[fam] {
			if k.kid == kid {
				keys = append(keys, k.key)
			}
		}
		var jwksErr error
		if len(keys) == 0 && v.jwks != nil {
			var key any
			key, jwksErr = v.jwks.Keyfunc(t)
			if errors.Is(jwksErr, jwkset.ErrKeyNotFound) {
				// Its message quotes the whole kid; keep the logs bounded.
				jwksErr = fmt.Errorf("kid %q is not in the JWKS", truncate(kid))
			} else if jwksErr != nil {
				jwksErr = v.jwksRedact.error(jwksErr)
			}
			if jwksErr == nil {
				if f, ok := keyFamily(key); ok && f == fam {
					keys = append(keys, key)
				} else {
					jwksErr = fmt.Errorf("JWKS key %q is a %T, not a key for %s", truncate(kid), key, t.Method.Alg())
				}
			}
		}
		if len(keys) == 0 {
			for _, k := range v.pem[fam] {
				if k.kid == "" {
					keys = append(keys, k.key)
				}
			}
		}
		if len(keys) == 0 && jwksErr != nil {
			return nil, jwksErr
		}
	} else {
		for _, k := range v.pem[fam] {
			keys = append(keys, k.key)
		}
		if v.jwks != nil {
			all, err := v.jwks.Storage().KeyReadAll(v.jctx)
			if err != nil && len(keys) == 0 {
				return nil, v.jwksRedact.error(err)
			}
			for _, j := range all {
				m := j.Marshal()
				if (m.USE != "" && m.USE != jwkset.UseSig) || (m.ALG != "" && m.ALG.String() != t.Method.Alg()) {
					continue
				}
				key := j.Key()
				if pk, ok := key.(interface{ Public() crypto.PublicKey }); ok {
					key = pk.Public()
				}
				if f, ok := keyFamily(key); ok && f == fam {
					keys = append(keys, key)
				}
			}
		}
	}
	switch len(keys) {
	case 0:
		return nil, errNoKey
	case 1:
		return keys[0], nil
	default:
		return jwt.VerificationKeySet{Keys: keys}, nil
	}
}
