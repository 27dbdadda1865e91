package relay

import (
	"testing"
	"time"
)

func TestBreaker(t *testing.T) {
	var b breaker
	// Closed: no wait, whatever the failures below the threshold.
	for i := 0; i < breakerThreshold-1; i++ {
		b.failure()
		if w, c := b.next(time.Minute); w != 0 || c != breakerSame || b.isOpen() {
			t.Fatalf("after %d failures: wait %v, change %v, open %v; want closed", i+1, w, c, b.isOpen())
		}
	}
	b.failure()
	if !b.isOpen() {
		t.Fatal("not open after the threshold")
	}
	// The first cool-down is the first retry delay, held to 30s.
	w, c := b.next(time.Minute)
	if w != breakerFirstMax || c != breakerOpened {
		t.Fatalf("first cool-down = %v %v, want %v opened", w, c, breakerFirstMax)
	}
	// A probe that fails opens it again for twice as long, up to 5m.
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	for i, wantWait := range want {
		b.probe()
		if b.isOpen() {
			t.Fatal("open during the probe")
		}
		if w, c := b.next(time.Minute); w != 0 || c != breakerSame {
			t.Fatalf("probe %d: wait %v %v before its failure", i, w, c)
		}
		b.failure()
		if w, c := b.next(time.Minute); w != wantWait || c != breakerSame {
			t.Fatalf("cool-down %d = %v %v, want %v", i+2, w, c, wantWait)
		}
	}
	// A success closes it, which is reported once.
	b.probe()
	b.success()
	if w, c := b.next(time.Minute); w != 0 || c != breakerRecovered {
		t.Fatalf("after a success: %v %v, want recovered", w, c)
	}
	if w, c := b.next(time.Minute); w != 0 || c != breakerSame {
		t.Fatalf("later: %v %v, want nothing", w, c)
	}
}

func TestBreakerFirstCooldownBounds(t *testing.T) {
	for _, tc := range []struct{ first, want time.Duration }{
		{0, breakerMinCooldown},
		{time.Millisecond, breakerMinCooldown},
		{2 * time.Second, 2 * time.Second},
		{time.Hour, breakerFirstMax},
	} {
		var b breaker
		b.failures.Store(breakerThreshold)
		if w, _ := b.next(tc.first); w != tc.want {
			t.Errorf("first retry delay %v: cool-down %v, want %v", tc.first, w, tc.want)
		}
	}
}
