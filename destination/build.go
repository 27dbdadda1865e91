package destination

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/hookrelay/hookrelay/authcache"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/transform"
)

// Env is what a destination is built with beyond its own config.
type Env struct {
	// Tokens is the shared OAuth token cache; auth oauth needs it.
	Tokens *authcache.Cache

	// Retry is the destination's retry policy (its route's).
	Retry relay.RetryPolicy

	// Sample is the event JSON that a template is checked over when the
	// destination sets no Sample of its own. Nil: such a template is only
	// parsed.
	Sample []byte

	// Client, when set, sends the destination's deliveries and its OAuth
	// token requests (a webhook registered over the API uses a client
	// whose dialer refuses internal addresses). Nil: the engine's client
	// and the token cache's.
	Client *http.Client

	// SampleNote, when set, is added to the error of a template that
	// fails over Sample, to say what that sample was and how to set
	// another.
	SampleNote string
}

// Policy is the retry policy the config describes, checked.
func (rc *RetryConfig) Policy() (relay.RetryPolicy, error) {
	var p relay.RetryPolicy
	if rc == nil {
		return p, nil
	}
	for _, d := range rc.Schedule {
		p.Schedule = append(p.Schedule, time.Duration(d))
	}
	p.MaxAge = time.Duration(rc.MaxAge)
	if err := CheckOn4xx(rc.On4xx); err != nil {
		return p, err
	}
	p.RetryOn4xx = rc.On4xx == On4xxRetry
	return p, p.Validate()
}

// Build checks the config against every rule (relay's rules of a
// destination, then the config's own) and turns it into the engine's
// destination, which passes relay.Destination.Validate: credentials built, template loaded and checked
// over the sample, fields applied. Placeholders must be resolved before;
// Build uses every value as it is.
func (c Config) Build(env Env) (*relay.Destination, error) {
	d := &relay.Destination{
		Name:       c.DisplayName(),
		URL:        c.URL,
		Timeout:    time.Duration(c.Timeout),
		Retry:      env.Retry,
		Workers:    c.Workers,
		MaxPending: c.MaxPending,
		Client:     env.Client,
		OrderBy:    c.OrderBy,
		Lanes:      c.Lanes,
	}
	if err := relay.CheckName(d.Name); err != nil {
		return nil, err
	}
	if err := relay.CheckURL(c.URL); err != nil {
		return nil, err
	}
	if c.Timeout < 0 || c.Workers < 0 || c.MaxPending < 0 {
		return nil, relay.ErrNegative
	}
	if _, err := relay.ParseOrderBy(c.OrderBy); err != nil {
		return nil, err
	}
	if c.Lanes < 0 || c.Lanes > relay.MaxLanes {
		return nil, fmt.Errorf("lanes must be between 1 and %d: %w", relay.MaxLanes, relay.ErrInvalidOrder)
	}
	if c.Lanes > 0 && c.OrderBy == "" {
		return nil, fmt.Errorf("lanes needs order_by: %w", relay.ErrInvalidOrder)
	}
	if len(c.Headers) > 0 {
		d.Header = make(http.Header, len(c.Headers))
		for k, vs := range c.Headers {
			for _, v := range vs {
				if err := relay.CheckHeader(k, v); err != nil {
					return nil, err
				}
				d.Header.Add(k, v)
			}
		}
	}
	if len(c.Params) > 0 {
		d.Query = make(url.Values, len(c.Params))
		for k, vs := range c.Params {
			d.Query[k] = append([]string(nil), vs...)
		}
	}
	if c.Secret != "" {
		signer, err := relay.NewSigner(c.Secret)
		if err != nil {
			return nil, err
		}
		d.Signer = signer
	}
	if c.Auth != nil {
		auth, err := c.Auth.build(env.Tokens, env.Client)
		if err != nil {
			return nil, err
		}
		d.Auth = auth
	}
	tf, err := c.transform(env)
	if err != nil {
		return nil, err
	}
	d.Transform = tf
	return d, nil
}

// Build checks the auth config and returns its authorizer; oauth tokens
// are cached in tokens.
func (ac *AuthConfig) Build(tokens *authcache.Cache) (relay.Authorizer, error) {
	return ac.build(tokens, nil)
}

