package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/destination"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/call"
	"github.com/hookrelay/hookrelay/relay/transform"
)

// DynamicBucket is the key-value bucket of the dynamic webhooks (DEUNA's,
// seed 001), one key per merchant and event name:
// "dyn.<merchant>.<event name>", both base64url.
const DynamicBucket = "HOOKRELAY_DYNAMIC"

const dynPrefix = "dyn."

// Timeouts of a dynamic webhook's call to its merchant.
const (
	DefaultDynamicTimeout = 10 * time.Second
	MaxDynamicTimeout     = 30 * time.Second
)

// Limits of a dynamic webhook's registration.
const (
	maxEventName    = 128
	maxMerchantID   = 128
	maxTemplate     = 32 << 10
	maxFieldPaths   = 64
	maxFieldPathLen = 256
)

// TemplateLimits bound every render of a template a merchant registered:
// a template that loops, or grows a value, without end is stopped with an
// error.
var TemplateLimits = transform.Limits{Time: 100 * time.Millisecond, Output: 1 << 20}

// parseTenantTemplate parses a template a merchant registered, with the
// limits that bound each of its renders.
func parseTenantTemplate(name, text string) (*transform.Template, error) {
	return transform.ParseLimited(name, text, TemplateLimits)
}

// FieldSet lists order fields: Fields are dotted paths in the order,
// CustomFields dotted paths in the order's custom_fields.
type FieldSet struct {
	Fields       []string `json:"fields"`
	CustomFields []string `json:"custom_fields"`
}

func (f FieldSet) empty() bool { return len(f.Fields)+len(f.CustomFields) == 0 }

// DynamicWebhook is one merchant's dynamic webhook as the bucket stores
// it: what is not secret in clear, the credentials and signing secret
// sealed.
type DynamicWebhook struct {
	Merchant  string `json:"merchant_id"`
	EventName string `json:"event_name"`
	// URL is the merchant's endpoint: https.
	URL string `json:"url"`
	// FieldsUpdate are the order fields an execution may change.
	FieldsUpdate FieldSet `json:"fields_update"`
	// ResponseBody are the order fields an execution answers with; none
	// answers the whole order.
	ResponseBody FieldSet `json:"response_body"`
	// ResponseTemplate turns the merchant's answer into a DEUNA order;
	// empty: the answer must be one.
	ResponseTemplate      string `json:"response_template,omitempty"`
	ErrorResponseTemplate string `json:"error_response_template,omitempty"`
	// ResponseData and RequestData are the samples the templates were
	// checked over: a merchant's answer and an execute body.
	ResponseData json.RawMessage `json:"response_data,omitempty"`
	RequestData  json.RawMessage `json:"request_data,omitempty"`
	// Timeout bounds the call to the merchant.
	Timeout     destination.Duration `json:"timeout"`
	Auth        *AuthSummary         `json:"auth,omitempty"`
	HeaderNames []string             `json:"header_names,omitempty"`
	CreatedAt   time.Time            `json:"created_at"`
	UpdatedAt   time.Time            `json:"updated_at"`
	// Sealed holds the Secrets, sealed.
	Sealed []byte `json:"sealed"`
}

// DynamicInput is what a registration gives.
type DynamicInput struct {
	EventName             string
	URL                   string
	FieldsUpdate          FieldSet
	ResponseBody          FieldSet
	ResponseTemplate      string
	ErrorResponseTemplate string
	// ResponseData and RequestData are JSON values; nil when absent.
	ResponseData  json.RawMessage
	RequestData   json.RawMessage
	Authorization *Authorization
	Headers       Pairs
	// Timeout: 0 means DefaultDynamicTimeout.
	Timeout time.Duration
	// Secret signs the calls and the answers; empty keeps the current one
	// or, for a new webhook, makes one.
	Secret string
}

