package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/hookrelay/hookrelay/relay"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI is a module that serves hookrelay's endpoints on Caddy's admin
// API:
//
//	GET  /hookrelay/destinations                   every running destination's status
//	GET  /hookrelay/destinations/<name>            one destination's status
//	POST /hookrelay/destinations/<name>/pause      stop delivering to it (cluster-wide, until resume)
//	POST /hookrelay/destinations/<name>/resume     deliver again
//	GET  /hookrelay/dead_letters?destination=&limit=&cursor=
//	POST /hookrelay/dead_letters/replay            {"ids":[...]} or {"destination":"...","since":"<RFC 3339>"}
//
// and those of registered webhooks (webhooksadmin.go):
//
//	GET    /hookrelay/webhooks?tenant=&after=&limit=  a page of every tenant's webhooks, with their status
//	POST   /hookrelay/webhooks                      create one for a tenant
//	GET    /hookrelay/webhooks/<id>                 one webhook and its status
//	DELETE /hookrelay/webhooks/<id>                 delete it
//	POST   /hookrelay/webhooks/<id>/rotate          rotate its signing secret
//
// It reads the engine of the running hookrelay app. Dead letters are
// listed without their payload; webhooks without their credentials.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.hookrelay",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the routes of the /hookrelay/ endpoints.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/hookrelay/destinations", Handler: caddy.AdminHandlerFunc(a.handleDestinations)},
		{Pattern: "/hookrelay/destinations/", Handler: caddy.AdminHandlerFunc(a.handleDestination)},
		{Pattern: "/hookrelay/dead_letters", Handler: caddy.AdminHandlerFunc(a.handleDeadLetters)},
		{Pattern: "/hookrelay/dead_letters/replay", Handler: caddy.AdminHandlerFunc(a.handleReplay)},
		{Pattern: "/hookrelay/webhooks", Handler: caddy.AdminHandlerFunc(a.handleWebhooks)},
		{Pattern: "/hookrelay/webhooks/", Handler: caddy.AdminHandlerFunc(a.handleWebhook)},
	}
}

// destinationsResponse is the body of GET /hookrelay/destinations.
type destinationsResponse struct {
	Destinations []relay.DestinationStatus `json:"destinations"`
}

// deadLettersResponse is the body of GET /hookrelay/dead_letters.
type deadLettersResponse struct {
	DeadLetters []relay.DeadLetter `json:"dead_letters"`
	// Total counts the dead letters of the destination (or of all).
	Total uint64 `json:"total"`
	// NextCursor, when set, is the cursor of the next page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// replayRequest is the body of POST /hookrelay/dead_letters/replay.
type replayRequest struct {
	// IDs are dead-letter ids, as listed.
	IDs []uint64 `json:"ids,omitempty"`
	// Destination replays all of its dead letters (instead of IDs).
	Destination string `json:"destination,omitempty"`
	// Since, with Destination, limits the replay to dead letters
	// dead-lettered at or after this RFC 3339 time.
	Since string `json:"since,omitempty"`
}

// replayResponse is the answer to a replay.
type replayResponse struct {
	Replayed int `json:"replayed"`
}

// pauseResponse is the answer to pause and resume.
type pauseResponse struct {
	Destination string `json:"destination"`
	Paused      bool   `json:"paused"`
}

// maxAPIBody bounds admin request bodies.
const maxAPIBody = 1 << 20

func adminError(status int, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

func methodNotAllowed(r *http.Request, allowed string) error {
	return adminError(http.StatusMethodNotAllowed, "method %s not allowed on %s; use %s", r.Method, r.URL.Path, allowed)
}

// engineFor returns the running engine or an error saying none runs.
func engineFor() (*pooledEngine, error) {
	eng := running.engine()
	if eng == nil {
		return nil, adminError(http.StatusServiceUnavailable, "hookrelay is not running: the loaded config has no hookrelay app (add a hook_relay handler or the hookrelay global option)")
	}
	return eng, nil
}

// engineError turns an engine error into an API error.
func engineError(err error) error {
	if errors.Is(err, relay.ErrUnknownDestination) {
		return adminError(http.StatusNotFound, "%v", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return adminError(http.StatusGatewayTimeout, "the queue did not answer in time: %v", err)
	}
	return adminError(http.StatusInternalServerError, "queue error: %v", err)
}

// pageQuery reads an admin list's paging: limit (1 to 1000, default 100)
// and the position after which the page starts, in the query parameter
// name (given back by the previous page as next).
func pageQuery(q url.Values, name, next string) (limit int, after uint64, err error) {
	limit = 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return 0, 0, adminError(http.StatusBadRequest, "invalid limit %q: use a number from 1 to 1000", v)
		}
		limit = n
	}
	if v := q.Get(name); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, adminError(http.StatusBadRequest, "invalid %s %q: pass the %s of the previous page", name, v, next)
		}
		after = n
	}
	return limit, after, nil
}

func writeAPIJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	return nil
}

func apiContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 15*time.Second)
}

func (adminAPI) handleDestinations(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(r, "GET")
	}
	eng, err := engineFor()
	if err != nil {
		return err
	}
	ctx, cancel := apiContext(r)
	defer cancel()
	stats, err := eng.Stats(ctx)
	if err != nil {
		return engineError(err)
	}
	return writeAPIJSON(w, destinationsResponse{Destinations: stats})
}

// handleDestination serves /hookrelay/destinations/<name>[/pause|/resume].
func (adminAPI) handleDestination(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.Path, "/hookrelay/destinations/")
	name, action, _ := strings.Cut(rest, "/")
	if !relay.ValidName(name) {
		return adminError(http.StatusBadRequest, "invalid destination name %q in %s: use 1 to 64 of A-Z a-z 0-9 _ -", name, r.URL.Path)
	}
	eng, err := engineFor()
	if err != nil {
		return err
	}
	ctx, cancel := apiContext(r)
	defer cancel()
	switch action {
	case "":
		if r.Method != http.MethodGet {
			return methodNotAllowed(r, "GET")
		}
		st, err := eng.DestinationStatus(ctx, name)
		if err != nil {
			return engineError(err)
		}
		return writeAPIJSON(w, st)
	case "pause", "resume":
		if r.Method != http.MethodPost {
			return methodNotAllowed(r, "POST")
		}
		if action == "pause" {
			err = eng.Pause(ctx, name)
		} else {
			err = eng.Resume(ctx, name)
		}
		if err != nil {
			return engineError(err)
		}
		return writeAPIJSON(w, pauseResponse{Destination: name, Paused: action == "pause"})
	default:
		return adminError(http.StatusNotFound, "unknown action %q on destination %s: use pause or resume", action, name)
	}
}

func (adminAPI) handleDeadLetters(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(r, "GET")
	}
	q := r.URL.Query()
	dest := q.Get("destination")
	if dest != "" && !relay.ValidName(dest) {
		return adminError(http.StatusBadRequest, "invalid destination %q: use 1 to 64 of A-Z a-z 0-9 _ -", dest)
	}
	limit, after, err := pageQuery(q, "cursor", "next_cursor")
	if err != nil {
		return err
	}
	eng, err := engineFor()
	if err != nil {
		return err
	}
	ctx, cancel := apiContext(r)
	defer cancel()
	dls, next, err := eng.DeadLetters(ctx, dest, after, limit)
	if err != nil {
		return engineError(err)
	}
	total, err := eng.DeadLetterCount(ctx, dest)
	if err != nil {
		return engineError(err)
	}
	resp := deadLettersResponse{DeadLetters: dls, Total: total}
	if next != 0 {
		resp.NextCursor = strconv.FormatUint(next, 10)
	}
	return writeAPIJSON(w, resp)
}

func (adminAPI) handleReplay(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(r, "POST")
	}
	var req replayRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAPIBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return adminError(http.StatusBadRequest, `invalid replay request: %v; send {"ids":[...]} or {"destination":"<name>","since":"<RFC 3339 time>"}`, err)
	}
	eng, err := engineFor()
	if err != nil {
		return err
	}
	ctx, cancel := apiContext(r)
	defer cancel()
	n, err := replay(ctx, eng.Engine, req)
	if err != nil {
		return err
	}
	return writeAPIJSON(w, replayResponse{Replayed: n})
}

// replay runs a replay request; the admin API and the dashboard share it.
// Its errors are API errors.
func replay(ctx context.Context, eng *relay.Engine, req replayRequest) (int, error) {
	switch {
	case len(req.IDs) > 0 && req.Destination != "":
		return 0, adminError(http.StatusBadRequest, "give either ids or a destination, not both")
	case len(req.IDs) > 0:
		if req.Since != "" {
			return 0, adminError(http.StatusBadRequest, "since applies to a destination's dead letters, not to ids")
		}
		n, err := eng.Replay(ctx, req.IDs)
		if err != nil {
			return n, engineError(err)
		}
		return n, nil
	case req.Destination != "":
		if !relay.ValidName(req.Destination) {
			return 0, adminError(http.StatusBadRequest, "invalid destination %q: use 1 to 64 of A-Z a-z 0-9 _ -", req.Destination)
		}
		var since time.Time
		if req.Since != "" {
			t, err := time.Parse(time.RFC3339, req.Since)
			if err != nil {
				return 0, adminError(http.StatusBadRequest, "invalid since %q: use an RFC 3339 time such as 2026-11-22T09:00:00Z", req.Since)
			}
			since = t
		}
		n, err := eng.ReplayDestination(ctx, req.Destination, since)
		if err != nil {
			return n, engineError(err)
		}
		return n, nil
	default:
		return 0, adminError(http.StatusBadRequest, "nothing to replay: give ids, or a destination to replay all of its dead letters")
	}
}

// Interface guards
var (
	_ caddy.AdminRouter = adminAPI{}
)
