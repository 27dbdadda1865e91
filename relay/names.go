package relay

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// The rules a destination's settings follow. Each is checked here, once;
// the Caddy glue and the registry wrap these errors.
var (
	// ErrInvalidName: a destination name is 1 to 64 of A-Z a-z 0-9 _ -.
	ErrInvalidName = errors.New("use 1 to 64 of A-Z a-z 0-9 _ -")
	// ErrInvalidURL: a destination URL is absolute http or https.
	ErrInvalidURL = errors.New("the URL must be absolute http(s), with a host")
	// ErrDuplicateName: two destinations of one configuration share a name.
	ErrDuplicateName = errors.New("the destination name is used twice")
	// ErrInvalidHeader: a header name is not an HTTP token, or a value
	// holds a line break or other control character.
	ErrInvalidHeader = errors.New("invalid header")
	// ErrNegative: timeouts, workers, pending limits and retry delays
	// cannot be negative (retry delays not zero either).
	ErrNegative = errors.New("timeouts, workers, max pending and retry delays cannot be negative, and retry delays not zero")
)

// CheckName returns an error wrapping ErrInvalidName unless s can name a
// destination (see ValidName).
func CheckName(s string) error {
	if !ValidName(s) {
		return fmt.Errorf("invalid destination name %q: %w", s, ErrInvalidName)
	}
	return nil
}

// CheckURL returns an error wrapping ErrInvalidURL unless s is an
// absolute http(s) URL with a host.
func CheckURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ErrInvalidURL
	}
	return nil
}

// CheckHeader returns an error wrapping ErrInvalidHeader unless name is a
// valid header field name and value a valid field value.
func CheckHeader(name, value string) error {
	if !httpguts.ValidHeaderFieldName(name) {
		return fmt.Errorf("%w name %q", ErrInvalidHeader, name)
	}
	if !httpguts.ValidHeaderFieldValue(value) {
		return fmt.Errorf("%w value for %q: it holds a control character", ErrInvalidHeader, name)
	}
	return nil
}

// ValidName reports whether s can name a destination: 1 to 64 characters
// of [A-Za-z0-9_-], which keeps it a single NATS subject token and a valid
// consumer name.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// SanitizeName turns any string into a valid destination name.
func SanitizeName(s string) string {
	b := make([]byte, 0, len(s))
	lastUnderscore := false
	for i := 0; i < len(s) && len(b) < 64; i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' {
			b = append(b, c)
			lastUnderscore = false
		} else if !lastUnderscore && len(b) > 0 {
			b = append(b, '_')
			lastUnderscore = true
		}
	}
	out := strings.TrimRight(string(b), "_")
	if out == "" {
		return "destination"
	}
	return out
}

// webhookPrefix starts the names of webhooks registered over the API
// (WebhookName); a configuration's destinations may not use such names.
const webhookPrefix = "wh-"

// WebhookName is the destination name of the registered webhook id:
// "wh-<id>", its subject, consumer and metrics label.
func WebhookName(id uint64) string { return webhookPrefix + strconv.FormatUint(id, 10) }

// WebhookID returns the id of a registered webhook's destination name,
// and false for any other name.
func WebhookID(name string) (uint64, bool) {
	rest, ok := strings.CutPrefix(name, webhookPrefix)
	if !ok || rest == "" || rest[0] == '0' {
		return 0, false
	}
	id, err := strconv.ParseUint(rest, 10, 64)
	return id, err == nil
}

// WebhooksLabel is the destination label under which metrics count the
// registered webhooks together; no configured destination may take it.
const WebhooksLabel = "webhooks"

// ErrReservedName is returned for a configuration's destination whose
// name is one of registered webhooks' (wh-<number>) or WebhooksLabel.
var ErrReservedName = errors.New(`"webhooks" and names of the form "wh-<number>" are reserved for webhooks registered over the API`)
