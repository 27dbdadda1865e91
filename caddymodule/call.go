package caddymodule

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/destination"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/call"
	"github.com/hookrelay/hookrelay/relay/transform"
)

func init() {
	caddy.RegisterModule(Call{})
}

// Call is the hook_call handler, for synchronous webhooks: it forwards the
// request's JSON body at once to its one destination, with the
// destination's credentials, headers, params, signature and timeout, and
// answers with the destination's reply, shaped by ResponseTemplate or
// ErrorResponseTemplate and signed with ResponseSecret. It stores nothing,
// retries nothing and needs no queue: it does not start the hookrelay
// app. It takes the raw JSON body, so it cannot follow hook_normalize.
//
// Its answers are 200 with the reply on a 2xx, the destination's status
// on a 4xx, 502 when the destination fails (5xx, 3xx, connection error, a
// reply that is not JSON or does not fit the template) and 504 when it
// times out. It answers 401, before anything is read or sent, to a caller
// that no earlier handler authenticated, unless AllowUnauthenticated is
// set.
type Call struct {
	// Topic names the calls of this route, such as "checkout/tip".
	// Default: none; a call needs no topic.
	Topic string `json:"topic,omitempty"`

	// Destination is called with every request. Template, TemplateFile,
	// Sample, Fields, CustomFields, Workers and MaxPending apply to
	// hook_relay's deliveries and must not be set here. Required.
	Destination *destination.Config `json:"destination,omitempty"`

	// Sample is a JSON file with a sample of the caller's body, seen as
	// .request when the response templates are checked at load. Default:
	// an empty object.
	Sample string `json:"sample,omitempty"`

	// ResponseTemplate is a Go text/template (inline text) that turns the
	// destination's 2xx JSON reply into the answer. It sees the reply as
	// .result, the caller's JSON body as .request and the destination's
	// status as .status, as in {{ .result.uuid }}; its output must be
	// JSON. Fields and CustomFields then apply to its output. It is
	// checked at load over ResponseSample (as .result) and Sample (as
	// .request). Default: the reply is passed through.
	ResponseTemplate string `json:"response_template,omitempty"`

	// ResponseTemplateFile is a file holding the response template; an
	// alternative to ResponseTemplate. Default: none.
	ResponseTemplateFile string `json:"response_template_file,omitempty"`

	// ErrorResponseTemplate is a Go text/template (inline text) rendered
	// when the destination answers other than 2xx or cannot be reached.
	// It sees the destination's JSON error body as .result (null when it
	// sent none or not JSON), its status as .status (0 when there is
	// none), a short error text as .error ("HTTP 422 Unprocessable
	// Entity", "timeout", "unreachable", "invalid JSON reply", ...) and
	// the caller's body as .request. It is checked at load over an
	// unreachable destination (.result null, .status 0) and over
	// ErrorResponseSample when set. Default: a 4xx JSON body is passed
	// through with its status; anything else is answered with the
	// contract's error envelope.
	ErrorResponseTemplate string `json:"error_response_template,omitempty"`

	// ErrorResponseTemplateFile is a file holding the error response
	// template; an alternative to ErrorResponseTemplate. Default: none.
	ErrorResponseTemplateFile string `json:"error_response_template_file,omitempty"`

	// ResponseSample is a JSON file with a sample reply of the
	// destination: the response template must
	// render it, as .result, to valid JSON at load, or the config is
	// refused. Required with a response template. Default: none.
	ResponseSample string `json:"response_sample,omitempty"`

	// ErrorResponseSample is a JSON file with a sample error body of the
	// destination, over which the error response template is checked at
	// load as a 422 answer. Default: none.
	ErrorResponseSample string `json:"error_response_sample,omitempty"`

	// Fields, when set, keeps only these dotted paths of a success answer
	// Default: the whole answer.
	Fields []string `json:"fields,omitempty"`

	// CustomFields are more dotted paths kept with Fields. Default:
	// none.
	CustomFields []string `json:"custom_fields,omitempty"`

	// ResponseSecret is a Standard Webhooks secret ("whsec_<base64>")
	// that signs every answer: webhook-id, webhook-timestamp and
	// webhook-signature over the response body. Use a placeholder such as
	// {env.TIP_RESPONSE_WHSEC}. Default: answers are not signed.
	ResponseSecret string `json:"response_secret,omitempty"`

	// AllowUnauthenticated forwards requests that no earlier handler
	// authenticated. Dangerous: hook_call calls its destination with the
	// destination's credentials and signs the answer, so on an open route
	// anyone can have the merchant called. Set it only when callers are
	// authenticated in a way hook_call cannot see (forward_auth, client
	// certificates, a private network). Default: false, and a request is
	// answered 401 unless hook_verify verified its token or an
	// authentication handler (basic_auth) set {http.auth.user.id} before
	// this handler.
	AllowUnauthenticated bool `json:"allow_unauthenticated,omitempty"`

	// MaxBody is the largest request body accepted, in bytes. Default:
	// 20 MB.
	MaxBody int64 `json:"max_body,omitempty"`

	call     *caller
	log      *zap.Logger
	outbound bool // holds the shared outbound state
}