// CheckMerchantID checks a merchant id as it appears in a path.
func CheckMerchantID(id string) error {
	if id == "" || len(id) > maxMerchantID {
		return fmt.Errorf("must be 1 to %d bytes", maxMerchantID)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '/' {
			return errors.New("must be printable ASCII without spaces or /")
		}
	}
	return nil
}

// CheckEventName checks an event name: letters, digits, '_', '-' and '.'.
func CheckEventName(name string) error {
	if name == "" || len(name) > maxEventName {
		return fmt.Errorf("must be 1 to %d characters", maxEventName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return errors.New("may hold only letters, digits, '_', '-' and '.'")
		}
	}
	return nil
}

// checkDynamic validates a registration and returns its parsed templates.
func (s *Settings) checkDynamic(in *DynamicInput) (*compiledTemplates, *ValidationError) {
	ve := &ValidationError{}
	if err := CheckEventName(in.EventName); err != nil {
		ve.add("/event_name", "%v", err)
	}
	s.checkAddress(ve, "/url", in.URL, true)
	checkFieldSet(ve, "/fields_update", in.FieldsUpdate)
	checkFieldSet(ve, "/response_body", in.ResponseBody)
	checkPairs(ve, "/headers", in.Headers, true, true)
	if in.Secret != "" {
		if _, err := relay.NewSigner(in.Secret); err != nil {
			ve.add("/secret", "%v", err)
		}
	}
	if in.Timeout != 0 && (in.Timeout < time.Millisecond || in.Timeout > MaxDynamicTimeout) {
		ve.add("/timeout", "must be between 1ms and %s", MaxDynamicTimeout)
	}
	if a := in.Authorization; a != nil {
		s.checkAuth(ve, a)
	}
	var request any = map[string]any{}
	if in.RequestData != nil {
		v, err := transform.DecodeJSON(in.RequestData)
		if err != nil {
			ve.add("/request_data", "is not JSON: %v", err)
		} else if _, ok := orderOf(v); !ok {
			ve.add("/request_data", `must be an execute body, {"order": {...}}`)
		} else {
			request = v
		}
	}
	var sample any
	if in.ResponseData != nil {
		v, err := transform.DecodeJSON(in.ResponseData)
		if err != nil {
			ve.add("/response_data", "is not JSON: %v", err)
		}
		sample = v
	}
	ct := &compiledTemplates{}
	if in.ResponseTemplate != "" {
		ct.response = parseTemplate(ve, "/response_template", "response_template", in.ResponseTemplate)
		if in.ResponseData == nil {
			ve.add("/response_data", "is required with response_template: a sample answer of the merchant to check the template over")
		}
	} else if in.ResponseData != nil && sample != nil {
		// Without a template the merchant answers a DEUNA order itself.
		if _, ok := orderOf(sample); !ok {
			ve.add("/response_data", `must be a DEUNA order, {"order": {...}}, when there is no response_template`)
		}
	}
	if in.ErrorResponseTemplate != "" {
		ct.errors = parseTemplate(ve, "/error_response_template", "error_response_template", in.ErrorResponseTemplate)
	}
	if len(ve.Fields) > 0 {
		return nil, ve
	}
	if ct.response != nil {
		out, err := ct.response.Render(call.ReplyData(request, http.StatusOK, sample, ""))
		if err != nil {
			ve.add("/response_template", "does not render over response_data: %s", renderReason(err))
		} else if v, _ := transform.DecodeJSON(out); v != nil {
			if _, ok := orderOf(v); !ok {
				ve.add("/response_template", `renders over response_data to %s, not a DEUNA order {"order": {...}}`, excerptJSON(out))
			} else if in.RequestData != nil {
				// The whole execution over the samples: merged into
				// request_data, answered with response_body.
				if _, err := shapeOrder(in.FieldsUpdate, in.ResponseBody)(out, request); err != nil {
					ve.add("/fields_update", "cannot be merged into request_data: %v", err)
				}
			}
		}
	}
	if ct.errors != nil {
		if _, err := ct.errors.Render(call.ReplyData(request, 0, nil, call.ErrUnreachable)); err != nil {
			ve.add("/error_response_template", "does not render for a merchant that cannot be reached (.result null, .status 0): %s", renderReason(err))
		}
	}
	if len(ve.Fields) > 0 {
		return nil, ve
	}
	return ct, nil
}

