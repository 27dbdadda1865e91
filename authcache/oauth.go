package authcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults of OAuthConfig.
const (
	// DefaultTokenKey is the response key of the token when OAuthConfig.TokenKey is empty.
	DefaultTokenKey = "access_token"
	// DefaultExpiresKey is the response key of the lifetime when OAuthConfig.ExpiresKey is empty.
	DefaultExpiresKey = "expires_in"
	// DefaultTokenType is the Authorization scheme when OAuthConfig.TokenType is empty.
	DefaultTokenType = "Bearer"
	// DefaultTTL is the lifetime of a token whose response has none, when OAuthConfig.DefaultTTL
	// is 0.
	DefaultTTL = 5 * time.Minute
	// DefaultTokenTimeout bounds a token request when OAuthConfig.Timeout is 0.
	DefaultTokenTimeout = 10 * time.Second
	// MinRefreshBefore is the floor of the default refresh margin (10% of the lifetime).
	MinRefreshBefore = 5 * time.Second
)

const (
	maxTokenResponseSize = 64 << 10             // bytes read from a token response
	maxLifetime          = 366 * 24 * time.Hour // longer lifetimes are capped
)

// Body formats of the token request (OAuthConfig.BodyFormat).
const (
	// FormatForm sends the login body as application/x-www-form-urlencoded (the default).
	FormatForm = "form"
	// FormatJSON sends the login body as a JSON object of string values.
	FormatJSON = "json"
)

// OAuthConfig describes how to obtain a token for a destination: the Caddyfile's
// `auth oauth { ... }` block, with placeholders already resolved.
type OAuthConfig struct {
	// TokenURL is the token endpoint: an absolute http or https URL.
	// It is required.
	TokenURL string
	// LoginHeaders are set on the token request, in order; a name given more than once is sent
	// with every value. Their values are secrets.
	LoginHeaders []Pair
	// LoginParams are appended to TokenURL's query, in order, after any query it already has.
	LoginParams []Pair
	// LoginBody are the fields of the token request body, in order. Their values are secrets.
	// When the format is form and no grant_type field is given, grant_type=client_credentials is
	// sent (RFC 6749 section 4.4.2). With the json format a field name may appear once only.
	LoginBody []Pair
	// BodyFormat is "form" or "json". Empty means: json when a LoginHeaders Content-Type contains
	// "json", form when it contains "x-www-form-urlencoded", otherwise form (what RFC 6749
	// requires of client-credentials token requests). The matching Content-Type header is set
	// unless LoginHeaders has one.
	BodyFormat string
	// TokenKey is the dotted path of the token in the JSON response ("data.token" reads
	// {"data":{"token":...}}; a key containing dots is matched literally first). Empty means
	// "access_token".
	TokenKey string
	// ExpiresKey is the dotted path of the token lifetime in seconds, a number or a numeric
	// string. Empty means "expires_in". When it is absent, null or not numeric, DefaultTTL is the
	// lifetime.
	ExpiresKey string
	// TokenType is the scheme of the delivery's Authorization header: "<TokenType> <token>".
	// Empty means "Bearer".
	TokenType string
	// DefaultTTL is the lifetime of a token whose response has none. 0 means 5 minutes.
	DefaultTTL time.Duration
	// RefreshBefore is how long before its expiry a token stops being served from the cache.
	// 0 means 10% of the token's lifetime, at least 5 seconds. A token whose lifetime is not
	// longer than that is used by the deliveries that waited for it, and not cached.
	RefreshBefore time.Duration
	// Timeout bounds each token request. 0 means 10 seconds.
	Timeout time.Duration
	// JSONBody, when set, is the token request's body, sent as it is: a
	// JSON object whose values may be numbers or nested (the body of a
	// Ventiapp authorization). It replaces LoginBody, and the request's
	// Content-Type is application/json unless LoginHeaders set one. Its
	// values are secrets.
	JSONBody json.RawMessage
	// Client, when set, sends the token requests instead of the Cache's
	// client: for credentials registered over an API, one whose dialer
	// refuses internal addresses. Tokens fetched through another client
	// are kept apart.
	Client *http.Client
}

