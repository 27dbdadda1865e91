// Package jwtverify verifies the JWT that an inbound webhook carries in a
// header (such as Ave-Hub-signature) and caches the tokens it has verified.
//
// Keys come from a shared secret (HS256/384/512), PEM public keys (RS*, PS*,
// ES256/384/512, EdDSA) and a JWKS URL (fetched, cached and refreshed by
// github.com/MicahParks/keyfunc/v3). The algorithm "none" and every
// algorithm/key-type confusion are always refused: an HS* token is only ever
// checked against the configured secret, and an asymmetric token only against
// public keys of its own type and curve. A token must carry exp, unless
// [Config.AllowMissingExp] is set, which requires a MaxAge on iat instead: no
// token is ever valid for ever. A JWKS URL must be https unless
// [Config.JWKSInsecureHTTP] is set.
//
// A verified token is cached (github.com/dgraph-io/ristretto/v2) under the
// SHA-256 of the token, so a hub that sends the same token on every request
// costs a hash and a lookup per request instead of a signature check.
//
// Every error returned by [Verifier.Verify] is an [*Error] whose Status (400 or
// 401) and Detail are meant for the client, and whose Err is the internal
// cause for the logs. Neither ever contains key material, the secret or the
// token.
package jwtverify

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/dgraph-io/ristretto/v2"
	"github.com/golang-jwt/jwt/v5"
)

// Details sent to the client, as [Error.Detail].
const (
	// DetailMalformed (400) is for a token that is not three base64url
	// segments whose header and claims are JSON objects.
	DetailMalformed = "Error while decoding from Base64Url, invalid base64 characters detected"
	// DetailInvalid (401) is the default refusal: bad signature, unknown key,
	// key of the wrong type, unusable claims.
	DetailInvalid = "The signature is invalid."
	// DetailMissing (401) is for a request without the signature header. The
	// verifier never returns it; the HTTP glue does.
	DetailMissing = "The signature header is missing."
	// DetailExpired (401) is for a token whose exp (plus leeway) has passed.
	DetailExpired = "The token has expired."
	// DetailNoExpiry (401) is for a token without an exp claim, unless
	// Config.AllowMissingExp is set.
	DetailNoExpiry = "The token has no expiration time (exp)."
	// DetailNotYetValid (401) is for a token whose nbf, or iat when MaxAge is
	// set, is in the future (beyond the leeway).
	DetailNotYetValid = "The token is not valid yet."
	// DetailIssuer (401) is for a token whose iss is missing or not the
	// configured issuer.
	DetailIssuer = "The token issuer is not accepted."
	// DetailAudience (401) is for a token whose aud is missing or names none
	// of the configured audiences.
	DetailAudience = "The token audience is not accepted."
	// DetailAlgorithm (401) is for a token whose alg is not in the allow-list
	// ("none" never is).
	DetailAlgorithm = "The token algorithm is not allowed."
	// DetailTooOld (401) is for a token whose iat is older than MaxAge, or
	// that has no iat while MaxAge is set.
	DetailTooOld = "The token is too old."
)

const (
	// DefaultCacheSize is the number of verified tokens kept when
	// Config.CacheSize is 0.
	DefaultCacheSize = 10000
	// DefaultJWKSRefresh is the JWKS refresh interval when Config.JWKSRefresh
	// is 0.
	DefaultJWKSRefresh = time.Hour
	// MaxCacheTTL is the longest a verified token is served from the cache,
	// whatever its exp: after that it is verified again, so that a key
	// removed from the configuration or the JWKS stops being honoured.
	MaxCacheTTL = 5 * time.Minute
	// MaxTokenLength is the longest token accepted; a longer one is refused as
	// malformed (400) before any decoding.
	MaxTokenLength = 32 << 10

	// jwksTimeout bounds a JWKS fetch (the default HTTP client's timeout) and
	// how long a Verify call may wait on the unknown-kid refresh.
	jwksTimeout = 10 * time.Second
	// unknownKIDRefreshEvery is how often, at most, a token with an unknown
	// kid makes the verifier fetch the JWKS again.
	unknownKIDRefreshEvery = time.Minute
)