// compiledTemplates are a dynamic webhook's parsed templates.
type compiledTemplates struct {
	response, errors *transform.Template
}

func parseTemplate(ve *ValidationError, ptr, name, text string) *transform.Template {
	if len(text) > maxTemplate {
		ve.add(ptr, "is longer than %d bytes", maxTemplate)
		return nil
	}
	t, err := parseTenantTemplate(name, text)
	if err != nil {
		ve.add(ptr, "does not parse: %s", renderReason(err))
		return nil
	}
	return t
}

// renderReason is a template error without the template's name, which
// the pointer already gives: "line 3: <reason>".
func renderReason(err error) string {
	var re *transform.RenderError
	var pe *transform.ParseError
	switch {
	case errors.As(err, &re):
		return lineReason(re.Line, re.Reason)
	case errors.As(err, &pe):
		return lineReason(pe.Line, pe.Reason)
	}
	return err.Error()
}

func lineReason(line int, reason string) string {
	if line > 0 {
		return fmt.Sprintf("line %d: %s", line, reason)
	}
	return reason
}

func excerptJSON(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

func checkFieldSet(ve *ValidationError, ptr string, f FieldSet) {
	for _, l := range []struct {
		ptr   string
		paths []string
	}{{ptr + "/fields", f.Fields}, {ptr + "/custom_fields", f.CustomFields}} {
		if len(l.paths) > maxFieldPaths {
			ve.add(l.ptr, "has more than %d paths", maxFieldPaths)
			continue
		}
		for i, p := range l.paths {
			if err := checkFieldPath(p); err != nil {
				ve.add(fmt.Sprintf("%s/%d", l.ptr, i), "%v", err)
			}
		}
	}
}

// checkFieldPath checks a dotted path of order fields.
func checkFieldPath(p string) error {
	switch {
	case p == "":
		return errors.New("is empty")
	case len(p) > maxFieldPathLen:
		return fmt.Errorf("is longer than %d bytes", maxFieldPathLen)
	}
	for seg := range strings.SplitSeq(p, ".") {
		if seg == "" {
			return fmt.Errorf("%q has an empty segment", p)
		}
	}
	return nil
}

// orderOf returns the order of an execute body or a rendered answer,
// {"order": {...}}.
func orderOf(v any) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	o, ok := m["order"].(map[string]any)
	return o, ok
}

// Dynamic is the dynamic webhooks of every merchant, as the bucket holds
// them, ready to run on this node.
type Dynamic struct {
	kv  jetstream.KeyValue
	log *zap.Logger

	mirror    // its mu guards the fields below
	settings  Settings
	hooks     map[string]*dynEntry // by key
	merchants map[string]int       // webhooks per merchant
}

// dynEntry is one dynamic webhook as this node runs it.
type dynEntry struct {
	w   *DynamicWebhook
	rev uint64
	run *dynRun
	// broken says why it cannot run here; empty when it runs.
	broken string
}

// dynRun is a dynamic webhook ready to execute.
type dynRun struct {
	call   call.Caller
	signer *relay.Signer
}

// OpenDynamic watches the bucket and readies its dynamic webhooks. It
// returns once the stored ones are loaded (or ctx ends).
func OpenDynamic(ctx context.Context, kv jetstream.KeyValue, settings Settings, log *zap.Logger) (*Dynamic, error) {
	settings = settings.withDefaults()
	if err := settings.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	d := &Dynamic{
		kv: kv, log: log,
		settings:  settings,
		hooks:     make(map[string]*dynEntry),
		merchants: make(map[string]int),
	}
	if err := d.follow(ctx, kv, d.apply); err != nil {
		return nil, err
	}
	return d, nil
}

// Close stops watching.
func (d *Dynamic) Close() {
	d.stop()
}