// build is Build with the client that sends token requests (nil: the
// cache's).
func (ac *AuthConfig) build(tokens *authcache.Cache, client *http.Client) (relay.Authorizer, error) {
	if err := CheckAuthType(ac.Type); err != nil {
		return nil, err
	}
	if ac.Type == AuthAPIKey {
		if len(ac.Headers) == 0 {
			return nil, errors.New("auth api_key needs at least one header")
		}
		for _, kv := range ac.Headers {
			if err := relay.CheckHeader(kv.Name, kv.Value); err != nil {
				return nil, fmt.Errorf("auth api_key: %w", err)
			}
		}
		return authcache.APIKey(pairs(ac.Headers)), nil
	}
	if tokens == nil {
		return nil, errors.New("auth oauth: no token cache to keep its tokens in")
	}
	for _, kv := range ac.LoginHeaders {
		if err := relay.CheckHeader(kv.Name, kv.Value); err != nil {
			return nil, fmt.Errorf("auth oauth login_header: %w", err)
		}
	}
	return tokens.OAuth(authcache.OAuthConfig{
		TokenURL:      ac.TokenURL,
		LoginHeaders:  pairs(ac.LoginHeaders),
		LoginParams:   pairs(ac.LoginParams),
		LoginBody:     pairs(ac.LoginBody),
		JSONBody:      ac.LoginJSON,
		Client:        client,
		BodyFormat:    ac.LoginBodyFormat,
		TokenKey:      ac.TokenKey,
		ExpiresKey:    ac.ExpiresKey,
		TokenType:     ac.TokenType,
		DefaultTTL:    time.Duration(ac.DefaultTTL),
		RefreshBefore: time.Duration(ac.RefreshBefore),
	})
}

func pairs(kvs []KeyValue) []authcache.Pair {
	out := make([]authcache.Pair, len(kvs))
	for i, kv := range kvs {
		out[i] = authcache.Pair{Name: kv.Name, Value: kv.Value}
	}
	return out
}

// transform builds the destination's body reshaping, checked over its
// sample, or nil when the event is delivered as it is.
func (c Config) transform(env Env) (func([]byte) ([]byte, error), error) {
	tmpl, err := LoadTemplate("template", c.Template, c.TemplateFile)
	if err != nil {
		return nil, err
	}
	fields := Paths(c.Fields, c.CustomFields)
	if tmpl == nil && len(fields) == 0 {
		return nil, nil
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
	sample, note := env.Sample, env.SampleNote
	if c.Sample != "" {
		if sample, err = ReadSample("sample", c.Sample); err != nil {
			return nil, err
		}
		note = ""
	}
	if sample == nil {
		return fn, nil
	}
	if _, err := fn(sample); err != nil {
		if note != "" {
			return nil, fmt.Errorf("checking the template over its sample: %w (%s)", err, note)
		}
		return nil, fmt.Errorf("checking the template over its sample: %w", err)
	}
	return fn, nil
}

// LoadTemplate parses an inline template, named after its option, or a
// template file, named after its path; nil when neither is set.
func LoadTemplate(option, inline, file string) (*transform.Template, error) {
	text, name := inline, option
	if file != "" {
		if inline != "" {
			return nil, fmt.Errorf("use %s or %s_file, not both", option, option)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", option, err)
		}
		text, name = string(b), file
	}
	if text == "" {
		return nil, nil
	}
	return transform.Parse(name, text)
}

// ReadSample reads a JSON sample file, set by option, and checks that it
// is JSON.
func ReadSample(option, file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", option, err)
	}
	if _, err := transform.DecodeJSON(b); err != nil {
		return nil, fmt.Errorf("%s %s is not valid JSON: %v", option, file, err)
	}
	return b, nil
}

// Paths is the selection of the fields and custom_fields options: the dotted
// paths kept of a body, fields first; nil keeps the whole body.
func Paths(fields, customFields []string) []string {
	if len(fields)+len(customFields) == 0 {
		return nil
	}
	return append(append(make([]string, 0, len(fields)+len(customFields)), fields...), customFields...)
}
