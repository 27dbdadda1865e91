package caddymodule

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/registry"
	"github.com/hookrelay/hookrelay/relay"
)

func init() {
	caddy.RegisterModule(Dashboard{})
}

//go:embed dashboard/index.html dashboard/dashboard.css dashboard/dashboard.js
var dashboardFiles embed.FS

// Dashboard serves a status page of the relay: each destination's health,
// backlog, next retry and recent outcomes, refreshed every few seconds,
// with the dead letters and a button to replay them, and the registered
// webhooks: how many, per tenant, and the first 100 with their state. It reads the running
// engine directly, not through the admin API, the way the admin API and the
// metrics read it.
//
// Everything is served at the path the handler is routed to, so it works
// under any route: the page itself; ?asset=dashboard.css and
// ?asset=dashboard.js; ?format=json, the state the page shows; and a POST
// of {"ids":[...]} or {"destination":"<name>"} (Content-Type
// application/json, same origin only) that replays dead letters.
//
// The page can replay dead letters, and shows event ids and error texts:
// protect its route, for example with basic_auth.
type Dashboard struct {
	// DeadLetters is how many dead letters per destination the page lists,
	// oldest first. Default: 20.
	DeadLetters int `json:"dead_letters,omitempty"`

	log *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Dashboard) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.hook_dashboard",
		New: func() caddy.Module { return new(Dashboard) },
	}
}

// Provision sets the defaults and loads the hookrelay app, so that a
// config with a dashboard runs the relay it shows.
func (db *Dashboard) Provision(ctx caddy.Context) error {
	db.log = ctx.Logger()
	if db.DeadLetters == 0 {
		db.DeadLetters = 20
	}
	_, err := ctx.App("hookrelay")
	return err
}

// Validate checks the settings.
func (db *Dashboard) Validate() error {
	if db.DeadLetters < 0 || db.DeadLetters > 1000 {
		return errors.New("dead_letters must be from 1 to 1000")
	}
	return nil
}

// dashboardState is the page's JSON (?format=json).
type dashboardState struct {
	GeneratedAt  time.Time                     `json:"generated_at"`
	Destinations []dashboardDestination        `json:"destinations"`
	DeadLetters  map[string][]relay.DeadLetter `json:"dead_letters"`
	// Webhooks are the registered webhooks; absent when the registry is
	// off.
	Webhooks *dashboardWebhooks `json:"webhooks,omitempty"`
}

// How much of the registered webhooks the page shows.
const (
	dashboardWebhooksShown = 100
	dashboardTenantsShown  = 100
)

// dashboardWebhooks summarizes the registered webhooks: how many, how
// many per tenant (the tenants with the most first), and the first ones
// by id. Never a credential, and of an address only its host.
type dashboardWebhooks struct {
	Total  int `json:"total"`
	Broken int `json:"broken"`
	// Tenants counts the webhooks of the dashboardTenantsShown tenants
	// with the most; TenantsTotal counts every tenant.
	Tenants      []dashboardTenant  `json:"tenants"`
	TenantsTotal int                `json:"tenants_total"`
	Webhooks     []dashboardWebhook `json:"webhooks"`
}

type dashboardTenant struct {
	Tenant   string `json:"tenant"`
	Webhooks int    `json:"webhooks"`
}

type dashboardWebhook struct {
	ID          uint64 `json:"id"`
	Destination string `json:"destination"`
	Tenant      string `json:"tenant"`
	Topic       string `json:"topic"`
	// Host is the address's host, without its path and query.
	Host string `json:"host"`
	// State is broken, gone, paused, running or stopped (webhookState).
	State string `json:"state"`
	// Broken says why it does not run on this node.
	Broken string `json:"broken,omitempty"`
	// Queued counts the messages waiting for it (Depth); 0 when it does
	// not run here.
	Queued uint64 `json:"queued"`
}

// webhooksSummary reads the registered webhooks for the page.
func webhooksSummary(ctx context.Context, eng *relay.Engine, reg *registry.Registry) (*dashboardWebhooks, error) {
	all := reg.All()
	out := &dashboardWebhooks{Total: len(all), Tenants: []dashboardTenant{}}
	perTenant := make(map[string]int)
	for _, in := range all {
		perTenant[in.Tenant]++
		if in.Broken != "" {
			out.Broken++
		}
	}
	out.TenantsTotal = len(perTenant)
	for t, n := range perTenant {
		out.Tenants = append(out.Tenants, dashboardTenant{Tenant: t, Webhooks: n})
	}
	slices.SortFunc(out.Tenants, func(a, b dashboardTenant) int {
		if a.Webhooks != b.Webhooks {
			return b.Webhooks - a.Webhooks
		}
		return strings.Compare(a.Tenant, b.Tenant)
	})
	out.Tenants = out.Tenants[:min(len(out.Tenants), dashboardTenantsShown)]
	views, err := withStatus(ctx, eng, all[:min(len(all), dashboardWebhooksShown)])
	if err != nil {
		return nil, err
	}
	out.Webhooks = make([]dashboardWebhook, len(views))
	for i, v := range views {
		w := dashboardWebhook{ID: v.ID, Destination: v.Destination, Tenant: v.Tenant, Topic: v.Topic,
			State: webhookState(v.Info, v.Status), Broken: v.Broken}
		if u, err := url.Parse(v.Address); err == nil {
			w.Host = u.Host
		}
		if v.Status != nil {
			w.Queued = v.Status.Depth()
		}
		out.Webhooks[i] = w
	}
	return out, nil
}

type dashboardDestination struct {
	relay.DestinationStatus
	// State is the destination's health in a word: ok, degraded,
	// failing or paused.
	State string `json:"state"`
}

