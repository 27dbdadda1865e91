package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/hookrelay/hookrelay/destination"
	"github.com/hookrelay/hookrelay/registry"
	"github.com/hookrelay/hookrelay/relay"
)

// The admin API's endpoints of registered webhooks (listed on adminAPI)
// are for operators: they see and change every tenant's webhooks, never
// their credentials; a create or a rotation answers the new signing
// secret, once. A webhook runs as the destination wh-<id>: its pause,
// resume, dead letters and replay are those of
// /hookrelay/destinations/wh-<id> and
// /hookrelay/dead_letters?destination=wh-<id>.

// errRegistryOff is the answer of every webhook endpoint while the
// running config has no webhook registry.
const errRegistryOff = "the webhook registry is not enabled (add a webhooks block to the hookrelay global option)"

// webhookView is a registered webhook as the admin API shows it: its
// Info, and the status of its destination on this node, null when it does
// not run here (it is broken, or is being started or stopped).
type webhookView struct {
	registry.Info
	Status *relay.DestinationStatus `json:"status"`
}

// webhooksResponse is the body of GET /hookrelay/webhooks.
type webhooksResponse struct {
	Webhooks []webhookView `json:"webhooks"`
	// NextAfter, when set, is the after of the next page.
	NextAfter *uint64 `json:"next_after"`
	// Total counts the webhooks listed across every page (the tenant's,
	// or all); Broken those of them that do not run on this node.
	Total  int `json:"total"`
	Broken int `json:"broken"`
}

// createWebhookRequest is the body of POST /hookrelay/webhooks: a
// tenant and the webhook, in the shapes the tenants' API takes
// (authorization, headers and params as the seed writes them).
type createWebhookRequest struct {
	Tenant        string                   `json:"tenant"`
	Topic         string                   `json:"topic"`
	Address       string                   `json:"address"`
	Filter        string                   `json:"filter,omitempty"`
	OrderBy       string                   `json:"order_by,omitempty"`
	Authorization *registry.Authorization  `json:"authorization,omitempty"`
	Headers       registry.Pairs           `json:"headers,omitempty"`
	Params        registry.Pairs           `json:"params,omitempty"`
	Secret        string                   `json:"secret,omitempty"`
	Retry         *destination.RetryConfig `json:"retry,omitempty"`
}

// String shows the request without its credentials.
func (c createWebhookRequest) String() string {
	return "webhook of tenant " + strconv.Quote(c.Tenant) + " on " + strconv.Quote(c.Topic) + " to " + strconv.Quote(c.Address)
}

// GoString is String: a %#v must not print the credentials either.
func (c createWebhookRequest) GoString() string { return c.String() }

// webhookSecretResponse answers a create and a rotation: the webhook and
// its new signing secret, which no other answer shows.
type webhookSecretResponse struct {
	Webhook registry.Info `json:"webhook"`
	Secret  string        `json:"secret"`
}

// webhookDeletedResponse answers a delete.
type webhookDeletedResponse struct {
	Webhook registry.Info `json:"webhook"`
	Deleted bool          `json:"deleted"`
}

// validationResponse is the 422 answer: the admin API's {"error": ...}
// and one entry per invalid field.
type validationResponse struct {
	Error  string                `json:"error"`
	Fields []registry.FieldError `json:"fields"`
}

// registryFor returns the running engine and its webhook registry, or an
// API error saying why there is none.
func registryFor() (*pooledEngine, *registry.Registry, error) {
	eng, err := engineFor()
	if err != nil {
		return nil, nil, err
	}
	reg := eng.registry.get()
	if reg == nil {
		return nil, nil, adminError(http.StatusNotFound, errRegistryOff)
	}
	return eng, reg, nil
}

