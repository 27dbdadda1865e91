package caddymodule

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/spf13/cobra"

	"github.com/hookrelay/hookrelay/relay/jwtverify"
)

// runHookrelayCommand runs `caddy hookrelay <args>` through the command as
// Caddy registered it and returns what it printed.
func runHookrelayCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	reg, ok := caddycmd.Commands()["hookrelay"]
	if !ok || reg.CobraFunc == nil {
		t.Fatal("the hookrelay command is not registered")
	}
	cmd := &cobra.Command{Use: reg.Name, SilenceUsage: true, SilenceErrors: true}
	reg.CobraFunc(cmd)
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return strings.TrimSpace(out.String()), err
}

// TestTokenCommandVerifiesWithDefaultCaddyfile mints a token with `caddy
// hookrelay token` and verifies it with the hook_verify of the default
// Caddyfile, provisioned as Caddy would: the quick start works.
func TestTokenCommandVerifiesWithDefaultCaddyfile(t *testing.T) {
	t.Setenv("HOOKRELAY_DEV_SECRET", "") // the default secret

	tok, err := runHookrelayCommand(t, "token")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") {
		t.Fatalf("token output %q is not one compact JWT", tok)
	}

	// hook_verify as the default Caddyfile configures it.
	data, err := os.ReadFile(filepath.Join("..", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(findAdaptedHandler(t, adapted, "hook_verify"))
	if err != nil {
		t.Fatal(err)
	}
	v := new(Verify)
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := v.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(); err != nil {
		t.Fatal(err)
	}

	serve := func(tok string) (int, bool) {
		called := false
		next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { called = true; return nil })
		r := withCaddyVars(httptest.NewRequest(http.MethodPost, "/", nil))
		r.Header.Set("Ave-Hub-signature", tok)
		w := httptest.NewRecorder()
		if err := v.ServeHTTP(w, r, next); err != nil {
			t.Fatal(err)
		}
		return w.Code, called
	}
	if code, called := serve(tok); !called {
		t.Fatalf("the default Caddyfile refused the token of `caddy hookrelay token` (status %d)", code)
	}

	// The token lives an hour by default and carries what the flags say.
	c := decodeClaims(t, tok)
	if exp, iat := c["exp"].(float64), c["iat"].(float64); exp-iat != time.Hour.Seconds() {
		t.Errorf("exp - iat = %v s, want 3600", exp-iat)
	}
	tok2, err := runHookrelayCommand(t, "token", "--ttl", "5m", "--iss", "https://hub.example", "--aud", "hookrelay")
	if err != nil {
		t.Fatal(err)
	}
	c = decodeClaims(t, tok2)
	if c["iss"] != "https://hub.example" || c["aud"] != "hookrelay" || c["exp"].(float64)-c["iat"].(float64) != 300 {
		t.Errorf("claims with flags = %v", c)
	}
	if _, called := serve(tok2); !called {
		t.Error("the default Caddyfile refused a token minted with --iss/--aud/--ttl")
	}

	// A token with another secret is refused by the default config, and
	// HOOKRELAY_DEV_SECRET changes the secret the command signs with.
	other, err := runHookrelayCommand(t, "token", "--secret", "not-the-default")
	if err != nil {
		t.Fatal(err)
	}
	if code, called := serve(other); called || code != http.StatusUnauthorized {
		t.Errorf("a token with another secret: status %d, passed on %v", code, called)
	}
	t.Setenv("HOOKRELAY_DEV_SECRET", "from-the-environment")
	envTok, err := runHookrelayCommand(t, "token")
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := jwtverify.New(ctx, jwtverify.Config{Secret: []byte("from-the-environment"), Algorithms: []string{"HS256"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifier.Verify(envTok); err != nil {
		t.Errorf("the token does not verify with $HOOKRELAY_DEV_SECRET: %v", err)
	}

	if _, err := runHookrelayCommand(t, "token", "--ttl", "0s"); err == nil {
		t.Error("--ttl 0s was accepted")
	}
}

// decodeClaims reads a token's claims without verifying it.
func decodeClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not three segments", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
