package relay

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// NewClient returns an HTTP client for deliveries: it follows no
// redirects (a 3xx is the destination's answer, and a failure) and keeps
// many idle connections per host. Timeouts come from each request's
// context.
func NewClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 256
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// AuthError is a failure to get credentials for a delivery, such as a
// token endpoint that is down.
type AuthError struct{ Err error }

func (e *AuthError) Error() string { return e.Err.Error() }
func (e *AuthError) Unwrap() error { return e.Err }

// NewRequest builds one delivery of body to the destination: a POST to its
// URL with its query parameters and headers, Content-Type
// application/json, webhook-id, webhook-timestamp (now), a Standard
// Webhooks webhook-signature when it has a Signer, and its credentials.
// A failure of its Authorizer is returned as an *AuthError.
func (d *Destination) NewRequest(ctx context.Context, id string, body []byte, now time.Time) (*http.Request, error) {
	var req *http.Request
	var err error
	if d.targetURL != nil {
		// Prepared by the engine: a copy of the parsed URL, rather than
		// parsing it again for every attempt.
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, "", bytes.NewReader(body))
		if err == nil {
			u := *d.targetURL
			if u.User != nil {
				user := *u.User
				u.User = &user
			}
			req.URL, req.Host = &u, strings.TrimSuffix(u.Host, ":")
		}
	} else {
		// Not prepared by the engine (sync mode): merge the query here.
		target := d.URL
		if len(d.Query) > 0 {
			u, err := mergeQuery(d.URL, d.Query)
			if err != nil {
				return nil, err
			}
			target = u.String()
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	}
	if err != nil {
		return nil, errors.New("building the request failed")
	}
	h := make(http.Header, len(d.Header)+5)
	for k, vs := range d.Header {
		h[k] = append([]string(nil), vs...)
	}
	req.Header = h
	// The keys below are in canonical form already.
	h["Content-Type"] = []string{"application/json"}
	if len(h["User-Agent"]) == 0 || h["User-Agent"][0] == "" {
		h["User-Agent"] = []string{"hookrelay"}
	}
	h["Webhook-Id"] = []string{id}
	if d.Signer != nil {
		ts, sig := d.Signer.Sign(id, now, body)
		h["Webhook-Timestamp"] = []string{ts}
		h["Webhook-Signature"] = []string{sig}
	} else {
		h["Webhook-Timestamp"] = []string{strconv.FormatInt(now.Unix(), 10)}
	}
	if d.Auth != nil {
		if err := d.Auth.Authorize(ctx, req); err != nil {
			return nil, &AuthError{Err: err}
		}
	}
	return req, nil
}

// mergeQuery parses raw and adds q to its query.
func mergeQuery(raw string, q url.Values) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("invalid destination URL")
	}
	if len(q) > 0 {
		merged := u.Query()
		for k, vs := range q {
			for _, v := range vs {
				merged.Add(k, v)
			}
		}
		u.RawQuery = merged.Encode()
	}
	return u, nil
}

// RedactURLError drops the URL (whose query may carry credentials) from a
// client error and keeps what went wrong.
func RedactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return errors.New("timeout")
		}
		return &redactedError{msg: ue.Op + ": " + ue.Err.Error(), err: ue.Err}
	}
	return err
}

// redactedError is a transport error without the request's URL; it
// still unwraps to the cause (an address guard's refusal, say).
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
