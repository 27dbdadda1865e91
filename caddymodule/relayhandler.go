package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/destination"
	"github.com/hookrelay/hookrelay/registry"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/ave"
	"github.com/hookrelay/hookrelay/relay/event"
)

func init() {
	caddy.RegisterModule(RelayHandler{})
}

// RelayHandler is the hook_relay handler. It stores a request's events,
// one message per (event, destination), and answers the contract's 201
// only once the queue acknowledged every one of them; if any cannot be
// stored it answers 503 and the sender's retry is safe (resends are
// deduplicated by event id). Delivery then happens in the background, per
// destination, with its credentials, body shape, signature and the
// route's retry schedule.
//
// After hook_normalize it relays the normalized events; on its own it
// relays the raw JSON body as one event of its topic. A synchronous call,
// answered with the destination's reply, is the hook_call handler.
type RelayHandler struct {
	// Topic names the events of this route, such as "shipments/tracking".
	// It may be a placeholder resolved per request, such as
	// {http.request.header.X-Topic}, so that one URL receives a hub's
	// many event kinds. Required unless TopicField is set.
	Topic string `json:"topic,omitempty"`

	// TopicField takes each request's topic from this dotted path of
	// its JSON body (Falabella's "event": "onOrderCreated"); Topic, when
	// set too, is the topic of a body without the field. Default: none.
	TopicField string `json:"topic_field,omitempty"`

	// Tenant stamps the route's events with a tenant, usually a
	// placeholder of the verified sender ({http.auth.user.id}, a JWT
	// claim): they reach only that tenant's registered webhooks. Default:
	// none, and the events reach every tenant's webhooks of their topic.
	Tenant string `json:"tenant,omitempty"`

	// Webhooks delivers the route's events to the registered webhooks
	// (hook_webhooks) of their topic, beside Destinations. It needs the
	// global option's webhooks block. Default: false.
	Webhooks bool `json:"webhooks,omitempty"`

	// Destinations receive every event of this route. At least one is
	// required unless Webhooks is set.
	Destinations []*destination.Config `json:"destinations,omitempty"`

	// Retry is the route's retry policy. Default: 1m 5m 10m 30m 1h 2h
	// 5h 10h 24h (the last step repeating) for up to 30 days, then dead
	// letter.
	Retry *destination.RetryConfig `json:"retry,omitempty"`

	// MaxBody is the largest raw body accepted when no hook_normalize
	// precedes this handler, in bytes. Default: 20 MB.
	MaxBody int64 `json:"max_body,omitempty"`

	app      *App
	names    []string
	log      *zap.Logger
	outbound bool // holds the shared outbound state
}

// CaddyModule returns the Caddy module information.
func (RelayHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.hook_relay",
		New: func() caddy.Module { return new(RelayHandler) },
	}
}

// Provision builds and checks the destinations, then registers them with
// the app. Nothing is acquired before the config is known to be valid,
// and the queue is opened last.
func (h *RelayHandler) Provision(ctx caddy.Context) error {
	h.log = ctx.Logger()
	if err := registerMetrics(ctx); err != nil {
		return err
	}
	maxBodySet := h.MaxBody != 0
	if h.MaxBody == 0 {
		h.MaxBody = DefaultMaxBody
	}
	if err := h.Validate(); err != nil {
		return err
	}
	policy, err := h.Retry.Policy()
	if err != nil {
		return err
	}
	sample, err := aveSample()
	if err != nil {
		return err
	}
	out, err := acquireOutbound()
	if err != nil {
		return err
	}
	h.outbound = true
	env := destination.Env{
		Tokens: out.tokens,
		Retry:  policy,
		Sample: sample,
		SampleNote: "no sample is set, so the template was checked over a normalized ave_tracking event; " +
			"a route without hook_normalize relays the raw body as .data: set sample to a JSON file of its events",
	}
	dests := make([]*relay.Destination, 0, len(h.Destinations))
	for _, dc := range h.Destinations {
		d, err := resolveDestination(*dc).Build(env)
		if err != nil {
			return fmt.Errorf("destination %s: %w", dc.DisplayName(), err)
		}
		dests = append(dests, d)
		h.names = append(h.names, d.Name)
	}
	if err := destination.CheckNames(h.names); err != nil {
		return err
	}

	appVal, err := ctx.App("hookrelay")
	if err != nil {
		return err
	}
	h.app = appVal.(*App)
	if h.Webhooks && h.app.Webhooks == nil {
		return errors.New("webhooks needs the registry: add a webhooks block with a seal_key to the hookrelay global option")
	}
	if limit := h.app.engine.MaxEventSize(); limit > 0 && h.MaxBody > limit {
		// A raw body is stored as one message: one larger than the
		// queue's messages cannot be stored.
		if maxBodySet {
			return fmt.Errorf("max_body %d is larger than the queue can store in one message (%d bytes; on a NATS cluster, raise the servers' max_payload)", h.MaxBody, limit)
		}
		h.log.Warn("the queue stores at most this many bytes per event; larger events are answered 413",
			zap.Int64("limit", limit), zap.Int64("max_body", h.MaxBody))
	}
	return h.app.register(dests)
}