// Configure applies a reload's settings to every dynamic webhook.
func (d *Dynamic) Configure(settings Settings) error {
	settings = settings.withDefaults()
	if err := settings.validate(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.settings = settings
	for _, e := range d.hooks {
		d.buildLocked(e)
	}
	return nil
}

// Len is how many dynamic webhooks there are.
func (d *Dynamic) Len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.hooks)
}

// apply takes one bucket entry, under mu.
func (d *Dynamic) apply(kve jetstream.KeyValueEntry) {
	k := kve.Key()
	if old, ok := d.hooks[k]; ok {
		if d.merchants[old.w.Merchant]--; d.merchants[old.w.Merchant] <= 0 {
			delete(d.merchants, old.w.Merchant)
		}
		delete(d.hooks, k)
	}
	if kve.Operation() != jetstream.KeyValuePut {
		return
	}
	var w DynamicWebhook
	if err := json.Unmarshal(kve.Value(), &w); err != nil || dynKey(w.Merchant, w.EventName) != k {
		d.log.Error("unreadable dynamic webhook in the registry; skipping it", zap.String("key", k), zap.Error(err))
		return
	}
	e := &dynEntry{w: &w, rev: kve.Revision()}
	d.hooks[k] = e
	d.merchants[w.Merchant]++
	d.buildLocked(e)
}

// buildLocked readies e to run: its templates parsed, its credentials
// opened, its request built.
func (d *Dynamic) buildLocked(e *dynEntry) {
	run, err := d.settings.dynamicRun(e.w, d.log)
	if err != nil {
		e.run, e.broken = nil, err.Error()
		d.log.Error("a dynamic webhook cannot run; executing it answers 503 until it is registered again",
			zap.String("merchant", e.w.Merchant), zap.String("event_name", e.w.EventName), zap.Error(err))
		return
	}
	e.run, e.broken = run, ""
}

// dynamicRun builds what executing w needs.
func (s *Settings) dynamicRun(w *DynamicWebhook, log *zap.Logger) (*dynRun, error) {
	sec, err := s.openDynamic(w)
	if err != nil {
		return nil, err
	}
	dc, err := requestConfig("dynamic", w.URL, sec)
	if err != nil {
		return nil, err
	}
	dest, err := dc.Build(destination.Env{Tokens: s.Tokens, Client: s.Client})
	if err != nil {
		return nil, err
	}
	run := &dynRun{signer: dest.Signer}
	log = log.With(zap.String("merchant", w.Merchant), zap.String("event_name", w.EventName))
	run.call = call.Caller{Dest: dest, Client: s.Client, Timeout: time.Duration(w.Timeout), Log: log,
		Shape: shapeOrder(w.FieldsUpdate, w.ResponseBody)}
	if w.ResponseTemplate != "" {
		if run.call.Response, err = parseTenantTemplate("response_template", w.ResponseTemplate); err != nil {
			return nil, err
		}
	}
	if w.ErrorResponseTemplate != "" {
		if run.call.Error, err = parseTenantTemplate("error_response_template", w.ErrorResponseTemplate); err != nil {
			return nil, err
		}
	}
	return run, nil
}

// dynKey is the bucket key of a merchant's event name.
func dynKey(merchant, event string) string {
	return dynPrefix + base64.RawURLEncoding.EncodeToString([]byte(merchant)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(event))
}

func dynAAD(merchant, event string) []byte {
	return []byte("hookrelay dynamic webhook " + merchant + "\x00" + event)
}

func (s *Settings) openDynamic(w *DynamicWebhook) (*Secrets, error) {
	return s.openSecrets(w.Sealed, dynAAD(w.Merchant, w.EventName))
}