// PublicKey is one PEM-encoded public key.
type PublicKey struct {
	// KID is the key id that selects this key when a token names one in its
	// kid header. Optional: a key without a KID is tried for every token of
	// its type that names no configured kid.
	KID string
	// PEM holds one public key: a PKIX "PUBLIC KEY", a PKCS #1 "RSA PUBLIC
	// KEY", or a "CERTIFICATE" (its public key is used; certificates that
	// follow it, a chain, are ignored). Private keys are refused.
	PEM []byte
}

// Config configures a [Verifier]. At least one of Secret, PublicKeys and
// JWKSURL must be set.
type Config struct {
	// Algorithms is the allow-list of JWS algorithms (HS256, RS256, PS256,
	// ES256, EdDSA, ...; see [SupportedAlgorithms]). Empty allows every
	// algorithm that the configured keys can verify (all the asymmetric ones
	// when JWKSURL is set). "none", an unknown name, or an algorithm for which
	// no key is configured is an error.
	Algorithms []string
	// Secret is the shared secret for HS256/384/512. Empty means no HS*
	// algorithm can be verified. A secret that looks like a PEM block is
	// refused, as it would let anyone holding the public key forge tokens.
	Secret []byte
	// PublicKeys are PEM public keys for RS*, PS* (RSA), ES256/384/512 (ECDSA
	// P-256/P-384/P-521) and EdDSA (Ed25519). A token naming a kid is checked
	// against the keys with that KID; a token without a kid against every key
	// of its type.
	PublicKeys []PublicKey
	// JWKSURL is the https URL of a JSON Web Key Set (http only with
	// JWKSInsecureHTTP). It is fetched by New,
	// refreshed every JWKSRefresh, and refetched (at most once a minute) when
	// a token names a kid it does not hold. Symmetric keys in it are never
	// used. Empty means no JWKS.
	JWKSURL string
	// JWKSRefresh is the JWKS refresh interval. 0 means 1h.
	JWKSRefresh time.Duration
	// JWKSInsecureHTTP accepts a JWKS URL over plain http. false (the default)
	// requires https: keys fetched in the clear can be replaced by anyone
	// on the path, who can then sign tokens. Meant for tests and loopback.
	JWKSInsecureHTTP bool
	// Issuer, when set, is the iss every token must carry.
	Issuer string
	// Audience, when set, lists the audiences of which a token's aud must
	// contain at least one. A token without aud is then refused.
	Audience []string
	// Leeway is the clock skew tolerated on exp, nbf, iat and MaxAge. 0 means
	// none.
	Leeway time.Duration
	// MaxAge, when set, requires an iat no older than MaxAge (plus Leeway).
	// 0 means iat is not required.
	MaxAge time.Duration
	// AllowMissingExp accepts tokens without an exp claim. false (the
	// default) refuses them with DetailNoExpiry: such a token would
	// otherwise be valid for ever. Setting it requires MaxAge, so that every
	// accepted token still has an end (its iat plus MaxAge).
	AllowMissingExp bool
	// CacheSize is the most verified tokens kept in the cache. 0 means
	// DefaultCacheSize (10000); -1 disables the cache.
	CacheSize int
	// HTTPClient fetches the JWKS. nil means a client with a 10s timeout.
	// Unless JWKSInsecureHTTP is set, a redirect to a URL that is not https is
	// not followed (when the client has no CheckRedirect of its own).
	HTTPClient *http.Client
	// Logger receives the JWKS refresh failures (at Warn). nil means
	// slog.Default(). The JWKS URL is logged without its query and
	// userinfo, which can hold credentials.
	Logger *slog.Logger
	// Now is the clock. nil means time.Now; tests set it.
	Now func() time.Time
}