// Validate checks the settings.
func (h *RelayHandler) Validate() error {
	if h.Topic == "" && h.TopicField == "" {
		return errors.New("a topic (or topic_field) is required")
	}
	if h.Topic != "" && !strings.Contains(h.Topic, "{") {
		if err := registry.CheckTopic(h.Topic); err != nil {
			return err
		}
		if registry.IsPattern(h.Topic) {
			return fmt.Errorf("topic %q is a pattern; an event's topic is one name", h.Topic)
		}
	}
	if len(h.Destinations) == 0 && !h.Webhooks {
		return errors.New("at least one 'to' destination, or webhooks, is required")
	}
	if h.MaxBody < 0 {
		return errors.New("max_body cannot be negative")
	}
	return nil
}

// route returns each event's destinations, appended to dests: the
// route's own and, with Webhooks, the registered webhooks that take it;
// and how many messages that makes.
func (h *RelayHandler) route(events []event.Event, dests [][]string) ([][]string, int) {
	dests = slices.Grow(dests[:0], len(events))[:len(events)]
	var reg *registry.Registry
	if h.Webhooks {
		reg = h.app.engine.registry.get()
	}
	n := 0
	for i := range events {
		dests[i] = h.names
		if reg != nil {
			ev := &events[i]
			if hooks := reg.Match(ev, func() map[string]any { return eventDoc(ev) }); len(hooks) > 0 {
				dests[i] = append(slices.Clip(h.names), hooks...)
			}
		}
		n += len(dests[i])
	}
	return dests, n
}

// eventDoc decodes an event as filters see it; nil when it cannot be.
func eventDoc(ev *event.Event) map[string]any {
	b, err := ev.AppendJSON(make([]byte, 0, ev.EncodedLen())) // json.Marshal's bytes
	if err != nil {
		return nil
	}
	var doc map[string]any
	if json.Unmarshal(b, &doc) != nil {
		return nil
	}
	return doc
}

// stringField reads the string at a dotted path of a decoded JSON
// object.
func stringField(cur any, path string) (string, bool) {
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		if cur, ok = m[part]; !ok {
			return "", false
		}
	}
	s, ok := cur.(string)
	return s, ok
}

// topicSource says where the topic was looked for, for a 400.
func (h *RelayHandler) topicSource() string {
	if h.TopicField != "" {
		return fmt.Sprintf(" in its %q field", h.TopicField)
	}
	return ""
}

// Cleanup gives back the shared outbound state.
func (h *RelayHandler) Cleanup() error {
	if !h.outbound {
		return nil
	}
	h.outbound = false
	return releaseOutbound()
}

// aveSample is the event a template is checked over when its destination
// sets no sample: a complete normalized ave_tracking event.
func aveSample() ([]byte, error) {
	t := ave.Sample()
	ev, err := t.Event("shipments/tracking", time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))
	if err != nil {
		return nil, err
	}
	return json.Marshal(ev)
}

