package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/authcache"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/ave"
	"github.com/hookrelay/hookrelay/relay/event"
	"github.com/hookrelay/hookrelay/relay/transform"
)

func init() {
	caddy.RegisterModule(Relay{})
}

// Relay stores a request's events, one message per (event, destination),
// and answers the contract's 201 only once the queue acknowledged every
// one of them; if any cannot be stored it answers 503 and the sender's
// retry is safe (resends are deduplicated by event id). Delivery then
// happens in the background, per destination, with its credentials,
// body shape, signature and the route's retry schedule.
//
// After hook_normalize it relays the normalized events; on its own it
// relays the raw JSON body as one event of its topic.
type Relay struct {
	// Topic names the events of this route, such as "shipments/tracking".
	// Required, except in sync mode.
	Topic string `json:"topic,omitempty"`

	// Destinations receive every event of this route.
	Destinations []*Destination `json:"destinations,omitempty"`

	// Retry is the route's retry policy. Default: 1m 5m 10m 30m 1h 2h
	// 5h 10h 24h (the last step repeating) for up to 30 days, then dead
	// letter.
	Retry *RetryConfig `json:"retry,omitempty"`

	// MaxBody is the largest raw body accepted when no hook_normalize
	// precedes this handler (and in sync mode), in bytes. Default: 20 MB.
	MaxBody int64 `json:"max_body,omitempty"`

	// Mode is "async" (the default: store each event, answer 201, deliver
	// in the background with retries) or "sync" (DEUNA's dynamic
	// webhooks: forward the request to the single destination at once
	// and answer with its reply, shaped by the destination's
	// response_template or error_response_template). Sync mode stores
	// nothing, retries nothing and needs no queue: it does not start the
	// hookrelay app. It takes the raw JSON body, so it cannot follow
	// hook_normalize, and its topic is optional. Its answers are 200 with
	// the reply on a 2xx, the destination's status on a 4xx, 502 when the
	// destination fails (5xx, 3xx, connection error, a reply that is not
	// JSON or does not fit the template) and 504 when it times out.
	Mode string `json:"mode,omitempty"`

	// ResponseSecret is a Standard Webhooks secret ("whsec_<base64>")
	// that signs every sync-mode answer: webhook-id, webhook-timestamp
	// and webhook-signature over the response body. Use a placeholder
	// such as {env.TIP_RESPONSE_WHSEC}. Sync mode only. Default: answers
	// are not signed.
	ResponseSecret string `json:"response_secret,omitempty"`

	// AllowUnauthenticated (sync mode) forwards requests that no earlier
	// handler authenticated. Dangerous: a sync-mode hook_relay calls its
	// destination with the destination's credentials and signs the
	// answer, so on an open route anyone can have the merchant called.
	// Set it only when callers are authenticated in a way hook_relay
	// cannot see (forward_auth, client certificates, a private network).
	// Default: false, and a request is answered 401 unless hook_verify
	// verified its token or an authentication handler (basic_auth) set
	// {http.auth.user.id} before this handler.
	AllowUnauthenticated bool `json:"allow_unauthenticated,omitempty"`

	app        *App
	names      []string
	log        *zap.Logger
	sync       *syncRelay
	heldTokens bool // sync mode holds the shared OAuth token cache
}

// RetryConfig is a route's retry policy.
type RetryConfig struct {
	// Schedule is the delay after each failed attempt; the last step
	// repeats. A jitter of up to 10% is added. Default: the Falabella
	// schedule, 1m 5m 10m 30m 1h 2h 5h 10h 24h.
	Schedule []caddy.Duration `json:"schedule,omitempty"`

	// MaxAge is how long after it was first stored an event is retried;
	// then it is dead-lettered. Default: 30 days.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// On4xx is what happens on a 4xx answer other than 408, 410, 425 and
	// 429: "dead_letter" (default) or "retry".
	On4xx string `json:"on_4xx,omitempty"`
}