// ErrAlgorithmNone is returned for the algorithm "none", which is never
// allowed; ErrUnknownAlgorithm for a name that is not one of
// [SupportedAlgorithms].
var (
	ErrAlgorithmNone    = errors.New(`the algorithm "none" is never allowed`)
	ErrUnknownAlgorithm = errors.New("unknown algorithm")
)

// CheckAlgorithm returns ErrAlgorithmNone for "none" (in any case), an
// error wrapping ErrUnknownAlgorithm for an unsupported name, else nil.
func CheckAlgorithm(a string) error {
	if strings.EqualFold(a, "none") {
		return ErrAlgorithmNone
	}
	if _, ok := algFamily[a]; !ok {
		return fmt.Errorf("%w %q (supported: %s)", ErrUnknownAlgorithm, a, strings.Join(supportedAlgorithms, ", "))
	}
	return nil
}

// Check validates the settings of cfg that need neither keys nor I/O: the
// algorithms, the durations, the cache size, the exp policy and the JWKS
// URL. [New] calls
// it; a caller may call it earlier to report a bad configuration. Its
// errors never quote the JWKS URL.
func (cfg Config) Check() error {
	for _, a := range cfg.Algorithms {
		if err := CheckAlgorithm(a); err != nil {
			return err
		}
	}
	switch {
	case cfg.Leeway < 0:
		return errors.New("jwtverify: leeway must not be negative")
	case cfg.MaxAge < 0:
		return errors.New("jwtverify: max_age must not be negative")
	case cfg.JWKSRefresh < 0:
		return errors.New("jwtverify: JWKS refresh interval must not be negative")
	case cfg.CacheSize < -1:
		return errors.New("jwtverify: cache size must be -1 (disabled), 0 (default) or positive")
	case cfg.AllowMissingExp && cfg.MaxAge == 0:
		return errors.New("jwtverify: accepting tokens without exp needs max_age, so that every token still expires")
	}
	if cfg.JWKSURL != "" {
		return CheckJWKSURL(cfg.JWKSURL, cfg.JWKSInsecureHTTP)
	}
	return nil
}

// Claims are the claims of a verified token, as decoded from JSON (numbers
// are float64). A cache hit returns the same map as the verification that
// filled the cache: treat it as read-only.
type Claims map[string]any

// Error is the error returned by [Verifier.Verify].
type Error struct {
	// Status is the HTTP status to answer: 400 for a malformed token, 401 for
	// every other refusal.
	Status int
	// Detail is the message for the client, one of the Detail* constants.
	Detail string
	// Err is the internal cause, for logs. It never contains the token, the
	// secret or key material, but it may quote header values such as kid.
	Err error
}

// Error returns the detail followed by the internal cause.
func (e *Error) Error() string {
	if e.Err == nil {
		return "jwtverify: " + e.Detail
	}
	return "jwtverify: " + e.Detail + ": " + e.Err.Error()
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Err }

// Verifier verifies tokens against one [Config]. It is safe for concurrent use.
type Verifier struct {
	now      func() time.Time
	parser   *jwt.Parser
	allowed  map[string]bool
	maxAge   time.Duration
	leeway   time.Duration
	issuer   string
	audience []string
	// expRequired refuses tokens without exp (Config.AllowMissingExp unset).
	expRequired bool

	secret []byte
	pem    [numFamilies][]pemKey
	jwks   keyfunc.Keyfunc
	jctx   context.Context
	// jwksRedact scrubs the JWKS URL's query and userinfo from errors.
	jwksRedact *urlRedactor

	// mu guards cache against Close: ristretto panics on a Set racing Close.
	mu     sync.RWMutex
	cache  *ristretto.Cache[uint64, *entry]
	closed bool

	cancel    context.CancelFunc
	stopAfter func() bool
	closeOnce sync.Once

	// verifications counts signature checks (cache misses that reached the
	// crypto); tests use it to tell a hit from a miss.
	verifications atomic.Int64
}