// MaxSyncReply is the largest destination reply, in bytes, that hook_call
// reads; a larger one is a failure of the destination (502).
const MaxSyncReply = call.MaxReply

// caller is a provisioned hook_call: the call to its one destination,
// with its templates, and the signer of the answers.
type caller struct {
	call    call.Caller
	signer  *relay.Signer // signs the answers; nil: unsigned
	maxBody int64
	anyone  bool // allow_unauthenticated: no earlier authentication needed
	log     *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Call) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.hook_call",
		New: func() caddy.Module { return new(Call) },
	}
}

// Provision checks the config, builds the destination and loads the
// templates. It never touches the hookrelay app: a call stores nothing.
func (h *Call) Provision(ctx caddy.Context) error {
	h.log = ctx.Logger()
	if err := registerMetrics(ctx); err != nil {
		return err
	}
	if h.MaxBody == 0 {
		h.MaxBody = DefaultMaxBody
	}
	if err := h.Validate(); err != nil {
		return err
	}
	dc := h.Destination
	fail := func(err error) error {
		return fmt.Errorf("destination %s: %w", dc.DisplayName(), err)
	}
	out, err := acquireOutbound()
	if err != nil {
		return err
	}
	h.outbound = true
	d, err := resolveDestination(*dc).Build(destination.Env{Tokens: out.tokens})
	if err != nil {
		return fail(err)
	}
	c := &caller{
		call: call.Caller{
			Dest:    d,
			Client:  out.client,
			Timeout: time.Duration(dc.Timeout),
			Log:     h.log,
		},
		maxBody: h.MaxBody,
		anyone:  h.AllowUnauthenticated,
		log:     h.log,
	}
	if fields := destination.Paths(h.Fields, h.CustomFields); len(fields) > 0 {
		c.call.Shape = func(out []byte, _ any) ([]byte, error) { return transform.Select(out, fields) }
	}
	if c.anyone {
		h.log.Warn("hook_call runs for unauthenticated callers (allow_unauthenticated): "+
			"anyone who reaches this route has the destination called with its credentials",
			zap.String("destination", d.Name))
	}
	if h.ResponseSecret != "" {
		signer, err := relay.NewSigner(resolveSecret(h.ResponseSecret))
		if err != nil {
			return fmt.Errorf("response_secret: %w", err)
		}
		c.signer = signer
	}
	if err := c.loadTemplates(h); err != nil {
		return err
	}
	h.call = c
	return nil
}

