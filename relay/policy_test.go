package relay

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		status int
		// want is the outcome by default, wantRetry4xx with RetryOn4xx.
		want, wantRetry4xx Outcome
	}{
		{200, OutcomeDelivered, OutcomeDelivered},
		{201, OutcomeDelivered, OutcomeDelivered},
		{204, OutcomeDelivered, OutcomeDelivered},
		{299, OutcomeDelivered, OutcomeDelivered},
		{0, OutcomeRetry, OutcomeRetry}, // no answer: connection error, timeout
		{100, OutcomeRetry, OutcomeRetry},
		{301, OutcomeRetry, OutcomeRetry}, // redirects are not followed
		{302, OutcomeRetry, OutcomeRetry},
		{304, OutcomeRetry, OutcomeRetry},
		{400, OutcomeDeadLetter, OutcomeRetry},
		{401, OutcomeDeadLetter, OutcomeRetry},
		{403, OutcomeDeadLetter, OutcomeRetry},
		{404, OutcomeDeadLetter, OutcomeRetry},
		{408, OutcomeRetry, OutcomeRetry},
		{410, OutcomeDeadLetter, OutcomeDeadLetter}, // gone stays gone
		{422, OutcomeDeadLetter, OutcomeRetry},
		{425, OutcomeRetry, OutcomeRetry},
		{429, OutcomeRetry, OutcomeRetry},
		{499, OutcomeDeadLetter, OutcomeRetry},
		{500, OutcomeRetry, OutcomeRetry},
		{502, OutcomeRetry, OutcomeRetry},
		{503, OutcomeRetry, OutcomeRetry},
		{599, OutcomeRetry, OutcomeRetry},
	}
	for _, tt := range tests {
		if got := (RetryPolicy{}).classify(tt.status); got != tt.want {
			t.Errorf("classify(%d) = %v, want %v", tt.status, got, tt.want)
		}
		if got := (RetryPolicy{RetryOn4xx: true}).classify(tt.status); got != tt.wantRetry4xx {
			t.Errorf("classify(%d) with RetryOn4xx = %v, want %v", tt.status, got, tt.wantRetry4xx)
		}
	}
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[Outcome]string{
		OutcomeDelivered:  "delivered",
		OutcomeRetry:      "retry",
		OutcomeDeadLetter: "dead_letter",
	} {
		if got := o.String(); got != want {
			t.Errorf("Outcome(%d).String() = %q, want %q", int(o), got, want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	const year = 365 * 24 * time.Hour
	tests := []struct {
		v      string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"1", time.Second, true},
		{"120", 2 * time.Minute, true},
		{"-1", 0, false},
		{"-120", 0, false},
		{"31536000", year, true},
		{"31536001", year, true}, // capped at a year
		{"99999999999", year, true},
		{"99999999999999999999", 0, false}, // overflows int64: not a number of seconds
		{"1.5", 0, false},
		{" 5", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(2 * time.Hour).Format(time.RFC850), 2 * time.Hour, true},
		{now.Add(3 * time.Minute).Format(time.ANSIC), 3 * time.Minute, true},
		{now.Format(http.TimeFormat), 0, true},
		{now.Add(-90 * time.Second).Format(http.TimeFormat), 0, true}, // in the past: retry now
		{now.Add(-48 * time.Hour).Format(http.TimeFormat), 0, true},
		{"Sun, 22 Nov 2026 09:01:30", 0, false}, // no zone
		{"Sunday", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.v, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.v, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestRetryPolicyDelay(t *testing.T) {
	p := RetryPolicy{Schedule: []time.Duration{time.Second, time.Minute}}
	for n, want := range map[int]time.Duration{-1: time.Second, 0: time.Second, 1: time.Second, 2: time.Minute, 3: time.Minute, 100: time.Minute} {
		if got := p.Delay(n); got != want {
			t.Errorf("Delay(%d) = %v, want %v", n, got, want)
		}
	}
	for i, want := range DefaultSchedule {
		if got := (RetryPolicy{}).Delay(i + 1); got != want {
			t.Errorf("default Delay(%d) = %v, want %v", i+1, got, want)
		}
	}
	if got, want := (RetryPolicy{}).Delay(len(DefaultSchedule)+5), DefaultSchedule[len(DefaultSchedule)-1]; got != want {
		t.Errorf("default Delay past the schedule = %v, want its last step %v", got, want)
	}
}

func TestNextDelay(t *testing.T) {
	first := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	schedule := []time.Duration{time.Minute, 10 * time.Minute, time.Hour}
	p := RetryPolicy{Schedule: schedule, MaxAge: 2 * time.Hour}
	tests := []struct {
		name string
		n    int
		now  time.Time
		ra   time.Duration
		hasR bool
		// The delay must fall in [min, max]; ok is whether the event stays.
		min, max time.Duration
		ok       bool
	}{
		{name: "first failure", n: 1, now: first, min: time.Minute, max: time.Minute + 6*time.Second, ok: true},
		{name: "second failure", n: 2, now: first.Add(time.Minute), min: 10 * time.Minute, max: 11 * time.Minute, ok: true},
		{name: "last step repeats", n: 7, now: first.Add(10 * time.Minute), min: time.Hour, max: 66 * time.Minute, ok: true},
		{name: "max age reached", n: 1, now: first.Add(2 * time.Hour), ok: false},
		{name: "max age reached with a long Retry-After", n: 1, now: first.Add(2 * time.Hour), ra: 5 * time.Hour, hasR: true, ok: false},
		{name: "past max age", n: 1, now: first.Add(3 * time.Hour), ok: false},
		{name: "past max age with Retry-After", n: 1, now: first.Add(3 * time.Hour), ra: time.Second, hasR: true, ok: false},
		{name: "delay beyond max age", n: 3, now: first.Add(90 * time.Minute), ok: false},
		{name: "Retry-After longer is the floor", n: 1, now: first, ra: 20 * time.Minute, hasR: true, min: 20 * time.Minute, max: 20 * time.Minute, ok: true},
		{name: "Retry-After shorter is ignored", n: 2, now: first, ra: time.Second, hasR: true, min: 10 * time.Minute, max: 11 * time.Minute, ok: true},
		{name: "Retry-After capped by the remaining age", n: 1, now: first.Add(90 * time.Minute), ra: 5 * time.Hour, hasR: true, min: 30 * time.Minute, max: 30 * time.Minute, ok: true},
		{name: "Retry-After not given", n: 1, now: first, ra: 20 * time.Minute, hasR: false, min: time.Minute, max: time.Minute + 6*time.Second, ok: true},
	}
	for _, tt := range tests {
		// jitter is random: a range holds on every draw, so draw often.
		for range 200 {
			d, ok := p.nextDelay(tt.n, first, tt.now, tt.ra, tt.hasR)
			if ok != tt.ok {
				t.Fatalf("%s: nextDelay ok = %v, want %v (delay %v)", tt.name, ok, tt.ok, d)
			}
			if ok && (d < tt.min || d > tt.max) {
				t.Fatalf("%s: nextDelay = %v, want within [%v, %v]", tt.name, d, tt.min, tt.max)
			}
		}
	}
}

func TestNextDelayDefaultMaxAge(t *testing.T) {
	first := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	p := RetryPolicy{Schedule: []time.Duration{time.Second}}
	if _, ok := p.nextDelay(1, first, first.Add(DefaultMaxAge-time.Minute), 0, false); !ok {
		t.Error("an event younger than DefaultMaxAge left the retry queue")
	}
	if _, ok := p.nextDelay(1, first, first.Add(DefaultMaxAge), 0, false); ok {
		t.Error("an event of DefaultMaxAge stayed in the retry queue")
	}
}

func TestJitter(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second, 1, 9, time.Second, time.Hour} {
		lo, hi := d, d+d/10
		spread := false
		for range 500 {
			j := jitter(d)
			if d <= 0 {
				if j != d {
					t.Fatalf("jitter(%v) = %v, want it unchanged", d, j)
				}
				continue
			}
			if j < lo || j > hi {
				t.Fatalf("jitter(%v) = %v, want within [%v, %v]", d, j, lo, hi)
			}
			spread = spread || j != d
		}
		if d >= time.Second && !spread {
			t.Errorf("jitter(%v) never added anything in 500 draws", d)
		}
	}
}

func TestMergeQuery(t *testing.T) {
	tests := []struct {
		raw  string
		q    url.Values
		want string
	}{
		{"https://erp.test/hooks", nil, "https://erp.test/hooks"},
		{"https://erp.test/hooks?b=2&a=1", nil, "https://erp.test/hooks?b=2&a=1"}, // untouched without q
		{"https://erp.test/hooks", url.Values{"tenant": {"acme"}}, "https://erp.test/hooks?tenant=acme"},
		{"https://erp.test/hooks?x=1", url.Values{"tenant": {"acme"}}, "https://erp.test/hooks?tenant=acme&x=1"},
		{"https://erp.test/hooks?x=1", url.Values{"x": {"2"}}, "https://erp.test/hooks?x=1&x=2"}, // added, not replaced
		{"https://erp.test/hooks", url.Values{"k": {"a b&c=d"}}, "https://erp.test/hooks?k=a+b%26c%3Dd"},
		{"https://erp.test/hooks", url.Values{"k": {"1", "2"}}, "https://erp.test/hooks?k=1&k=2"},
		{"https://u:p@erp.test:8443/a/b#frag", url.Values{"k": {"v"}}, "https://u:p@erp.test:8443/a/b?k=v#frag"},
	}
	for _, tt := range tests {
		u, err := mergeQuery(tt.raw, tt.q)
		if err != nil {
			t.Errorf("mergeQuery(%q, %v): %v", tt.raw, tt.q, err)
			continue
		}
		if got := u.String(); got != tt.want {
			t.Errorf("mergeQuery(%q, %v) = %q, want %q", tt.raw, tt.q, got, tt.want)
		}
	}
	for _, raw := range []string{"http://erp.test/%zz", "://no-scheme", "http://[::1"} {
		if _, err := mergeQuery(raw, url.Values{"k": {"v"}}); err == nil {
			t.Errorf("mergeQuery(%q) accepted an invalid URL", raw)
		} else if strings.Contains(err.Error(), raw) {
			t.Errorf("mergeQuery(%q) error %q repeats the URL, whose query may carry credentials", raw, err)
		}
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"erp", true},
		{"ERP_2-b", true},
		{"0", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"", false},
		{"a.b", false}, // a NATS subject separator
		{"a*", false},
		{"a>", false},
		{"a b", false},
		{"a/b", false},
		{"ñandú", false},
	}
	for _, tt := range tests {
		if got := ValidName(tt.name); got != tt.want {
			t.Errorf("ValidName(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSanitizeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"erp", "erp"},
		{"ERP-2", "ERP-2"},
		{"https://erp.test/hooks", "https_erp_test_hooks"},
		{"a  b", "a_b"},     // runs collapse to one underscore
		{"a_b", "a_b"},      // an underscore is kept as one
		{"__a", "a"},        // no leading underscore
		{"a__", "a"},        // no trailing underscore
		{"ñandú", "and"},    // bytes outside the set are dropped or replaced
		{"", "destination"}, // never empty
		{"...", "destination"},
		{strings.Repeat("a", 100), strings.Repeat("a", 64)},
		{strings.Repeat("a", 63) + ".b", strings.Repeat("a", 63)},
	}
	for _, tt := range tests {
		got := SanitizeName(tt.in)
		if got != tt.want {
			t.Errorf("SanitizeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if !ValidName(got) {
			t.Errorf("SanitizeName(%q) = %q, which ValidName refuses", tt.in, got)
		}
	}
}
