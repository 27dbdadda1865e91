package caddymodule

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/destination"
	"github.com/hookrelay/hookrelay/registry"
	"github.com/hookrelay/hookrelay/relay/transform"
)

// DEUNA's dynamic webhooks (seed 001, CONTRACT.md section 5), below the
// API's prefix:
//
//	POST   /api/v1/merchants/{merchant_id}/webhooks                       register (or replace) one
//	GET    /api/v1/merchants/{merchant_id}/webhooks                       list them
//	GET    /api/v1/merchants/{merchant_id}/webhooks/{event_name}          read one
//	DELETE /api/v1/merchants/{merchant_id}/webhooks/{event_name}          delete one
//	POST   /api/v1/merchants/{merchant_id}/webhooks/{event_name}/execute  run one over an order
//
// The caller's tenant (its token, from Authorization: Bearer or DEUNA's
// merchant_token header, or the tenant placeholder) must be the merchant
// of the path.

const merchantsPath = "/api/v1/merchants/"

// MaxExecuteBody is the largest execute body, an order, accepted.
const MaxExecuteBody = 1 << 20

// serveMerchant answers a path below /api/v1/merchants/ (rest is what
// follows it).
func (h *WebhooksAPI) serveMerchant(w http.ResponseWriter, r *http.Request, tenant, rest string) *apiFailure {
	merchant, sub, _ := strings.Cut(rest, "/")
	event, action := "", ""
	switch {
	case sub == "webhooks":
	case strings.HasPrefix(sub, "webhooks/"):
		var slash bool
		event, action, slash = strings.Cut(strings.TrimPrefix(sub, "webhooks/"), "/")
		if event == "" || slash && action != "execute" {
			return failure(http.StatusNotFound, "There is no API resource at this path.")
		}
	default:
		return failure(http.StatusNotFound, "There is no API resource at this path.")
	}
	if registry.CheckMerchantID(merchant) != nil {
		return failure(http.StatusNotFound, "There is no API resource at this path.")
	}
	var allow []string
	switch {
	case event == "":
		allow = []string{http.MethodGet, http.MethodPost}
	case action == "":
		allow = []string{http.MethodDelete, http.MethodGet}
	default:
		allow = []string{http.MethodPost}
	}
	if !slices.Contains(allow, r.Method) {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return failure(http.StatusMethodNotAllowed, "The method is not allowed here; use "+strings.Join(allow, " or ")+".")
	}
	if tenant != merchant {
		return failure(http.StatusForbidden, "The credential is not this merchant's.")
	}
	dyn := h.app.engine.registry.dynamic()
	if dyn == nil {
		return failure(http.StatusServiceUnavailable, "The webhook registry is not running; try again later.")
	}
	c := &merchantCall{w: w, r: r, dyn: dyn, merchant: merchant, event: event}
	switch {
	case event == "" && r.Method == http.MethodGet:
		return h.dynamicList(c)
	case event == "":
		return h.dynamicRegister(c)
	case action == "execute":
		return h.dynamicExecute(c)
	case r.Method == http.MethodGet:
		return h.dynamicGet(c)
	}
	return h.dynamicDelete(c)
}

// merchantCall is one request of a merchant.
type merchantCall struct {
	w        http.ResponseWriter
	r        *http.Request
	dyn      *registry.Dynamic
	merchant string
	event    string
}

// dynamicView is a dynamic webhook as the API shows it: never its
// credentials' values nor its signing secret.
type dynamicView struct {
	MerchantID            string                `json:"merchant_id"`
	EventName             string                `json:"event_name"`
	URL                   string                `json:"url"`
	FieldsUpdate          registry.FieldSet     `json:"fields_update"`
	ResponseBody          registry.FieldSet     `json:"response_body"`
	ResponseTemplate      string                `json:"response_template,omitempty"`
	ErrorResponseTemplate string                `json:"error_response_template,omitempty"`
	ResponseData          json.RawMessage       `json:"response_data,omitempty"`
	RequestData           json.RawMessage       `json:"request_data,omitempty"`
	Timeout               string                `json:"timeout"`
	Authorization         *registry.AuthSummary `json:"authorization,omitempty"`
	HeaderNames           []string              `json:"header_names,omitempty"`
	CreatedAt             string                `json:"created_at"`
	UpdatedAt             string                `json:"updated_at"`
}

