package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/relay/jwtverify"
)

func init() {
	caddy.RegisterModule(Verify{})
}

// Verify checks the JWT an inbound webhook carries in a header (by default
// Ave-Hub-signature) before anything else reads the request. The token
// header (and the Authorization header a bearer token came in) is removed
// from the request whatever the outcome, so that neither the access log nor
// a later handler sees the credential. A request
// without the header, or with a token that is malformed (400) or fails
// any check (401), is answered in the hub contract's error envelope and
// goes no further; so is an error of a handler after it that has not
// answered (502 when reverse_proxy finds no upstream, say). Verified
// claims become placeholders
// {http.vars.hook.claims.<name>} for later handlers and logs.
type Verify struct {
	// Header carries the token. Default: Ave-Hub-signature.
	Header string `json:"header,omitempty"`

	// AllowBearer also accepts "Authorization: Bearer <token>" when Header
	// is absent. Default: false.
	AllowBearer bool `json:"allow_bearer,omitempty"`

	// Algorithms is the allow-list of JWT algorithms (HS256/384/512,
	// RS256/384/512, PS256/384/512, ES256/384/512, EdDSA). Default: every
	// algorithm the configured keys can verify. "none" is always refused.
	Algorithms []string `json:"algorithms,omitempty"`

	// Secret is the HMAC shared secret for HS* tokens. Use a placeholder
	// such as {env.AVE_HMAC_SECRET} or {file./etc/caddy/ave.secret}: it is
	// resolved when the config loads and never logged.
	Secret string `json:"secret,omitempty"`

	// PublicKeys are PEM public keys (or certificates) for RS*, PS*, ES*
	// and EdDSA tokens. A token with a kid uses the key of that id.
	PublicKeys []PublicKeyFile `json:"public_keys,omitempty"`

	// JWKS is the https URL of a JSON Web Key Set, fetched at load,
	// refreshed every JWKSRefresh and when a token names an unknown kid (at
	// most once a minute). Its query and userinfo are never logged.
	JWKS string `json:"jwks,omitempty"`

	// JWKSInsecureHTTP accepts a JWKS URL over plain http, for tests and
	// loopback endpoints. Default: false; keys fetched in the clear can be
	// replaced by anyone on the path, who could then sign tokens.
	JWKSInsecureHTTP bool `json:"jwks_insecure_http,omitempty"`

	// JWKSRefresh is how often the key set is refreshed. Default: 1h.
	JWKSRefresh caddy.Duration `json:"jwks_refresh,omitempty"`

	// Issuer, when set, is the required iss claim.
	Issuer string `json:"issuer,omitempty"`

	// Audience, when set, lists the accepted aud values; the token must
	// carry one of them.
	Audience []string `json:"audience,omitempty"`

	// Leeway is the clock skew allowed on exp, nbf and iat. Default: 0.
	Leeway caddy.Duration `json:"leeway,omitempty"`

	// MaxAge, when set, requires an iat claim no older than this.
	// Default: 0, iat is not required.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// AllowMissingExp accepts tokens without an exp claim. Default: false,
	// such a token is refused (401), as it would be valid for ever. Setting
	// it requires MaxAge, which then bounds every token's life by its iat.
	AllowMissingExp bool `json:"allow_missing_exp,omitempty"`

	// CacheSize is how many verified tokens are remembered (until their
	// own expiry at the latest), so a hub that reuses a token costs a
	// hash and a lookup. Default: 10000; -1 disables the cache.
	CacheSize int `json:"cache_size,omitempty"`

	verifier *jwtverify.Verifier
	log      *zap.Logger
	// headerKey is Header in canonical form, which reads and deletes the
	// header without canonicalizing (an allocation) on every request.
	headerKey string
}

