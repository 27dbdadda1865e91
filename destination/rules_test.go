package destination

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/relay"
)

// TestBuildNameRule: relay's name rule, through Build.
func TestBuildNameRule(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"erp", true},
		{"erp_tracking-2", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"erp.tracking", false},
		{"erp tracking", false},
		{"erp/*", false},
		{"ñ", false},
	} {
		_, err := Config{Name: tc.name, URL: "https://erp.example.com/"}.Build(Env{})
		if tc.name == "" {
			// An empty name is derived from the URL.
			tc.ok = true
		}
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, relay.ErrInvalidName)) {
			t.Errorf("name %q: %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestCheckNames(t *testing.T) {
	for _, tc := range []struct {
		names []string
		dup   string
	}{
		{nil, ""},
		{[]string{"a", "b", "c"}, ""},
		{[]string{"a", "b", "a"}, "a"},
		{[]string{"x", "x"}, "x"},
	} {
		err := CheckNames(tc.names)
		if tc.dup == "" {
			if err != nil {
				t.Errorf("CheckNames(%v) = %v", tc.names, err)
			}
			continue
		}
		if !errors.Is(err, relay.ErrDuplicateName) || !strings.Contains(err.Error(), `destination "`+tc.dup+`": `) {
			t.Errorf("CheckNames(%v) = %v, want %q used twice", tc.names, err, tc.dup)
		}
	}
}

// TestBuildURLRule: relay's URL rule, through Build; the error does not
// repeat the URL, whose path may hold a credential.
func TestBuildURLRule(t *testing.T) {
	const secret = "T000/B000/XXXXSECRET"
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://erp.example.com/hooks", true},
		{"http://127.0.0.1:8081/hooks?tenant=a", true},
		{"http://[::1]:8081/", true},
		{"ftp://127.0.0.1/hooks", false},
		{"/relative/path", false},
		{"erp.example.com/hooks", false},
		{"https:///no-host", false},
		{"", false},
		{"http://a b/", false},
		{"mailto:ops@example.com", false},
		{"ftp://hooks.slack.com/services/" + secret, false},
	} {
		_, err := Config{Name: "d", URL: tc.url}.Build(Env{})
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, relay.ErrInvalidURL)) {
			t.Errorf("URL %q: %v, want ok=%v", tc.url, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("CheckURL(%q) repeats the URL: %v", tc.url, err)
		}
	}
}

func TestCheckOn4xx(t *testing.T) {
	for _, tc := range []struct {
		v, err string
	}{
		{"", ""},
		{"dead_letter", ""},
		{"retry", ""},
		{"drop", `on_4xx must be dead_letter or retry, not "drop"`},
		{"Retry", `on_4xx must be dead_letter or retry, not "Retry"`},
	} {
		err := CheckOn4xx(tc.v)
		if tc.err == "" {
			if err != nil {
				t.Errorf("CheckOn4xx(%q) = %v", tc.v, err)
			}
			continue
		}
		if !errors.Is(err, ErrOn4xx) || err.Error() != tc.err {
			t.Errorf("CheckOn4xx(%q) = %v, want %s", tc.v, err, tc.err)
		}
	}
}

func TestCheckAuthType(t *testing.T) {
	for _, tc := range []struct {
		v  string
		ok bool
	}{
		{"oauth", true},
		{"api_key", true},
		{"", false},
		{"basic", false},
		{"OAuth", false},
	} {
		err := CheckAuthType(tc.v)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrAuthType)) {
			t.Errorf("CheckAuthType(%q) = %v, want ok=%v", tc.v, err, tc.ok)
		}
	}
	if err := CheckAuthType("basic"); err.Error() != `auth type must be oauth or api_key, not "basic"` {
		t.Errorf("error text %q", err)
	}
}

// TestBuildHeaderRule: relay's header rule, through Build, on the
// destination's headers and on api_key headers.
func TestBuildHeaderRule(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"X-Api-Key", true},
		{"x-source", true},
		{"Authorization", true},
		{"", false},
		{"X Api", false},
		{"X-Api:", false},
		{"X-Api\r\nEvil", false},
		{"X-Ápi", false},
		{"(key)", false},
	} {
		_, err := Config{Name: "d", URL: "https://erp.example.com/", Headers: http.Header{tc.name: {"v"}}}.Build(Env{})
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, relay.ErrInvalidHeader)) {
			t.Errorf("header %q: %v, want ok=%v", tc.name, err, tc.ok)
		}
		_, err = Config{Name: "d", URL: "https://erp.example.com/", Auth: &AuthConfig{
			Type: AuthAPIKey, Headers: []KeyValue{{Name: tc.name, Value: "k"}}}}.Build(Env{})
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, relay.ErrInvalidHeader)) {
			t.Errorf("api_key header %q: %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
