package caddymodule

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// successBody is the contract's answer to an accepted and stored webhook.
var successBody = []byte(`{"status":"success","message":"Your webhook event was received successfully","status_code":201}`)

// apiError is one entry of the contract's error envelope.
type apiError struct {
	Title      string        `json:"title"`
	Detail     string        `json:"detail"`
	StatusCode string        `json:"status_code"`
	Source     *errorPointer `json:"source,omitempty"`
}

type errorPointer struct {
	Pointer string `json:"pointer"`
}

// titles are the envelope titles per status, as the hub's contract writes them.
var titles = map[int]string{
	http.StatusBadRequest:            "Bad Request",
	http.StatusUnauthorized:          "Unauthenticated",
	http.StatusRequestEntityTooLarge: "Payload Too Large",
	http.StatusUnprocessableEntity:   "Unprocessable Content",
	http.StatusServiceUnavailable:    "Service Unavailable",
	http.StatusInternalServerError:   "Internal Server Error",
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeSuccess answers 201 with the contract's success body.
func writeSuccess(w http.ResponseWriter) {
	writeJSON(w, http.StatusCreated, successBody)
}

// problem is one error detail with an optional JSON pointer.
type problem struct {
	detail  string
	pointer string
}

// writeErrors answers status with one envelope entry per problem.
func writeErrors(w http.ResponseWriter, status int, problems ...problem) {
	status, body := errorBody(status, problems...)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, status, body)
}

// errorBody is the contract's error envelope, one entry per problem, and
// the status to answer it with (500 if it cannot be encoded).
func errorBody(status int, problems ...problem) (int, []byte) {
	title := titles[status]
	if title == "" {
		title = http.StatusText(status)
	}
	code := strconv.Itoa(status)
	entries := make([]apiError, len(problems))
	for i, p := range problems {
		entries[i] = apiError{Title: title, Detail: p.detail, StatusCode: code}
		if p.pointer != "" {
			entries[i].Source = &errorPointer{Pointer: p.pointer}
		}
	}
	body, err := json.Marshal(struct {
		Errors []apiError `json:"errors"`
	}{entries})
	if err != nil {
		return http.StatusInternalServerError, []byte(`{"errors":[{"title":"Internal Server Error","detail":"The error could not be encoded.","status_code":"500"}]}`)
	}
	return status, body
}

// writeError answers status with a single problem.
func writeError(w http.ResponseWriter, status int, detail string) {
	writeErrors(w, status, problem{detail: detail})
}

// serveNext passes the request to next and reports whether the sender has
// been answered. An error next returns is answered here, in the envelope,
// unless something already answered, and logged: a sender never gets
// Caddy's empty error response.
func serveNext(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, log *zap.Logger) bool {
	tw := &writeTracker{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	err := next.ServeHTTP(tw, r)
	if err == nil {
		return tw.wrote
	}
	answerFailure(w, r, log, err, tw.wrote)
	return true
}

// answerFailure answers err, a handler's failure, in the envelope with the
// status of a caddyhttp.HandlerError (else 500), unless answered says the
// sender already got an answer. It logs the failure: a 5xx at Error, since
// the fault is ours; a 4xx at Debug, since senders must not flood the log.
// The error's text stays in the log; the answer names the status only.
func answerFailure(w http.ResponseWriter, r *http.Request, log *zap.Logger, err error, answered bool) {
	status := http.StatusInternalServerError
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode >= 400 && he.StatusCode <= 599 {
		status = he.StatusCode
	}
	level := zap.DebugLevel
	if status >= 500 {
		level = zap.ErrorLevel
	}
	if ce := log.Check(level, "webhook request failed"); ce != nil {
		ce.Write(zap.Int("status", status), zap.Error(err), zap.Bool("already_answered", answered),
			zap.String("method", r.Method), zap.String("path", r.URL.Path))
	}
	if answered {
		return
	}
	detail := "The request could not be processed."
	if status >= 500 {
		detail = "The webhook could not be processed; send it again later."
	}
	observeIngress(r, status)
	writeError(w, status, detail)
}

// writeTracker notes whether a later handler wrote a response. It holds
// the wrapper by value: one allocation per request, not two.
type writeTracker struct {
	caddyhttp.ResponseWriterWrapper
	wrote bool
}

func (t *writeTracker) WriteHeader(status int) {
	t.wrote = true
	t.ResponseWriterWrapper.WriteHeader(status)
}

func (t *writeTracker) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriterWrapper.Write(b)
}

// ReadFrom notes a write too: the wrapper's ReadFrom (which io.Copy uses)
// writes to the underlying writer directly.
func (t *writeTracker) ReadFrom(r io.Reader) (int64, error) {
	t.wrote = true
	return t.ResponseWriterWrapper.ReadFrom(r)
}