// registryError turns a registry error into an API error. A
// *registry.ValidationError is answered by writeValidation instead.
func registryError(err error) error {
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return adminError(http.StatusNotFound, "%v", err)
	case errors.Is(err, registry.ErrLimit), errors.Is(err, registry.ErrConflict):
		return adminError(http.StatusConflict, "%v", err)
	case errors.Is(err, registry.ErrUnavailable):
		return adminError(http.StatusServiceUnavailable, "%v", err)
	case errors.Is(err, registry.ErrUnseal):
		return adminError(http.StatusInternalServerError, "%v: check the seal_key of the webhooks block", err)
	case errors.Is(err, context.DeadlineExceeded):
		return adminError(http.StatusGatewayTimeout, "the queue did not answer in time: %v", err)
	}
	return adminError(http.StatusInternalServerError, "webhook registry: %v", err)
}

// writeValidation answers 422 with every invalid field's JSON pointer
// and message (which never hold a value given).
func writeValidation(w http.ResponseWriter, ve *registry.ValidationError) error {
	body, err := json.Marshal(validationResponse{Error: ve.Error(), Fields: ve.Fields})
	if err != nil {
		return adminError(http.StatusInternalServerError, "encoding the answer: %v", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnprocessableEntity)
	_, _ = w.Write(append(body, '\n'))
	return nil
}

// lookupWebhook returns the webhook id, whatever its tenant.
func lookupWebhook(reg *registry.Registry, id uint64) (registry.Info, bool) {
	all := reg.All()
	i, ok := slices.BinarySearchFunc(all, id, func(in registry.Info, id uint64) int {
		switch {
		case in.ID < id:
			return -1
		case in.ID > id:
			return 1
		}
		return 0
	})
	if !ok {
		return registry.Info{}, false
	}
	return all[i], true
}

// withStatus adds to each webhook the status of its destination on this
// node, read for the page at once.
func withStatus(ctx context.Context, eng *relay.Engine, infos []registry.Info) ([]webhookView, error) {
	names := make([]string, len(infos))
	for i, in := range infos {
		names[i] = in.Destination
	}
	sts, err := eng.StatusOf(ctx, names)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]*relay.DestinationStatus, len(sts))
	for i := range sts {
		byName[sts[i].Name] = &sts[i]
	}
	out := make([]webhookView, len(infos))
	for i, in := range infos {
		out[i] = webhookView{Info: in, Status: byName[in.Destination]}
	}
	return out, nil
}

// webhookState is a webhook's state in a word: broken (it does not run
// here; Info.Broken says why), gone (it answered 410 and is paused until
// resumed), paused, running, or stopped (it is being started or deleted).
func webhookState(in registry.Info, st *relay.DestinationStatus) string {
	switch {
	case in.Broken != "":
		return "broken"
	case st == nil:
		return "stopped"
	case st.Gone:
		return "gone"
	case st.Paused:
		return "paused"
	default:
		return "running"
	}
}

// handleWebhooks serves /hookrelay/webhooks: the list and creates.
func (adminAPI) handleWebhooks(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
		return listWebhooks(w, r)
	case http.MethodPost:
		return createWebhook(w, r)
	default:
		return methodNotAllowed(r, "GET or POST")
	}
}

func listWebhooks(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	tenant := q.Get("tenant")
	limit, after, err := pageQuery(q, "after", "next_after")
	if err != nil {
		return err
	}
	eng, reg, err := registryFor()
	if err != nil {
		return err
	}
	resp := webhooksResponse{}
	page := make([]registry.Info, 0, min(limit, 100))
	for _, in := range reg.All() { // in id order
		if tenant != "" && in.Tenant != tenant {
			continue
		}
		resp.Total++
		if in.Broken != "" {
			resp.Broken++
		}
		switch {
		case in.ID <= after:
		case len(page) < limit:
			page = append(page, in)
		case resp.NextAfter == nil:
			last := page[len(page)-1].ID
			resp.NextAfter = &last
		}
	}
	ctx, cancel := apiContext(r)
	defer cancel()
	if resp.Webhooks, err = withStatus(ctx, eng.Engine, page); err != nil {
		return engineError(err)
	}
	return writeAPIJSON(w, resp)
}