// Destination is one place the route's events are delivered to.
type Destination struct {
	// Name identifies the destination in logs, metrics, the admin API and
	// the queue: 1 to 64 of A-Z a-z 0-9 _ -. It must be unique across the
	// config and stable across reloads, since queued messages find their
	// destination by it. Default: derived from the URL's host and path.
	Name string `json:"name,omitempty"`

	// URL receives a POST per event.
	URL string `json:"url"`

	// Headers are added to every delivery. Values may use {env.*} and
	// {file.*} placeholders, resolved at load.
	Headers http.Header `json:"headers,omitempty"`

	// Params are added to the URL's query on every delivery. Values may
	// use {env.*} and {file.*} placeholders.
	Params url.Values `json:"params,omitempty"`

	// Timeout bounds one attempt, token fetch included. Default: 30s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// Secret is a Standard Webhooks signing secret ("whsec_<base64>");
	// when set, every delivery carries a webhook-signature. Use a
	// placeholder such as {env.ERP_WHSEC}.
	Secret string `json:"secret,omitempty"`

	// Auth adds credentials to every delivery.
	Auth *AuthConfig `json:"auth,omitempty"`

	// Template is a Go text/template (inline text) that reshapes the event
	// into the delivered JSON body. See the transform package for the
	// functions. It is checked at load over Sample.
	Template string `json:"template,omitempty"`

	// TemplateFile is a file holding the template; an alternative to
	// Template.
	TemplateFile string `json:"template_file,omitempty"`

	// Sample is a JSON file the template must render to valid JSON over
	// at load time (DEUNA's response_data). Default: a complete normalized
	// ave_tracking event. In sync mode it is a sample of the caller's
	// body instead, seen as .request when the response templates are
	// checked; default there: an empty object.
	Sample string `json:"sample,omitempty"`

	// Fields, when set, keeps only these dotted paths of the body
	// (DEUNA's fields).
	Fields []string `json:"fields,omitempty"`

	// CustomFields are more dotted paths kept with Fields (DEUNA's
	// custom_fields).
	CustomFields []string `json:"custom_fields,omitempty"`

	// ResponseTemplate (sync mode) is a Go text/template (inline text)
	// that turns the destination's 2xx JSON reply into the answer. It
	// sees the reply as .result, the caller's JSON body as .request and
	// the destination's status as .status, as in {{ .result.uuid }}; its
	// output must be JSON. Fields and CustomFields then apply to its
	// output. It is checked at load over ResponseSample (as .result) and
	// Sample (as .request). Default: the reply is passed through.
	ResponseTemplate string `json:"response_template,omitempty"`

	// ResponseTemplateFile is a file holding the response template; an
	// alternative to ResponseTemplate.
	ResponseTemplateFile string `json:"response_template_file,omitempty"`

	// ErrorResponseTemplate (sync mode) is a Go text/template (inline
	// text) rendered when the destination answers other than 2xx or
	// cannot be reached. It sees the destination's JSON error body as
	// .result (null when it sent none or not JSON), its status as
	// .status (0 when there is none), a short error text as .error
	// ("HTTP 422 Unprocessable Entity", "timeout", "unreachable",
	// "invalid JSON reply", ...) and the caller's body as .request. It
	// is checked at load over an unreachable destination (.result null,
	// .status 0) and over ErrorResponseSample when set. Default: a 4xx
	// JSON body is passed through with its status; anything else is
	// answered with the contract's error envelope.
	ErrorResponseTemplate string `json:"error_response_template,omitempty"`

	// ErrorResponseTemplateFile is a file holding the error response
	// template; an alternative to ErrorResponseTemplate.
	ErrorResponseTemplateFile string `json:"error_response_template_file,omitempty"`

	// ResponseSample (sync mode) is a JSON file with a sample reply of the
	// destination (DEUNA's response_data): the response template must
	// render it, as .result, to valid JSON at load, or the config is
	// refused. Required with a response template. In sync mode Sample,
	// when set, is a sample of the caller's body, seen as .request at
	// that check (default: an empty object).
	ResponseSample string `json:"response_sample,omitempty"`

	// ErrorResponseSample (sync mode) is a JSON file with a sample error
	// body of the destination, over which the error response template is
	// checked at load as a 422 answer. Default: none.
	ErrorResponseSample string `json:"error_response_sample,omitempty"`

	// Workers is how many deliveries to this destination run at once.
	// Default: 16.
	Workers int `json:"workers,omitempty"`

	// MaxPending is the most messages handed out and not yet acknowledged,
	// including those waiting for a short retry. Default: 1000.
	MaxPending int `json:"max_pending,omitempty"`
}

