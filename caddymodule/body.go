package caddymodule

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// readBody reads at most limit bytes of the body; it answers 413 or 400
// itself and returns ok=false when the body cannot be used.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	body, status, detail := readLimited(w, r, limit)
	if status != 0 {
		observeIngress(r, status)
		writeError(w, status, detail)
		return nil, false
	}
	return body, true
}

// readLimited reads at most limit bytes of the body. When the body cannot
// be used it returns the status to answer (413 or 400) and the error's
// detail, and leaves the answer to the caller.
func readLimited(w http.ResponseWriter, r *http.Request, limit int64) (body []byte, status int, detail string) {
	if r.ContentLength > limit {
		return nil, http.StatusRequestEntityTooLarge, tooLargeDetail(limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge, tooLargeDetail(limit)
		}
		return nil, http.StatusBadRequest, "The request body could not be read."
	}
	return body, 0, ""
}

// tooLargeDetail is the 413's detail, built only when a body is too large.
func tooLargeDetail(limit int64) string {
	return fmt.Sprintf("The request body is larger than the limit of %d bytes.", limit)
}
