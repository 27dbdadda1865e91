package caddymodule

import (
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

func TestWebhooksAPIUnmarshalCaddyfile(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     WebhooksAPI
		err      string
	}{
		{"tokens", `hook_webhooks {
			prefix /api
			token {env.ACME_TOKEN} acme
			token {file./run/globex} globex
			max_body 64KiB
		}`, WebhooksAPI{Prefix: "/api", MaxBody: 64 << 10, Tokens: []WebhooksAPIToken{
			{Token: "{env.ACME_TOKEN}", Tenant: "acme"}, {Token: "{file./run/globex}", Tenant: "globex"}}}, ""},
		{"tenant", `hook_webhooks {
			tenant {http.vars.hook.claims.sub}
		}`, WebhooksAPI{Tenant: "{http.vars.hook.claims.sub}"}, ""},
		{"argument", `hook_webhooks /api`, WebhooksAPI{}, "wrong argument count"},
		{"token without tenant", `hook_webhooks {
			token secret
		}`, WebhooksAPI{}, "token needs a value and a tenant"},
		{"token with three", `hook_webhooks {
			token secret acme more
		}`, WebhooksAPI{}, "token needs a value and a tenant"},
		{"prefix without slash", `hook_webhooks {
			prefix api
		}`, WebhooksAPI{}, "must start with /"},
		{"bad size", `hook_webhooks {
			max_body lots
		}`, WebhooksAPI{}, "invalid size"},
		{"unknown", `hook_webhooks {
			secret x
		}`, WebhooksAPI{}, `unknown hook_webhooks option "secret"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got WebhooksAPI
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.in))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestWebhooksAPIValidate(t *testing.T) {
	tok := []WebhooksAPIToken{{Token: "t", Tenant: "acme"}}
	for _, c := range []struct {
		name string
		h    WebhooksAPI
		err  string
	}{
		{"tokens", WebhooksAPI{Tokens: tok}, ""},
		{"tenant", WebhooksAPI{Tenant: "{http.auth.user.id}", Prefix: "/a/b"}, ""},
		{"neither", WebhooksAPI{}, "a tenant placeholder or token lines are required"},
		{"both", WebhooksAPI{Tenant: "{http.auth.user.id}", Tokens: tok}, "not both"},
		{"prefix", WebhooksAPI{Tokens: tok, Prefix: "/api/"}, "must start with / and not end with one"},
		{"relative prefix", WebhooksAPI{Tokens: tok, Prefix: "api"}, "must start with /"},
		{"negative max_body", WebhooksAPI{Tokens: tok, MaxBody: -1}, "max_body cannot be negative"},
		{"token without tenant", WebhooksAPI{Tokens: []WebhooksAPIToken{{Token: "t"}}}, "token 1 needs a value and a tenant"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.h.Validate()
			if c.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("error %v, want one containing %q", err, c.err)
			}
		})
	}
}

// TestWebhooksAPIProvision: a config without the registry, or with a
// token that resolves to nothing or repeats another, does not load, and
// the errors never hold a token's value.
func TestWebhooksAPIProvision(t *testing.T) {
	const value = "webhooks-api-token-value-never-in-an-error"
	t.Setenv("HOOKRELAY_TEST_API_TOKEN", value)
	t.Setenv("HOOKRELAY_TEST_SEAL_KEY", "nM8fVn0f6X2Qk5m7cQv9yB4h1s3ZpR6tUwXaLdEeKjo=")
	testutil.UnsetEnv(t, "HOOKRELAY_TEST_UNSET_TOKEN")
	dir := t.TempDir()
	config := func(webhooks bool, tokens ...WebhooksAPIToken) *caddy.Config {
		hr := map[string]any{"storage": map[string]any{"dir": dir}}
		if webhooks {
			hr["webhooks"] = map[string]any{"seal_keys": []string{"{env.HOOKRELAY_TEST_SEAL_KEY}"}}
		}
		cfg := map[string]any{"apps": map[string]any{
			"hookrelay": hr,
			"http": map[string]any{"servers": map[string]any{"s": map[string]any{
				"listen": []string{"127.0.0.1:0"},
				"routes": []any{map[string]any{"handle": []any{map[string]any{"handler": "hook_webhooks", "tokens": tokens}}}},
			}}},
		}}
		raw, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var c caddy.Config
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatal(err)
		}
		return &c
	}
	acme := WebhooksAPIToken{Token: "{env.HOOKRELAY_TEST_API_TOKEN}", Tenant: "acme"}
	for _, c := range []struct {
		name     string
		webhooks bool
		tokens   []WebhooksAPIToken
		err      string
	}{
		{"no webhooks block", false, []WebhooksAPIToken{acme},
			"hook_webhooks needs the webhook registry: add a webhooks block with a seal_key to the hookrelay global option"},
		{"empty token", true, []WebhooksAPIToken{{Token: "{env.HOOKRELAY_TEST_UNSET_TOKEN}", Tenant: "acme"}},
			`token 1 (tenant "acme") resolved to an empty value`},
		{"repeated token", true, []WebhooksAPIToken{acme, {Token: value, Tenant: "globex"}},
			`token 2 (tenant "globex") has the value of an earlier token`},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := caddy.Validate(config(c.webhooks, c.tokens...))
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("error %v, want one containing %q", err, c.err)
			}
			if c.name != "repeated token" && strings.Contains(err.Error(), value) {
				t.Errorf("the error holds the token: %v", err)
			}
		})
	}
}

// TestWebhooksAPIWithoutRegistry: while the registry is not running (its
// first start, or after a reload that dropped it), the API answers 503 in
// the envelope with Retry-After; the OpenAPI document is served still.
func TestWebhooksAPIWithoutRegistry(t *testing.T) {
	h := &WebhooksAPI{
		app:    &App{engine: &pooledEngine{}},
		tokens: []apiToken{{sum: sha256.Sum256([]byte("tok")), tenant: "acme"}},
		log:    zap.NewNop(),
	}
	var err error
	if h.docYAML, h.docJSON, err = openAPIDocument(""); err != nil {
		t.Fatal(err)
	}
	serve := func(method, path, auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		if err := h.ServeHTTP(rec, req, nil); err != nil {
			t.Fatal(err)
		}
		return rec
	}
	rec := serve("GET", "/v1/webhooks", "Bearer tok")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" ||
		!strings.HasPrefix(rec.Body.String(), `{"errors":[{"title":"Service Unavailable","detail":"The webhook registry is not running; try again later.","status_code":"503"}]}`) {
		t.Errorf("%d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	if rec := serve("GET", "/v1/webhooks", "Bearer nope"); rec.Code != http.StatusUnauthorized {
		t.Errorf("a wrong token: %d", rec.Code)
	}
	if rec := serve("GET", "/openapi.json", ""); rec.Code != http.StatusOK || !json.Valid(rec.Body.Bytes()) {
		t.Errorf("the document: %d", rec.Code)
	}
}

// TestWebhooksAPITenantPlaceholder: without token lines, the tenant is the
// placeholder resolved for the request; a request for which it resolves
// to nothing is answered 401, without a WWW-Authenticate challenge, since
// the credential is the operator's own authentication.
func TestWebhooksAPITenantPlaceholder(t *testing.T) {
	h := &WebhooksAPI{Tenant: "{http.request.header.X-Tenant}", app: &App{engine: &pooledEngine{}}, log: zap.NewNop()}
	for _, c := range []struct {
		tenant string
		want   int
	}{
		{"acme", http.StatusServiceUnavailable}, // past the tenant, no registry
		{"", http.StatusUnauthorized},
	} {
		req := httptest.NewRequest("GET", "/v1/webhooks", nil)
		if c.tenant != "" {
			req.Header.Set("X-Tenant", c.tenant)
		}
		caddyhttp.NewTestReplacer(req)
		if got, ok := h.tenant(req); got != c.tenant || ok != (c.tenant != "") {
			t.Errorf("tenant %q %v, want %q", got, ok, c.tenant)
		}
		rec := httptest.NewRecorder()
		if err := h.ServeHTTP(rec, req, nil); err != nil {
			t.Fatal(err)
		}
		if rec.Code != c.want || rec.Header().Get("WWW-Authenticate") != "" {
			t.Errorf("tenant %q: %d %v", c.tenant, rec.Code, rec.Header())
		}
	}
}