// Register stores merchant's dynamic webhook for in.EventName, replacing
// the one of the same event name. It returns the webhook, its signing
// secret when it was made now (empty when an earlier one is kept), and
// whether the webhook is new.
func (d *Dynamic) Register(ctx context.Context, merchant string, in DynamicInput) (*DynamicWebhook, string, bool, error) {
	if err := CheckMerchantID(merchant); err != nil {
		return nil, "", false, &ValidationError{Fields: []FieldError{{Pointer: "/merchant_id", Message: err.Error()}}}
	}
	s := d.Settings()
	if _, ve := s.checkDynamic(&in); ve != nil {
		return nil, "", false, ve
	}
	if in.Timeout == 0 {
		in.Timeout = DefaultDynamicTimeout
	}
	k := dynKey(merchant, in.EventName)
	for range 3 {
		d.mu.RLock()
		old, exists := d.hooks[k]
		n := d.merchants[merchant]
		d.mu.RUnlock()
		now := time.Now().UTC().Truncate(time.Second)
		w := &DynamicWebhook{
			Merchant: merchant, EventName: in.EventName, URL: in.URL,
			FieldsUpdate: in.FieldsUpdate, ResponseBody: in.ResponseBody,
			ResponseTemplate: in.ResponseTemplate, ErrorResponseTemplate: in.ErrorResponseTemplate,
			ResponseData: in.ResponseData, RequestData: in.RequestData,
			Timeout: destination.Duration(in.Timeout), Auth: in.Authorization.Summary(), HeaderNames: in.Headers.Names(),
			CreatedAt: now, UpdatedAt: now,
		}
		sec := &Secrets{Authorization: in.Authorization, Headers: in.Headers, Secret: in.Secret}
		shown := ""
		if exists {
			w.CreatedAt = old.w.CreatedAt
		}
		if exists && sec.Secret == "" {
			if prev, err := s.openDynamic(old.w); err == nil {
				sec.Secret = prev.Secret
			} else {
				// Sealed under a key this relay no longer has: the
				// registration repairs it, with a new secret, shown.
				sec.Secret = NewSecret()
				shown = sec.Secret
			}
		}
		if !exists {
			if n >= s.MaxPerTenant {
				return nil, "", false, ErrLimit
			}
			if sec.Secret == "" {
				sec.Secret = NewSecret()
				shown = sec.Secret
			}
		}
		var err error
		if w.Sealed, err = s.sealSecrets(sec, dynAAD(merchant, in.EventName)); err != nil {
			return nil, "", false, err
		}
		val, err := json.Marshal(w)
		if err != nil {
			return nil, "", false, err
		}
		var rev uint64
		if exists {
			rev, err = d.kv.Update(ctx, k, val, old.rev)
		} else {
			rev, err = d.kv.Create(ctx, k, val)
		}
		if conflict(err) {
			// Changed meanwhile: wait for this node to see it, try again.
			d.waitRev(ctx, d.lastRev(ctx, k))
			continue
		}
		if err != nil {
			return nil, "", false, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		d.waitRev(ctx, rev)
		return w, shown, !exists, nil
	}
	return nil, "", false, ErrConflict
}

// lastRev is the key's last revision in the bucket, 0 when unknown.
func (d *Dynamic) lastRev(ctx context.Context, k string) uint64 {
	e, err := d.kv.Get(ctx, k)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyDeleted) {
			// A delete marker's revision is not returned with the error:
			// wait for any change.
			d.mu.RLock()
			defer d.mu.RUnlock()
			return d.rev + 1
		}
		return 0
	}
	return e.Revision()
}

// Settings returns the settings in force.
func (d *Dynamic) Settings() Settings {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.settings
}

// Get returns merchant's dynamic webhook of an event name.
func (d *Dynamic) Get(merchant, event string) (*DynamicWebhook, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	e, ok := d.hooks[dynKey(merchant, event)]
	if !ok {
		return nil, ErrNotFound
	}
	return e.w, nil
}

// List returns merchant's dynamic webhooks by event name.
func (d *Dynamic) List(merchant string) []*DynamicWebhook {
	d.mu.RLock()
	var out []*DynamicWebhook
	if d.merchants[merchant] > 0 {
		for _, e := range d.hooks {
			if e.w.Merchant == merchant {
				out = append(out, e.w)
			}
		}
	}
	d.mu.RUnlock()
	slices.SortFunc(out, func(a, b *DynamicWebhook) int { return strings.Compare(a.EventName, b.EventName) })
	return out
}