func viewDynamic(d *registry.DynamicWebhook) dynamicView {
	v := dynamicView{
		MerchantID: d.Merchant, EventName: d.EventName, URL: d.URL,
		FieldsUpdate: d.FieldsUpdate, ResponseBody: d.ResponseBody,
		ResponseTemplate: d.ResponseTemplate, ErrorResponseTemplate: d.ErrorResponseTemplate,
		ResponseData: d.ResponseData, RequestData: d.RequestData,
		Timeout:       formatDuration(d.Timeout),
		Authorization: d.Auth, HeaderNames: d.HeaderNames,
		CreatedAt: d.CreatedAt.UTC().Format(time.RFC3339), UpdatedAt: d.UpdatedAt.UTC().Format(time.RFC3339),
	}
	for _, l := range []*[]string{&v.FieldsUpdate.Fields, &v.FieldsUpdate.CustomFields, &v.ResponseBody.Fields, &v.ResponseBody.CustomFields} {
		if *l == nil {
			*l = []string{}
		}
	}
	return v
}

// dynamicRegister answers POST .../webhooks: 201 with the webhook and its
// signing secret, shown this once, when the event name is new; 200 when
// it replaced the merchant's webhook of that event name, whose secret it
// keeps unless the body gives one.
func (h *WebhooksAPI) dynamicRegister(c *merchantCall) *apiFailure {
	body, status, detail := readLimited(c.w, c.r, h.MaxBody)
	if status != 0 {
		return failure(status, detail)
	}
	in, f := decodeDynamic(body)
	if f != nil {
		return f
	}
	ctx, cancel := storeContext(c.r)
	defer cancel()
	d, secret, created, err := c.dyn.Register(ctx, c.merchant, in)
	if err != nil {
		if errors.Is(err, registry.ErrLimit) {
			return failure(http.StatusConflict, "The merchant has as many dynamic webhooks as this relay allows; delete one first.")
		}
		return h.registryFailure(err, "")
	}
	msg, status := "dynamic webhook replaced", http.StatusOK
	if created {
		msg, status = "dynamic webhook registered", http.StatusCreated
	}
	h.log.Info(msg, zap.String("merchant", c.merchant), zap.String("event_name", d.EventName))
	if secret == "" {
		return writeResult(c.w, status, viewDynamic(d))
	}
	c.w.Header().Set("Cache-Control", "no-store")
	return writeResult(c.w, status, struct {
		dynamicView
		Secret string `json:"secret"`
	}{viewDynamic(d), secret})
}

// dynamicList answers GET .../webhooks: {"data": [...]}, by event name.
func (h *WebhooksAPI) dynamicList(c *merchantCall) *apiFailure {
	list := c.dyn.List(c.merchant)
	out := make([]dynamicView, len(list))
	for i, d := range list {
		out[i] = viewDynamic(d)
	}
	return writeResult(c.w, http.StatusOK, struct {
		Data []dynamicView `json:"data"`
	}{out})
}

func (h *WebhooksAPI) dynamicGet(c *merchantCall) *apiFailure {
	d, err := c.dyn.Get(c.merchant, c.event)
	if err != nil {
		return dynamicNotFound(err, h)
	}
	return writeResult(c.w, http.StatusOK, viewDynamic(d))
}

