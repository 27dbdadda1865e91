package ops

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// A destination that answers 410 Gone is marked gone and paused: the
// event that got 410 is dead-lettered, later events stay stored and
// untried, the admin API, the CLI and the metrics say so, and resuming
// clears the mark and delivers what waited.
func TestGoneDestinationIsPausedUntilResumed(t *testing.T) {
	tc := caddyAt.NewTester(t)
	var gone atomic.Bool
	gone.Store(true)
	app := newSink(t, func(int) int {
		if gone.Load() {
			return http.StatusGone
		}
		return http.StatusOK
	})
	load(t, tc, config(t, queueDir(t), []dest{{name: "app", url: app.URL, lines: []string{"workers 1"}}}, ""))

	postAve(t, "G-1")
	testutil.WaitFor(t, 15*time.Second, "the 410 to be dead-lettered", func() bool { return deadLetters(t, "?destination=app").Total == 1 })
	if dl := deadLetters(t, "").DeadLetters[0]; dl.Reason != "gone" || dl.LastStatus != http.StatusGone {
		t.Errorf("dead letter = %+v, want reason gone, status 410", dl)
	}
	var st struct {
		Name      string     `json:"name"`
		Paused    bool       `json:"paused"`
		Gone      bool       `json:"gone"`
		GoneSince *time.Time `json:"gone_since"`
		Pending   uint64     `json:"pending"`
	}
	testutil.WaitFor(t, 15*time.Second, "the admin API to show it gone", func() bool {
		admin(t, http.MethodGet, "/hookrelay/destinations/app", nil, &st)
		return st.Gone && st.Paused && st.GoneSince != nil
	})

	postAve(t, "G-2", "G-3")
	testutil.WaitFor(t, 15*time.Second, "the later events to wait", func() bool {
		admin(t, http.MethodGet, "/hookrelay/destinations/app", nil, &st)
		return st.Pending == 2
	})
	if n := app.Count(); n != 1 {
		t.Fatalf("%d attempts, want only the one answered 410", n)
	}
	if m := scrape(t); m[`hookrelay_destination_gone{destination="app"}`] != 1 {
		t.Errorf("hookrelay_destination_gone = %v, want 1", m[`hookrelay_destination_gone{destination="app"}`])
	}
	out, err := hookrelayCLI(t, "status", "--address", adminAddr)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || strings.Fields(lines[1])[1] != "gone" {
		t.Errorf("caddy hookrelay status printed:\n%s\nwant app gone", out)
	}

	gone.Store(false)
	if out, err := hookrelayCLI(t, "resume", "app", "--address", adminAddr); err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	testutil.WaitFor(t, 15*time.Second, "the waiting events to be delivered", func() bool {
		ids := app.idsReceived()
		return len(ids) == 3
	})
	st.GoneSince = nil
	admin(t, http.MethodGet, "/hookrelay/destinations/app", nil, &st)
	if st.Gone || st.Paused || st.GoneSince != nil {
		t.Errorf("after resume: %+v", st)
	}
	if m := scrape(t); m[`hookrelay_destination_gone{destination="app"}`] != 0 {
		t.Errorf("hookrelay_destination_gone after resume = %v, want 0", m[`hookrelay_destination_gone{destination="app"}`])
	}
}