// Validate checks the settings; it reads no file.
func (h *Call) Validate() error {
	dc := h.Destination
	switch {
	case dc == nil:
		return errors.New("a 'to' destination is required")
	case dc.Template != "" || dc.TemplateFile != "":
		return errors.New("hook_call forwards the request body as it is; use response_template to shape the reply (template applies to hook_relay's deliveries)")
	case dc.Workers != 0 || dc.MaxPending != 0 || dc.OrderBy != "" || dc.Lanes != 0:
		return errors.New("hook_call has no queue; remove workers, max_pending, order_by and lanes")
	case dc.Sample != "" || len(dc.Fields) > 0 || len(dc.CustomFields) > 0:
		return errors.New("set sample, fields and custom_fields on hook_call, not on its destination")
	case h.ResponseTemplate != "" && h.ResponseTemplateFile != "":
		return errors.New("use response_template or response_template_file, not both")
	case h.ErrorResponseTemplate != "" && h.ErrorResponseTemplateFile != "":
		return errors.New("use error_response_template or error_response_template_file, not both")
	case (h.ResponseTemplate != "" || h.ResponseTemplateFile != "") && h.ResponseSample == "":
		return errors.New("response_template needs a response_sample (a sample reply of the destination) to be checked over")
	case h.ErrorResponseSample != "" && h.ErrorResponseTemplate == "" && h.ErrorResponseTemplateFile == "":
		return errors.New("error_response_sample needs an error_response_template")
	case h.MaxBody < 0:
		return errors.New("max_body cannot be negative")
	}
	return nil
}

// Cleanup gives back the shared outbound state.
func (h *Call) Cleanup() error {
	if !h.outbound {
		return nil
	}
	h.outbound = false
	return releaseOutbound()
}

// loadTemplates parses the response templates and checks them: the
// response_template over response_sample (as .result) and sample (as
// .request), then fields; the error_response_template over an unreachable
// destination and, when given, over error_response_sample as a 422 body.
func (s *caller) loadTemplates(h *Call) error {
	var err error
	c := &s.call
	if c.Response, err = destination.LoadTemplate("response_template", h.ResponseTemplate, h.ResponseTemplateFile); err != nil {
		return err
	}
	if c.Error, err = destination.LoadTemplate("error_response_template", h.ErrorResponseTemplate, h.ErrorResponseTemplateFile); err != nil {
		return err
	}
	fields := destination.Paths(h.Fields, h.CustomFields)
	var request any = map[string]any{}
	if h.Sample != "" {
		if request, err = readSample("sample", h.Sample); err != nil {
			return err
		}
	}
	if c.Response != nil {
		result, err := readSample("response_sample", h.ResponseSample)
		if err != nil {
			return err
		}
		out, err := c.Response.Render(call.ReplyData(request, http.StatusOK, result, ""))
		if err == nil && len(fields) > 0 {
			_, err = transform.Select(out, fields)
		}
		if err != nil {
			return fmt.Errorf("checking response_template over response_sample %s: %w", h.ResponseSample, err)
		}
	} else if len(fields) > 0 && h.ResponseSample != "" {
		b, err := destination.ReadSample("response_sample", h.ResponseSample)
		if err != nil {
			return err
		}
		if _, err := transform.Select(b, fields); err != nil {
			return fmt.Errorf("checking fields over response_sample %s: %w", h.ResponseSample, err)
		}
	}
	if c.Error != nil {
		if err := c.Error.Check(call.ReplyData(request, 0, nil, call.ErrUnreachable)); err != nil {
			return fmt.Errorf("checking error_response_template over an unreachable destination (.result null, .status 0): %w", err)
		}
		if h.ErrorResponseSample != "" {
			result, err := readSample("error_response_sample", h.ErrorResponseSample)
			if err != nil {
				return err
			}
			status := http.StatusUnprocessableEntity
			if err := c.Error.Check(call.ReplyData(request, status, result, call.StatusText(status))); err != nil {
				return fmt.Errorf("checking error_response_template over error_response_sample %s: %w", h.ErrorResponseSample, err)
			}
		}
	}
	return nil
}

// readSample reads a JSON sample file, set by option, and decodes it.
func readSample(option, file string) (any, error) {
	b, err := destination.ReadSample(option, file)
	if err != nil {
		return nil, err
	}
	return transform.DecodeJSON(b)
}