// resolveDestination returns a copy of dc with the placeholders of its
// secrets and headers resolved ({env.*}, {file.*}); dc is not changed.
func resolveDestination(dc destination.Config) destination.Config {
	if len(dc.Headers) > 0 {
		h := make(http.Header, len(dc.Headers))
		for k, vs := range dc.Headers {
			for _, v := range vs {
				h[k] = append(h[k], resolveSecret(v))
			}
		}
		dc.Headers = h
	}
	if len(dc.Params) > 0 {
		q := make(url.Values, len(dc.Params))
		for k, vs := range dc.Params {
			for _, v := range vs {
				q[k] = append(q[k], resolveSecret(v))
			}
		}
		dc.Params = q
	}
	if dc.Secret != "" {
		dc.Secret = resolveSecret(dc.Secret)
	}
	if dc.Auth != nil {
		ac := *dc.Auth
		ac.TokenURL = resolveSecret(ac.TokenURL)
		ac.LoginHeaders = resolvePairs(ac.LoginHeaders)
		ac.LoginParams = resolvePairs(ac.LoginParams)
		ac.LoginBody = resolvePairs(ac.LoginBody)
		ac.Headers = resolvePairs(ac.Headers)
		dc.Auth = &ac
	}
	return dc
}

func resolvePairs(kvs []destination.KeyValue) []destination.KeyValue {
	if kvs == nil {
		return nil
	}
	out := make([]destination.KeyValue, len(kvs))
	for i, kv := range kvs {
		out[i] = destination.KeyValue{Name: kv.Name, Value: resolveSecret(kv.Value)}
	}
	return out
}

// ServeHTTP stores the request's events and answers once they are stored.
func (h *RelayHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	var events []event.Event
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	in := ingressFrom(r)
	topic := h.Topic
	if strings.Contains(topic, "{") && repl != nil {
		topic = repl.ReplaceAll(topic, "")
	}
	if in != nil {
		if h.TopicField != "" || topic == "" {
			answerFailure(w, r, h.log, errors.New("topic_field needs the raw body: it cannot follow hook_normalize"), false)
			in.answered = true
			return nil
		}
		evs, err := in.events(topic)
		if err != nil {
			// A configuration fault: answered in the envelope, logged.
			answerFailure(w, r, h.log, err, false)
			in.answered = true
			return nil
		}
		events = evs
	} else {
		body, ok := readBody(w, r, h.MaxBody)
		if !ok {
			return nil
		}
		// With topic_field the body is decoded once, which checks it too.
		var doc any
		var valid bool
		if h.TopicField != "" {
			valid = json.Unmarshal(body, &doc) == nil
		} else {
			valid = event.Valid(body) // json.Valid's answer, faster
		}
		if !valid {
			observeIngress(r, http.StatusBadRequest)
			writeError(w, http.StatusBadRequest, "The request body is not valid JSON.")
			return nil
		}
		if h.TopicField != "" {
			if t, ok := stringField(doc, h.TopicField); ok {
				topic = t
			}
		}
		if topic == "" || registry.CheckTopic(topic) != nil || registry.IsPattern(topic) {
			observeIngress(r, http.StatusBadRequest)
			writeError(w, http.StatusBadRequest, "The request does not name a valid topic"+h.topicSource()+".")
			return nil
		}
		events = []event.Event{{
			ID:         event.NewID("raw", topic, string(body)),
			Topic:      topic,
			Source:     "http",
			ReceivedAt: time.Now().UTC(),
			Data:       body,
		}}
	}
	if h.Tenant != "" {
		tenant := h.Tenant
		if repl != nil {
			tenant = repl.ReplaceAll(tenant, "")
		}
		if tenant == "" {
			// A route that stamps tenants must not broadcast an event
			// whose sender has none: the sender is not identified.
			h.log.Debug("the route's tenant placeholder resolved to nothing; answering 401", zap.String("tenant", h.Tenant))
			observeIngress(r, http.StatusUnauthorized)
			writeError(w, http.StatusUnauthorized, "The request does not identify its tenant.")
			if in != nil {
				in.answered = true
			}
			return nil
		}
		for i := range events {
			events[i].Tenant = tenant
			if in == nil {
				events[i].ID = event.NewID("raw", events[i].Topic, tenant, string(events[i].Data))
			}
		}
	}
	// The destinations of a request of a few events stay on the stack.
	var few [4][]string
	dests, stored := h.route(events, few[:0])
	// Finish storing even if the sender hangs up: what is published must
	// be waited for, and a failure then is the queue's, not the client's.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	err := h.app.engine.EnqueueEach(ctx, events, dests)
	cancel()
	if err != nil {
		var tooLarge *relay.TooLargeError
		if errors.As(err, &tooLarge) {
			// Nothing of the request was stored; a resend gets the same.
			h.log.Debug("event too large for the queue", zap.Error(err))
			observeIngress(r, http.StatusRequestEntityTooLarge)
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
				"The event takes %d bytes after normalization, more than the limit of %d bytes for one stored event.", tooLarge.Size, tooLarge.Limit))
			if in != nil {
				in.answered = true
			}
			return nil
		}
		// Warn at most every 10s: during an outage every request fails
		// the same way, and senders must not be able to flood the log.
		level := zap.DebugLevel
		if now := time.Now().UnixNano(); now-running.lastStoreWarn.Load() > int64(10*time.Second) {
			running.lastStoreWarn.Store(now)
			level = zap.WarnLevel
		}
		if ce := h.log.Check(level, "events not stored; answering 503 so the sender retries"); ce != nil {
			ce.Write(zap.Error(err), zap.Int("events", len(events)))
		}
		observeIngress(r, http.StatusServiceUnavailable)
		writeError(w, http.StatusServiceUnavailable, "The event could not be stored. Please retry later.")
		if in != nil {
			in.answered = true
		}
		return nil
	}
	observeEnqueued(stored)
	if in != nil {
		in.answered = true
	}
	observeIngress(r, http.StatusCreated)
	writeSuccess(w)
	return nil
}

