package destination

import (
	"errors"
	"fmt"
	"net/url"

	"golang.org/x/net/http/httpguts"

	"github.com/hookrelay/hookrelay/relay"
)

// The rules a destination config is held to. Each lives here once; the
// Caddyfile parser and the Caddy glue call these functions and wrap their
// errors, and so will the webhook API.
var (
	// ErrName: a destination name is 1 to 64 of A-Z a-z 0-9 _ - (see
	// relay.ValidName), since it is a NATS subject token and a consumer
	// name.
	ErrName = errors.New("use 1 to 64 of A-Z a-z 0-9 _ -")
	// ErrDuplicateName: two destinations of one config have one name.
	ErrDuplicateName = errors.New("give each destination a distinct name")
	// ErrURL: a destination URL is absolute http:// or https:// with a
	// host.
	ErrURL = errors.New("the URL must be absolute http:// or https://")
	// ErrOn4xx: a retry policy's on_4xx is dead_letter or retry.
	ErrOn4xx = errors.New("on_4xx must be dead_letter or retry")
	// ErrAuthType: an auth block is of type oauth or api_key.
	ErrAuthType = errors.New("auth type must be oauth or api_key")
	// ErrHeaderName: a header name is an HTTP token (RFC 9110).
	ErrHeaderName = errors.New("invalid header name")
)

// The values of RetryConfig.On4xx.
const (
	On4xxDeadLetter = "dead_letter"
	On4xxRetry      = "retry"
)

// The values of AuthConfig.Type.
const (
	AuthOAuth  = "oauth"
	AuthAPIKey = "api_key"
)

// CheckName checks a destination name.
func CheckName(name string) error {
	if !relay.ValidName(name) {
		return fmt.Errorf("name %q: %w", name, ErrName)
	}
	return nil
}

// CheckNames checks that no name is used twice.
func CheckNames(names []string) error {
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if seen[n] {
			return fmt.Errorf("destination name %q is used twice; %w", n, ErrDuplicateName)
		}
		seen[n] = true
	}
	return nil
}

// CheckURL checks a destination URL. The error does not repeat the URL:
// its path or query may hold a credential.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ErrURL
	}
	return nil
}

// CheckOn4xx checks a retry policy's on_4xx; "" is the default,
// dead_letter.
func CheckOn4xx(v string) error {
	switch v {
	case "", On4xxDeadLetter, On4xxRetry:
		return nil
	}
	return fmt.Errorf("%w, not %q", ErrOn4xx, v)
}

// CheckAuthType checks an auth block's type.
func CheckAuthType(t string) error {
	switch t {
	case AuthOAuth, AuthAPIKey:
		return nil
	}
	return fmt.Errorf("%w, not %q", ErrAuthType, t)
}

// CheckHeaderName checks the name of a header the destination sends.
func CheckHeaderName(name string) error {
	if !httpguts.ValidHeaderFieldName(name) {
		return fmt.Errorf("%w %q", ErrHeaderName, name)
	}
	return nil
}

// DefaultName derives a destination name from its URL's host and port
// only: the path, query and userinfo can hold a credential (Slack's
// https://hooks.slack.com/services/T000/B000/<secret>), and the name
// reaches metric labels, logs, the admin API and the queue's subjects. A
// host is no secret (DNS and TLS SNI show it on the wire). The name is
// stable for a URL; two unnamed destinations on one host collide, and the
// config is refused until each gets a name. A URL without a host gives
// "destination".
func DefaultName(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return relay.SanitizeName("")
	}
	return relay.SanitizeName(u.Host)
}