// AuthConfig is how deliveries to a destination are authorized.
type AuthConfig struct {
	// Type is "oauth" (a token fetched from TokenURL, cached until shortly
	// before it expires) or "api_key" (fixed Headers).
	Type string `json:"type"`

	// TokenURL is the login endpoint the token request is POSTed to.
	TokenURL string `json:"token_url,omitempty"`
	// LoginHeaders are sent with the token request (e.g. Authorization:
	// Basic ...). Values may use placeholders.
	LoginHeaders []KeyValue `json:"login_headers,omitempty"`
	// LoginParams are added to TokenURL's query.
	LoginParams []KeyValue `json:"login_params,omitempty"`
	// LoginBody is the token request's body.
	LoginBody []KeyValue `json:"login_body,omitempty"`
	// LoginBodyFormat is "form" or "json". Default: what a Content-Type
	// login header says, else form (as RFC 6749 requires).
	LoginBodyFormat string `json:"login_body_format,omitempty"`
	// TokenKey is the dotted path of the token in the response. Default:
	// access_token.
	TokenKey string `json:"token_key,omitempty"`
	// ExpiresKey is the dotted path of the lifetime in seconds. Default:
	// expires_in.
	ExpiresKey string `json:"expires_key,omitempty"`
	// TokenType prefixes the token in the Authorization header. Default:
	// Bearer.
	TokenType string `json:"token_type,omitempty"`
	// DefaultTTL is the lifetime of a token whose response gives none.
	// Default: 5m.
	DefaultTTL caddy.Duration `json:"default_ttl,omitempty"`
	// RefreshBefore is how long before expiry a token is replaced.
	// Default: 10% of its lifetime, at least 5s.
	RefreshBefore caddy.Duration `json:"refresh_before,omitempty"`

	// Headers are the api_key headers. Values may use placeholders.
	Headers []KeyValue `json:"headers,omitempty"`
}

// KeyValue is a name and a value; the value may be a secret placeholder.
type KeyValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// CaddyModule returns the Caddy module information.
func (Relay) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.hook_relay",
		New: func() caddy.Module { return new(Relay) },
	}
}

// Provision builds the destinations and registers them with the app.
func (h *Relay) Provision(ctx caddy.Context) error {
	h.log = ctx.Logger()
	if err := registerMetrics(ctx); err != nil {
		return err
	}
	maxBodySet := h.MaxBody != 0
	if h.MaxBody == 0 {
		h.MaxBody = DefaultMaxBody
	}
	if err := h.checkMode(); err != nil {
		return err
	}
	if h.Mode == ModeSync {
		// Sync mode stores nothing: asking for the app would start its queue.
		return h.provisionSync(ctx)
	}
	appVal, err := ctx.App("hookrelay")
	if err != nil {
		return err
	}
	h.app = appVal.(*App)
	if limit := h.app.engine.MaxEventSize(); limit > 0 && h.MaxBody > limit {
		// A raw body is stored as one message: one larger than the
		// queue's messages cannot be stored.
		if maxBodySet {
			return fmt.Errorf("max_body %d is larger than the queue can store in one message (%d bytes; on a NATS cluster, raise the servers' max_payload)", h.MaxBody, limit)
		}
		h.log.Warn("the queue stores at most this many bytes per event; larger events are answered 413",
			zap.Int64("limit", limit), zap.Int64("max_body", h.MaxBody))
	}
	policy, err := h.Retry.policy()
	if err != nil {
		return err
	}
	dests := make([]*relay.Destination, 0, len(h.Destinations))
	for _, dc := range h.Destinations {
		d, err := dc.build(h.app.engine.tokens, policy)
		if err != nil {
			return fmt.Errorf("hook_relay: destination %s: %w", dc.displayName(), err)
		}
		dests = append(dests, d)
		h.names = append(h.names, d.Name)
	}
	return h.app.register(dests)
}

// Validate checks the settings.
func (h *Relay) Validate() error {
	if err := h.checkMode(); err != nil {
		return err
	}
	if h.Mode == ModeSync {
		return nil
	}
	if h.Topic == "" {
		return errors.New("hook_relay: a topic is required")
	}
	if len(h.Destinations) == 0 {
		return errors.New("hook_relay: at least one 'to' destination is required")
	}
	return nil
}

func (rc *RetryConfig) policy() (relay.RetryPolicy, error) {
	var p relay.RetryPolicy
	if rc == nil {
		return p, nil
	}
	for _, d := range rc.Schedule {
		if d <= 0 {
			return p, errors.New("hook_relay: retry delays must be positive")
		}
		p.Schedule = append(p.Schedule, time.Duration(d))
	}
	if rc.MaxAge < 0 {
		return p, errors.New("hook_relay: retry max_age cannot be negative")
	}
	p.MaxAge = time.Duration(rc.MaxAge)
	switch rc.On4xx {
	case "", "dead_letter":
	case "retry":
		p.RetryOn4xx = true
	default:
		return p, fmt.Errorf("hook_relay: on_4xx must be dead_letter or retry, not %q", rc.On4xx)
	}
	return p, nil
}

