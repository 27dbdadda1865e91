package caddymodule

import (
	"encoding/json"
	"net/http"
	"strconv"
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
		body = []byte(`{"errors":[{"title":"Internal Server Error","detail":"The error could not be encoded.","status_code":"500"}]}`)
		status = http.StatusInternalServerError
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, status, body)
}

// writeError answers status with a single problem.
func writeError(w http.ResponseWriter, status int, detail string) {
	writeErrors(w, status, problem{detail: detail})
}
