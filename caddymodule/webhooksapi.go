package caddymodule

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/destination"
	"github.com/hookrelay/hookrelay/registry"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/event"
)

func init() {
	caddy.RegisterModule(WebhooksAPI{})
}

// WebhooksAPI is the hook_webhooks handler: the HTTP API over which apps
// and merchants register their webhooks at run time (CONTRACT.md section
// 4). It speaks two dialects over the same registry:
//
//   - Ventiapp's, byte for byte as its published API shows (seed 000):
//     GET /api/webhooks/list, POST /api/webhooks/create and POST
//     /api/webhooks/delete, whose bodies may carry the comments and
//     trailing commas of Ventiapp's own examples;
//   - the native REST API, strict JSON: /v1/webhooks (list with cursor
//     paging, create), /v1/webhooks/{id} (get, merge-patch, delete),
//     /v1/webhooks/{id}/rotate, /v1/webhooks/{id}/test and /v1/topics.
//
// GET /openapi.json and /openapi.yaml describe both. Paths are relative to
// Prefix. Every error is the contract's envelope.
//
// Every caller belongs to a tenant, taken from its credential: a static
// Bearer token of Tokens, or the Tenant placeholder resolved per request
// (a claim of the token hook_verify verified, the user basic_auth
// authenticated). A tenant sees and changes only its own webhooks; another
// tenant's id answers 404. Ops mount the handler on a route of their
// choice behind their own authentication. The API never answers with a
// credential: its answers hold the names of custom headers and params,
// never their values, and the signing secret only once, when it is made.
//
// It needs the hookrelay app's webhooks block (the registry and its seal
// key).
type WebhooksAPI struct {
	// Prefix is stripped from the request path before the API's routes
	// are matched: with prefix /hooks, the list is GET
	// /hooks/api/webhooks/list. It starts with "/" and does not end with
	// one. Default: "", the routes at the root.
	Prefix string `json:"prefix,omitempty"`

	// Tenant is a placeholder that gives the caller's tenant, resolved per
	// request, such as {http.vars.hook.claims.sub} after hook_verify or
	// {http.auth.user.id} after basic_auth. A request for which it
	// resolves to nothing is answered 401. Required unless Tokens are
	// given; not allowed with them.
	Tenant string `json:"tenant,omitempty"`

	// Tokens are static Bearer tokens, each of one tenant: a request must
	// carry "Authorization: Bearer <token>" with one of them, and belongs
	// to its tenant. Default: none, and Tenant gives the tenant.
	Tokens []WebhooksAPIToken `json:"tokens,omitempty"`

	// MaxBody is the largest request body accepted, in bytes; a larger
	// one is answered 413. Default: 64 KiB.
	MaxBody int64 `json:"max_body,omitempty"`

	app    *App
	tokens []apiToken
	// The OpenAPI document, with Prefix as its server.
	docJSON, docYAML []byte
	log              *zap.Logger
}

// WebhooksAPIToken is one static Bearer token of the webhook API.
type WebhooksAPIToken struct {
	// Token is the secret a caller presents, usually a placeholder such as
	// {env.ACME_API_TOKEN} or {file.*}, resolved when the config is
	// loaded; never logged. Required.
	Token string `json:"token,omitempty"`

	// Tenant is the tenant of the callers that present Token. Required.
	Tenant string `json:"tenant,omitempty"`
}

// apiToken is a resolved token: the SHA-256 of its value, compared in
// constant time, and its tenant.
type apiToken struct {
	sum    [sha256.Size]byte
	tenant string
}

// DefaultWebhooksAPIMaxBody is the default MaxBody of hook_webhooks.
const DefaultWebhooksAPIMaxBody = 64 << 10

// Bounds of the native list's page size.
const (
	defaultPageSize = 50
	maxPageSize     = 200
)

// CaddyModule returns the Caddy module information.
func (WebhooksAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.hook_webhooks",
		New: func() caddy.Module { return new(WebhooksAPI) },
	}
}

