package caddymodule

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/authcache"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/transform"
)

// Modes of hook_relay (Relay.Mode).
const (
	// ModeAsync stores each event and delivers it in the background.
	ModeAsync = "async"
	// ModeSync forwards the request at once and answers with the
	// destination's (transformed) reply.
	ModeSync = "sync"
)

// MaxSyncReply is the largest destination reply, in bytes, that sync mode
// reads; a larger one is a failure of the destination (502).
const MaxSyncReply = 10 << 20

// syncTokens holds the OAuth token cache of sync-mode handlers. It is
// separate from the hookrelay app's, so that sync mode never starts the
// app's queue, and pooled, so that tokens survive config reloads.
var syncTokens = caddy.NewUsagePool()

const syncTokensKey = "sync"

type pooledTokens struct{ *authcache.Cache }

// Destruct drops the cached tokens when the last sync handler is gone.
func (p pooledTokens) Destruct() error {
	p.Close()
	return nil
}

// syncClient sends sync-mode requests; it follows no redirects (a 3xx is
// a failure of the destination) and is shared by every config, so its
// idle connections are reused across reloads.
var syncClient = relay.NewClient()

// syncRelay is a provisioned sync-mode hook_relay: one destination, its
// templates and the signer of the answers.
type syncRelay struct {
	dest     *relay.Destination // Header, Query, Signer, Auth resolved
	timeout  time.Duration
	respTmpl *transform.Template // nil: the reply is passed through
	errTmpl  *transform.Template // nil: the 4xx JSON body or the envelope
	fields   []string            // kept from the success body
	signer   *relay.Signer       // signs the answers; nil: unsigned
	maxBody  int64
	anyone   bool // allow_unauthenticated: no earlier authentication needed
	log      *zap.Logger
}

// checkMode checks the settings that depend on the mode. It has no side
// effects, so Provision can call it before it decides whether it needs the
// app.
func (h *Relay) checkMode() error {
	switch h.Mode {
	case "", ModeAsync:
		if h.ResponseSecret != "" {
			return errors.New("hook_relay: response_secret needs mode sync")
		}
		if h.AllowUnauthenticated {
			return errors.New("hook_relay: allow_unauthenticated needs mode sync")
		}
		for _, dc := range h.Destinations {
			if opt := dc.syncOption(); opt != "" {
				return fmt.Errorf("hook_relay: destination %s: %s needs mode sync", dc.displayName(), opt)
			}
		}
		return nil
	case ModeSync:
	default:
		return fmt.Errorf("hook_relay: mode must be async or sync, not %q", h.Mode)
	}
	if len(h.Destinations) != 1 {
		return fmt.Errorf("hook_relay: mode sync needs exactly one 'to' destination, not %d", len(h.Destinations))
	}
	if h.Retry != nil {
		return errors.New("hook_relay: mode sync retries nothing; remove the retry block")
	}
	dc := h.Destinations[0]
	switch {
	case dc.Template != "" || dc.TemplateFile != "":
		return errors.New("hook_relay: mode sync forwards the request body as it is; use response_template to shape the reply (template applies to async deliveries)")
	case dc.Workers != 0 || dc.MaxPending != 0:
		return errors.New("hook_relay: mode sync has no queue; remove workers and max_pending")
	case dc.ResponseTemplate != "" && dc.ResponseTemplateFile != "":
		return errors.New("hook_relay: use response_template or response_template_file, not both")
	case dc.ErrorResponseTemplate != "" && dc.ErrorResponseTemplateFile != "":
		return errors.New("hook_relay: use error_response_template or error_response_template_file, not both")
	case (dc.ResponseTemplate != "" || dc.ResponseTemplateFile != "") && dc.ResponseSample == "":
		return errors.New("hook_relay: response_template needs a response_sample (a sample reply of the destination) to be checked over")
	case dc.ErrorResponseSample != "" && dc.ErrorResponseTemplate == "" && dc.ErrorResponseTemplateFile == "":
		return errors.New("hook_relay: error_response_sample needs an error_response_template")
	}
	return nil
}

// syncOption names a sync-only option set on dc, or returns "".
func (dc *Destination) syncOption() string {
	switch {
	case dc.ResponseTemplate != "" || dc.ResponseTemplateFile != "":
		return "response_template"
	case dc.ErrorResponseTemplate != "" || dc.ErrorResponseTemplateFile != "":
		return "error_response_template"
	case dc.ResponseSample != "":
		return "response_sample"
	case dc.ErrorResponseSample != "":
		return "error_response_sample"
	}
	return ""
}

