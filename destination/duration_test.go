package destination

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func TestDurationJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{`"30s"`, 30 * time.Second, false},
		{`"1h30m"`, 90 * time.Minute, false},
		{`"30d"`, 30 * 24 * time.Hour, false},
		{`"1.5d"`, 36 * time.Hour, false},
		{`"1d12h"`, 36 * time.Hour, false},
		{`"-5m"`, -5 * time.Minute, false},
		{`60000000000`, time.Minute, false},
		{`0`, 0, false},
		{`"soon"`, 0, true},
		{`"30"`, 0, true},
		{`1.5`, 0, true},
		{`true`, 0, true},
		{`"d"`, 0, true},
	} {
		var d Duration
		err := json.Unmarshal([]byte(tc.in), &d)
		if tc.bad {
			if err == nil {
				t.Errorf("%s: want an error, got %v", tc.in, time.Duration(d))
			}
			continue
		}
		if err != nil || time.Duration(d) != tc.want {
			t.Errorf("%s: %v, %v; want %v", tc.in, time.Duration(d), err, tc.want)
		}
		// What caddy.Duration reads from the same JSON.
		var cd caddy.Duration
		if err := json.Unmarshal([]byte(tc.in), &cd); err != nil || time.Duration(cd) != tc.want {
			t.Errorf("%s: caddy.Duration reads %v, %v; this package %v", tc.in, time.Duration(cd), err, tc.want)
		}
	}
}

// TestDurationMarshalsAsCaddy: a config written back is what caddy adapt
// writes, integer nanoseconds.
func TestDurationMarshalsAsCaddy(t *testing.T) {
	got, err := json.Marshal(RetryConfig{Schedule: []Duration{Duration(time.Minute)}, MaxAge: Duration(72 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(struct {
		Schedule []caddy.Duration `json:"schedule,omitempty"`
		MaxAge   caddy.Duration   `json:"max_age,omitempty"`
	}{[]caddy.Duration{caddy.Duration(time.Minute)}, caddy.Duration(72 * time.Hour)})
	if string(got) != string(want) || string(got) != `{"schedule":[60000000000],"max_age":259200000000000}` {
		t.Errorf("got %s, want %s", got, want)
	}
}

// FuzzParseDuration: this package reads every duration string as Caddy
// does.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30s", "1d", "1.5d", "1d12h", "-5m", "d", "1dd", "+2d3h", "", "10", "1e3d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseDuration(s)
		want, werr := caddy.ParseDuration(s)
		if (err == nil) != (werr == nil) || got != want {
			t.Fatalf("ParseDuration(%q) = %v, %v; caddy.ParseDuration = %v, %v", s, got, err, want, werr)
		}
	})
}
