package destination

import (
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/relay"
)

// TestDefaultNameKeepsURLSecretsOut: a destination without a name is named
// from its URL's host only, so a credential in the path, query or userinfo
// (Slack's incoming webhooks carry theirs in the path) reaches no metric
// label, log line, admin API answer or queue subject. The name is stable
// and valid.
func TestDefaultNameKeepsURLSecretsOut(t *testing.T) {
	const secret = "XXXXSECRETxxxx1234"
	for _, tt := range []struct {
		url, want string
	}{
		{"https://hooks.slack.com/services/T000/B000/" + secret, "hooks_slack_com"},
		{"https://hooks.slack.com/services/T000/B000/" + secret + "?token=" + secret, "hooks_slack_com"},
		{"https://user:" + secret + "@erp.example.com:8443/" + secret + "/hook#" + secret, "erp_example_com_8443"},
		{"http://127.0.0.1:8081/webhooks/tracking", "127_0_0_1_8081"},
		{"http://[::1]:8081/" + secret, "1_8081"},
		{"not a url " + secret, "destination"},
		{"/relative/" + secret, "destination"},
	} {
		got := DefaultName(tt.url)
		if got != tt.want {
			t.Errorf("DefaultName(%q) = %q, want %q", tt.url, got, tt.want)
		}
		if strings.Contains(got, secret) || strings.Contains(got, "SECRET") {
			t.Errorf("DefaultName(%q) = %q holds the URL's secret", tt.url, got)
		}
		if !relay.ValidName(got) {
			t.Errorf("DefaultName(%q) = %q is not a valid destination name", tt.url, got)
		}
		if again := DefaultName(tt.url); again != got {
			t.Errorf("DefaultName(%q) is not stable: %q then %q", tt.url, got, again)
		}
		if dn := (&Config{URL: tt.url}).DisplayName(); dn != got {
			t.Errorf("DisplayName of an unnamed %q = %q, want %q", tt.url, dn, got)
		}
	}
	if dn := (&Config{URL: "https://hooks.slack.com/services/T000/B000/" + secret, Name: "slack"}).DisplayName(); dn != "slack" {
		t.Errorf("DisplayName of a named destination = %q, want its name", dn)
	}
}