// Delete removes merchant's dynamic webhook of an event name.
func (d *Dynamic) Delete(ctx context.Context, merchant, event string) (*DynamicWebhook, error) {
	k := dynKey(merchant, event)
	d.mu.RLock()
	e, ok := d.hooks[k]
	d.mu.RUnlock()
	if !ok {
		return nil, ErrNotFound
	}
	err := d.kv.Delete(ctx, k, jetstream.LastRevision(e.rev))
	if conflict(err) {
		return nil, ErrConflict
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d.waitUntil(waitCtx, func() bool { _, still := d.hooks[k]; return !still })
	return e.w, nil
}

// ErrBroken: the dynamic webhook is registered but cannot run on this
// node (its credentials do not open with the configured seal keys).
var ErrBroken = errors.New("the dynamic webhook cannot run on this relay")

// Execution is the answer of one execution.
type Execution struct {
	call.Answer
	// ID is the webhook-id of the call and of the signed answer.
	ID string
	// Signer signs the answer.
	Signer *relay.Signer
}

// Execute runs merchant's dynamic webhook of an event name over an
// execute body (body, and doc, that body decoded, whose order is an
// object): the merchant is called, its answer is rendered, the fields the
// webhook may update are merged into the order, and the answer holds the
// fields of response_body. id is the call's webhook-id. It fails only
// with ErrNotFound or ErrBroken; the merchant's failures are answers.
func (d *Dynamic) Execute(ctx context.Context, merchant, event, id string, body []byte, doc map[string]any) (*Execution, error) {
	d.mu.RLock()
	e, ok := d.hooks[dynKey(merchant, event)]
	var run *dynRun
	if ok {
		run = e.run
	}
	d.mu.RUnlock()
	switch {
	case !ok:
		return nil, ErrNotFound
	case run == nil:
		return nil, ErrBroken
	}
	x := run.call.Forward(ctx, id, body)
	return &Execution{Answer: run.call.Answer(ctx, body, doc, x), ID: id, Signer: run.signer}, nil
}

// shapeOrder makes an execution's answer from the rendered order: the
// paths of update merged into the request's order, then only the paths
// of respond kept.
func shapeOrder(update, respond FieldSet) func(out []byte, request any) ([]byte, error) {
	return func(out []byte, request any) ([]byte, error) {
		v, err := transform.DecodeJSON(out)
		if err != nil {
			return nil, err
		}
		rendered, ok := orderOf(v)
		if !ok {
			return nil, fmt.Errorf(`the answer %s is not a DEUNA order {"order": {...}}`, excerptJSON(out))
		}
		order, ok := orderOf(request)
		if !ok {
			return nil, errors.New("the request holds no order")
		}
		if err := MergeOrder(order, rendered, update); err != nil {
			return nil, err
		}
		return ReduceOrder(order, respond)
	}
}

// MergeOrder sets in order the paths of update that rendered holds:
// Fields relative to the orders, CustomFields relative to their
// custom_fields. Whatever else rendered holds is dropped.
func MergeOrder(order, rendered map[string]any, update FieldSet) error {
	for _, p := range update.Fields {
		if v, ok := getPath(rendered, p); ok {
			if err := setPath(order, p, v); err != nil {
				return err
			}
		}
	}
	if len(update.CustomFields) == 0 {
		return nil
	}
	rcf, _ := rendered["custom_fields"].(map[string]any)
	if rcf == nil {
		return nil
	}
	cf, ok := order["custom_fields"].(map[string]any)
	if !ok {
		if order["custom_fields"] != nil {
			return errors.New("the order's custom_fields is not an object")
		}
		cf = map[string]any{}
	}
	set := false
	for _, p := range update.CustomFields {
		if v, ok := getPath(rcf, p); ok {
			if err := setPath(cf, p, v); err != nil {
				return fmt.Errorf("custom_fields: %w", err)
			}
			set = true
		}
	}
	if set {
		order["custom_fields"] = cf
	}
	return nil
}

// ReduceOrder answers {"order": ...} with only the paths of respond; with
// none, the whole order. Keys are written in sorted order.
func ReduceOrder(order map[string]any, respond FieldSet) ([]byte, error) {
	if respond.empty() {
		return json.Marshal(map[string]any{"order": order})
	}
	kept := map[string]any{}
	ok := true
	for _, p := range respond.Fields {
		ok = ok && pick(kept, order, p)
	}
	if len(respond.CustomFields) > 0 {
		if cf, isObject := order["custom_fields"].(map[string]any); isObject {
			keptCF, _ := kept["custom_fields"].(map[string]any)
			if keptCF == nil {
				keptCF = map[string]any{}
			}
			for _, p := range respond.CustomFields {
				ok = ok && pick(keptCF, cf, p)
			}
			if len(keptCF) > 0 {
				kept["custom_fields"] = keptCF
			}
		}
	}
	if ok {
		return json.Marshal(map[string]any{"order": kept})
	}
	// A path through an array: transform.Select keeps array shapes.
	whole, err := json.Marshal(map[string]any{"order": order})
	if err != nil {
		return nil, err
	}
	paths := make([]string, 0, len(respond.Fields)+len(respond.CustomFields))
	for _, p := range respond.Fields {
		paths = append(paths, "order."+p)
	}
	for _, p := range respond.CustomFields {
		paths = append(paths, "order.custom_fields."+p)
	}
	out, err := transform.Select(whole, paths)
	if err != nil {
		return nil, err
	}
	if string(out) == "{}" {
		return []byte(`{"order":{}}`), nil
	}
	return out, nil
}

// pick copies path (through objects only) from src into dst, making the
// objects on the way; a path that is not in src is skipped. It returns
// false when the path runs into an array, which it does not copy.
func pick(dst, src map[string]any, path string) bool {
	v, where := lookup(src, path)
	switch where {
	case pathAbsent:
		return true
	case pathThroughArray:
		return false
	}
	segs := strings.Split(path, ".")
	for _, seg := range segs[:len(segs)-1] {
		switch next := dst[seg].(type) {
		case map[string]any:
			dst = next
		case nil:
			n := map[string]any{}
			dst[seg] = n
			dst = n
		default:
			return true // the whole value is kept already
		}
	}
	dst[segs[len(segs)-1]] = v
	return true
}

// Where a path is, for lookup.
const (
	pathAbsent = iota
	pathThere
	pathThroughArray
)

// lookup reads a dotted path of objects in m, and says whether it is
// there, absent, or runs into an array on the way.
func lookup(m map[string]any, path string) (any, int) {
	var v any = m
	for seg := range strings.SplitSeq(path, ".") {
		switch o := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = o[seg]; !ok {
				return nil, pathAbsent
			}
		case []any:
			return nil, pathThroughArray
		default:
			return nil, pathAbsent
		}
	}
	return v, pathThere
}

// getPath reads a dotted path of objects.
func getPath(m map[string]any, path string) (any, bool) {
	v, where := lookup(m, path)
	return v, where == pathThere
}

// setPath writes a dotted path of objects, making the objects missing on
// the way; a value on the way that is not an object is an error.
func setPath(m map[string]any, path string, v any) error {
	segs := strings.Split(path, ".")
	o := m
	for i, seg := range segs[:len(segs)-1] {
		next, ok := o[seg]
		if !ok || next == nil {
			n := map[string]any{}
			o[seg] = n
			o = n
			continue
		}
		if o, ok = next.(map[string]any); !ok {
			return fmt.Errorf("%s is not an object", strings.Join(segs[:i+1], "."))
		}
	}
	o[segs[len(segs)-1]] = v
	return nil
}