// PublicKeyFile is a PEM file and the key id it answers to.
type PublicKeyFile struct {
	// File is the path of the PEM file.
	File string `json:"file"`
	// KID is the key id a token names in its header; optional.
	KID string `json:"kid,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Verify) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.hook_verify",
		New: func() caddy.Module { return new(Verify) },
	}
}

// Provision loads the keys and builds the verifier.
func (v *Verify) Provision(ctx caddy.Context) error {
	v.log = ctx.Logger()
	if err := registerMetrics(ctx); err != nil {
		return err
	}
	if v.Header == "" {
		v.Header = "Ave-Hub-signature"
	}
	v.headerKey = http.CanonicalHeaderKey(v.Header)
	cfg := v.config()
	cfg.Logger = ctx.Slogger()
	if v.Secret != "" {
		secret := resolveSecret(v.Secret)
		if secret == "" {
			return errors.New("the secret resolved to an empty value (is its environment variable or file set?)")
		}
		cfg.Secret = []byte(secret)
	}
	for _, pk := range v.PublicKeys {
		pem, err := os.ReadFile(pk.File)
		if err != nil {
			return fmt.Errorf("reading public key: %w", err)
		}
		cfg.PublicKeys = append(cfg.PublicKeys, jwtverify.PublicKey{KID: pk.KID, PEM: pem})
	}
	verifier, err := jwtverify.New(ctx, cfg)
	if err != nil {
		return err
	}
	v.verifier = verifier
	return nil
}

// config is the verifier's configuration without its keys.
func (v *Verify) config() jwtverify.Config {
	return jwtverify.Config{
		Algorithms:       v.Algorithms,
		JWKSURL:          v.JWKS,
		JWKSRefresh:      time.Duration(v.JWKSRefresh),
		JWKSInsecureHTTP: v.JWKSInsecureHTTP,
		Issuer:           v.Issuer,
		Audience:         v.Audience,
		Leeway:           time.Duration(v.Leeway),
		MaxAge:           time.Duration(v.MaxAge),
		AllowMissingExp:  v.AllowMissingExp,
		CacheSize:        v.CacheSize,
	}
}

// Validate checks the settings that need no I/O.
func (v *Verify) Validate() error {
	if v.Secret == "" && len(v.PublicKeys) == 0 && v.JWKS == "" {
		return errors.New("configure a secret, a public_key or a jwks URL")
	}
	if err := v.config().Check(); err != nil {
		return err
	}
	return nil
}

// ServeHTTP verifies the token and passes the request on.
func (v *Verify) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	key := v.headerKey
	if key == "" {
		key = v.Header // not provisioned
	}
	token := r.Header.Get(key)
	// The token is a credential: drop it from the request at once, whatever
	// the outcome, so that neither the access log (Caddy only redacts
	// Authorization and Cookie) nor a handler after this one (e.g.
	// reverse_proxy) sees it.
	r.Header.Del(key)
	if token == "" && v.AllowBearer {
		if auth := r.Header.Get("Authorization"); len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
			token = strings.TrimSpace(auth[7:])
			r.Header.Del("Authorization")
		}
	}
	if token == "" {
		v.refuse(w, r, http.StatusUnauthorized, jwtverify.DetailMissing, nil)
		return nil
	}
	claims, err := v.verifier.Verify(token)
	if err != nil {
		var verr *jwtverify.Error
		if errors.As(err, &verr) {
			v.refuse(w, r, verr.Status, verr.Detail, verr.Err)
		} else {
			v.refuse(w, r, http.StatusUnauthorized, jwtverify.DetailInvalid, err)
		}
		return nil
	}
	for name, val := range claims {
		switch val := val.(type) {
		case string, bool:
			caddyhttp.SetVar(r.Context(), claimVar(name), val)
		case float64:
			caddyhttp.SetVar(r.Context(), claimVar(name), strconv.FormatFloat(val, 'f', -1, 64))
		}
	}
	caddyhttp.SetVar(r.Context(), "hook.verified", true)
	serveNext(w, r, next, v.log)
	return nil
}

// claimVar is the name of the variable of the claim name: "hook.claims."
// and the name, a constant for the registered claims of RFC 7519 that
// most tokens carry.
func claimVar(name string) string {
	switch name {
	case "iss":
		return "hook.claims.iss"
	case "sub":
		return "hook.claims.sub"
	case "aud":
		return "hook.claims.aud"
	case "exp":
		return "hook.claims.exp"
	case "nbf":
		return "hook.claims.nbf"
	case "iat":
		return "hook.claims.iat"
	case "jti":
		return "hook.claims.jti"
	}
	return "hook.claims." + name
}

// refuse answers a failed verification. A sender's bad token is logged at
// Debug only, without the token.
func (v *Verify) refuse(w http.ResponseWriter, r *http.Request, status int, detail string, cause error) {
	if ce := v.log.Check(zap.DebugLevel, "webhook signature refused"); ce != nil {
		ce.Write(zap.Int("status", status), zap.String("detail", detail), zap.NamedError("cause", cause), zap.String("remote", r.RemoteAddr))
	}
	observeIngress(r, status)
	writeError(w, status, detail)
}

func parseVerify(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	v := new(Verify)
	err := v.UnmarshalCaddyfile(h.Dispenser)
	return v, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	hook_verify {
//	    header <name>                 # default Ave-Hub-signature
//	    allow_bearer                  # also accept Authorization: Bearer
//	    algorithms <alg>...           # default: what the keys allow; never none
//	    secret <secret>               # HS*; use {env.*} or {file.*}
//	    public_key <pem file> [<kid>] # RS*/PS*/ES*/EdDSA; repeatable
//	    jwks <url>                    # https
//	    jwks_insecure_http            # also accept an http jwks URL
//	    jwks_refresh <duration>
//	    issuer <iss>
//	    audience <aud>...
//	    leeway <duration>
//	    max_age <duration>            # require iat no older than this
//	    allow_missing_exp             # accept tokens without exp; needs max_age
//	    cache_size <n>                # -1 disables
//	}
func (v *Verify) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "header":
			if !d.AllArgs(&v.Header) {
				return d.ArgErr()
			}
		case "allow_bearer":
			if d.NextArg() {
				return d.ArgErr()
			}
			v.AllowBearer = true
		case "algorithms":
			algs := d.RemainingArgs()
			if len(algs) == 0 {
				return d.ArgErr()
			}
			for _, a := range algs {
				if err := jwtverify.CheckAlgorithm(a); err != nil {
					return d.Err(err.Error())
				}
			}
			v.Algorithms = append(v.Algorithms, algs...)
		case "secret":
			if !d.AllArgs(&v.Secret) {
				return d.ArgErr()
			}
		case "public_key":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.ArgErr()
			}
			pk := PublicKeyFile{File: args[0]}
			if len(args) == 2 {
				pk.KID = args[1]
			}
			v.PublicKeys = append(v.PublicKeys, pk)
		case "jwks":
			if !d.AllArgs(&v.JWKS) {
				return d.ArgErr()
			}
		case "jwks_insecure_http":
			if d.NextArg() {
				return d.ArgErr()
			}
			v.JWKSInsecureHTTP = true
		case "jwks_refresh":
			dur, err := parseDurationArg(d)
			if err != nil {
				return err
			}
			v.JWKSRefresh = dur
		case "issuer":
			if !d.AllArgs(&v.Issuer) {
				return d.ArgErr()
			}
		case "audience":
			aud := d.RemainingArgs()
			if len(aud) == 0 {
				return d.ArgErr()
			}
			v.Audience = append(v.Audience, aud...)
		case "leeway":
			dur, err := parseDurationArg(d)
			if err != nil {
				return err
			}
			v.Leeway = dur
		case "max_age":
			dur, err := parseDurationArg(d)
			if err != nil {
				return err
			}
			v.MaxAge = dur
		case "allow_missing_exp":
			if d.NextArg() {
				return d.ArgErr()
			}
			v.AllowMissingExp = true
		case "cache_size":
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < -1 {
				return d.Errf("cache_size must be a number, -1 to disable, not %q", s)
			}
			v.CacheSize = n
		default:
			return d.Errf("unknown hook_verify option %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Verify)(nil)
	_ caddy.Validator             = (*Verify)(nil)
	_ caddyhttp.MiddlewareHandler = (*Verify)(nil)
	_ caddyfile.Unmarshaler       = (*Verify)(nil)
)