// provisionSync builds the sync-mode handler. It never touches the
// hookrelay app: sync mode stores nothing.
func (h *Relay) provisionSync(_ caddy.Context) error {
	dc := h.Destinations[0]
	fail := func(err error) error {
		return fmt.Errorf("hook_relay: destination %s: %w", dc.displayName(), err)
	}
	var tokens *authcache.Cache
	if dc.Auth != nil && dc.Auth.Type == "oauth" {
		val, _, err := syncTokens.LoadOrNew(syncTokensKey, func() (caddy.Destructor, error) {
			c, err := authcache.NewCache(0, nil)
			if err != nil {
				return nil, err
			}
			return pooledTokens{c}, nil
		})
		if err != nil {
			return fail(err)
		}
		h.heldTokens = true
		tokens = val.(pooledTokens).Cache
	}
	// The body options of async mode (template, fields, sample) mean
	// other things here; build only the transport part.
	bc := *dc
	bc.Fields, bc.CustomFields, bc.Sample = nil, nil, ""
	d, err := bc.build(tokens, relay.RetryPolicy{})
	if err != nil {
		return fail(err)
	}
	s := &syncRelay{
		dest:    d,
		timeout: time.Duration(dc.Timeout),
		fields:  append(append([]string(nil), dc.Fields...), dc.CustomFields...),
		maxBody: h.MaxBody,
		anyone:  h.AllowUnauthenticated,
		log:     h.log,
	}
	if s.anyone {
		h.log.Warn("hook_relay mode sync runs for unauthenticated callers (allow_unauthenticated): "+
			"anyone who reaches this route has the destination called with its credentials",
			zap.String("destination", d.Name))
	}
	if s.timeout == 0 {
		s.timeout = 30 * time.Second
	}
	if h.ResponseSecret != "" {
		signer, err := relay.NewSigner(resolveSecret(h.ResponseSecret))
		if err != nil {
			return fmt.Errorf("hook_relay: response_secret: %w", err)
		}
		s.signer = signer
	}
	if err := s.loadTemplates(dc); err != nil {
		return fail(err)
	}
	h.sync = s
	return nil
}

// loadTemplates parses the response templates and checks them: the
// response_template over response_sample (as .result) and sample (as
// .request), then fields; the error_response_template over an unreachable
// destination and, when given, over error_response_sample as a 422 body.
func (s *syncRelay) loadTemplates(dc *Destination) error {
	var err error
	if s.respTmpl, err = loadTemplate("response_template", dc.ResponseTemplate, dc.ResponseTemplateFile); err != nil {
		return err
	}
	if s.errTmpl, err = loadTemplate("error_response_template", dc.ErrorResponseTemplate, dc.ErrorResponseTemplateFile); err != nil {
		return err
	}
	var request any = map[string]any{}
	if dc.Sample != "" {
		if request, err = readSample("sample", dc.Sample); err != nil {
			return err
		}
	}
	if s.respTmpl != nil {
		result, err := readSample("response_sample", dc.ResponseSample)
		if err != nil {
			return err
		}
		out, err := s.respTmpl.Render(replyData(request, http.StatusOK, result, ""))
		if err == nil && len(s.fields) > 0 {
			_, err = transform.Select(out, s.fields)
		}
		if err != nil {
			return fmt.Errorf("checking response_template over response_sample %s: %w", dc.ResponseSample, err)
		}
	} else if len(s.fields) > 0 && dc.ResponseSample != "" {
		b, err := os.ReadFile(dc.ResponseSample)
		if err != nil {
			return fmt.Errorf("reading response_sample: %w", err)
		}
		if _, err := transform.Select(b, s.fields); err != nil {
			return fmt.Errorf("checking fields over response_sample %s: %w", dc.ResponseSample, err)
		}
	}
	if s.errTmpl != nil {
		if err := s.errTmpl.Check(replyData(request, 0, nil, errUnreachable)); err != nil {
			return fmt.Errorf("checking error_response_template over an unreachable destination (.result null, .status 0): %w", err)
		}
		if dc.ErrorResponseSample != "" {
			result, err := readSample("error_response_sample", dc.ErrorResponseSample)
			if err != nil {
				return err
			}
			status := http.StatusUnprocessableEntity
			if err := s.errTmpl.Check(replyData(request, status, result, statusText(status))); err != nil {
				return fmt.Errorf("checking error_response_template over error_response_sample %s: %w", dc.ErrorResponseSample, err)
			}
		}
	}
	return nil
}

// loadTemplate parses an inline template (named after its option) or a
// template file (named after its path); nil when neither is set.
func loadTemplate(option, inline, file string) (*transform.Template, error) {
	text, name := inline, option
	if file != "" {
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

// readSample reads and decodes a JSON sample file.
func readSample(option, file string) (any, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", option, err)
	}
	v, err := transform.DecodeJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%s %s is not valid JSON: %v", option, file, err)
	}
	return v, nil
}

// templateArg tells an inline template from a file name: a backquoted
// token that spans lines or holds template actions is the template itself.
func templateArg(t string) (inline, file string) {
	if strings.ContainsAny(t, "\n{") {
		return t, ""
	}
	return "", t
}