func (h *WebhooksAPI) dynamicDelete(c *merchantCall) *apiFailure {
	ctx, cancel := storeContext(c.r)
	defer cancel()
	d, err := c.dyn.Delete(ctx, c.merchant, c.event)
	if err != nil {
		return dynamicNotFound(err, h)
	}
	h.log.Info("dynamic webhook deleted", zap.String("merchant", c.merchant), zap.String("event_name", d.EventName))
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func dynamicNotFound(err error, h *WebhooksAPI) *apiFailure {
	if errors.Is(err, registry.ErrNotFound) {
		return failure(http.StatusNotFound, "The merchant has no dynamic webhook of this event name.")
	}
	return h.registryFailure(err, "")
}

// dynamicExecute answers POST .../webhooks/{event_name}/execute: the
// merchant's webhook run over the order of the body, its answer signed.
func (h *WebhooksAPI) dynamicExecute(c *merchantCall) *apiFailure {
	body, status, detail := readLimited(c.w, c.r, MaxExecuteBody)
	if status != 0 {
		return failure(status, detail)
	}
	v, err := transform.DecodeJSON(body)
	if err != nil {
		return failure(http.StatusBadRequest, "The request body is not valid JSON.")
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return failure(http.StatusBadRequest, "The request body must be a JSON object.")
	}
	order, ok := doc["order"].(map[string]any)
	if !ok {
		return &apiFailure{status: http.StatusUnprocessableEntity, problems: []problem{{
			detail: `order is required and must be an object: the body is {"order": {...}}.`, pointer: "/order"}}}
	}
	if cf, present := order["custom_fields"]; present && cf != nil {
		if _, ok := cf.(map[string]any); !ok {
			return &apiFailure{status: http.StatusUnprocessableEntity, problems: []problem{{
				detail: "order.custom_fields must be an object.", pointer: "/order/custom_fields"}}}
		}
	}
	id := newMessageID()
	start := time.Now()
	ex, err := c.dyn.Execute(c.r.Context(), c.merchant, c.event, id, body, doc)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return dynamicNotFound(err, h)
	case errors.Is(err, registry.ErrBroken):
		return failure(http.StatusServiceUnavailable, "The dynamic webhook cannot run on this relay; register it again.")
	case err != nil:
		return h.registryFailure(err, "")
	}
	if c.r.Context().Err() != nil {
		return nil // the caller is gone; nobody to answer
	}
	out := ex.Body
	if out == nil {
		out = envelope(ex.Status, ex.Detail)
	}
	signAnswer(c.w.Header(), ex.Signer, ex.ID, out)
	writeJSON(c.w, ex.Status, out)
	observeExecution(ex.Status, time.Since(start))
	return nil
}

// dynamicMembers are the members of a registration body.
var dynamicMembers = []string{"event_name", "url", "fields_update", "response_body", "response_template",
	"error_response_template", "response_data", "request_data", "authorization", "headers", "timeout", "secret"}

// decodeDynamic reads a registration body: the seed's members, with ours
// beside them (request_data, authorization, headers, timeout, secret).
func decodeDynamic(body []byte) (registry.DynamicInput, *apiFailure) {
	var in registry.DynamicInput
	d := &fieldDecoder{}
	o := d.nativeWebhook(body)
	if o == nil {
		return in, d.failed()
	}
	d.str(o, "event_name", &in.EventName)
	d.str(o, "url", &in.URL)
	d.fieldSet(o, "fields_update", &in.FieldsUpdate)
	d.fieldSet(o, "response_body", &in.ResponseBody)
	d.str(o, "response_template", &in.ResponseTemplate)
	d.str(o, "error_response_template", &in.ErrorResponseTemplate)
	d.jsonData(o, "response_data", &in.ResponseData)
	d.jsonData(o, "request_data", &in.RequestData)
	d.authorization(o, &in.Authorization)
	d.pairs(o, "headers", &in.Headers)
	d.str(o, "secret", &in.Secret)
	if raw, ok := o.get("timeout"); ok && jsonKind(raw) != 'n' {
		var t destination.Duration
		d.duration(raw, "/timeout", &t)
		in.Timeout = time.Duration(t)
		if in.Timeout <= 0 {
			in.Timeout = -1 // refused by the registry's check
		}
	}
	d.unknown(o, "merchant_id", "created_at", "updated_at", "header_names")
	return in, d.failed()
}

// fieldSet decodes {"fields": [...], "custom_fields": [...]}.
func (d *fieldDecoder) fieldSet(o *jsonObject, name string, dst *registry.FieldSet) {
	raw, ok := o.get(name)
	if !ok || jsonKind(raw) == 'n' {
		return
	}
	fo := d.object(raw, "/"+name)
	if fo == nil {
		return
	}
	for _, l := range []struct {
		name string
		dst  *[]string
	}{{"fields", &dst.Fields}, {"custom_fields", &dst.CustomFields}} {
		raw, ok := fo.get(l.name)
		if !ok || jsonKind(raw) == 'n' {
			continue
		}
		if jsonKind(raw) != '[' || json.Unmarshal(raw, l.dst) != nil {
			d.bad(fo.ptr+"/"+l.name, "must be an array of strings")
		}
	}
	d.unknown(fo)
}

// jsonData decodes a sample: any JSON value, or (as the seed types
// response_data) a string that holds JSON.
func (d *fieldDecoder) jsonData(o *jsonObject, name string, dst *json.RawMessage) {
	raw, ok := o.get(name)
	if !ok || jsonKind(raw) == 'n' {
		return
	}
	if jsonKind(raw) == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil || !json.Valid([]byte(s)) {
			d.bad("/"+name, "must be JSON, or a string that holds JSON")
			return
		}
		raw = json.RawMessage(s)
	}
	*dst = raw
}
