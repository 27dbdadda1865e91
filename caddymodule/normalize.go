package caddymodule

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/relay/ave"
	"github.com/hookrelay/hookrelay/relay/event"
)

func init() {
	caddy.RegisterModule(Normalize{})
}

// DefaultMaxBody is the largest request body read by default: 20 MB.
const DefaultMaxBody = 20 << 20

// Normalize reads an inbound webhook's body, validates every rule of its
// format and turns it into normalized events for the handlers after it
// (hook_relay). Bad input is answered in the hub contract's envelope:
// 400 for a body that is not a JSON object, 413 above MaxBody, 422 with
// one entry per problem. A valid request is answered by the handler after
// it: hook_relay stores the events and answers 201; a handler that reads
// the body (reverse_proxy) gets it as it was sent. Normalize never answers
// 201 itself, since it stores nothing: when nothing after it answers, the
// route is misconfigured, and it answers 500 and logs an error. An error
// of a handler after it that has not answered is answered in the envelope
// with that error's status.
type Normalize struct {
	// Format of the payload. Supported: "ave_tracking" (Aveonline's
	// shipping tracking events).
	Format string `json:"format"`

	// Timezone of the dates the hub sends (IANA name). Default:
	// America/Bogota.
	Timezone string `json:"timezone,omitempty"`

	// MaxBody is the largest body accepted, in bytes. Default: 20 MB.
	MaxBody int64 `json:"max_body,omitempty"`

	// MaxEvents is the most events (guides) one request may carry.
	// Default: 1000.
	MaxEvents int `json:"max_events,omitempty"`

	opts ave.Options
	log  *zap.Logger
	// lastUnanswered is when a request nothing answered was last logged
	// at Error (unix nanoseconds; read and written atomically).
	lastUnanswered int64
}

// CaddyModule returns the Caddy module information.
func (Normalize) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.hook_normalize",
		New: func() caddy.Module { return new(Normalize) },
	}
}

// Provision sets the defaults.
func (n *Normalize) Provision(ctx caddy.Context) error {
	n.log = ctx.Logger()
	if err := registerMetrics(ctx); err != nil {
		return err
	}
	if n.MaxBody == 0 {
		n.MaxBody = DefaultMaxBody
	}
	n.opts = ave.Options{MaxEvents: n.MaxEvents}
	if n.Timezone != "" {
		loc, err := time.LoadLocation(n.Timezone)
		if err != nil {
			return fmt.Errorf("unknown timezone %q", n.Timezone)
		}
		n.opts.Location = loc
	}
	return nil
}

// Validate checks the settings.
func (n *Normalize) Validate() error {
	if n.Format != "ave_tracking" {
		return fmt.Errorf("unknown format %q (supported: ave_tracking)", n.Format)
	}
	if n.MaxBody < 0 || n.MaxEvents < 0 {
		return errors.New("max_body and max_events cannot be negative")
	}
	return nil
}

// ingress carries a request's normalized events from hook_normalize to
// hook_relay.
type ingress struct {
	tracks   []ave.Tracking
	received time.Time
	answered bool // a later handler (hook_relay) answered the sender
	// body reads the request body again, for a handler after
	// hook_normalize that passes the webhook on (reverse_proxy); it lives
	// here to save the request an allocation.
	body bytes.Reader
}

// events returns the normalized events of the request, of the topic
// (hook_relay's; the ids do not depend on it).
func (in *ingress) events(topic string) ([]event.Event, error) {
	evs := make([]event.Event, len(in.tracks))
	for i := range in.tracks {
		ev, err := in.tracks[i].Event(topic, in.received)
		if err != nil {
			return nil, err
		}
		evs[i] = ev
	}
	return evs, nil
}

type ingressKey struct{}

func ingressFrom(r *http.Request) *ingress {
	in, _ := r.Context().Value(ingressKey{}).(*ingress)
	return in
}