// The short texts of .error.
const (
	errUnreachable = "unreachable"
	errTimeout     = "timeout"
	errNotJSON     = "invalid JSON reply"
	errTransform   = "reply does not fit the response template"
	errAuth        = "authorization failed"
	errTooLarge    = "reply too large"
)

// replyData is what the response templates see: .result (the reply's JSON,
// null when there is none), .request (the caller's JSON), .status (the
// destination's status, 0 when it gave none) and, for errors, .error.
func replyData(request any, status int, result any, errText string) map[string]any {
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

func statusText(status int) string {
	return "HTTP " + strconv.Itoa(status) + " " + http.StatusText(status)
}

// exchange is how one forward to the destination went.
type exchange struct {
	status  int    // the destination's status; 0 when it gave none
	body    []byte // its reply, at most MaxSyncReply bytes
	failed  string // set when there is no usable reply: one of the err* texts
	timeout bool
	cause   error // for the log only
}

// forward POSTs body to the destination once (twice when an OAuth token
// was refused with 401 and a fresh one may help), within the timeout.
func (s *syncRelay) forward(parent context.Context, id string, body []byte) exchange {
	ctx, cancel := context.WithTimeout(parent, s.timeout)
	defer cancel()
	x, req := s.send(ctx, id, body)
	if x.status == http.StatusUnauthorized && req != nil && s.dest.Auth != nil && s.dest.Auth.Reject(req) {
		x, _ = s.send(ctx, id, body)
	}
	if x.failed != "" && parent.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		x.failed, x.timeout = errTimeout, true
	}
	return x
}

func (s *syncRelay) send(ctx context.Context, id string, body []byte) (exchange, *http.Request) {
	req, err := s.dest.NewRequest(ctx, id, body, time.Now())
	if err != nil {
		var authErr *relay.AuthError
		if errors.As(err, &authErr) {
			return exchange{failed: errAuth, cause: err}, nil
		}
		return exchange{failed: errUnreachable, cause: err}, nil
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := syncClient.Do(req)
	if err != nil {
		return exchange{failed: errUnreachable, cause: relay.RedactURLError(err)}, req
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, MaxSyncReply+1))
	switch {
	case err != nil:
		return exchange{status: resp.StatusCode, failed: errUnreachable, cause: relay.RedactURLError(err)}, req
	case len(reply) > MaxSyncReply:
		return exchange{status: resp.StatusCode, failed: errTooLarge}, req
	}
	return exchange{status: resp.StatusCode, body: reply}, req
}

// answer turns an exchange into the status and body for the caller.
// request is the caller's JSON body.
func (s *syncRelay) answer(request []byte, x exchange) (int, []byte) {
	var req any // decoded on first use
	reqData := func() any {
		if req == nil {
			v, err := transform.DecodeJSON(request)
			if err != nil {
				v = nil // cannot happen: the body was validated
			}
			req = v
		}
		return req
	}
	if x.failed != "" {
		status := http.StatusBadGateway
		if x.timeout {
			status = http.StatusGatewayTimeout
		}
		return s.failure(reqData, status, x, nil, x.failed)
	}
	result, jerr := transform.DecodeJSON(x.body)
	if jerr != nil {
		result = nil
	}
	switch {
	case x.status >= 200 && x.status < 300:
		if jerr != nil {
			return s.failure(reqData, http.StatusBadGateway, x, nil, errNotJSON)
		}
		out := x.body
		if s.respTmpl != nil {
			var err error
			if out, err = s.respTmpl.Render(replyData(reqData(), x.status, result, "")); err != nil {
				s.warn("the destination's reply does not fit response_template", x, err)
				return s.failure(reqData, http.StatusBadGateway, x, result, errTransform)
			}
		}
		out, err := transform.Select(out, s.fields)
		if err != nil {
			s.warn("fields cannot be selected from the reply", x, err)
			return s.failure(reqData, http.StatusBadGateway, x, result, errTransform)
		}
		return http.StatusOK, out
	case x.status >= 400 && x.status < 500:
		return s.failure(reqData, x.status, x, result, statusText(x.status))
	default:
		return s.failure(reqData, http.StatusBadGateway, x, result, statusText(x.status))
	}
}

