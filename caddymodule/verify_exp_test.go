package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestVerifyRequiresExp: a token without exp is refused with a 401 that
// names the reason, unless allow_missing_exp is set; then max_age bounds
// it and an iat is required.
func TestVerifyRequiresExp(t *testing.T) {
	noExp := testutil.Sign(t, "HS256", []byte(ingressSecret), testutil.Claims(map[string]any{"exp": nil}), "")
	noExpNoIat := testutil.Sign(t, "HS256", []byte(ingressSecret), testutil.Claims(map[string]any{"exp": nil, "iat": nil}), "")
	old := testutil.Sign(t, "HS256", []byte(ingressSecret), testutil.Claims(map[string]any{"exp": nil, "iat": time.Now().Add(-2 * time.Hour).Unix()}), "")
	withExp := testutil.Sign(t, "HS256", []byte(ingressSecret), testutil.Claims(nil), "")

	strict := provisionVerify(t, &Verify{Secret: ingressSecret, Algorithms: []string{"HS256"}})
	lenient := provisionVerify(t, &Verify{Secret: ingressSecret, Algorithms: []string{"HS256"}, AllowMissingExp: true, MaxAge: caddy.Duration(time.Hour)})
	for _, tt := range []struct {
		name   string
		v      *Verify
		token  string
		status int
		body   string
	}{
		{"no exp, by default", strict, noExp, 401, want401("The token has no expiration time (exp).")},
		{"exp, by default", strict, withExp, 200, ""},
		{"no exp, allow_missing_exp", lenient, noExp, 200, ""},
		{"no exp nor iat, allow_missing_exp", lenient, noExpNoIat, 401, want401("The token is too old.")},
		{"no exp, older than max_age", lenient, old, 401, want401("The token is too old.")},
		{"exp, allow_missing_exp", lenient, withExp, 200, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := withCaddyVars(httptest.NewRequest(http.MethodPost, "/hooks", strings.NewReader("{}")))
			r.Header.Set("Ave-Hub-signature", tt.token)
			w := httptest.NewRecorder()
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
				w.WriteHeader(http.StatusOK)
				return nil
			})
			if err := tt.v.ServeHTTP(w, r, next); err != nil {
				t.Fatal(err)
			}
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d (%s)", w.Code, tt.status, w.Body)
			}
			if tt.body != "" && w.Body.String() != tt.body {
				t.Fatalf("body %s, want %s", w.Body, tt.body)
			}
		})
	}
}

// TestVerifyConfigRefused: settings that would leave tokens valid for ever
// or keys fetched in the clear are refused when the config loads, by
// Validate and by a whole Caddyfile.
func TestVerifyConfigRefused(t *testing.T) {
	for _, tt := range []struct {
		name string
		v    Verify
		want string
	}{
		{"allow_missing_exp without max_age", Verify{Secret: "s", AllowMissingExp: true}, "without exp needs max_age"},
		{"JWKS over http", Verify{JWKS: "http://hub.example/jwks.json"}, "must be https"},
		{"JWKS over http, query not quoted", Verify{JWKS: "http://hub.example/jwks.json?api_key=k-5e1d"}, "must be https"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.v.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate: %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "k-5e1d") {
				t.Fatalf("Validate quotes the JWKS URL's query: %v", err)
			}
		})
	}
	if err := (&Verify{JWKS: "http://127.0.0.1:9/jwks.json", JWKSInsecureHTTP: true}).Validate(); err != nil {
		t.Errorf("Validate refused an http JWKS with jwks_insecure_http: %v", err)
	}
	if err := (&Verify{Secret: "s", AllowMissingExp: true, MaxAge: caddy.Duration(time.Minute)}).Validate(); err != nil {
		t.Errorf("Validate refused allow_missing_exp with max_age: %v", err)
	}

	// The same through a Caddyfile, as `caddy run` or `caddy validate` loads it.
	for _, tt := range []struct{ name, body, want string }{
		{"allow_missing_exp without max_age", "secret s3cr3t-value\n\t\tallow_missing_exp", "without exp needs max_age"},
		{"JWKS over http", "jwks http://127.0.0.1:9/jwks.json", "must be https"},
	} {
		t.Run("Caddyfile/"+tt.name, func(t *testing.T) {
			cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(":9080 {\n\thook_verify {\n\t\t"+tt.body+"\n\t}\n}\n"), nil)
			if err != nil {
				t.Fatal(err)
			}
			err = caddy.Validate(mustUnmarshalConfig(t, cfg))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("loading: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func mustUnmarshalConfig(t *testing.T, b []byte) *caddy.Config {
	t.Helper()
	var cfg caddy.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	return &cfg
}
