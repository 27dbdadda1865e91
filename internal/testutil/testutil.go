// Package testutil holds what hookrelay's integration tests share: loopback
// receivers that record what they get, signed tokens, sample payloads,
// free ports, polling with a deadline, and a Caddy binary built from
// cmd/caddy for tests that run Caddy as a child process.
package testutil

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Received is one request a Receiver got.
type Received struct {
	At     time.Time
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
}

// Receiver is a loopback HTTP server standing in for a destination or a
// token endpoint. It records every request and answers what Answer says
// (200 with an empty body when Answer is nil).
type Receiver struct {
	*httptest.Server
	mu  sync.Mutex
	got []Received
	// Answer decides the response to the n-th request (1-based).
	Answer func(n int, r *http.Request, body []byte) (status int, header http.Header, respBody []byte)
}

// NewReceiver starts a receiver on 127.0.0.1, closed when the test ends.
func NewReceiver(t testing.TB, answer func(n int, r *http.Request, body []byte) (int, http.Header, []byte)) *Receiver {
	t.Helper()
	rc := &Receiver{Answer: answer}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.got = append(rc.got, Received{At: time.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	n := len(rc.got)
	answer := rc.Answer
	rc.mu.Unlock()
	status, h, resp := http.StatusOK, http.Header(nil), []byte(nil)
	if answer != nil {
		status, h, resp = answer(n, r, body)
	}
	for k, v := range h {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	_, _ = w.Write(resp)
}

// Got returns a copy of every request received so far.
func (rc *Receiver) Got() []Received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Received(nil), rc.got...)
}

// Count returns how many requests were received.
func (rc *Receiver) Count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got)
}

// WaitFor polls cond every few milliseconds until it holds, failing the
// test after within.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// AveGuide returns one valid Aveonline guide event as a JSON object, with
// shipment id id.
func AveGuide(id string) string {
	return fmt.Sprintf(`{"id_envio":%q,"cod_estado":"4","nombre_estado":"EN ENTREGA","fecha_estado":"2022-12-11 11:04:43","cod_novedad":"NOVEDAD","nombre_novedad":"DIRECCION ERRONEA","fecha_novedad":"2022-12-11 11:31:00","estado_novedad":"EJECUTADA","guia_reeemplazo":"123-444-222","tipo_guia_reeemplazo":"DEV","ruta_digitalizada":"https://laruta.com/docs/1.pdf","observaciones":"no se encuentra la dirección"}`, id)
}

// AvePayload returns a valid tracking webhook body with one guide per id.
func AvePayload(ids ...string) []byte {
	guides := make([]string, len(ids))
	for i, id := range ids {
		guides[i] = AveGuide(id)
	}
	return []byte(`{"tipo":"json","body":[` + strings.Join(guides, ",") + `]}`)
}

// Post sends body to url with headers (Content-Type application/json
// unless they set one) and returns the status and body.
func Post(t testing.TB, url string, header http.Header, body []byte) (int, []byte) {
	t.Helper()
	h := http.Header{"Content-Type": {"application/json"}}
	for k, v := range header {
		h[k] = v
	}
	return Do(t, http.MethodPost, url, h, body)
}

// Do sends a request with header and body (none when nil) and returns the
// status and body of the answer; it fails the test when no answer comes
// within 15s.
func Do(t testing.TB, method, url string, header http.Header, body []byte) (int, []byte) {
	t.Helper()
	a := Send(t, method, url, header, body)
	return a.Status, a.Body
}

// Answer is an HTTP answer as Send got it.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
	// Took is the time from sending to the whole body read.
	Took time.Duration
}

// Send is Do with the whole answer: its headers and how long it took.
func Send(t testing.TB, method, url string, header http.Header, body []byte) Answer {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	began := time.Now()
	client := &http.Client{Timeout: 15 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, url, err)
	}
	return Answer{Status: resp.StatusCode, Header: resp.Header, Body: b, Took: time.Since(began)}
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// CaddyBinary builds cmd/caddy (Caddy's standard modules plus hookrelay's)
// once per test process and returns its path.
func CaddyBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "hookrelay-caddy-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "caddy")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/caddy")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}
