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
	body, err := readAll(http.MaxBytesReader(w, r.Body, limit), r.ContentLength)
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

// sizedReadMax bounds the bodies readAll reads into a buffer of their
// announced length: a sender that announces a large body and sends little
// must not make the server set memory aside for what it did not send.
const sizedReadMax = 64 << 10

// readAll is io.ReadAll, reading what it reads and failing where it
// fails; but a body of known length (below 0 when unknown) up to
// sizedReadMax is read into one buffer of that length, instead of one
// that starts at 512 bytes and grows by copies.
func readAll(r io.Reader, length int64) ([]byte, error) {
	if length < 0 || length > sizedReadMax {
		return io.ReadAll(r)
	}
	// One byte more than announced, so that the read that finds the end
	// has room.
	b := make([]byte, 0, length+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			// More than announced (net/http does not let that happen).
			rest, err := io.ReadAll(r)
			return append(b, rest...), err
		}
	}
}