// Provision resolves the tokens, renders the OpenAPI document for the
// prefix and joins the hookrelay app, which must have a webhooks block.
func (h *WebhooksAPI) Provision(ctx caddy.Context) error {
	h.log = ctx.Logger()
	if h.MaxBody == 0 {
		h.MaxBody = DefaultWebhooksAPIMaxBody
	}
	if err := h.Validate(); err != nil {
		return err
	}
	seen := make(map[[sha256.Size]byte]bool, len(h.Tokens))
	h.tokens = h.tokens[:0]
	for i, t := range h.Tokens {
		v := resolveSecret(t.Token)
		if v == "" {
			return fmt.Errorf("token %d (tenant %q) resolved to an empty value", i+1, t.Tenant)
		}
		sum := sha256.Sum256([]byte(v))
		if seen[sum] {
			return fmt.Errorf("token %d (tenant %q) has the value of an earlier token; each token gives one tenant", i+1, t.Tenant)
		}
		seen[sum] = true
		h.tokens = append(h.tokens, apiToken{sum: sum, tenant: t.Tenant})
	}
	var err error
	if h.docYAML, h.docJSON, err = openAPIDocument(h.Prefix); err != nil {
		return fmt.Errorf("the OpenAPI document: %w", err)
	}
	appVal, err := ctx.App("hookrelay")
	if err != nil {
		return err
	}
	h.app = appVal.(*App)
	if h.app.Webhooks == nil {
		return errors.New("hook_webhooks needs the webhook registry: add a webhooks block with a seal_key to the hookrelay global option")
	}
	return nil
}

// Validate checks the settings.
func (h *WebhooksAPI) Validate() error {
	switch {
	case h.Prefix != "" && (!strings.HasPrefix(h.Prefix, "/") || strings.HasSuffix(h.Prefix, "/")):
		return fmt.Errorf("prefix %q must start with / and not end with one", h.Prefix)
	case h.Tenant == "" && len(h.Tokens) == 0:
		return errors.New("a tenant placeholder or token lines are required: every caller belongs to a tenant")
	case h.Tenant != "" && len(h.Tokens) > 0:
		return errors.New("use a tenant placeholder or token lines, not both")
	case h.MaxBody < 0:
		return errors.New("max_body cannot be negative")
	}
	for i, t := range h.Tokens {
		if t.Token == "" || t.Tenant == "" {
			return fmt.Errorf("token %d needs a value and a tenant", i+1)
		}
	}
	return nil
}

// apiCall is one request to the API, once its caller is known.
type apiCall struct {
	w      http.ResponseWriter
	r      *http.Request
	reg    *registry.Registry
	tenant string
	id     uint64 // the {id} of the path, when it has one
}

// apiMethods are the operations of one resource, by method.
type apiMethods map[string]func(h *WebhooksAPI, c *apiCall) *apiFailure

var (
	ventiappList   = apiMethods{http.MethodGet: (*WebhooksAPI).ventiappList}
	ventiappCreate = apiMethods{http.MethodPost: (*WebhooksAPI).ventiappCreate}
	ventiappDelete = apiMethods{http.MethodPost: (*WebhooksAPI).ventiappDelete}
	nativeHooks    = apiMethods{http.MethodGet: (*WebhooksAPI).nativeList, http.MethodPost: (*WebhooksAPI).nativeCreate}
	nativeHook     = apiMethods{http.MethodGet: (*WebhooksAPI).nativeGet, http.MethodPatch: (*WebhooksAPI).nativePatch,
		http.MethodDelete: (*WebhooksAPI).nativeDelete}
	nativeRotate = apiMethods{http.MethodPost: (*WebhooksAPI).nativeRotate}
	nativeTest   = apiMethods{http.MethodPost: (*WebhooksAPI).nativeTest}
	nativeTopics = apiMethods{http.MethodGet: (*WebhooksAPI).nativeTopics}
)

