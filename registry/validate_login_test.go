package registry

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/hookrelay/hookrelay/netguard"
)

// TestCheckLoginHeaders: an oauth login request's Content-Type is the
// tenant's to set (the seed's oauth example sends a form); the headers of
// the connection stay reserved, and a delivery's Content-Type stays the
// relay's.
func TestCheckLoginHeaders(t *testing.T) {
	s := Settings{Guard: netguard.New(nil), MinRetryDelay: DefaultMinRetryDelay}
	oauth := func(h ...Pair) *Authorization {
		return &Authorization{AuthType: AuthOAuth, AddressLogin: "https://whatever.hostname.com/token",
			Headers: h, Body: json.RawMessage(`{"grant_type":"client_credentials"}`)}
	}
	for _, c := range []struct {
		name string
		auth *Authorization
		want []string
	}{
		{"oauth form login", oauth(Pair{"Authorization", "Basic xxxxxxxxxxxxxxxxxx"}, Pair{"Content-Type", "application/x-www-form-urlencoded"}), nil},
		{"oauth login Host", oauth(Pair{"Host", "elsewhere"}), []string{"/authorization/headers/0"}},
		{"oauth login Content-Length", oauth(Pair{"Content-Type", "application/json"}, Pair{"content-length", "1"}), []string{"/authorization/headers/1"}},
		{"api-key Content-Type", &Authorization{AuthType: AuthAPIKey, Headers: Pairs{{"Content-Type", "text/plain"}}}, []string{"/authorization/headers/0"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := Input{Topic: "orders/created", Address: "https://whatever.hostname.com/", Authorization: c.auth}
			var got []string
			if ve := s.check(&in); ve != nil {
				for _, f := range ve.Fields {
					got = append(got, f.Pointer)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("pointers %q, want %q", got, c.want)
			}
		})
	}
	in := Input{Topic: "orders/created", Address: "https://whatever.hostname.com/", Headers: Pairs{{"Content-Type", "text/plain"}}}
	if ve := s.check(&in); ve == nil || ve.Fields[0].Pointer != "/headers/0" {
		t.Errorf("a delivery's Content-Type was accepted: %v", ve)
	}
}
