// Package authcache provides the credentials that hookrelay puts on outbound webhook deliveries.
//
// Two kinds of Authorizer exist:
//
//   - OAuth: a token obtained by POSTing to a token endpoint with configured headers, URL params and
//     body (a login endpoint of any shape, which standard OAuth 2.0 client-credentials servers
//     also satisfy with the defaults), cached in a shared Cache until shortly before it expires;
//   - APIKey: a fixed set of headers put on every delivery.
//
// A Cache is meant to be created once by a long-lived owner (the hookrelay app) and shared by every
// destination and every config generation; OAuth values are cheap and are created per configuration.
//
// Secrets (login header values, login body and param values, tokens, API key values) never appear
// in an error, in a String or GoString output, or in Stats.
package authcache

import (
	"context"
	"net/http"
	"net/textproto"
	"strings"
)

// Pair is one name/value item of a configuration list: a header, a URL param or a body field.
// Its String and GoString methods print the name only, because values are often secrets.
type Pair struct {
	Name, Value string
}

// String returns the name followed by a redacted value.
func (p Pair) String() string { return p.Name + "=" + redacted }

// GoString is like String so that %#v does not print the value either.
func (p Pair) GoString() string { return "authcache.Pair{" + p.String() + "}" }

const redacted = "REDACTED"

// Authorizer puts credentials on outbound delivery requests. Implementations are safe for
// concurrent use.
type Authorizer interface {
	// Authorize sets the credentials on an outbound delivery request, replacing any header of the
	// same name it already carries. ctx bounds the wait for a token, if one must be fetched.
	Authorize(ctx context.Context, req *http.Request) error
	// Reject reports that the destination answered 401 to req; it evicts the credential req carried
	// (only if it is still the cached one, so concurrent 401s do not evict a fresh token) and returns
	// true when retrying the delivery once with a fresh credential may help (OAuth), false otherwise
	// (API keys).
	Reject(req *http.Request) bool
}

// APIKey returns an Authorizer that sets the given headers on every delivery, replacing any
// existing header of the same name. Names are canonicalized; a name given more than once is sent
// with all of its values, in order. Header names are not validated here: an invalid one makes the
// delivery fail when it is sent. Reject always returns false: a fixed key does not get better by
// retrying.
func APIKey(headers []Pair) Authorizer {
	k := &apiKey{}
	idx := make(map[string]int, len(headers))
	for _, h := range headers {
		name := textproto.CanonicalMIMEHeaderKey(h.Name)
		i, ok := idx[name]
		if !ok {
			i = len(k.names)
			idx[name] = i
			k.names = append(k.names, name)
			k.values = append(k.values, nil)
		}
		k.values[i] = append(k.values[i], h.Value)
	}
	return k
}

type apiKey struct {
	names  []string   // canonical header names
	values [][]string // values per name
}

// Authorize implements Authorizer. It never fails.
func (k *apiKey) Authorize(_ context.Context, req *http.Request) error {
	if req.Header == nil {
		req.Header = make(http.Header, len(k.names))
	}
	for i, name := range k.names {
		// A copy per request: the caller may modify the request's header values in place.
		req.Header[name] = append([]string(nil), k.values[i]...)
	}
	return nil
}

// Reject implements Authorizer; it returns false.
func (k *apiKey) Reject(*http.Request) bool { return false }

// String lists the header names with redacted values.
func (k *apiKey) String() string {
	var b strings.Builder
	b.WriteString("api_key headers=[")
	for i, name := range k.names {
		for j := range k.values[i] {
			if i > 0 || j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(name)
			b.WriteString("=" + redacted)
		}
	}
	b.WriteByte(']')
	return b.String()
}

// GoString is like String.
func (k *apiKey) GoString() string { return k.String() }

// validToken reports whether s is a non-empty RFC 9110 token (header names, auth schemes).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s can be sent as a header value (no control characters other
// than horizontal tab).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