func createWebhook(w http.ResponseWriter, r *http.Request) error {
	var req createWebhookRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAPIBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return adminError(http.StatusBadRequest, `invalid webhook: %v; send {"tenant":"...","topic":"...","address":"https://..."} and optionally filter, authorization, headers, params, secret, retry`, err)
	}
	if req.Tenant == "" {
		return writeValidation(w, &registry.ValidationError{Fields: []registry.FieldError{{Pointer: "/tenant", Message: "is required"}}})
	}
	_, reg, err := registryFor()
	if err != nil {
		return err
	}
	ctx, cancel := apiContext(r)
	defer cancel()
	wh, secret, err := reg.Create(ctx, req.Tenant, registry.Input{
		Topic: req.Topic, Address: req.Address, Filter: req.Filter, OrderBy: req.OrderBy, Authorization: req.Authorization,
		Headers: req.Headers, Params: req.Params, Secret: req.Secret, Retry: req.Retry,
	})
	var ve *registry.ValidationError
	if errors.As(err, &ve) {
		return writeValidation(w, ve)
	}
	if err != nil {
		return registryError(err)
	}
	body, err := json.Marshal(webhookSecretResponse{Webhook: infoOf(reg, wh), Secret: secret})
	if err != nil {
		return adminError(http.StatusInternalServerError, "encoding the answer: %v", err)
	}
	w.Header().Set("Location", "/hookrelay/webhooks/"+strconv.FormatUint(wh.ID, 10))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(append(body, '\n'))
	return nil
}

// infoOf returns the webhook as All shows it, which says whether it runs;
// or as w says when this node has not loaded it.
func infoOf(reg *registry.Registry, w *registry.Webhook) registry.Info {
	if in, ok := lookupWebhook(reg, w.ID); ok {
		return in
	}
	return registry.Info{ID: w.ID, Destination: relay.WebhookName(w.ID), Tenant: w.Tenant, Topic: w.Topic,
		Address: w.Address, Filter: w.Filter, OrderBy: w.OrderBy, Auth: w.Auth, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt}
}

// handleWebhook serves /hookrelay/webhooks/<id>[/rotate]. The id may be
// given as its destination name, wh-<id>.
func (adminAPI) handleWebhook(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.Path, "/hookrelay/webhooks/")
	idText, action, _ := strings.Cut(rest, "/")
	id, err := strconv.ParseUint(idText, 10, 64)
	if err != nil {
		var ok bool
		if id, ok = relay.WebhookID(idText); !ok {
			return adminError(http.StatusBadRequest, "invalid webhook id %q in %s: use the number that the list shows", idText, r.URL.Path)
		}
	}
	eng, reg, err := registryFor()
	if err != nil {
		return err
	}
	in, ok := lookupWebhook(reg, id)
	if !ok {
		return adminError(http.StatusNotFound, "%v: no webhook has id %d", registry.ErrNotFound, id)
	}
	ctx, cancel := apiContext(r)
	defer cancel()
	switch action {
	case "":
		switch r.Method {
		case http.MethodGet:
			views, err := withStatus(ctx, eng.Engine, []registry.Info{in})
			if err != nil {
				return engineError(err)
			}
			return writeAPIJSON(w, views[0])
		case http.MethodDelete:
			if _, err := reg.Delete(ctx, in.Tenant, id); err != nil {
				return registryError(err)
			}
			return writeAPIJSON(w, webhookDeletedResponse{Webhook: in, Deleted: true})
		default:
			return methodNotAllowed(r, "GET or DELETE")
		}
	case "rotate":
		if r.Method != http.MethodPost {
			return methodNotAllowed(r, "POST")
		}
		wh, secret, err := reg.Rotate(ctx, in.Tenant, id)
		if err != nil {
			return registryError(err)
		}
		return writeAPIJSON(w, webhookSecretResponse{Webhook: infoOf(reg, wh), Secret: secret})
	default:
		return adminError(http.StatusNotFound, "unknown action %q on webhook %d: use rotate", action, id)
	}
}