// ServeHTTP serves the page, its assets, its JSON and replays.
func (db *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		return db.serveReplay(w, r)
	default:
		h.Set("Allow", "GET, HEAD, POST")
		return db.jsonError(w, http.StatusMethodNotAllowed, "use GET, or POST to replay")
	}
	q := r.URL.Query()
	switch {
	case q.Get("format") == "json":
		return db.serveState(w, r)
	case q.Has("asset"):
		name := q.Get("asset")
		if name != "dashboard.css" && name != "dashboard.js" {
			return db.jsonError(w, http.StatusNotFound, "no such asset: use dashboard.css or dashboard.js")
		}
		return db.serveFile(w, r, name)
	default:
		// The page may replay dead letters: no framing, no foreign code.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		return db.serveFile(w, r, "index.html")
	}
}

func (db *Dashboard) serveFile(w http.ResponseWriter, r *http.Request, name string) error {
	b, err := dashboardFiles.ReadFile("dashboard/" + name)
	if err != nil {
		db.log.Error("reading an embedded dashboard file failed", zap.String("file", name), zap.Error(err))
		return db.jsonError(w, http.StatusInternalServerError, "the page could not be served")
	}
	w.Header().Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
	return nil
}

func (db *Dashboard) serveState(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	eng := running.engine()
	if eng == nil {
		return db.jsonError(w, http.StatusServiceUnavailable, "the relay is not running")
	}
	stats, err := eng.Stats(ctx)
	if err != nil {
		db.log.Warn("reading the relay's state failed", zap.Error(err))
		return db.jsonError(w, http.StatusServiceUnavailable, "the queue cannot be read right now")
	}
	st := dashboardState{
		GeneratedAt:  time.Now().UTC(),
		Destinations: make([]dashboardDestination, len(stats)),
		DeadLetters:  make(map[string][]relay.DeadLetter),
	}
	for i, s := range stats {
		st.Destinations[i] = dashboardDestination{DestinationStatus: s, State: destinationState(s)}
		if s.DeadLetters == 0 {
			continue
		}
		dls, _, err := eng.DeadLetters(ctx, s.Name, 0, db.DeadLetters)
		if err != nil {
			db.log.Warn("reading dead letters failed", zap.String("destination", s.Name), zap.Error(err))
			return db.jsonError(w, http.StatusServiceUnavailable, "the queue cannot be read right now")
		}
		st.DeadLetters[s.Name] = dls
	}
	if reg := eng.registry.get(); reg != nil {
		if st.Webhooks, err = webhooksSummary(ctx, eng.Engine, reg); err != nil {
			db.log.Warn("reading the registered webhooks' state failed", zap.Error(err))
			return db.jsonError(w, http.StatusServiceUnavailable, "the queue cannot be read right now")
		}
	}
	body, err := json.Marshal(st)
	if err != nil {
		db.log.Error("encoding the relay's state failed", zap.Error(err))
		return db.jsonError(w, http.StatusInternalServerError, "the state could not be encoded")
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// serveReplay replays dead letters. Only same-origin JSON requests are
// accepted: a JSON body needs a CORS preflight from another origin, which
// this handler never grants, and the Origin, when sent, must match.
func (db *Dashboard) serveReplay(w http.ResponseWriter, r *http.Request) error {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		return db.jsonError(w, http.StatusUnsupportedMediaType, "send the replay as application/json")
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Host != r.Host {
			return db.jsonError(w, http.StatusForbidden, "replays are accepted from this page only")
		}
	}
	var req replayRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAPIBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return db.jsonError(w, http.StatusBadRequest, `send {"ids":[...]} or {"destination":"<name>"}`)
	}
	eng := running.engine()
	if eng == nil {
		return db.jsonError(w, http.StatusServiceUnavailable, "the relay is not running")
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	n, err := replay(ctx, eng.Engine, req)
	if err != nil {
		var ae caddy.APIError
		if errors.As(err, &ae) && ae.HTTPStatus < 500 {
			return db.jsonError(w, ae.HTTPStatus, ae.Message)
		}
		db.log.Warn("replay from the dashboard failed", zap.Error(err))
		return db.jsonError(w, http.StatusServiceUnavailable, "the replay failed; some dead letters may have been requeued")
	}
	db.log.Info("dead letters replayed from the dashboard", zap.Int("replayed", n), zap.String("destination", req.Destination))
	body, _ := json.Marshal(replayResponse{Replayed: n})
	writeJSON(w, http.StatusOK, body)
	return nil
}

// jsonError answers a failure as the admin API does, {"error": msg}: the
// dashboard is an operator's page, whose script reads that shape, not a
// webhook endpoint. It returns nil, so that Caddy never answers instead.
func (db *Dashboard) jsonError(w http.ResponseWriter, status int, msg string) error {
	body, _ := json.Marshal(map[string]string{"error": msg})
	writeJSON(w, status, body)
	return nil
}

func parseDashboard(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	db := new(Dashboard)
	err := db.UnmarshalCaddyfile(h.Dispenser)
	return db, err
}

// UnmarshalCaddyfile sets up the dashboard from Caddyfile tokens. Syntax:
//
//	hook_dashboard {
//	    dead_letters <n>
//	}
func (db *Dashboard) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "dead_letters":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				return d.Errf("dead_letters must be a number from 1 to 1000, not %q", v)
			}
			db.DeadLetters = n
		default:
			return d.Errf("unknown hook_dashboard option %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Dashboard)(nil)
	_ caddy.Validator             = (*Dashboard)(nil)
	_ caddyhttp.MiddlewareHandler = (*Dashboard)(nil)
	_ caddyfile.Unmarshaler       = (*Dashboard)(nil)
)
