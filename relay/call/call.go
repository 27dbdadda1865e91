// Package call makes synchronous webhook calls: one request forwarded at
// once to a destination, with its credentials, signature and timeout, and
// the destination's reply turned into the answer by a response template
// (or an error template when it failed). Nothing is stored or retried.
//
// The hook_call handler (a call configured in the Caddyfile) and the
// dynamic webhooks merchants register at run time (package registry) both
// run on it. It knows nothing of Caddy.
package call

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/transform"
)

// MaxReply is the largest destination reply, in bytes, that is read; a
// larger one is a failure of the destination (502).
const MaxReply = 10 << 20

// DefaultTimeout bounds a call whose Caller sets no Timeout.
const DefaultTimeout = 30 * time.Second

// The short texts of .error, the error templates' view of a failure.
const (
	ErrUnreachable = "unreachable"
	ErrTimeout     = "timeout"
	ErrNotJSON     = "invalid JSON reply"
	ErrTransform   = "reply does not fit the response template"
	ErrAuth        = "authorization failed"
	ErrTooLarge    = "reply too large"
)

// Caller calls one destination. Its fields are set once; it is safe for
// concurrent use.
type Caller struct {
	// Dest is the destination, its Header, Query, Signer and Auth
	// resolved. Required.
	Dest *relay.Destination
	// Client sends the calls. Required.
	Client *http.Client
	// Timeout bounds one call, the token fetch included; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// Response turns a 2xx JSON reply into the answer; nil passes the
	// reply through.
	Response *transform.Template
	// Error turns a failure into the answer; nil answers a 4xx's JSON
	// body as it is and anything else with the error envelope.
	Error *transform.Template
	// Shape, when set, makes the answer body of a success from the
	// response template's output (or the reply, without one) and the
	// caller's decoded request. An error is a reply that does not fit
	// (502). Nil: the output compacted.
	Shape func(out []byte, request any) ([]byte, error)
	// Log gets the failures of the destination; nil logs nothing.
	Log *zap.Logger
}

// Exchange is how one forward to the destination went.
type Exchange struct {
	Status  int    // the destination's status; 0 when it gave none
	Body    []byte // its reply, at most MaxReply bytes
	Failed  string // set when there is no usable reply: one of the Err* texts
	Timeout bool
	Cause   error // for the log only
}

func (c *Caller) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// Forward POSTs body to the destination once (twice when an OAuth token
// was refused with 401 and a fresh one may help), within the timeout. id
// is the webhook-id of the request.
func (c *Caller) Forward(parent context.Context, id string, body []byte) Exchange {
	ctx, cancel := context.WithTimeout(parent, c.timeout())
	defer cancel()
	x, req := c.send(ctx, id, body)
	if x.Status == http.StatusUnauthorized && req != nil && c.Dest.Auth != nil && c.Dest.Auth.Reject(req) {
		x, _ = c.send(ctx, id, body)
	}
	if x.Failed != "" && parent.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		x.Failed, x.Timeout = ErrTimeout, true
	}
	return x
}

func (c *Caller) send(ctx context.Context, id string, body []byte) (Exchange, *http.Request) {
	req, err := c.Dest.NewRequest(ctx, id, body, time.Now())
	if err != nil {
		var authErr *relay.AuthError
		if errors.As(err, &authErr) {
			return Exchange{Failed: ErrAuth, Cause: err}, nil
		}
		return Exchange{Failed: ErrUnreachable, Cause: err}, nil
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := c.Client.Do(req)
	if err != nil {
		return Exchange{Failed: ErrUnreachable, Cause: relay.RedactURLError(err)}, req
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, MaxReply+1))
	switch {
	case err != nil:
		return Exchange{Status: resp.StatusCode, Failed: ErrUnreachable, Cause: relay.RedactURLError(err)}, req
	case len(reply) > MaxReply:
		return Exchange{Status: resp.StatusCode, Failed: ErrTooLarge}, req
	}
	return Exchange{Status: resp.StatusCode, Body: reply}, req
}

// Answer is what the caller is answered.
type Answer struct {
	Status int
	// Body is the answer; nil means the contract's error envelope with
	// Detail.
	Body   []byte
	Detail string
}

