package registry

import (
	"errors"
	"net/http"
	"time"

	"github.com/hookrelay/hookrelay/authcache"
	"github.com/hookrelay/hookrelay/destination"
	"github.com/hookrelay/hookrelay/netguard"
	"github.com/hookrelay/hookrelay/relay"
)

// Settings are the operator's rules for registered webhooks; a config
// reload may change them (Registry.Configure).
type Settings struct {
	// Sealer seals and opens credentials. Required.
	Sealer *Sealer
	// Guard refuses internal addresses at registration (literal IPs and
	// local names) and Client refuses them at every connection.
	Guard *netguard.Guard
	// Client sends deliveries and token requests; it must dial through
	// Guard. Required.
	Client *http.Client
	// Tokens caches OAuth tokens. Required.
	Tokens *authcache.Cache
	// Retry is a webhook's policy unless it sets its own schedule or max
	// age.
	Retry relay.RetryPolicy
	// MinRetryDelay is the shortest step a webhook's schedule may have;
	// MaxRetryAge the longest max age (0: no bound).
	MinRetryDelay time.Duration
	MaxRetryAge   time.Duration
	// Timeout bounds one attempt; Workers and MaxPending are per webhook.
	Timeout    time.Duration
	Workers    int
	MaxPending int
	// Lanes is how many lanes a webhook registered with an order_by
	// spreads its keys over; 0 means DefaultLanes.
	Lanes int
	// MaxPerTenant bounds a tenant's webhooks; 0 means 1000.
	MaxPerTenant int
	// APIVersion is stamped on webhooks created (the seed's api_version).
	APIVersion string
	// RotationGrace is how long a rotated-out signing secret keeps
	// signing; 0 means 24h.
	RotationGrace time.Duration
	// AllowHTTP accepts http:// addresses. For tests and private networks;
	// the seed requires https.
	AllowHTTP bool
}

// Defaults of Settings.
const (
	DefaultMaxPerTenant  = 1000
	DefaultAPIVersion    = "1.0.9"
	DefaultRotationGrace = 24 * time.Hour
	DefaultWorkers       = 4
	DefaultMaxPending    = 200
	DefaultMinRetryDelay = 10 * time.Second
	// DefaultLanes is fewer than a configured destination's: a tenant's
	// ordered webhook costs the queue a consumer per lane while it has
	// events.
	DefaultLanes = 8
)

func (s Settings) withDefaults() Settings {
	if s.MaxPerTenant == 0 {
		s.MaxPerTenant = DefaultMaxPerTenant
	}
	if s.APIVersion == "" {
		s.APIVersion = DefaultAPIVersion
	}
	if s.RotationGrace == 0 {
		s.RotationGrace = DefaultRotationGrace
	}
	if s.Workers == 0 {
		s.Workers = DefaultWorkers
	}
	if s.MaxPending == 0 {
		s.MaxPending = DefaultMaxPending
	}
	if s.Lanes == 0 {
		s.Lanes = DefaultLanes
	}
	return s
}

func (s Settings) validate() error {
	switch {
	case s.Sealer == nil:
		return errors.New("webhook registry: a seal key is required to keep credentials")
	case s.Client == nil:
		return errors.New("webhook registry: no guarded client")
	case s.Tokens == nil:
		return errors.New("webhook registry: no token cache")
	}
	return s.Retry.Validate()
}

// policy is a webhook's retry policy: its own schedule and max age over
// the settings' defaults.
func (s *Settings) policy(w *Webhook) (relay.RetryPolicy, error) {
	p := s.Retry
	if w.Retry == nil {
		return p, nil
	}
	own, err := w.Retry.Policy()
	if err != nil {
		return p, err
	}
	if len(own.Schedule) > 0 {
		p.Schedule = own.Schedule
	}
	if own.MaxAge > 0 {
		p.MaxAge = own.MaxAge
	}
	if w.Retry.On4xx != "" {
		p.RetryOn4xx = own.RetryOn4xx
	}
	return p, nil
}

// destination builds the engine's destination of a webhook.
func (s *Settings) destination(w *Webhook, sec *Secrets, now time.Time) (*relay.Destination, error) {
	dc, err := requestConfig(relay.WebhookName(w.ID), w.Address, sec)
	if err != nil {
		return nil, err
	}
	dc.Timeout = destination.Duration(s.Timeout)
	dc.Workers, dc.MaxPending = s.Workers, s.MaxPending
	if w.OrderBy != "" {
		dc.OrderBy, dc.Lanes = w.OrderBy, s.Lanes
	}
	policy, err := s.policy(w)
	if err != nil {
		return nil, err
	}
	d, err := dc.Build(destination.Env{Tokens: s.Tokens, Retry: policy, Client: s.Client})
	if err != nil {
		return nil, err
	}
	if sec.PreviousSecret != "" && now.Before(w.PreviousSecretUntil) && d.Signer != nil {
		if d.Signer, err = d.Signer.WithPrevious(sec.PreviousSecret, w.PreviousSecretUntil); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// requestConfig is how a registered webhook's requests are made: its
// address, signing secret, custom headers and params, and authorization.
func requestConfig(name, address string, sec *Secrets) (destination.Config, error) {
	dc := destination.Config{
		Name:   name,
		URL:    address,
		Secret: sec.Secret,
	}
	if len(sec.Headers) > 0 {
		dc.Headers = http.Header{}
		for _, p := range sec.Headers {
			dc.Headers.Add(p.Name, p.Value)
		}
	}
	if len(sec.Params) > 0 {
		dc.Params = map[string][]string{}
		for _, p := range sec.Params {
			dc.Params[p.Name] = append(dc.Params[p.Name], p.Value)
		}
	}
	if a := sec.Authorization; a != nil {
		switch a.AuthType {
		case AuthAPIKey:
			dc.Auth = &destination.AuthConfig{Type: destination.AuthAPIKey, Headers: a.Headers.keyValues()}
		case AuthOAuth:
			ac := &destination.AuthConfig{
				Type:         destination.AuthOAuth,
				TokenURL:     a.AddressLogin,
				LoginHeaders: a.Headers.keyValues(),
				LoginParams:  a.Params.keyValues(),
				TokenKey:     a.TokenKey,
				ExpiresKey:   a.ExpiresKey,
				TokenType:    a.TokenType,
			}
			form, err := loginBody(a)
			if err != nil {
				return dc, err
			}
			if formLogin(a) {
				ac.LoginBody, ac.LoginBodyFormat = form, "form"
			} else if len(a.Body) > 0 && string(a.Body) != "null" {
				ac.LoginJSON = a.Body
			}
			dc.Auth = ac
		}
	}
	return dc, nil
}