// defaultName derives a destination name from its URL's host and port
// only: the path, query and userinfo can hold a credential (Slack's
// https://hooks.slack.com/services/T000/B000/<secret>), and the name
// reaches metric labels, logs, the admin API and the queue's subjects. A
// host is no secret (DNS and TLS SNI show it on the wire). The name is
// stable for a URL; two unnamed destinations on one host collide, and the
// config is refused until each gets a name. A URL without a host gives
// "destination".
func defaultName(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return relay.SanitizeName("")
	}
	return relay.SanitizeName(u.Host)
}

func (dc *Destination) displayName() string {
	if dc.Name != "" {
		return dc.Name
	}
	return defaultName(dc.URL)
}

// build turns the config into the engine's destination, resolving its
// secrets and checking its template.
func (dc *Destination) build(tokens *authcache.Cache, policy relay.RetryPolicy) (*relay.Destination, error) {
	d := &relay.Destination{
		Name:       dc.displayName(),
		URL:        dc.URL,
		Timeout:    time.Duration(dc.Timeout),
		Retry:      policy,
		Workers:    dc.Workers,
		MaxPending: dc.MaxPending,
	}
	if !relay.ValidName(d.Name) {
		return nil, fmt.Errorf("name %q: use 1 to 64 of A-Z a-z 0-9 _ -", d.Name)
	}
	u, err := url.Parse(dc.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("the URL must be absolute http:// or https://")
	}
	if len(dc.Headers) > 0 {
		d.Header = make(http.Header, len(dc.Headers))
		for k, vs := range dc.Headers {
			for _, v := range vs {
				d.Header.Add(k, resolveSecret(v))
			}
		}
	}
	if len(dc.Params) > 0 {
		d.Query = make(url.Values, len(dc.Params))
		for k, vs := range dc.Params {
			for _, v := range vs {
				d.Query.Add(k, resolveSecret(v))
			}
		}
	}
	if dc.Secret != "" {
		signer, err := relay.NewSigner(resolveSecret(dc.Secret))
		if err != nil {
			return nil, err
		}
		d.Signer = signer
	}
	if dc.Auth != nil {
		auth, err := dc.Auth.build(tokens)
		if err != nil {
			return nil, err
		}
		d.Auth = auth
	}
	tf, err := dc.transform()
	if err != nil {
		return nil, err
	}
	d.Transform = tf
	return d, nil
}

func pairs(kvs []KeyValue) []authcache.Pair {
	out := make([]authcache.Pair, len(kvs))
	for i, kv := range kvs {
		out[i] = authcache.Pair{Name: kv.Name, Value: resolveSecret(kv.Value)}
	}
	return out
}

func (ac *AuthConfig) build(tokens *authcache.Cache) (relay.Authorizer, error) {
	switch ac.Type {
	case "api_key":
		if len(ac.Headers) == 0 {
			return nil, errors.New("auth api_key needs at least one header")
		}
		for _, kv := range ac.Headers {
			if kv.Name == "" || strings.ContainsAny(kv.Name, " \t\r\n:") {
				return nil, fmt.Errorf("auth api_key: invalid header name %q", kv.Name)
			}
		}
		return authcache.APIKey(pairs(ac.Headers)), nil
	case "oauth":
		return tokens.OAuth(authcache.OAuthConfig{
			TokenURL:      resolveSecret(ac.TokenURL),
			LoginHeaders:  pairs(ac.LoginHeaders),
			LoginParams:   pairs(ac.LoginParams),
			LoginBody:     pairs(ac.LoginBody),
			BodyFormat:    ac.LoginBodyFormat,
			TokenKey:      ac.TokenKey,
			ExpiresKey:    ac.ExpiresKey,
			TokenType:     ac.TokenType,
			DefaultTTL:    time.Duration(ac.DefaultTTL),
			RefreshBefore: time.Duration(ac.RefreshBefore),
		})
	default:
		return nil, fmt.Errorf("auth type must be oauth or api_key, not %q", ac.Type)
	}
}

