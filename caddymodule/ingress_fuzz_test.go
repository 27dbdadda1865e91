package caddymodule

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// contractTitles are the envelope titles of CONTRACT.md, section 1.
var contractTitles = map[int]string{
	http.StatusBadRequest:            "Bad Request",
	http.StatusUnauthorized:          "Unauthenticated",
	http.StatusRequestEntityTooLarge: "Payload Too Large",
	http.StatusUnprocessableEntity:   "Unprocessable Content",
}

// FuzzIngress drives the real hook_verify + hook_normalize chain with an
// arbitrary token (or a valid one, so that the body reaches the
// normalizer) and an arbitrary body, sent with a Content-Length or chunked.
// Whatever the input, the chain must not panic and must answer one of
// 201/400/401/413/422 with a JSON body of the contract's shape.
//
//	go test -run '^$' -fuzz '^FuzzIngress$' -fuzztime 30s ./caddymodule/
func FuzzIngress(f *testing.F) {
	const secret = "fuzz-ingress-secret"
	const maxBody = 4096
	// Valid for a day: a fuzzing session never outlives it.
	valid := testutil.Sign(f, "HS256", []byte(secret), testutil.Claims(map[string]any{"exp": time.Now().Add(24 * time.Hour).Unix()}), "")
	chain := newIngressChain(f, secret, maxBody)

	payload := testutil.AvePayload("guia-1", "guia-2")
	f.Add(valid, true, false, payload)
	f.Add("", true, true, payload)
	f.Add("", false, false, payload)
	f.Add(valid[:len(valid)-3], false, false, payload)
	f.Add(valid[:strings.LastIndexByte(valid, '.')], false, false, payload)
	f.Add("eyJhbGciOiJub25lIn0.e30.", false, false, payload)
	f.Add("a.b.c", false, false, []byte(`{}`))
	f.Add("", true, false, []byte(`{"tipo":"json","body":[{"id_envio":1,"fecha_estado":"2022-02-30 10:00:00","base64_entrega_digitalizada":{"base64":"iVBORw0KGgo=","mime_type":"application/pdf"}}]}`))
	f.Add("", true, false, []byte(`[1,2,3]`))
	f.Add("", true, false, []byte(`{"tipo":"json","body":[`))
	f.Add("", true, true, bytes.Repeat([]byte(" "), maxBody+1))
	f.Add("", true, false, []byte("{\"tipo\":\"json\",\"body\":[{\"id_envio\":\"\xff\"}]}"))

	f.Fuzz(func(t *testing.T, token string, useValid, chunked bool, body []byte) {
		if useValid {
			token = valid
		}
		r := withCaddyVars(httptest.NewRequest(http.MethodPost, "/hooks/ave", bytes.NewReader(body)))
		if chunked {
			r.ContentLength = -1
		}
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Ave-Hub-signature", token)
		w := httptest.NewRecorder()
		if err := chain.ServeHTTP(w, r); err != nil {
			t.Fatalf("the chain returned an error instead of answering: %v", err)
		}
		checkContractAnswer(t, w)
	})
}

// checkContractAnswer checks that a recorded answer is one the contract
// allows for the ingress half, in the contract's shape.
func checkContractAnswer(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	status, body := w.Code, w.Body.Bytes()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("status %d with Content-Type %q", status, ct)
	}
	if cl := w.Header().Get("Content-Length"); cl != strconv.Itoa(len(body)) {
		t.Fatalf("Content-Length %q for a body of %d bytes", cl, len(body))
	}
	if status == http.StatusCreated {
		if string(body) != wantSuccess {
			t.Fatalf("201 with body %s", body)
		}
		return
	}
	title, ok := contractTitles[status]
	if !ok {
		t.Fatalf("status %d is not an ingress answer of the contract (body %s)", status, body)
	}
	if !utf8.Valid(body) {
		t.Fatalf("%d: body is not UTF-8: %q", status, body)
	}
	var env struct {
		Errors []struct {
			Title      string `json:"title"`
			Detail     string `json:"detail"`
			StatusCode string `json:"status_code"`
			Source     *struct {
				Pointer string `json:"pointer"`
			} `json:"source"`
		} `json:"errors"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil || dec.More() {
		t.Fatalf("%d: body is not the error envelope (%v): %s", status, err, body)
	}
	if len(env.Errors) == 0 {
		t.Fatalf("%d: an envelope without errors: %s", status, body)
	}
	for _, e := range env.Errors {
		if e.Title != title || e.StatusCode != strconv.Itoa(status) || e.Detail == "" {
			t.Fatalf("%d: entry %+v does not match the status", status, e)
		}
		switch {
		case status == http.StatusUnprocessableEntity && (e.Source == nil || !strings.HasPrefix(e.Source.Pointer, "/")):
			t.Fatalf("422 entry without a JSON pointer: %s", body)
		case status != http.StatusUnprocessableEntity && e.Source != nil:
			t.Fatalf("%d entry with a pointer: %s", status, body)
		}
	}
	if status != http.StatusUnprocessableEntity && len(env.Errors) != 1 {
		t.Fatalf("%d with %d entries: %s", status, len(env.Errors), body)
	}
}