// templateArg tells an inline template from a file name: a backquoted
// token that spans lines or holds template actions is the template itself.
func templateArg(t string) (inline, file string) {
	if strings.ContainsAny(t, "\n{") {
		return t, ""
	}
	return "", t
}

// answer turns an exchange into the status and body for the caller.
// request is the caller's JSON body.
func (s *caller) answer(ctx context.Context, request []byte, x call.Exchange) (int, []byte) {
	a := s.call.Answer(ctx, request, nil, x)
	if a.Body == nil {
		a.Body = envelope(a.Status, a.Detail)
	}
	return a.Status, a.Body
}

// envelope is the contract's error body with one entry.
func envelope(status int, detail string) []byte {
	_, body := errorBody(status, problem{detail: detail})
	return body
}

// reply writes an answer, signed when a response_secret is set.
func (s *caller) reply(w http.ResponseWriter, r *http.Request, id string, status int, body []byte) {
	signAnswer(w.Header(), s.signer, id, body)
	observeIngress(r, status)
	writeJSON(w, status, body)
}

// signAnswer sets the Standard Webhooks headers of an answer signed by
// signer; with no signer, none.
func signAnswer(h http.Header, signer *relay.Signer, id string, body []byte) {
	if signer == nil {
		return
	}
	ts, sig := signer.Sign(id, time.Now(), body)
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", ts)
	h.Set("webhook-signature", sig)
}

// newMessageID returns a random "msg_" id for one exchange: the forwarded
// request and the signed answer carry it as webhook-id.
func newMessageID() string {
	return "msg_" + strings.ToLower(strings.TrimRight(rand.Text(), "="))
}

// authenticated reports whether a handler before this one authenticated
// the caller: hook_verify verified its token, or Caddy's authentication
// handler (basic_auth and its other providers) set {http.auth.user.id}.
func authenticated(r *http.Request) bool {
	if ok, _ := caddyhttp.GetVar(r.Context(), "hook.verified").(bool); ok {
		return true
	}
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return false
	}
	id, _ := repl.GetString("http.auth.user.id")
	return id != ""
}

// ServeHTTP forwards the request of an authenticated caller (or of
// anyone, with allow_unauthenticated) to the destination and answers with
// its reply, transformed and signed; it answers 401 to anyone else.
func (h *Call) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	s := h.call
	if !s.anyone && !authenticated(r) {
		// Refuse before anything is read or sent. Debug, as any
		// client's bad request: callers must not be able to flood the
		// log.
		if ce := s.log.Check(zap.DebugLevel, "call refused: no handler before hook_call authenticated the caller; "+
			"put hook_verify or basic_auth before it, or set allow_unauthenticated"); ce != nil {
			ce.Write(zap.String("destination", s.call.Dest.Name))
		}
		// Not signed: the answer says nothing of the destination, and a
		// caller who is not authenticated gets nothing signed.
		observeIngress(r, http.StatusUnauthorized)
		writeJSON(w, http.StatusUnauthorized, envelope(http.StatusUnauthorized, "The request is not authenticated."))
		return nil
	}
	if in := ingressFrom(r); in != nil {
		// A configuration fault: answered in the envelope, logged.
		answerFailure(w, r, s.log, errors.New("hook_call forwards the raw request body; it cannot follow hook_normalize"), false)
		in.answered = true
		return nil
	}
	id := newMessageID()
	body, status, detail := readLimited(w, r, s.maxBody)
	if status != 0 {
		s.reply(w, r, id, status, envelope(status, detail))
		return nil
	}
	if !json.Valid(body) {
		s.reply(w, r, id, http.StatusBadRequest, envelope(http.StatusBadRequest, "The request body is not valid JSON."))
		return nil
	}
	x := s.call.Forward(r.Context(), id, body)
	if r.Context().Err() != nil {
		return nil // the caller is gone; nobody to answer
	}
	status, out := s.answer(r.Context(), body, x)
	s.reply(w, r, id, status, out)
	return nil
}

