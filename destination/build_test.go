package destination

import (
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/authcache"
	"github.com/hookrelay/hookrelay/relay"
)

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func tokens(t *testing.T) *authcache.Cache {
	t.Helper()
	c, err := authcache.NewCache(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestBuild: the config becomes the engine's destination, every value as
// it is (placeholders are the caller's business).
func TestBuild(t *testing.T) {
	policy := relay.RetryPolicy{Schedule: []time.Duration{time.Minute}}
	c := Config{
		URL:        "https://erp.example.com/hooks?x=1",
		Headers:    http.Header{"X-Source": {"ave"}},
		Params:     url.Values{"tenant": {"acme"}},
		Timeout:    Duration(10 * time.Second),
		Secret:     "whsec_ZGVzdGluYXRpb24tdGVzdC1rZXk=",
		Auth:       &AuthConfig{Type: AuthAPIKey, Headers: []KeyValue{{Name: "X-Api-Key", Value: "{env.KEY}"}}},
		Workers:    4,
		MaxPending: 10,
	}
	d, err := c.Build(Env{Retry: policy})
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "erp_example_com" || d.URL != c.URL || d.Timeout != 10*time.Second || d.Workers != 4 || d.MaxPending != 10 ||
		d.Header.Get("X-Source") != "ave" || d.Query.Get("tenant") != "acme" || d.Signer == nil || d.Auth == nil ||
		d.Transform != nil || len(d.Retry.Schedule) != 1 {
		t.Fatalf("built %+v", d)
	}
	req, _ := http.NewRequest(http.MethodPost, c.URL, nil)
	if err := d.Auth.Authorize(t.Context(), req); err != nil || req.Header.Get("X-Api-Key") != "{env.KEY}" {
		t.Errorf("api key %q, %v; want the value as configured", req.Header.Get("X-Api-Key"), err)
	}
	// The config is not changed by building.
	d.Header.Set("X-Source", "changed")
	d.Query.Set("tenant", "changed")
	if c.Headers.Get("X-Source") != "ave" || c.Params.Get("tenant") != "acme" {
		t.Error("Build shares its maps with the config")
	}

	c.Auth = &AuthConfig{Type: AuthOAuth, TokenURL: "https://login.example.com/token"}
	if _, err := c.Build(Env{Tokens: tokens(t)}); err != nil {
		t.Errorf("oauth: %v", err)
	}
}

// TestBuildRefuses: each rule, through the one constructor.
func TestBuildRefuses(t *testing.T) {
	ok := func(f func(*Config)) Config {
		c := Config{Name: "erp", URL: "https://erp.example.com/hooks"}
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name   string
		c      Config
		is     error
		substr string
	}{
		{"bad name", ok(func(c *Config) { c.Name = "erp.x" }), relay.ErrInvalidName, `name "erp.x"`},
		{"bad URL", ok(func(c *Config) { c.URL = "ftp://x/" }), relay.ErrInvalidURL, "absolute"},
		{"bad header name", ok(func(c *Config) { c.Headers = http.Header{"X Bad": {"v"}} }), relay.ErrInvalidHeader, `"X Bad"`},
		{"bad header value", ok(func(c *Config) { c.Headers = http.Header{"X-Ok": {"a\nb"}} }), relay.ErrInvalidHeader, `"X-Ok"`},
		{"auth type", ok(func(c *Config) { c.Auth = &AuthConfig{Type: "basic"} }), ErrAuthType, `not "basic"`},
		{"api key without header", ok(func(c *Config) { c.Auth = &AuthConfig{Type: AuthAPIKey} }), nil, "at least one header"},
		{"api key header name", ok(func(c *Config) {
			c.Auth = &AuthConfig{Type: AuthAPIKey, Headers: []KeyValue{{Name: "X-Key:", Value: "v"}}}
		}), relay.ErrInvalidHeader, "auth api_key"},
		{"oauth without cache", ok(func(c *Config) { c.Auth = &AuthConfig{Type: AuthOAuth, TokenURL: "https://l/t"} }), nil, "no token cache"},
		{"bad secret", ok(func(c *Config) { c.Secret = "not-a-whsec" }), nil, ""},
		{"negative timeout", ok(func(c *Config) { c.Timeout = -1 }), relay.ErrNegative, ""},
		{"negative workers", ok(func(c *Config) { c.Workers = -1 }), relay.ErrNegative, ""},
		{"template and file", ok(func(c *Config) { c.Template, c.TemplateFile = "{}", "x.tmpl" }), nil, "use template or template_file, not both"},
		{"missing template file", ok(func(c *Config) { c.TemplateFile = "/nonexistent/x.tmpl" }), nil, "reading template"},
		{"template parse error", ok(func(c *Config) { c.Template = "{{ uper . }}" }), nil, `function "uper" not defined`},
		{"missing sample", ok(func(c *Config) { c.Template, c.Sample = "{}", "/nonexistent/s.json" }), nil, "reading sample"},
	} {
		_, err := tc.c.Build(Env{})
		if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.substr) {
			t.Errorf("%s: %v, want %v containing %q", tc.name, err, tc.is, tc.substr)
		}
	}
}

// TestBuildTemplateSample: a template is checked over the destination's
// sample, else over the environment's, else only parsed.
func TestBuildTemplateSample(t *testing.T) {
	tmpl := writeFile(t, "erp.tmpl", "{\n  \"guide\": {{ json .data.shipment_id }},\n  \"carrier\": {{ json .data.carrier.name }}\n}\n")
	good := writeFile(t, "good.json", `{"data":{"shipment_id":"G-1","carrier":{"name":"ave"}}}`)
	bad := writeFile(t, "bad.json", `{"data":{"shipment_id":"G-1"}}`)
	notJSON := writeFile(t, "not.json", `{"data":`)
	envSample := []byte(`{"data":{"shipment_id":"G-2"}}`)
	const note = "the built-in event"
	for _, tc := range []struct {
		name   string
		sample string
		env    Env
		want   string // "" means accepted
	}{
		{"own sample fits", good, Env{Sample: envSample, SampleNote: note}, ""},
		{"own sample does not fit", bad, Env{Sample: []byte(`{}`)},
			`checking the template over its sample: template "` + tmpl + `" line 3: at <.data.carrier.name>: map has no entry for key "carrier"`},
		{"own sample does not fit, no note", bad, Env{Sample: envSample, SampleNote: note}, `map has no entry for key "carrier"`},
		{"own sample not JSON", notJSON, Env{}, "sample " + notJSON + " is not valid JSON"},
		{"env sample does not fit", "", Env{Sample: envSample, SampleNote: note},
			`map has no entry for key "carrier" (` + note + `)`},
		{"no sample: parsed only", "", Env{}, ""},
	} {
		c := Config{URL: "http://127.0.0.1:1/", TemplateFile: tmpl, Sample: tc.sample}
		_, err := c.Build(tc.env)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v\nwant %s", tc.name, err, tc.want)
		case tc.name == "own sample does not fit, no note" && strings.Contains(err.Error(), note):
			t.Errorf("%s: the note of the environment's sample is on an error over the destination's own: %v", tc.name, err)
		}
	}
}