// String describes c with every header, param and body value and the token URL's query and user
// info redacted.
func (c OAuthConfig) String() string {
	var b strings.Builder
	b.WriteString("oauth token_url=")
	b.WriteString(redactURL(c.TokenURL))
	writePairs(&b, " login_headers=", c.LoginHeaders)
	writePairs(&b, " login_params=", c.LoginParams)
	writePairs(&b, " login_body=", c.LoginBody)
	if c.JSONBody != nil {
		b.WriteString(" json_body=" + redacted)
	}
	fmt.Fprintf(&b, " login_body_format=%q token_key=%q expires_key=%q token_type=%q default_ttl=%s refresh_before=%s timeout=%s",
		c.BodyFormat, c.TokenKey, c.ExpiresKey, c.TokenType, c.DefaultTTL, c.RefreshBefore, c.Timeout)
	return b.String()
}

// GoString is like String, so that %#v does not print secrets either.
func (c OAuthConfig) GoString() string { return c.String() }

func writePairs(b *strings.Builder, label string, ps []Pair) {
	b.WriteString(label)
	b.WriteByte('[')
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p.String())
	}
	b.WriteByte(']')
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid)"
	}
	if u.RawQuery != "" {
		u.RawQuery = redacted
	}
	u.Fragment, u.RawFragment = "", ""
	return u.Redacted()
}

// OAuth is the Authorizer of one OAuth configuration. It is safe for concurrent use and cheap:
// the tokens live in the Cache it came from.
type OAuth struct {
	c          *Cache
	key        string // SHA-256 of everything that determines the token; the cache and flight key
	url        string // TokenURL with LoginParams
	host       string // TokenURL's host, for errors
	hostHeader string // a Host login header, which net/http takes from Request.Host only
	header     http.Header
	body       []byte
	tokenKey   string
	expiresKey string
	tokenType  string
	defaultTTL time.Duration
	refresh    time.Duration // RefreshBefore as configured (0 = 10%, at least 5s)
	timeout    time.Duration
	desc       string
	client     *http.Client // nil: the Cache's
}