type entry struct {
	sum      [sha256.Size]byte
	claims   Claims
	deadline time.Time
}

// New validates cfg and returns a Verifier. Errors name the offending setting
// and never include key or secret material. When JWKSURL is set, New fetches
// the key set once (an unreachable JWKS is logged to Config.Logger and retried
// later, not an error) and keeps refreshing it until ctx is done or Close is
// called. When ctx is done the Verifier closes itself; it keeps verifying
// afterwards, without cache and without JWKS refreshes.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	v := &Verifier{
		now:         cfg.Now,
		maxAge:      cfg.MaxAge,
		leeway:      cfg.Leeway,
		issuer:      cfg.Issuer,
		expRequired: !cfg.AllowMissingExp,
	}
	if v.now == nil {
		v.now = time.Now
	}
	for _, a := range cfg.Audience {
		if a != "" {
			v.audience = append(v.audience, a)
		}
	}

	// Keys.
	if len(cfg.Secret) > 0 {
		if looksLikePEM(cfg.Secret) {
			return nil, errors.New("jwtverify: the secret looks like a PEM block; configure public keys as public keys, not as the HMAC secret")
		}
		v.secret = append([]byte(nil), cfg.Secret...)
	}
	for i, pk := range cfg.PublicKeys {
		k, err := parsePublicKey(pk.PEM)
		if err != nil {
			return nil, fmt.Errorf("jwtverify: public key #%d (kid %q): %w", i+1, pk.KID, err)
		}
		k.kid = pk.KID
		v.pem[k.fam] = append(v.pem[k.fam], k)
	}

	// Algorithms.
	have := func(fam family) bool {
		switch fam {
		case famHMAC:
			return v.secret != nil
		default:
			return len(v.pem[fam]) > 0 || cfg.JWKSURL != ""
		}
	}
	allowed := make([]string, 0, len(supportedAlgorithms))
	v.allowed = make(map[string]bool, len(supportedAlgorithms))
	if len(cfg.Algorithms) == 0 {
		for _, a := range supportedAlgorithms {
			if have(algFamily[a]) {
				allowed = append(allowed, a)
				v.allowed[a] = true
			}
		}
		if len(allowed) == 0 {
			return nil, errors.New("jwtverify: no key configured: set a secret, public keys or a JWKS URL")
		}
	} else {
		for _, a := range cfg.Algorithms { // known and not "none": Check
			fam := algFamily[a]
			if !have(fam) {
				return nil, fmt.Errorf("jwtverify: algorithm %s needs %s", a, fam.needs())
			}
			if !v.allowed[a] {
				allowed = append(allowed, a)
				v.allowed[a] = true
			}
		}
	}

	opts := []jwt.ParserOption{
		jwt.WithValidMethods(allowed),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(v.now),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if len(v.audience) > 0 {
		opts = append(opts, jwt.WithAudience(v.audience...))
	}
	if cfg.MaxAge > 0 {
		opts = append(opts, jwt.WithIssuedAt())
	}
	if v.expRequired {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	v.parser = jwt.NewParser(opts...)

	// Cache.
	if cfg.CacheSize != -1 {
		size := int64(cfg.CacheSize)
		if size == 0 {
			size = DefaultCacheSize
		}
		c, err := ristretto.NewCache(&ristretto.Config[uint64, *entry]{
			NumCounters:        10 * size,
			MaxCost:            size,
			BufferItems:        64,
			IgnoreInternalCost: true,
		})
		if err != nil {
			return nil, fmt.Errorf("jwtverify: token cache: %w", err)
		}
		v.cache = c
	}

	// JWKS, last: it starts a goroutine.
	if cfg.JWKSURL != "" {
		v.jctx, v.cancel = context.WithCancel(ctx)
		v.jwksRedact = newURLRedactor(cfg.JWKSURL)
		kf, err := newJWKS(v.jctx, cfg, v.jwksRedact)
		if err != nil {
			v.cancel()
			if v.cache != nil {
				v.cache.Close()
			}
			return nil, err
		}
		v.jwks = kf
	}
	v.stopAfter = context.AfterFunc(ctx, v.Close)
	return v, nil
}

// Close stops the JWKS refresh and releases the cache. Verify keeps working
// after Close, without cache and without JWKS refreshes. Close may be called
// more than once and concurrently with Verify.
func (v *Verifier) Close() {
	v.closeOnce.Do(func() {
		if v.stopAfter != nil {
			v.stopAfter()
		}
		if v.cancel != nil {
			v.cancel()
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		v.closed = true
		if v.cache != nil {
			v.cache.Close()
		}
	})
}

// Verify checks token and returns its claims. The error is always an
// [*Error]: Status 400 with DetailMalformed when token is not a well-formed
// JWT, otherwise 401 with the Detail that names the reason.
//
// A token verified before and still cached is returned without checking its
// signature again. An entry never outlives the token's exp, iat+MaxAge or
// MaxCacheTTL, whichever comes first; a token without exp (accepted only with
// AllowMissingExp, which requires MaxAge) is cached until iat+MaxAge at the
// latest.
func (v *Verifier) Verify(token string) (Claims, error) {
	if len(token) > MaxTokenLength {
		return nil, &Error{Status: http.StatusBadRequest, Detail: DetailMalformed, Err: fmt.Errorf("token longer than %d bytes", MaxTokenLength)}
	}
	var sum [sha256.Size]byte
	if v.cache != nil {
		// The token is only read: hash it in place instead of copying it.
		sum = sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
		if claims, ok := v.lookup(&sum); ok {
			return claims, nil
		}
	}

	alg, err := precheck(token)
	if err != nil {
		return nil, err
	}
	if !v.allowed[alg] {
		return nil, &Error{Status: http.StatusUnauthorized, Detail: DetailAlgorithm, Err: fmt.Errorf("algorithm %q is not allowed", truncate(alg))}
	}

	v.verifications.Add(1)
	mc := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(token, mc, v.keyfunc); err != nil {
		return nil, v.classify(err, mc)
	}
	now := v.now()
	deadline := now.Add(MaxCacheTTL)
	if exp, err := mc.GetExpirationTime(); err == nil && exp != nil && exp.Before(deadline) {
		deadline = exp.Time
	}
	if v.maxAge > 0 {
		iat, err := mc.GetIssuedAt()
		if err != nil || iat == nil {
			return nil, &Error{Status: http.StatusUnauthorized, Detail: DetailTooOld, Err: errors.New("iat is required when max_age is set")}
		}
		if now.After(iat.Add(v.maxAge + v.leeway)) {
			return nil, &Error{Status: http.StatusUnauthorized, Detail: DetailTooOld, Err: fmt.Errorf("issued %s ago, max_age is %s", now.Sub(iat.Time).Truncate(time.Second), v.maxAge)}
		}
		if end := iat.Add(v.maxAge); end.Before(deadline) {
			deadline = end
		}
	}
	claims := Claims(mc)
	if v.cache != nil {
		v.store(&sum, claims, now, deadline)
	}
	return claims, nil
}

// lookup returns the cached claims of the token hashed to sum, if any are
// still valid.
func (v *Verifier) lookup(sum *[sha256.Size]byte) (Claims, bool) {
	v.mu.RLock()
	if v.closed {
		v.mu.RUnlock()
		return nil, false
	}
	e, ok := v.cache.Get(cacheKey(sum))
	v.mu.RUnlock()
	if !ok || e.sum != *sum || !v.now().Before(e.deadline) {
		return nil, false
	}
	return e.claims, true
}

func (v *Verifier) store(sum *[sha256.Size]byte, claims Claims, now, deadline time.Time) {
	ttl := deadline.Sub(now)
	if ttl <= 0 {
		return
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.closed {
		return
	}
	// A dropped Set only costs a verification on the next request.
	v.cache.SetWithTTL(cacheKey(sum), &entry{sum: *sum, claims: claims, deadline: deadline}, 1, ttl)
}

// cacheKey is the first 64 bits of the token's SHA-256. Entries also hold the
// full hash, so a collision is a miss, never a wrong hit.
func cacheKey(sum *[sha256.Size]byte) uint64 {
	var k uint64
	for _, b := range sum[:8] {
		k = k<<8 | uint64(b)
	}
	return k
}

// classify turns a golang-jwt error into an *Error.
func (v *Verifier) classify(err error, mc jwt.MapClaims) *Error {
	e := &Error{Status: http.StatusUnauthorized, Detail: DetailInvalid, Err: err}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		e.Status, e.Detail = http.StatusBadRequest, DetailMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		// DetailInvalid.
	case errors.Is(err, jwt.ErrTokenExpired):
		e.Detail = DetailExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		e.Detail = DetailNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		e.Detail = DetailIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		e.Detail = DetailAudience
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		// golang-jwt reports a missing exp, iss or aud this way.
		if _, ok := mc["exp"]; !ok && v.expRequired {
			e.Detail = DetailNoExpiry
		} else if _, ok := mc["iss"]; !ok && v.issuer != "" {
			e.Detail = DetailIssuer
		} else if _, ok := mc["aud"]; !ok && len(v.audience) > 0 {
			e.Detail = DetailAudience
		}
	}
	return e
}

// precheck tells a malformed token (400) from one that merely fails to verify
// (401) before any crypto: three base64url segments, a header that is a JSON
// object with a string alg and no crit, claims that are a JSON object. It
// returns the header's alg.
func precheck(token string) (string, error) {
	h, rest, ok1 := strings.Cut(token, ".")
	c, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.IndexByte(s, '.') >= 0 {
		return "", malformed("token is not three dot-separated segments")
	}
	if !isBase64URL(h) || !isBase64URL(c) || !isBase64URL(s) {
		return "", malformed("a segment is not unpadded base64url")
	}
	hb, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return "", malformed("header is not base64url")
	}
	var header map[string]any
	if !isJSONObject(hb) || json.Unmarshal(hb, &header) != nil {
		return "", malformed("header is not a JSON object")
	}
	alg, ok := header["alg"].(string)
	if !ok {
		return "", malformed("header has no string alg")
	}
	cb, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", malformed("claims are not base64url")
	}
	if !isJSONObject(cb) || !json.Valid(cb) {
		return "", malformed("claims are not a JSON object")
	}
	if _, ok := header["crit"]; ok {
		// RFC 7515 section 4.1.11: extensions we do not understand must be refused.
		return "", &Error{Status: http.StatusUnauthorized, Detail: DetailInvalid, Err: errors.New("critical header parameters are not supported")}
	}
	return alg, nil
}

func malformed(cause string) *Error {
	return &Error{Status: http.StatusBadRequest, Detail: DetailMalformed, Err: errors.New(cause)}
}

// isBase64URL reports whether s is unpadded base64url as RawURLEncoding
// decodes it (without the line breaks it would skip).
func isBase64URL(s string) bool {
	if len(s)%4 == 1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case 'A' <= b && b <= 'Z', 'a' <= b && b <= 'z', '0' <= b && b <= '9', b == '-', b == '_':
		default:
			return false
		}
	}
	return true
}

// isJSONObject reports whether b starts, after white space, with '{'. Whether
// it is valid JSON is checked by the caller.
func isJSONObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		default:
			return false
		}
	}
	return false
}

// truncate bounds an attacker-chosen string before it goes into an error.
func truncate(s string) string {
	const max = 32
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
