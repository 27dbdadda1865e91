package caddymodule

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// adaptSecret is the value of the environment variable that the adapt
// tests' secrets name: it must never reach the adapted JSON.
const adaptSecret = "adapt-secret-value-that-must-never-appear"

// TestCaddyfileAdapt drives testdata/caddyfile_adapt/*.caddyfiletest as
// Caddy's own caddytest/integration/caddyfile_adapt_test.go does: a
// Caddyfile, a line of dashes, then the expected JSON or, when the
// expectation does not start with '{', a fragment of the expected error.
func TestCaddyfileAdapt(t *testing.T) {
	// Placeholders such as {env.HOOKRELAY_ADAPT_TEST_SECRET} are resolved
	// when the config is provisioned, never when it is adapted.
	t.Setenv("HOOKRELAY_ADAPT_TEST_SECRET", adaptSecret)
	t.Setenv("AVE_HMAC_SECRET", adaptSecret)

	files, err := filepath.Glob(filepath.Join("testdata", "caddyfile_adapt", "*.caddyfiletest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no .caddyfiletest files found")
	}
	newlines := regexp.MustCompile(`\r?\n`)
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(newlines.ReplaceAllString(string(data), "\n"), "----------")
			if len(parts) != 2 {
				t.Fatalf("%s: want one line of dashes, found %d", name, len(parts)-1)
			}
			caddyfile, expected := strings.TrimSpace(parts[0])+"\n", strings.TrimSpace(parts[1])

			if strings.HasPrefix(expected, "{") {
				if !caddytest.CompareAdapt(t, name, caddyfile, "caddyfile", expected) {
					t.Errorf("adapting %s did not give the expected JSON (diff on stdout)", name)
				}
				out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(out), adaptSecret) {
					t.Errorf("the adapted JSON of %s holds a secret's value", name)
				}
				return
			}

			_, _, err = caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
			if err == nil {
				t.Fatalf("adapting %s: want an error containing %q, got none", name, expected)
			}
			if !strings.Contains(err.Error(), expected) {
				t.Errorf("adapting %s: want an error containing\n%s\ngot\n%s", name, expected, err)
			}
		})
	}
}

// TestCaddyfileAdaptKeepsSecretPlaceholder checks, beyond the golden file,
// that a secret written as a placeholder stays a placeholder in the adapted
// JSON whatever the environment holds.
func TestCaddyfileAdaptKeepsSecretPlaceholder(t *testing.T) {
	t.Setenv("HOOKRELAY_ADAPT_TEST_SECRET", adaptSecret)
	const caddyfile = `:8080 {
	hook_verify {
		secret {env.HOOKRELAY_ADAPT_TEST_SECRET}
	}
	hook_normalize ave_tracking
}
`
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), adaptSecret) {
		t.Fatalf("adapted JSON holds the secret's value:\n%s", out)
	}
	h := findAdaptedHandler(t, out, "hook_verify")
	if got := h["secret"]; got != "{env.HOOKRELAY_ADAPT_TEST_SECRET}" {
		t.Fatalf("secret = %v, want the placeholder {env.HOOKRELAY_ADAPT_TEST_SECRET}", got)
	}
}

// TestDefaultCaddyfileAdapts adapts the repository's default Caddyfile and
// checks the shape that the quick start relies on.
func TestDefaultCaddyfileAdapts(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(data, map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("the default Caddyfile does not adapt: %v", err)
	}
	for _, w := range warnings {
		t.Logf("warning: %s:%d: %s", w.File, w.Line, w.Message)
	}

	var cfg struct {
		Apps struct {
			HookRelay *App           `json:"hookrelay"`
			HTTP      map[string]any `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Apps.HookRelay == nil || cfg.Apps.HookRelay.Storage == nil || len(cfg.Apps.HookRelay.Storage.URLs) != 0 {
		t.Fatalf("want the hookrelay app with the embedded storage, got %+v", cfg.Apps.HookRelay)
	}

	verify := findAdaptedHandler(t, out, "hook_verify")
	if got, want := verify["secret"], "{env.HOOKRELAY_DEV_SECRET:"+DevSecret+"}"; got != want {
		t.Errorf("hook_verify secret = %v, want %s", got, want)
	}
	normalize := findAdaptedHandler(t, out, "hook_normalize")
	if normalize["format"] != "ave_tracking" {
		t.Errorf("hook_normalize format = %v", normalize["format"])
	}
	relay := findAdaptedHandler(t, out, "hook_relay")
	if relay["topic"] != "shipments/tracking" {
		t.Errorf("hook_relay topic = %v", relay["topic"])
	}

	// The three run in this order, in one list of handlers.
	var order []string
	walkAdapted(decodeAdapted(t, out), func(m map[string]any) {
		if list, ok := m["handle"].([]any); ok {
			var names []string
			for _, h := range list {
				if hm, ok := h.(map[string]any); ok {
					if n, _ := hm["handler"].(string); strings.HasPrefix(n, "hook_") {
						names = append(names, n)
					}
				}
			}
			if len(names) > len(order) {
				order = names
			}
		}
	})
	if strings.Join(order, ",") != "hook_verify,hook_normalize,hook_relay" {
		t.Errorf("handler order = %v, want hook_verify, hook_normalize, hook_relay", order)
	}
}

func decodeAdapted(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// walkJSON calls fn on every object in v, depth first.
func walkAdapted(v any, fn func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		fn(v)
		for _, c := range v {
			walkAdapted(c, fn)
		}
	case []any:
		for _, c := range v {
			walkAdapted(c, fn)
		}
	}
}

// findHandler returns the one handler object named name in an adapted
// config.
func findAdaptedHandler(t *testing.T, adapted []byte, name string) map[string]any {
	t.Helper()
	var found []map[string]any
	walkAdapted(decodeAdapted(t, adapted), func(m map[string]any) {
		if m["handler"] == name {
			found = append(found, m)
		}
	})
	if len(found) != 1 {
		t.Fatalf("want one %s handler in the adapted config, found %d", name, len(found))
	}
	return found[0]
}