// TestBuildFields: fields then custom_fields are kept of the template's
// output (or of the event without a template), and checked over the
// sample.
func TestBuildFields(t *testing.T) {
	event := []byte(`{"id":"evt_1","data":{"shipment_id":"G-1","status":"4","extra":{"a":1}}}`)
	for _, tc := range []struct {
		name     string
		c        Config
		env      Env
		want     string
		buildErr string
	}{
		{"fields of the event", Config{Fields: []string{"id"}, CustomFields: []string{"data.status"}}, Env{},
			`{"data":{"status":"4"},"id":"evt_1"}`, ""},
		{"fields of the template's output", Config{
			Template: `{"guide": {{ json .data.shipment_id }}, "status": {{ json .data.status }}, "drop": 1}`,
			Fields:   []string{"guide"}, CustomFields: []string{"status"}}, Env{Sample: event},
			`{"guide":"G-1","status":"4"}`, ""},
		{"fields checked over the sample", Config{Fields: []string{"data"}}, Env{Sample: []byte(`"a string"`)}, "", "checking the template over its sample: select: body is"},
	} {
		tc.c.URL = "http://127.0.0.1:1/"
		d, err := tc.c.Build(tc.env)
		if tc.buildErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.buildErr) {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.buildErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		out, err := d.Transform(event)
		if err != nil || string(out) != tc.want {
			t.Errorf("%s: %s, %v; want %s", tc.name, out, err, tc.want)
		}
	}
	if got := Paths(nil, nil); got != nil {
		t.Errorf("Paths() = %v, want nil", got)
	}
	if got := strings.Join(Paths([]string{"a", "b"}, []string{"c"}), ","); got != "a,b,c" {
		t.Errorf("Paths = %s", got)
	}
}

func TestRetryPolicy(t *testing.T) {
	var none *RetryConfig
	if p, err := none.Policy(); err != nil || len(p.Schedule) != 0 || p.RetryOn4xx {
		t.Errorf("nil config: %+v, %v", p, err)
	}
	p, err := (&RetryConfig{Schedule: []Duration{Duration(time.Minute), Duration(time.Hour)}, MaxAge: Duration(72 * time.Hour), On4xx: On4xxRetry}).Policy()
	if err != nil || len(p.Schedule) != 2 || p.Schedule[1] != time.Hour || p.MaxAge != 72*time.Hour || !p.RetryOn4xx {
		t.Errorf("policy %+v, %v", p, err)
	}
	for _, tc := range []struct {
		rc   RetryConfig
		want string
	}{
		{RetryConfig{Schedule: []Duration{0}}, "retry delay 0s"},
		{RetryConfig{MaxAge: -1}, "retry max age"},
		{RetryConfig{On4xx: "drop"}, `on_4xx must be dead_letter or retry, not "drop"`},
	} {
		if _, err := tc.rc.Policy(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.rc, err, tc.want)
		}
	}
}