func parseRelay(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	r := new(RelayHandler)
	err := r.UnmarshalCaddyfile(h.Dispenser)
	return r, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	hook_relay {
//	    topic <topic>                    # or a placeholder; required unless topic_field
//	    topic_field <dotted.path>        # take the topic from the JSON body
//	    tenant <placeholder>             # stamp events with the sender's tenant
//	    webhooks                         # deliver to registered webhooks of the topic too
//	    max_body <size>                  # raw bodies; default 20MB
//	    to <url> {                       # repeatable
//	        name <name>
//	        header <name> <value>        # repeatable
//	        param <name> <value>         # repeatable
//	        timeout <duration>
//	        secret <whsec_...>           # Standard Webhooks signature
//	        workers <n>
//	        max_pending <n>
//	        order_by <dotted.path>       # one at a time, in order, per key (data.shipment_id)
//	        lanes <n>                    # of an ordered destination; default 32
//	        template <file> | `<inline template>`
//	        sample <file>
//	        fields <path>...
//	        custom_fields <path>...
//	        auth oauth {
//	            token_url <url>
//	            login_header <name> <value>
//	            login_param <name> <value>
//	            login_body <name> <value>
//	            login_body_format form|json
//	            token_key <dotted.path>
//	            expires_key <dotted.path>
//	            token_type <type>
//	            default_ttl <duration>
//	            refresh_before <duration>
//	        }
//	        auth api_key {
//	            header <name> <value>
//	        }
//	    }
//	    retry {
//	        schedule <duration>...       # last step repeats
//	        max_age <duration>
//	        on_4xx dead_letter|retry
//	    }
//	}
//
// Each event is stored, answered 201 and delivered in the background,
// with retries; template reshapes the delivered body, checked over sample
// (default: a normalized ave_tracking event), and fields/custom_fields
// keep only those paths of it. A synchronous call that answers with the
// destination's reply is hook_call.
func (h *RelayHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "topic":
			if !d.AllArgs(&h.Topic) {
				return d.ArgErr()
			}
		case "topic_field":
			if !d.AllArgs(&h.TopicField) {
				return d.ArgErr()
			}
		case "tenant":
			if !d.AllArgs(&h.Tenant) {
				return d.ArgErr()
			}
		case "webhooks":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.Webhooks = true
		case "mode", "response_secret", "allow_unauthenticated":
			return d.Errf("hook_relay has no %s option: a synchronous call answered with the destination's reply is the hook_call directive (see docs/call.md)", d.Val())
		case "max_body":
			size, err := parseSizeArg(d)
			if err != nil {
				return err
			}
			h.MaxBody = size
		case "to":
			dest, err := parseDestination(d)
			if err != nil {
				return err
			}
			h.Destinations = append(h.Destinations, dest)
		case "retry":
			rc, err := parseRetry(d)
			if err != nil {
				return err
			}
			h.Retry = rc
		default:
			return d.Errf("unknown hook_relay option %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler       = (*RelayHandler)(nil)
	_ caddy.Provisioner           = (*RelayHandler)(nil)
	_ caddy.Validator             = (*RelayHandler)(nil)
	_ caddy.CleanerUpper          = (*RelayHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*RelayHandler)(nil)
)
