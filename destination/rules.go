package destination

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/hookrelay/hookrelay/relay"
)

// The rules of a destination's settings live once. Those of the engine's
// destination (its name, URL, headers, the non-negative numbers and the
// retry delays) are relay's: relay.CheckName, relay.CheckURL,
// relay.CheckHeader and relay.RetryPolicy.Validate, with
// relay.ErrInvalidName, relay.ErrInvalidURL, relay.ErrInvalidHeader,
// relay.ErrNegative and relay.ErrDuplicateName. Those of the config alone
// are here. The Caddyfile parser and the Caddy glue wrap these errors, and
// so will the webhook API.
var (
	// ErrOn4xx: a retry policy's on_4xx is dead_letter or retry.
	ErrOn4xx = errors.New("on_4xx must be dead_letter or retry")
	// ErrAuthType: an auth block is of type oauth or api_key.
	ErrAuthType = errors.New("auth type must be oauth or api_key")
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

// CheckNames checks that no name is used twice; its error wraps
// relay.ErrDuplicateName.
func CheckNames(names []string) error {
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if seen[n] {
			return fmt.Errorf("destination %q: %w; give each destination a distinct name", n, relay.ErrDuplicateName)
		}
		seen[n] = true
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