// ServeHTTP validates and normalizes the body, then passes the events on.
func (n *Normalize) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	body, ok := readBody(w, r, n.MaxBody)
	if !ok {
		return nil
	}
	tracks, err := ave.Normalize(body, n.opts)
	if err != nil {
		var bad *ave.BadRequestError
		var invalid *ave.ValidationError
		switch {
		case errors.As(err, &bad):
			n.debug("webhook body refused", http.StatusBadRequest, len(body))
			observeIngress(r, http.StatusBadRequest)
			writeError(w, http.StatusBadRequest, bad.Detail)
		case errors.As(err, &invalid):
			n.debug("webhook body invalid", http.StatusUnprocessableEntity, len(body))
			problems := make([]problem, len(invalid.Problems))
			for i, p := range invalid.Problems {
				problems[i] = problem{detail: p.Detail, pointer: p.Pointer}
			}
			observeIngress(r, http.StatusUnprocessableEntity)
			writeErrors(w, http.StatusUnprocessableEntity, problems...)
		default:
			observeIngress(r, http.StatusBadRequest)
			writeError(w, http.StatusBadRequest, "The request body could not be processed.")
		}
		return nil
	}
	in := &ingress{tracks: tracks, received: time.Now().UTC()}
	req := r.WithContext(context.WithValue(r.Context(), ingressKey{}, in))
	// A handler that passes the webhook on (reverse_proxy) reads the body
	// again.
	// (io.NopCloser of a *bytes.Reader, as net/http knows it: it sends
	// the headers and the body of a proxied request in one write.)
	in.body.Reset(body)
	req.Body = io.NopCloser(&in.body)
	answered := serveNext(w, req, next, n.log)
	if !in.answered && !answered {
		// Nothing stored the events and nothing answered: answering 201
		// would drop them silently. 500 makes the sender retry, so what
		// it sends until the route is fixed is not lost.
		n.unanswered(len(tracks))
		observeIngress(r, http.StatusInternalServerError)
		writeError(w, http.StatusInternalServerError, "The webhook was validated but not stored.")
	}
	return nil
}

// unanswered logs a request that no handler after hook_normalize answered:
// at Error at most every 10s, else at Debug, since every request of the
// route fails the same way and senders must not flood the log.
func (n *Normalize) unanswered(events int) {
	level := zap.DebugLevel
	if now := time.Now().UnixNano(); now-atomic.LoadInt64(&n.lastUnanswered) > int64(10*time.Second) {
		atomic.StoreInt64(&n.lastUnanswered, now)
		level = zap.ErrorLevel
	}
	if ce := n.log.Check(level, "no handler after hook_normalize stored or forwarded the events; answering 500: "+
		"put hook_relay after it, or a handler that answers"); ce != nil {
		ce.Write(zap.Int("events", events))
	}
}

func (n *Normalize) debug(msg string, status, size int) {
	if ce := n.log.Check(zap.DebugLevel, msg); ce != nil {
		ce.Write(zap.Int("status", status), zap.Int("body_bytes", size))
	}
}

func parseNormalize(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	n := new(Normalize)
	err := n.UnmarshalCaddyfile(h.Dispenser)
	return n, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	hook_normalize <format> {
//	    timezone <IANA zone>    # default America/Bogota
//	    max_body <size>         # default 20MB
//	    max_events <n>          # default 1000
//	}
func (n *Normalize) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if !d.AllArgs(&n.Format) {
		return d.Err("hook_normalize needs exactly one format, such as ave_tracking")
	}
	if n.Format != "ave_tracking" {
		return d.Errf("unknown format %q (supported: ave_tracking)", n.Format)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "timezone":
			if !d.AllArgs(&n.Timezone) {
				return d.ArgErr()
			}
		case "max_body":
			size, err := parseSizeArg(d)
			if err != nil {
				return err
			}
			n.MaxBody = size
		case "max_events":
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			v, err := strconv.Atoi(s)
			if err != nil || v < 1 {
				return d.Errf("max_events must be a positive number, not %q", s)
			}
			n.MaxEvents = v
		default:
			return d.Errf("unknown hook_normalize option %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Normalize)(nil)
	_ caddy.Validator             = (*Normalize)(nil)
	_ caddyhttp.MiddlewareHandler = (*Normalize)(nil)
	_ caddyfile.Unmarshaler       = (*Normalize)(nil)
)