// transform builds the destination's body reshaping, checked over its
// sample, or nil when the event is delivered as it is.
func (dc *Destination) transform() (func([]byte) ([]byte, error), error) {
	text, name := dc.Template, "template"
	if dc.TemplateFile != "" {
		if text != "" {
			return nil, errors.New("use template or template_file, not both")
		}
		b, err := os.ReadFile(dc.TemplateFile)
		if err != nil {
			return nil, fmt.Errorf("reading template: %w", err)
		}
		text, name = string(b), dc.TemplateFile
	}
	fields := append(append([]string(nil), dc.Fields...), dc.CustomFields...)
	if text == "" && len(fields) == 0 {
		return nil, nil
	}
	var tmpl *transform.Template
	if text != "" {
		var err error
		if tmpl, err = transform.Parse(name, text); err != nil {
			return nil, err
		}
	}
	fn := func(ev []byte) ([]byte, error) {
		body := ev
		if tmpl != nil {
			data, err := transform.DecodeJSON(ev)
			if err != nil {
				return nil, err
			}
			if body, err = tmpl.Render(data); err != nil {
				return nil, err
			}
		}
		if len(fields) > 0 {
			return transform.Select(body, fields)
		}
		return body, nil
	}
	sample, err := dc.sample()
	if err != nil {
		return nil, err
	}
	if _, err := fn(sample); err != nil {
		return nil, fmt.Errorf("checking the template over its sample: %w", err)
	}
	return fn, nil
}

// sample is the JSON a template is checked over at load.
func (dc *Destination) sample() ([]byte, error) {
	if dc.Sample != "" {
		b, err := os.ReadFile(dc.Sample)
		if err != nil {
			return nil, fmt.Errorf("reading sample: %w", err)
		}
		if !json.Valid(b) {
			return nil, fmt.Errorf("sample %s is not valid JSON", dc.Sample)
		}
		return b, nil
	}
	t := ave.Sample()
	ev, err := t.Event("shipments/tracking", time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))
	if err != nil {
		return nil, err
	}
	return json.Marshal(ev)
}

// lastStoreWarn is when a failure to store was last logged at Warn.
var lastStoreWarn atomic.Int64

// ServeHTTP stores the request's events and answers once they are stored.
func (h *Relay) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.sync != nil {
		return h.serveSync(w, r)
	}
	var events []event.Event
	in := ingressFrom(r)
	if in != nil {
		evs, err := in.events(h.Topic)
		if err != nil {
			return caddyhttp.Error(http.StatusInternalServerError, err)
		}
		events = evs
	} else {
		body, ok := readBody(w, r, h.MaxBody)
		if !ok {
			return nil
		}
		if !json.Valid(body) {
			observeIngress(r, http.StatusBadRequest)
			writeError(w, http.StatusBadRequest, "The request body is not valid JSON.")
			return nil
		}
		events = []event.Event{{
			ID:         event.NewID("raw", h.Topic, string(body)),
			Topic:      h.Topic,
			Source:     "http",
			ReceivedAt: time.Now().UTC(),
			Data:       body,
		}}
	}
	// Finish storing even if the sender hangs up: what is published must
	// be waited for, and a failure then is the queue's, not the client's.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	if err := h.app.engine.Enqueue(ctx, events, h.names); err != nil {
		var tooLarge *relay.TooLargeError
		if errors.As(err, &tooLarge) {
			// Nothing of the request was stored; a resend gets the same.
			h.log.Debug("event too large for the queue", zap.Error(err))
			observeIngress(r, http.StatusRequestEntityTooLarge)
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
				"The event takes %d bytes after normalization, more than the limit of %d bytes for one stored event.", tooLarge.Size, tooLarge.Limit))
			if in != nil {
				in.answered = true
			}
			return nil
		}
		// Warn at most every 10s: during an outage every request fails
		// the same way, and senders must not be able to flood the log.
		level := zap.DebugLevel
		if now := time.Now().UnixNano(); now-lastStoreWarn.Load() > int64(10*time.Second) {
			lastStoreWarn.Store(now)
			level = zap.WarnLevel
		}
		if ce := h.log.Check(level, "events not stored; answering 503 so the sender retries"); ce != nil {
			ce.Write(zap.Error(err), zap.Int("events", len(events)))
		}
		observeIngress(r, http.StatusServiceUnavailable)
		writeError(w, http.StatusServiceUnavailable, "The event could not be stored. Please retry later.")
		if in != nil {
			in.answered = true
		}
		return nil
	}
	observeEnqueued(len(events) * len(h.names))
	if in != nil {
		in.answered = true
	}
	observeIngress(r, http.StatusCreated)
	writeSuccess(w)
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Relay)(nil)
	_ caddy.Validator             = (*Relay)(nil)
	_ caddyhttp.MiddlewareHandler = (*Relay)(nil)
)
