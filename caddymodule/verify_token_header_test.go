package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestVerifyDropsTokenHeaderWhateverTheOutcome: after hook_verify, the
// request carries neither the signature header nor, when the token came
// from it, the Authorization header, whether the token was refused or
// accepted. An Authorization header that did not carry the token stays.
func TestVerifyDropsTokenHeaderWhateverTheOutcome(t *testing.T) {
	v := provisionVerify(t, &Verify{Secret: ingressSecret, Algorithms: []string{"HS256"}, AllowBearer: true})
	good := testutil.Sign(t, "HS256", []byte(ingressSecret), testutil.Claims(nil), "")
	bad := testutil.Sign(t, "HS256", []byte("not-the-hub-secret"), testutil.Claims(nil), "")
	for _, tt := range []struct {
		name       string
		header     http.Header
		status     int
		keepsAuthz bool
	}{
		{"refused", http.Header{"Ave-Hub-Signature": {bad}}, 401, false},
		{"malformed", http.Header{"Ave-Hub-Signature": {"not-a-jwt"}}, 400, false},
		{"accepted", http.Header{"Ave-Hub-Signature": {good}}, 200, false},
		{"refused bearer", http.Header{"Authorization": {"Bearer " + bad}}, 401, false},
		{"accepted bearer", http.Header{"Authorization": {"Bearer " + good}}, 200, false},
		{"other Authorization kept", http.Header{"Ave-Hub-Signature": {bad}, "Authorization": {"Basic dTpw"}}, 401, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := withCaddyVars(httptest.NewRequest(http.MethodPost, "/hooks", strings.NewReader("{}")))
			r.Header = tt.header
			w := httptest.NewRecorder()
			next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
			if err := v.ServeHTTP(w, r, next); err != nil {
				t.Fatal(err)
			}
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d (%s)", w.Code, tt.status, w.Body)
			}
			if got := r.Header.Get("Ave-Hub-Signature"); got != "" {
				t.Errorf("the signature header is still on the request: %q", got)
			}
			if got := r.Header.Get("Authorization"); (got != "") != tt.keepsAuthz {
				t.Errorf("Authorization after hook_verify = %q, want it kept: %v", got, tt.keepsAuthz)
			}
		})
	}
}

// A configured header is read and dropped whatever the case it is
// written in, in the configuration or in the request.
func TestVerifyConfiguredHeaderAnyCase(t *testing.T) {
	v := provisionVerify(t, &Verify{Secret: ingressSecret, Algorithms: []string{"HS256"}, Header: "x-HUB-token"})
	good := testutil.Sign(t, "HS256", []byte(ingressSecret), testutil.Claims(nil), "")
	r := withCaddyVars(httptest.NewRequest(http.MethodPost, "/hooks", strings.NewReader("{}")))
	r.Header.Set("X-Hub-TOKEN", good)
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	if err := v.ServeHTTP(w, r, next); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusOK || len(r.Header) != 0 {
		t.Errorf("status %d, headers left %v", w.Code, r.Header)
	}
	if got := caddyhttp.GetVar(r.Context(), "hook.claims.exp"); got == nil {
		t.Error("the exp claim is not a variable")
	}
}
