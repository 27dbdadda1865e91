// Package destination holds the configuration of one delivery destination,
// in the JSON form the Caddy config and the webhook API share, its rules,
// and the one constructor that turns it into the engine's validated
// relay.Destination. It is free of Caddy: placeholders ({env.*},
// {file.*}) are resolved by the caller, on a copy, before Build.
package destination

import (
	"encoding/json"
	"net/http"
	"net/url"
)

// Config is one place events are delivered to.
type Config struct {
	// Name identifies the destination in logs, metrics, the admin API and
	// the queue: 1 to 64 of A-Z a-z 0-9 _ -. It must be unique across the
	// config and stable across reloads, since queued messages find their
	// destination by it. Default: derived from the URL's host and port
	// (see DefaultName).
	Name string `json:"name,omitempty"`

	// URL receives a POST per event. It must be absolute http:// or
	// https://. Required.
	URL string `json:"url"`

	// Headers are added to every delivery. Values may use {env.*} and
	// {file.*} placeholders, resolved at load. Default: none.
	Headers http.Header `json:"headers,omitempty"`

	// Params are added to the URL's query on every delivery. Values may
	// use {env.*} and {file.*} placeholders. Default: none.
	Params url.Values `json:"params,omitempty"`

	// Timeout bounds one attempt, token fetch included. Default: 30s.
	Timeout Duration `json:"timeout,omitempty"`

	// Secret is a Standard Webhooks signing secret ("whsec_<base64>");
	// when set, every delivery carries a webhook-signature. Use a
	// placeholder such as {env.ERP_WHSEC}. Default: deliveries are not
	// signed.
	Secret string `json:"secret,omitempty"`

	// Auth adds credentials to every delivery. Default: none.
	Auth *AuthConfig `json:"auth,omitempty"`

	// Template is a Go text/template (inline text) that reshapes the event
	// into the delivered JSON body. See the transform package for the
	// functions. It is checked at load over Sample. Default: the event is
	// delivered as it is.
	Template string `json:"template,omitempty"`

	// TemplateFile is a file holding the template; an alternative to
	// Template. Default: none.
	TemplateFile string `json:"template_file,omitempty"`

	// Sample is a JSON file of an event that Template and Fields must
	// render to valid JSON over at load, or the
	// config is refused. Default: the sample the route gives (for a route
	// whose events hook_normalize ave_tracking normalized, a complete
	// normalized ave_tracking event); a route of raw JSON bodies should
	// set it, since its events are the body as .data.
	Sample string `json:"sample,omitempty"`

	// Fields, when set, keeps only these dotted paths of the body
	// Default: the whole body.
	Fields []string `json:"fields,omitempty"`

	// CustomFields are more dotted paths kept with Fields. Default:
	// none.
	CustomFields []string `json:"custom_fields,omitempty"`

	// Workers is how many deliveries to this destination run at once.
	// Default: 16.
	Workers int `json:"workers,omitempty"`

	// MaxPending is the most messages handed out and not yet acknowledged,
	// including those waiting for a short retry. Default: 1000.
	MaxPending int `json:"max_pending,omitempty"`

	// OrderBy delivers the events that share the value at this dotted
	// path of the event (data.shipment_id, data.orderId) one at a time,
	// in the order they were stored; a failing event holds back only the
	// later events of its lane. Events without the value share lane 0.
	// See docs/ordering.md. Default: unordered, parallel delivery.
	OrderBy string `json:"order_by,omitempty"`

	// Lanes is how many lanes an ordered destination spreads its keys
	// over, 1 to 1024; each delivers one event at a time. Default: 32.
	Lanes int `json:"lanes,omitempty"`
}

// AuthConfig is how deliveries to a destination are authorized.
type AuthConfig struct {
	// Type is "oauth" (a token fetched from TokenURL, cached until shortly
	// before it expires) or "api_key" (fixed Headers). Required.
	Type string `json:"type"`

	// TokenURL is the login endpoint the token request is POSTed to.
	// Required for oauth.
	TokenURL string `json:"token_url,omitempty"`
	// LoginHeaders are sent with the token request (e.g. Authorization:
	// Basic ...). Values may use placeholders. Default: none.
	LoginHeaders []KeyValue `json:"login_headers,omitempty"`
	// LoginParams are added to TokenURL's query. Default: none.
	LoginParams []KeyValue `json:"login_params,omitempty"`
	// LoginBody is the token request's body. Default: empty.
	LoginBody []KeyValue `json:"login_body,omitempty"`
	// LoginJSON is the token request's body as a JSON object, sent as it
	// is, whose values may be numbers or nested (a Ventiapp
	// authorization's body); an alternative to LoginBody. Its values are
	// secrets. Default: none.
	LoginJSON json.RawMessage `json:"login_json,omitempty"`
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
	DefaultTTL Duration `json:"default_ttl,omitempty"`
	// RefreshBefore is how long before expiry a token is replaced.
	// Default: 10% of its lifetime, at least 5s.
	RefreshBefore Duration `json:"refresh_before,omitempty"`

	// Headers are the api_key headers, at least one. Values may use
	// placeholders.
	Headers []KeyValue `json:"headers,omitempty"`
}

// KeyValue is a name and a value; the value may be a secret placeholder.
type KeyValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// RetryConfig is a route's retry policy.
type RetryConfig struct {
	// Schedule is the delay after each failed attempt; the last step
	// repeats. A jitter of up to 10% is added. Default:
	// 1m 5m 10m 30m 1h 2h 5h 10h 24h.
	Schedule []Duration `json:"schedule,omitempty"`

	// MaxAge is how long after it was first stored an event is retried;
	// then it is dead-lettered. Default: 30 days.
	MaxAge Duration `json:"max_age,omitempty"`

	// On4xx is what happens on a 4xx answer other than 408, 410, 425 and
	// 429: "dead_letter" (default) or "retry".
	On4xx string `json:"on_4xx,omitempty"`
}

// DisplayName is the destination's name: Name, or the one derived from
// its URL.
func (c *Config) DisplayName() string {
	if c.Name != "" {
		return c.Name
	}
	return DefaultName(c.URL)
}