// Answer turns an exchange into the answer. request is the caller's JSON
// body and doc, when not nil, that body decoded (decoded here on first
// use otherwise). ctx bounds the templates' rendering.
func (c *Caller) Answer(ctx context.Context, request []byte, doc any, x Exchange) Answer {
	reqData := func() any {
		if doc == nil {
			v, err := transform.DecodeJSON(request)
			if err != nil {
				v = nil // cannot happen: the body was validated
			}
			doc = v
		}
		return doc
	}
	if x.Failed != "" {
		status := http.StatusBadGateway
		if x.Timeout {
			status = http.StatusGatewayTimeout
		}
		return c.failure(ctx, reqData, status, x, nil, x.Failed)
	}
	result, jerr := transform.DecodeJSON(x.Body)
	if jerr != nil {
		result = nil
	}
	switch {
	case x.Status >= 200 && x.Status < 300:
		if jerr != nil {
			return c.failure(ctx, reqData, http.StatusBadGateway, x, nil, ErrNotJSON)
		}
		out := x.Body
		if c.Response != nil {
			var err error
			if out, err = c.Response.RenderContext(ctx, ReplyData(reqData(), x.Status, result, "")); err != nil {
				c.warn("the destination's reply does not fit response_template", x, err)
				return c.failure(ctx, reqData, http.StatusBadGateway, x, result, ErrTransform)
			}
		}
		var err error
		if c.Shape != nil {
			out, err = c.Shape(out, reqData())
		} else {
			out, err = transform.Select(out, nil)
		}
		if err != nil {
			c.warn("the answer cannot be made from the reply", x, err)
			return c.failure(ctx, reqData, http.StatusBadGateway, x, result, ErrTransform)
		}
		return Answer{Status: http.StatusOK, Body: out}
	case x.Status >= 400 && x.Status < 500:
		return c.failure(ctx, reqData, x.Status, x, result, StatusText(x.Status))
	default:
		return c.failure(ctx, reqData, http.StatusBadGateway, x, result, StatusText(x.Status))
	}
}

// failure answers status: the error template's output when there is one;
// else a 4xx's JSON body as it is; else the error envelope.
func (c *Caller) failure(ctx context.Context, request func() any, status int, x Exchange, result any, errText string) Answer {
	if errText != ErrTransform && (x.Status < 400 || x.Status >= 500) {
		c.warn("the call failed", x, nil)
	}
	if c.Error != nil {
		out, err := c.Error.RenderContext(ctx, ReplyData(request(), x.Status, result, errText))
		if err == nil {
			return Answer{Status: status, Body: out}
		}
		c.warn("error_response_template failed; answering the default error", x, err)
	} else if status < 500 && result != nil {
		var out bytes.Buffer
		if json.Compact(&out, x.Body) == nil {
			return Answer{Status: status, Body: out.Bytes()}
		}
	}
	var detail string
	switch {
	case x.Timeout:
		detail = fmt.Sprintf("The destination did not answer within %v.", c.timeout())
	case errText == ErrNotJSON:
		detail = "The destination's reply is not JSON."
	case errText == ErrTransform:
		detail = "The destination's reply could not be transformed."
	case errText == ErrTooLarge:
		detail = fmt.Sprintf("The destination's reply is larger than %d bytes.", MaxReply)
	case errText == ErrAuth:
		detail = "The destination's credentials could not be obtained."
	case x.Status != 0:
		detail = fmt.Sprintf("The destination answered %d %s.", x.Status, http.StatusText(x.Status))
	default:
		detail = "The destination could not be reached."
	}
	return Answer{Status: status, Detail: detail}
}

func (c *Caller) warn(msg string, x Exchange, err error) {
	if c.Log == nil {
		return
	}
	if ce := c.Log.Check(zap.WarnLevel, msg); ce != nil {
		if err == nil {
			err = x.Cause
		}
		ce.Write(zap.String("destination", c.Dest.Name), zap.Int("status", x.Status),
			zap.String("reason", x.Failed), zap.Error(err))
	}
}

// ReplyData is what the response templates see: .result (the reply's
// JSON, null when there is none), .request (the caller's JSON), .status
// (the destination's status, 0 when it gave none) and, for errors,
// .error.
func ReplyData(request any, status int, result any, errText string) map[string]any {
	m := map[string]any{
		"result":  result,
		"request": request,
		"status":  json.Number(strconv.Itoa(status)),
	}
	if errText != "" {
		m["error"] = errText
	}
	return m
}

// StatusText is .error for a status: "HTTP 422 Unprocessable Entity".
func StatusText(status int) string {
	return "HTTP " + strconv.Itoa(status) + " " + http.StatusText(status)
}