// resource returns the operations at path p (the prefix stripped) and the
// webhook id in it; nil when there is nothing at p.
func resource(p string) (apiMethods, uint64) {
	switch p {
	case "/api/webhooks/list":
		return ventiappList, 0
	case "/api/webhooks/create":
		return ventiappCreate, 0
	case "/api/webhooks/delete":
		return ventiappDelete, 0
	case "/v1/webhooks":
		return nativeHooks, 0
	case "/v1/topics":
		return nativeTopics, 0
	}
	rest, ok := strings.CutPrefix(p, "/v1/webhooks/")
	if !ok {
		return nil, 0
	}
	seg, sub, _ := strings.Cut(rest, "/")
	id, err := strconv.ParseUint(seg, 10, 64)
	if err != nil || id == 0 {
		return nil, 0
	}
	switch sub {
	case "":
		if strings.HasSuffix(rest, "/") {
			return nil, 0
		}
		return nativeHook, id
	case "rotate":
		return nativeRotate, id
	case "test":
		return nativeTest, id
	}
	return nil, 0
}

// ServeHTTP answers the API. It ends the chain: it never calls next.
func (h *WebhooksAPI) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	p, ok := h.strip(r.URL.Path)
	if !ok {
		h.answer(w, r, failure(http.StatusNotFound, "There is no API resource at this path."))
		return nil
	}
	switch p {
	case "/openapi.json", "/openapi.yaml":
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			h.answer(w, r, failure(http.StatusMethodNotAllowed, "The method is not allowed here; use GET."))
			return nil
		}
		if p == "/openapi.json" {
			writeJSON(w, http.StatusOK, h.docJSON)
		} else {
			w.Header().Set("Content-Type", "application/yaml")
			w.Header().Set("Content-Length", strconv.Itoa(len(h.docYAML)))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(h.docYAML)
		}
		return nil
	}
	tenant, ok := h.tenant(r)
	if !ok {
		if len(h.tokens) > 0 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="webhooks"`)
		}
		h.answer(w, r, failure(http.StatusUnauthorized, "The request has no valid credential."))
		return nil
	}
	if rest, ok := strings.CutPrefix(p, merchantsPath); ok {
		if f := h.serveMerchant(w, r, tenant, rest); f != nil {
			h.answer(w, r, f)
		}
		return nil
	}
	methods, id := resource(p)
	if methods == nil {
		h.answer(w, r, failure(http.StatusNotFound, "There is no API resource at this path."))
		return nil
	}
	op := methods[r.Method]
	if op == nil {
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		slices.Sort(allow)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		h.answer(w, r, failure(http.StatusMethodNotAllowed, "The method is not allowed here; use "+strings.Join(allow, " or ")+"."))
		return nil
	}
	reg := h.app.engine.registry.get()
	if reg == nil {
		h.answer(w, r, failure(http.StatusServiceUnavailable, "The webhook registry is not running; try again later."))
		return nil
	}
	if f := op(h, &apiCall{w: w, r: r, reg: reg, tenant: tenant, id: id}); f != nil {
		h.answer(w, r, f)
	}
	return nil
}

// strip returns the path without the prefix; false when it is not there.
func (h *WebhooksAPI) strip(p string) (string, bool) {
	if h.Prefix == "" {
		return p, true
	}
	rest, ok := strings.CutPrefix(p, h.Prefix)
	if !ok || rest != "" && rest[0] != '/' {
		return "", false
	}
	return rest, true
}

// tenant returns the caller's tenant: that of its Bearer token when
// tokens are configured (every token compared, in constant time), else
// the Tenant placeholder resolved; false when there is none.
func (h *WebhooksAPI) tenant(r *http.Request) (string, bool) {
	if len(h.tokens) > 0 {
		var token string
		if auth := r.Header.Get("Authorization"); auth != "" {
			if len(auth) <= 7 || !strings.EqualFold(auth[:7], "bearer ") {
				return "", false
			}
			token = auth[7:]
		} else {
			// DEUNA's merchants send their credential as merchant_token.
			token = r.Header.Get("merchant_token")
		}
		token = strings.TrimSpace(token)
		if token == "" {
			return "", false
		}
		sum := sha256.Sum256([]byte(token))
		tenant := ""
		for _, t := range h.tokens {
			if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 {
				tenant = t.tenant
			}
		}
		return tenant, tenant != ""
	}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return "", false
	}
	tenant := repl.ReplaceAll(h.Tenant, "")
	return tenant, tenant != ""
}

// answer writes a failure in the envelope and logs it: at Debug for a
// client's mistake, at Error for ours.
func (h *WebhooksAPI) answer(w http.ResponseWriter, r *http.Request, f *apiFailure) {
	level := zap.DebugLevel
	if f.status >= 500 && f.status != http.StatusServiceUnavailable {
		level = zap.ErrorLevel
	}
	if ce := h.log.Check(level, "webhook API request refused"); ce != nil {
		ce.Write(zap.Int("status", f.status), zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.Int("problems", len(f.problems)))
	}
	writeErrors(w, f.status, f.problems...)
}

// writeResult writes v as JSON with status. HTML characters are not
// escaped: the answers are data, and an address's "&" stays as it is.
func writeResult(w http.ResponseWriter, status int, v any) *apiFailure {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return failure(http.StatusInternalServerError, "The answer could not be encoded.")
	}
	writeJSON(w, status, bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	return nil
}

// readBody reads the request body within MaxBody.
func (h *WebhooksAPI) body(c *apiCall) ([]byte, *apiFailure) {
	body, status, detail := readLimited(c.w, c.r, h.MaxBody)
	if status != 0 {
		return nil, failure(status, detail)
	}
	return body, nil
}

// storeContext bounds a change of the registry, and keeps it going if the
// caller hangs up: a write the bucket acknowledged is answered as done.
func storeContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
}

// registryFailure turns a registry error into its answer; a validation
// error's pointers are prefixed with at ("/webhook" for Ventiapp's bodies).
func (h *WebhooksAPI) registryFailure(err error, at string) *apiFailure {
	var ve *registry.ValidationError
	switch {
	case errors.As(err, &ve):
		f := &apiFailure{status: http.StatusUnprocessableEntity}
		for _, fe := range ve.Fields {
			ptr := at + fe.Pointer
			f.problems = append(f.problems, problem{detail: fieldDetail(ptr, fe.Message), pointer: ptr})
		}
		return f
	case errors.Is(err, registry.ErrNotFound):
		return failure(http.StatusNotFound, "There is no webhook with this id.")
	case errors.Is(err, registry.ErrLimit):
		return failure(http.StatusConflict, "The tenant has as many webhooks as this relay allows; delete one first.")
	case errors.Is(err, registry.ErrConflict):
		return failure(http.StatusConflict, "The webhook was changed by another request; read it and try again.")
	case errors.Is(err, registry.ErrUnavailable):
		return failure(http.StatusServiceUnavailable, "The webhook registry is unavailable; try again later.")
	}
	h.log.Error("webhook API operation failed", zap.Error(err))
	return failure(http.StatusInternalServerError, "The request could not be processed.")
}

// audit logs a change of the registry: who changed which webhook.
func (h *WebhooksAPI) audit(msg string, c *apiCall, w *registry.Webhook) {
	h.log.Info(msg, zap.String("tenant", c.tenant), zap.Uint64("webhook", w.ID), zap.String("topic", w.Topic))
}

// --- Ventiapp's API ---

// ventiappWebhook is a webhook as Ventiapp's API shows it: these keys, in
// this order.
type ventiappWebhook struct {
	ID         uint64 `json:"id"`
	Address    string `json:"address"`
	Topic      string `json:"topic"`
	CreatedAt  string `json:"created_at"`
	APIVersion string `json:"api_version"`
	Message    string `json:"message,omitempty"`
}

func ventiappView(w *registry.Webhook, message string) ventiappWebhook {
	return ventiappWebhook{ID: w.ID, Address: w.Address, Topic: w.Topic,
		CreatedAt: w.CreatedAt.UTC().Format(time.RFC3339), APIVersion: w.APIVersion, Message: message}
}

// ventiappList answers GET /api/webhooks/list: every webhook of the
// tenant, without paging, as Ventiapp's list has none.
func (h *WebhooksAPI) ventiappList(c *apiCall) *apiFailure {
	hooks, _ := c.reg.List(c.tenant, 0, 0)
	out := make([]ventiappWebhook, len(hooks))
	for i, w := range hooks {
		out[i] = ventiappView(w, "")
	}
	return writeResult(c.w, http.StatusOK, struct {
		Webhooks []ventiappWebhook `json:"webhooks"`
	}{out})
}

// ventiappCreate answers POST /api/webhooks/create.
//
// It answers 200, not 201: the seed shows Ventiapp's answer body and no
// status, its integrators' clients were written against Ventiapp, which
// answers 200 to its POSTs, and a client that checks for exactly 200 must
// keep working when it is pointed here. The native API answers 201.
func (h *WebhooksAPI) ventiappCreate(c *apiCall) *apiFailure {
	body, f := h.body(c)
	if f != nil {
		return f
	}
	in, f := decodeVentiappCreate(body)
	if f != nil {
		return f
	}
	ctx, cancel := storeContext(c.r)
	defer cancel()
	w, _, err := c.reg.Create(ctx, c.tenant, in)
	if err != nil {
		return h.registryFailure(err, "/webhook")
	}
	h.audit("webhook created", c, w)
	return writeResult(c.w, http.StatusOK, struct {
		Webhook ventiappWebhook `json:"webhook"`
	}{ventiappView(w, "Webhook created")})
}

// ventiappDelete answers POST /api/webhooks/delete with the deleted
// webhook.
func (h *WebhooksAPI) ventiappDelete(c *apiCall) *apiFailure {
	body, f := h.body(c)
	if f != nil {
		return f
	}
	id, f := decodeVentiappDelete(body)
	if f != nil {
		return f
	}
	ctx, cancel := storeContext(c.r)
	defer cancel()
	w, err := c.reg.Delete(ctx, c.tenant, id)
	if err != nil {
		return h.registryFailure(err, "/webhook")
	}
	h.audit("webhook deleted", c, w)
	return writeResult(c.w, http.StatusOK, struct {
		Webhook ventiappWebhook `json:"webhook"`
	}{ventiappView(w, "Webhook deleted")})
}

// --- The native API ---

// nativeWebhook is a webhook as the native API shows it: never a
// credential, a header's or param's value, a login body or a secret.
type nativeWebhook struct {
	ID            uint64                `json:"id"`
	Topic         string                `json:"topic"`
	Address       string                `json:"address"`
	Filter        string                `json:"filter,omitempty"`
	OrderBy       string                `json:"order_by,omitempty"`
	Authorization *registry.AuthSummary `json:"authorization,omitempty"`
	HeaderNames   []string              `json:"header_names"`
	ParamNames    []string              `json:"param_names"`
	Retry         *retryView            `json:"retry,omitempty"`
	CreatedAt     string                `json:"created_at"`
	UpdatedAt     string                `json:"updated_at"`
	APIVersion    string                `json:"api_version"`
}

// retryView is a webhook's own retry schedule, with durations as strings.
type retryView struct {
	Schedule []string `json:"schedule,omitempty"`
	MaxAge   string   `json:"max_age,omitempty"`
	On4xx    string   `json:"on_4xx,omitempty"`
}

func nativeView(w *registry.Webhook) nativeWebhook {
	v := nativeWebhook{
		ID: w.ID, Topic: w.Topic, Address: w.Address, Filter: w.Filter, OrderBy: w.OrderBy, Authorization: w.Auth,
		HeaderNames: w.HeaderNames, ParamNames: w.ParamNames,
		CreatedAt:  w.CreatedAt.UTC().Format(time.RFC3339),
		UpdatedAt:  w.UpdatedAt.UTC().Format(time.RFC3339),
		APIVersion: w.APIVersion,
	}
	if v.HeaderNames == nil {
		v.HeaderNames = []string{}
	}
	if v.ParamNames == nil {
		v.ParamNames = []string{}
	}
	if rc := w.Retry; rc != nil {
		rv := &retryView{On4xx: rc.On4xx}
		for _, d := range rc.Schedule {
			rv.Schedule = append(rv.Schedule, formatDuration(d))
		}
		if rc.MaxAge != 0 {
			rv.MaxAge = formatDuration(rc.MaxAge)
		}
		v.Retry = rv
	}
	return v
}

// formatDuration writes d as time.Duration does, without the zero units
// it ends with: "1m", "720h", "1h30m".
func formatDuration(d destination.Duration) string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// encodeCursor and decodeCursor make the list's opaque cursor: the
// base64url of the last id of a page.
func encodeCursor(id uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatUint(id, 10)))
}

func decodeCursor(s string) (uint64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	id, err := strconv.ParseUint(string(b), 10, 64)
	return id, err == nil
}

// nativeList answers GET /v1/webhooks?limit=&cursor=: a page of the
// tenant's webhooks in id order.
func (h *WebhooksAPI) nativeList(c *apiCall) *apiFailure {
	q := c.r.URL.Query()
	limit := defaultPageSize
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > maxPageSize {
			return failure(http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to %d.", maxPageSize))
		}
		limit = n
	}
	var after uint64
	if q.Has("cursor") {
		id, ok := decodeCursor(q.Get("cursor"))
		if !ok {
			return failure(http.StatusBadRequest, "cursor is not one this API gave; use the next_cursor of a list.")
		}
		after = id
	}
	hooks, more := c.reg.List(c.tenant, after, limit)
	page := struct {
		Data       []nativeWebhook `json:"data"`
		NextCursor *string         `json:"next_cursor"`
	}{Data: make([]nativeWebhook, len(hooks))}
	for i, w := range hooks {
		page.Data[i] = nativeView(w)
	}
	if more && len(hooks) > 0 {
		next := encodeCursor(hooks[len(hooks)-1].ID)
		page.NextCursor = &next
	}
	return writeResult(c.w, http.StatusOK, page)
}

// nativeCreate answers POST /v1/webhooks: 201 with the webhook and its
// signing secret, which no later answer shows.
func (h *WebhooksAPI) nativeCreate(c *apiCall) *apiFailure {
	body, f := h.body(c)
	if f != nil {
		return f
	}
	in, f := decodeNativeCreate(body)
	if f != nil {
		return f
	}
	ctx, cancel := storeContext(c.r)
	defer cancel()
	w, secret, err := c.reg.Create(ctx, c.tenant, in)
	if err != nil {
		return h.registryFailure(err, "")
	}
	h.audit("webhook created", c, w)
	c.w.Header().Set("Location", h.Prefix+"/v1/webhooks/"+strconv.FormatUint(w.ID, 10))
	c.w.Header().Set("Cache-Control", "no-store")
	return writeResult(c.w, http.StatusCreated, struct {
		nativeWebhook
		Secret string `json:"secret"`
	}{nativeView(w), secret})
}

// nativeGet answers GET /v1/webhooks/{id}.
func (h *WebhooksAPI) nativeGet(c *apiCall) *apiFailure {
	w, err := c.reg.Get(c.tenant, c.id)
	if err != nil {
		return h.registryFailure(err, "")
	}
	return writeResult(c.w, http.StatusOK, nativeView(w))
}

// nativePatch answers PATCH /v1/webhooks/{id}, a JSON merge patch.
func (h *WebhooksAPI) nativePatch(c *apiCall) *apiFailure {
	if _, err := c.reg.Get(c.tenant, c.id); err != nil {
		// An unknown id is a 404 whatever the body.
		return h.registryFailure(err, "")
	}
	body, f := h.body(c)
	if f != nil {
		return f
	}
	change, f := decodeNativePatch(body)
	if f != nil {
		return f
	}
	ctx, cancel := storeContext(c.r)
	defer cancel()
	w, err := c.reg.Update(ctx, c.tenant, c.id, func(in *registry.Input) error {
		change(in)
		return nil
	})
	if err != nil {
		return h.registryFailure(err, "")
	}
	h.audit("webhook updated", c, w)
	return writeResult(c.w, http.StatusOK, nativeView(w))
}

// nativeDelete answers DELETE /v1/webhooks/{id}: 204.
func (h *WebhooksAPI) nativeDelete(c *apiCall) *apiFailure {
	ctx, cancel := storeContext(c.r)
	defer cancel()
	w, err := c.reg.Delete(ctx, c.tenant, c.id)
	if err != nil {
		return h.registryFailure(err, "")
	}
	h.audit("webhook deleted", c, w)
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// nativeRotate answers POST /v1/webhooks/{id}/rotate: a new signing
// secret, shown once; the previous one signs beside it until the time
// given.
func (h *WebhooksAPI) nativeRotate(c *apiCall) *apiFailure {
	ctx, cancel := storeContext(c.r)
	defer cancel()
	w, secret, err := c.reg.Rotate(ctx, c.tenant, c.id)
	if err != nil {
		return h.registryFailure(err, "")
	}
	h.audit("webhook signing secret rotated", c, w)
	c.w.Header().Set("Cache-Control", "no-store")
	return writeResult(c.w, http.StatusOK, struct {
		Webhook                 nativeWebhook `json:"webhook"`
		Secret                  string        `json:"secret"`
		PreviousSecretExpiresAt string        `json:"previous_secret_expires_at"`
	}{nativeView(w), secret, w.PreviousSecretUntil.UTC().Format(time.RFC3339)})
}

// testTopic is the topic of a test event sent to a webhook whose topic
// is a pattern.
const testTopic = "hookrelay/test"

// nativeTest answers POST /v1/webhooks/{id}/test: a test event is stored
// for the webhook alone and delivered like any other, with its
// credentials, signature and retries; 202 with the event's id.
func (h *WebhooksAPI) nativeTest(c *apiCall) *apiFailure {
	w, err := c.reg.Get(c.tenant, c.id)
	if err != nil {
		return h.registryFailure(err, "")
	}
	topic := w.Topic
	if registry.IsPattern(topic) {
		topic = testTopic
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	ev := event.Event{
		ID:         event.NewID(testTopic, strconv.FormatUint(w.ID, 10), hex.EncodeToString(nonce[:])),
		Topic:      topic,
		Source:     "hookrelay",
		ReceivedAt: time.Now().UTC(),
		Tenant:     w.Tenant,
		Data:       json.RawMessage(`{"test":true}`),
	}
	ctx, cancel := storeContext(c.r)
	defer cancel()
	if err := h.app.engine.EnqueueEach(ctx, []event.Event{ev}, [][]string{{relay.WebhookName(w.ID)}}); err != nil {
		if errors.Is(err, relay.ErrUnavailable) {
			return failure(http.StatusServiceUnavailable, "The test event could not be stored; try again later.")
		}
		h.log.Error("storing a test event failed", zap.Uint64("webhook", w.ID), zap.Error(err))
		return failure(http.StatusInternalServerError, "The test event could not be stored.")
	}
	observeEnqueued(1)
	return writeResult(c.w, http.StatusAccepted, struct {
		EventID string `json:"event_id"`
	}{ev.ID})
}

// nativeTopics answers GET /v1/topics: the topics the relay knows of.
// Topics are free strings; a webhook may name another.
func (h *WebhooksAPI) nativeTopics(c *apiCall) *apiFailure {
	return writeResult(c.w, http.StatusOK, struct {
		Data []string `json:"data"`
	}{registry.KnownTopics})
}

// Interface guards
var (
	_ caddy.Provisioner           = (*WebhooksAPI)(nil)
	_ caddy.Validator             = (*WebhooksAPI)(nil)
	_ caddyhttp.MiddlewareHandler = (*WebhooksAPI)(nil)
)