func parseCall(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	c := new(Call)
	err := c.UnmarshalCaddyfile(h.Dispenser)
	return c, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	hook_call {
//	    topic <topic>                    # optional
//	    max_body <size>                  # default 20MB
//	    response_secret <whsec_...>      # signs the answers
//	    allow_unauthenticated            # forward callers no earlier handler authenticated (dangerous)
//	    to <url> {                       # exactly one
//	        name <name>
//	        header <name> <value>        # repeatable
//	        param <name> <value>         # repeatable
//	        timeout <duration>
//	        secret <whsec_...>           # Standard Webhooks signature
//	        auth oauth|api_key { ... }   # as in hook_relay
//	    }
//	    sample <file>                    # a sample of the caller's body
//	    response_template <file> | `<inline template>`
//	    response_sample <file>
//	    error_response_template <file> | `<inline template>`
//	    error_response_sample <file>
//	    fields <path>...
//	    custom_fields <path>...
//	}
//
// The request's JSON body is forwarded at once to the destination with its
// auth, headers, params, secret and timeout; nothing is stored or retried
// and no queue is started. A 2xx JSON reply is rendered through
// response_template (reply as .result, the request as .request, as in
// {{ .result.uuid }}), keeps fields/custom_fields, and is answered 200. A
// non-2xx or failed exchange is rendered through error_response_template
// (.result the error body or null, .status, .error) and answered with the
// destination's 4xx status, 502 when it failed or 504 when it timed out.
// Without templates the reply's JSON is passed through. response_template
// is checked at load over response_sample with
// sample as .request; error_response_template over an unreachable
// destination and error_response_sample. With response_secret every
// answer carries a Standard Webhooks signature. hook_call answers 401 to
// a caller that no earlier handler authenticated (hook_verify,
// basic_auth), unless allow_unauthenticated says that is intended.
func (h *Call) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "topic":
			if !d.AllArgs(&h.Topic) {
				return d.ArgErr()
			}
		case "response_secret":
			if !d.AllArgs(&h.ResponseSecret) {
				return d.ArgErr()
			}
		case "allow_unauthenticated":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.AllowUnauthenticated = true
		case "max_body":
			size, err := parseSizeArg(d)
			if err != nil {
				return err
			}
			h.MaxBody = size
		case "to":
			if h.Destination != nil {
				return d.Err("hook_call calls one destination; use one 'to'")
			}
			dest, err := parseDestination(d)
			if err != nil {
				return err
			}
			h.Destination = dest
		case "sample":
			if !d.AllArgs(&h.Sample) {
				return d.ArgErr()
			}
		case "response_template", "error_response_template":
			var t string
			if !d.AllArgs(&t) {
				return d.ArgErr()
			}
			inline, file := templateArg(t)
			if opt == "response_template" {
				h.ResponseTemplate, h.ResponseTemplateFile = inline, file
			} else {
				h.ErrorResponseTemplate, h.ErrorResponseTemplateFile = inline, file
			}
		case "response_sample":
			if !d.AllArgs(&h.ResponseSample) {
				return d.ArgErr()
			}
		case "error_response_sample":
			if !d.AllArgs(&h.ErrorResponseSample) {
				return d.ArgErr()
			}
		case "fields", "custom_fields":
			f := d.RemainingArgs()
			if len(f) == 0 {
				return d.ArgErr()
			}
			if opt == "fields" {
				h.Fields = append(h.Fields, f...)
			} else {
				h.CustomFields = append(h.CustomFields, f...)
			}
		case "retry":
			return d.Err("hook_call retries nothing; remove the retry block")
		default:
			return d.Errf("unknown hook_call option %q", opt)
		}
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler       = (*Call)(nil)
	_ caddy.Provisioner           = (*Call)(nil)
	_ caddy.Validator             = (*Call)(nil)
	_ caddy.CleanerUpper          = (*Call)(nil)
	_ caddyhttp.MiddlewareHandler = (*Call)(nil)
)