// failure answers status: the error_response_template's output when there
// is one; else a 4xx's JSON body as it is; else the contract's envelope.
func (s *syncRelay) failure(request func() any, status int, x exchange, result any, errText string) (int, []byte) {
	if errText != errTransform && (x.status < 400 || x.status >= 500) {
		s.warn("sync request failed", x, nil)
	}
	if s.errTmpl != nil {
		out, err := s.errTmpl.Render(replyData(request(), x.status, result, errText))
		if err == nil {
			return status, out
		}
		s.warn("error_response_template failed; answering the default error", x, err)
	} else if status < 500 && result != nil {
		var out bytes.Buffer
		if json.Compact(&out, x.body) == nil {
			return status, out.Bytes()
		}
	}
	var detail string
	switch {
	case x.timeout:
		detail = fmt.Sprintf("The destination did not answer within %v.", s.timeout)
	case errText == errNotJSON:
		detail = "The destination's reply is not JSON."
	case errText == errTransform:
		detail = "The destination's reply could not be transformed."
	case errText == errTooLarge:
		detail = fmt.Sprintf("The destination's reply is larger than %d bytes.", MaxSyncReply)
	case errText == errAuth:
		detail = "The destination's credentials could not be obtained."
	case x.status != 0:
		detail = fmt.Sprintf("The destination answered %d %s.", x.status, http.StatusText(x.status))
	default:
		detail = "The destination could not be reached."
	}
	return status, envelope(status, detail)
}

func (s *syncRelay) warn(msg string, x exchange, err error) {
	if ce := s.log.Check(zap.WarnLevel, msg); ce != nil {
		if err == nil {
			err = x.cause
		}
		ce.Write(zap.String("destination", s.dest.Name), zap.Int("status", x.status),
			zap.String("reason", x.failed), zap.Error(err))
	}
}

// envelope is the contract's error body with one entry.
func envelope(status int, detail string) []byte {
	title := titles[status]
	if title == "" {
		title = http.StatusText(status)
	}
	body, _ := json.Marshal(struct {
		Errors []apiError `json:"errors"`
	}{[]apiError{{Title: title, Detail: detail, StatusCode: strconv.Itoa(status)}}})
	return body
}

// reply writes an answer, signed when a response_secret is set.
func (s *syncRelay) reply(w http.ResponseWriter, r *http.Request, id string, status int, body []byte) {
	if s.signer != nil {
		ts, sig := s.signer.Sign(id, time.Now(), body)
		h := w.Header()
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", sig)
	}
	observeIngress(r, status)
	writeJSON(w, status, body)
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

// serveSync forwards the request of an authenticated caller (or of anyone,
// with allow_unauthenticated) to the destination and answers with its
// reply, transformed and signed; it answers 401 to anyone else.
func (h *Relay) serveSync(w http.ResponseWriter, r *http.Request) error {
	s := h.sync
	if !s.anyone && !authenticated(r) {
		// Refuse before anything is read or sent. Debug, as any
		// client's bad request: callers must not be able to flood the
		// log.
		if ce := s.log.Check(zap.DebugLevel, "sync request refused: no handler before hook_relay authenticated the caller; "+
			"put hook_verify or basic_auth before it, or set allow_unauthenticated"); ce != nil {
			ce.Write(zap.String("destination", s.dest.Name))
		}
		// Not signed: the answer says nothing of the destination, and a
		// caller who is not authenticated gets nothing signed.
		observeIngress(r, http.StatusUnauthorized)
		writeJSON(w, http.StatusUnauthorized, envelope(http.StatusUnauthorized, "The request is not authenticated."))
		return nil
	}
	if ingressFrom(r) != nil {
		return caddyhttp.Error(http.StatusInternalServerError,
			errors.New("hook_relay mode sync forwards the raw request body; it cannot follow hook_normalize"))
	}
	id := newMessageID()
	if r.ContentLength > s.maxBody {
		s.reply(w, r, id, http.StatusRequestEntityTooLarge, envelope(http.StatusRequestEntityTooLarge,
			fmt.Sprintf("The request body is larger than the limit of %d bytes.", s.maxBody)))
		return nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.reply(w, r, id, http.StatusRequestEntityTooLarge, envelope(http.StatusRequestEntityTooLarge,
				fmt.Sprintf("The request body is larger than the limit of %d bytes.", s.maxBody)))
			return nil
		}
		s.reply(w, r, id, http.StatusBadRequest, envelope(http.StatusBadRequest, "The request body could not be read."))
		return nil
	}
	if !json.Valid(body) {
		s.reply(w, r, id, http.StatusBadRequest, envelope(http.StatusBadRequest, "The request body is not valid JSON."))
		return nil
	}
	x := s.forward(r.Context(), id, body)
	if r.Context().Err() != nil {
		return nil // the caller is gone; nobody to answer
	}
	status, out := s.answer(body, x)
	s.reply(w, r, id, status, out)
	return nil
}

// Cleanup releases what Provision acquired in sync mode (the shared OAuth
// token cache).
func (h *Relay) Cleanup() error {
	if !h.heldTokens {
		return nil
	}
	h.heldTokens = false
	_, err := syncTokens.Delete(syncTokensKey)
	return err
}

// Interface guards
var _ caddy.CleanerUpper = (*Relay)(nil)