// OAuth validates cfg (token_url an absolute http or https URL, a known body format, valid header
// names, no negative durations) and returns its Authorizer, backed by c. Errors name the offending
// setting, never a header, param or body value.
func (c *Cache) OAuth(cfg OAuthConfig) (*OAuth, error) {
	u, err := url.Parse(cfg.TokenURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("authcache: token_url must be an absolute http or https URL")
	}
	o := &OAuth{
		c:          c,
		host:       u.Host,
		header:     make(http.Header, len(cfg.LoginHeaders)+2),
		tokenKey:   orDefault(cfg.TokenKey, DefaultTokenKey),
		expiresKey: orDefault(cfg.ExpiresKey, DefaultExpiresKey),
		tokenType:  orDefault(cfg.TokenType, DefaultTokenType),
		defaultTTL: cfg.DefaultTTL,
		refresh:    cfg.RefreshBefore,
		timeout:    cfg.Timeout,
		desc:       cfg.String(),
	}
	if o.defaultTTL == 0 {
		o.defaultTTL = DefaultTTL
	}
	if o.timeout == 0 {
		o.timeout = DefaultTokenTimeout
	}
	switch {
	case cfg.DefaultTTL < 0:
		return nil, errors.New("authcache: default_ttl must not be negative")
	case cfg.RefreshBefore < 0:
		return nil, errors.New("authcache: refresh_before must not be negative")
	case cfg.Timeout < 0:
		return nil, errors.New("authcache: timeout must not be negative")
	case !validToken(o.tokenType):
		return nil, errors.New("authcache: token_type must be a single word (an HTTP auth scheme)")
	}

	// Query: the URL's own, then the login params, in order.
	q := u.RawQuery
	for _, p := range cfg.LoginParams {
		if p.Name == "" {
			return nil, errors.New("authcache: login_param with an empty name")
		}
		if q != "" {
			q += "&"
		}
		q += url.QueryEscape(p.Name) + "=" + url.QueryEscape(p.Value)
	}
	u.RawQuery = q
	u.Fragment, u.RawFragment = "", ""
	o.url = u.String()

	contentType := ""
	for _, h := range cfg.LoginHeaders {
		if !validToken(h.Name) {
			return nil, fmt.Errorf("authcache: login_header name %q is not a valid header name", h.Name)
		}
		if !validHeaderValue(h.Value) {
			return nil, fmt.Errorf("authcache: login_header %s has a value with control characters", h.Name)
		}
		name := textproto.CanonicalMIMEHeaderKey(h.Name)
		switch name {
		case "Host":
			o.hostHeader = h.Value
			continue
		case "Content-Type":
			if contentType == "" {
				contentType = h.Value
			}
		}
		o.header[name] = append(o.header[name], h.Value)
	}

	format, err := bodyFormat(cfg.BodyFormat, contentType)
	if err != nil {
		return nil, err
	}
	o.client = cfg.Client
	if cfg.JSONBody != nil {
		var obj map[string]json.RawMessage
		if len(cfg.LoginBody) > 0 || json.Unmarshal(cfg.JSONBody, &obj) != nil || obj == nil {
			return nil, errors.New("authcache: a JSON login body must be a JSON object, given instead of login_body")
		}
		o.body = append([]byte(nil), cfg.JSONBody...)
		if contentType == "" {
			o.header.Set("Content-Type", "application/json")
		}
	} else if format == FormatJSON {
		seen := make(map[string]bool, len(cfg.LoginBody))
		obj := make(map[string]string, len(cfg.LoginBody))
		for _, p := range cfg.LoginBody {
			if seen[p.Name] {
				return nil, fmt.Errorf("authcache: login_body field %q given twice; the json format allows each once", p.Name)
			}
			seen[p.Name] = true
			obj[p.Name] = p.Value
		}
		// A map marshals with sorted keys: the body is the same for the same config.
		o.body, _ = json.Marshal(obj)
		if contentType == "" {
			o.header.Set("Content-Type", "application/json")
		}
	} else {
		var b strings.Builder
		grantType := false
		for _, p := range cfg.LoginBody {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(p.Name) + "=" + url.QueryEscape(p.Value))
			grantType = grantType || p.Name == "grant_type"
		}
		if !grantType {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString("grant_type=client_credentials")
		}
		o.body = []byte(b.String())
		if contentType == "" {
			o.header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if o.header.Get("Accept") == "" {
		o.header.Set("Accept", "application/json")
	}
	o.key = o.cacheKey()
	return o, nil
}

// bodyFormat decides the token request's body format (see OAuthConfig.BodyFormat).
func bodyFormat(explicit, contentType string) (string, error) {
	switch explicit {
	case FormatForm, FormatJSON:
		return explicit, nil
	case "":
	default:
		return "", fmt.Errorf("authcache: login_body_format must be %q or %q, got %q", FormatForm, FormatJSON, explicit)
	}
	ct := strings.ToLower(contentType)
	switch {
	case strings.Contains(ct, "json"):
		return FormatJSON, nil
	case strings.Contains(ct, "x-www-form-urlencoded"):
		return FormatForm, nil
	}
	return FormatForm, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// cacheKey hashes everything that determines which token is fetched and how it is read and
// cached, length-prefixed so that distinct configs cannot collide by concatenation.
func (o *OAuth) cacheKey() string {
	h := sha256.New()
	field := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field("authcache/v1")
	field(o.url)
	field(o.hostHeader)
	// http.Header is a map; hash it in a fixed order.
	names := make([]string, 0, len(o.header))
	for name := range o.header {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		field(name)
		for _, v := range o.header[name] {
			field(v)
		}
		field("") // end of values
	}
	field(string(o.body))
	if o.client != nil {
		field(fmt.Sprintf("client %p", o.client))
	}
	field(o.tokenKey)
	field(o.expiresKey)
	field(o.tokenType)
	field(o.defaultTTL.String())
	field(o.refresh.String())
	return string(h.Sum(nil))
}

// String describes the configuration with secrets redacted.
func (o *OAuth) String() string { return o.desc }

// GoString is like String.
func (o *OAuth) GoString() string { return o.desc }

// Authorize implements Authorizer: it sets "Authorization: <token_type> <token>" on req, replacing
// any Authorization header, with the cached token or, on a miss, one fetched now (one request per
// credential, shared by concurrent callers). A failed token request returns a *TokenError; the
// delivery attempt should be retried later.
func (o *OAuth) Authorize(ctx context.Context, req *http.Request) error {
	e, err := o.get(ctx)
	if err != nil {
		return err
	}
	if req.Header == nil {
		req.Header = make(http.Header, 1)
	}
	req.Header.Set("Authorization", e.auth)
	return nil
}

// Reject implements Authorizer: it evicts the cached token if req carries it, and returns true.
func (o *OAuth) Reject(req *http.Request) bool {
	if auth := req.Header.Get("Authorization"); auth != "" {
		o.c.evict(o.key, auth)
	}
	return true
}

// Token returns the current token (from the cache, or fetched as by Authorize).
func (o *OAuth) Token(ctx context.Context) (string, error) {
	e, err := o.get(ctx)
	if err != nil {
		return "", err
	}
	return e.token, nil
}

func (o *OAuth) get(ctx context.Context) (*entry, error) {
	c := o.c
	if e, ok := c.lookup(o.key); ok {
		c.hits.Add(1)
		return e, nil
	}
	c.misses.Add(1)
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The flight must not die with the caller that happened to start it: other callers wait on
	// it too. It keeps ctx's values, is bounded by Timeout and is cancelled by Close.
	ch := c.flight.DoChan(o.key, func() (any, error) {
		return o.refreshToken(context.WithoutCancel(ctx))
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*entry), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// refreshToken runs once per flight.
func (o *OAuth) refreshToken(ctx context.Context) (*entry, error) {
	c := o.c
	// A flight that ended between our lookup and our DoChan has stored its token (Set and Wait
	// happen before a flight ends): use it rather than fetching a second one.
	if e, ok := c.lookup(o.key); ok {
		return e, nil
	}
	c.fetches.Add(1)
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()

	start := c.now()
	token, life, err := o.fetch(ctx)
	if err != nil {
		c.fetchErrors.Add(1)
		return nil, err
	}
	e := &entry{token: token, auth: o.tokenType + " " + token}
	if ttl := o.cacheTTL(life); ttl > 0 {
		// Lifetime counts from the request, not the response: a slow endpoint shortens it.
		e.refreshAt = start.Add(ttl)
		c.store(o.key, e, ttl)
	}
	return e, nil
}

// cacheTTL is how long a token living life is served from the cache; <= 0 means not cached
// (ristretto treats a TTL of 0 as "never expires", so it must never be passed on).
func (o *OAuth) cacheTTL(life time.Duration) time.Duration {
	if life <= 0 {
		return 0
	}
	rb := o.refresh
	if rb == 0 {
		rb = max(life/10, MinRefreshBefore)
	}
	return life - rb
}

// Errors carried by TokenError.Err; fixed texts, so that nothing from the response leaks.
var (
	errStatus      = errors.New("unexpected status")
	errNotJSON     = errors.New("response is not a JSON object")
	errTooLarge    = errors.New("response too large")
	errBadRequest  = errors.New("cannot build the token request")
	errNoToken     = errors.New("response has no non-empty string at the token key")
	errBadTokenHdr = errors.New("token contains characters not allowed in a header")
)

// fetch sends the token request and reads the token and its lifetime.
func (o *OAuth) fetch(ctx context.Context) (string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url, bytes.NewReader(o.body))
	if err != nil {
		return "", 0, &TokenError{Host: o.host, Err: errBadRequest}
	}
	req.Header = o.header.Clone()
	if o.hostHeader != "" {
		req.Host = o.hostHeader
	}
	client := o.c.client
	if o.client != nil {
		client = o.client
	}
	resp, err := client.Do(req)
	if err != nil {
		// *url.Error's text holds the full URL, whose query may carry secret login params:
		// keep only the transport's error.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return "", 0, &TokenError{Host: o.host, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Drain a little so the connection can be reused; the body is never reported.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxTokenResponseSize))
		return "", 0, &TokenError{Host: o.host, Status: resp.StatusCode, Err: errStatus}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponseSize+1))
	if err != nil {
		return "", 0, &TokenError{Host: o.host, Status: resp.StatusCode, Err: err}
	}
	if len(data) > maxTokenResponseSize {
		return "", 0, &TokenError{Host: o.host, Status: resp.StatusCode, Err: errTooLarge}
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if dec.Decode(&doc) != nil || doc == nil {
		return "", 0, &TokenError{Host: o.host, Status: resp.StatusCode, Err: errNotJSON}
	}
	v, _ := lookupPath(doc, o.tokenKey)
	token, _ := v.(string)
	if token == "" {
		return "", 0, &TokenError{Host: o.host, Status: resp.StatusCode, Err: errNoToken}
	}
	if !validHeaderValue(token) {
		return "", 0, &TokenError{Host: o.host, Status: resp.StatusCode, Err: errBadTokenHdr}
	}
	life := o.defaultTTL
	if v, ok := lookupPath(doc, o.expiresKey); ok {
		if d, ok := seconds(v); ok {
			life = d
		}
	}
	return token, life, nil
}

// lookupPath finds a dotted path in a decoded JSON object. At each level the whole remaining
// path is tried as a literal key first, so keys that contain dots work too.
func lookupPath(m map[string]any, path string) (any, bool) {
	if v, ok := m[path]; ok {
		return v, true
	}
	for i := 0; i < len(path); i++ {
		if path[i] != '.' {
			continue
		}
		if sub, ok := m[path[:i]].(map[string]any); ok {
			if v, ok := lookupPath(sub, path[i+1:]); ok {
				return v, true
			}
		}
	}
	return nil, false
}

// seconds reads a lifetime in seconds from a JSON number or numeric string. Values beyond a year
// are capped at a year; zero or negative values yield 0 (not cached).
func seconds(v any) (time.Duration, bool) {
	var s string
	switch v := v.(type) {
	case json.Number:
		s = string(v)
	case string:
		s = strings.TrimSpace(v)
	default:
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) {
		return 0, false
	}
	switch {
	case f <= 0:
		return 0, true
	case f >= maxLifetime.Seconds():
		return maxLifetime, true
	}
	return time.Duration(f * float64(time.Second)), true
}

// TokenError reports a failed token request. Deliveries that fail with it are retryable: the
// destination was not contacted.
type TokenError struct {
	// Host is the token endpoint's host (and port, if the URL has one).
	Host string
	// Status is the token endpoint's HTTP status, or 0 if none was received.
	Status int
	// Err is the cause: a transport error (connection refused, timeout, context cancellation)
	// or a fixed description of what was wrong with the response. Never the response body.
	Err error
}

// Error names the endpoint's host, the status and the cause; never the response body, a secret
// or a token.
func (e *TokenError) Error() string {
	var b strings.Builder
	b.WriteString("authcache: token request to ")
	if e.Host != "" {
		b.WriteString(e.Host)
	} else {
		b.WriteString("the token endpoint")
	}
	b.WriteString(" failed")
	if e.Status != 0 {
		b.WriteString(": HTTP ")
		b.WriteString(strconv.Itoa(e.Status))
	}
	if e.Err != nil && e.Err != errStatus {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns Err.
func (e *TokenError) Unwrap() error { return e.Err }

// Interface guards.
var (
	_ Authorizer = (*OAuth)(nil)
	_ Authorizer = (*apiKey)(nil)
)
