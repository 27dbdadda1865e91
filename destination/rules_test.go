package destination

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
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
		err := CheckName(tc.name)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrName)) {
			t.Errorf("CheckName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
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
		if !errors.Is(err, ErrDuplicateName) || !strings.Contains(err.Error(), `"`+tc.dup+`" is used twice`) {
			t.Errorf("CheckNames(%v) = %v, want %q used twice", tc.names, err, tc.dup)
		}
	}
}

func TestCheckURL(t *testing.T) {
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
		err := CheckURL(tc.url)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrURL)) {
			t.Errorf("CheckURL(%q) = %v, want ok=%v", tc.url, err, tc.ok)
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

func TestCheckHeaderName(t *testing.T) {
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
		err := CheckHeaderName(tc.name)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrHeaderName)) {
			t.Errorf("CheckHeaderName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
