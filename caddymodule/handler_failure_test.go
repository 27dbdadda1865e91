package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/relay/ave"
)

// A configuration fault found while serving is answered in the contract's
// envelope (500) and logged at Error, never with Caddy's empty 500.

func withIngress(r *http.Request, in *ingress) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), ingressKey{}, in))
}

func TestRelayAnswersIngressFailure(t *testing.T) {
	log, logs := observedLogger()
	h := &RelayHandler{Topic: "shipments/tracking", log: log}
	// A tracking without its required fields has no event.
	in := &ingress{tracks: []ave.Tracking{{}}}
	r := withCaddyVars(withIngress(httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}")), in))
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, nil); err != nil {
		t.Fatalf("ServeHTTP returned %v", err)
	}
	checkFailureAnswer(t, w, logs, 500, wantEnvelope("Internal Server Error", "500", "The webhook could not be processed; send it again later."), zap.ErrorLevel, 500)
	if !in.answered {
		t.Error("the answer is not marked, so hook_normalize would answer again")
	}
}

func TestCallAfterNormalizeAnswersFailure(t *testing.T) {
	log, logs := observedLogger()
	h := &Call{AllowUnauthenticated: true, log: log, call: &caller{anyone: true, log: log, maxBody: 1 << 20}}
	in := &ingress{tracks: []ave.Tracking{ave.Sample()}}
	r := withCaddyVars(withIngress(httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}")), in))
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, nil); err != nil {
		t.Fatalf("ServeHTTP returned %v", err)
	}
	checkFailureAnswer(t, w, logs, 500, wantEnvelope("Internal Server Error", "500", "The webhook could not be processed; send it again later."), zap.ErrorLevel, 500)
}
