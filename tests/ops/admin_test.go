package ops

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

func TestAdminDeadLettersAndReplay(t *testing.T) {
	tc := caddyAt.NewTester(t)
	erp := newSink(t, failFirst(3))
	load(t, tc, config(t, queueDir(t), []dest{{name: "erp", url: erp.URL}}, ""))

	start := time.Now().Add(-time.Second)
	postAve(t, "G-1", "G-2", "G-3")
	var page deadLetterPage
	testutil.WaitFor(t, 15*time.Second, "3 dead letters", func() bool {
		page = deadLetters(t, "?destination=erp")
		return page.Total == 3 && len(page.DeadLetters) == 3
	})
	seen := map[string]bool{}
	for _, dl := range page.DeadLetters {
		if dl.ID == 0 || dl.EventID == "" || seen[dl.EventID] {
			t.Errorf("dead letter without a distinct id: %+v", dl)
		}
		seen[dl.EventID] = true
		if dl.Topic != topic || dl.Destination != "erp" || dl.Attempts != 1 || dl.LastStatus != 404 ||
			dl.LastError != "HTTP 404 Not Found" || dl.Reason != "permanent_failure" {
			t.Errorf("dead letter = %+v", dl)
		}
		if dl.FirstSeen.Before(start) || dl.DeadAt.Before(dl.FirstSeen) {
			t.Errorf("dead letter times: first seen %v, dead at %v, test started %v", dl.FirstSeen, dl.DeadAt, start)
		}
	}
	for id := range erp.idsReceived() {
		if !seen[id] {
			t.Errorf("delivered webhook-id %s is not among the dead letters' event ids %v", id, seen)
		}
	}
	// Never the payload.
	_, raw := do(t, http.MethodGet, adminURL+"/hookrelay/dead_letters?destination=erp", "", nil)
	if strings.Contains(string(raw), "G-1") || strings.Contains(string(raw), "DIRECCION") {
		t.Errorf("the dead-letter listing carries the payload: %s", raw)
	}

	// Pages.
	first := deadLetters(t, "?destination=erp&limit=2")
	if len(first.DeadLetters) != 2 || first.NextCursor == "" {
		t.Fatalf("first page = %+v, want 2 and a cursor", first)
	}
	second := deadLetters(t, "?destination=erp&limit=2&cursor="+first.NextCursor)
	if len(second.DeadLetters) != 1 || second.NextCursor != "" || second.DeadLetters[0].ID != page.DeadLetters[2].ID {
		t.Errorf("second page = %+v, want the third dead letter and no cursor", second)
	}
	if other := deadLetters(t, "?destination=bi"); other.Total != 0 || len(other.DeadLetters) != 0 {
		t.Errorf("another destination's dead letters = %+v", other)
	}

	st := status(t, "erp")
	if st.DeadLetters != 3 || st.RecentCounts.DeadLetter != 3 || st.LastStatus != 404 || st.LastOutcome != "dead_letter" || st.Pending != 0 {
		t.Errorf("status = %+v", st)
	}

	// Replay one by id: delivered once more, with its event id.
	var rep struct {
		Replayed int `json:"replayed"`
	}
	one := page.DeadLetters[1]
	admin(t, http.MethodPost, "/hookrelay/dead_letters/replay", map[string]any{"ids": []uint64{one.ID}}, &rep)
	if rep.Replayed != 1 {
		t.Fatalf("replayed %d, want 1", rep.Replayed)
	}
	testutil.WaitFor(t, 15*time.Second, "the replayed delivery", func() bool { return erp.Count() == 4 })
	settled(t, "erp")
	if got := erp.idsReceived()[one.EventID]; got != 2 {
		t.Errorf("event %s received %d times, want 2", one.EventID, got)
	}
	if left := deadLetters(t, "?destination=erp"); left.Total != 2 {
		t.Errorf("%d dead letters after replaying one, want 2", left.Total)
	}
	testutil.WaitFor(t, 10*time.Second, "the status to show the delivery", func() bool {
		st := status(t, "erp")
		return st.RecentCounts.Delivered == 1 && st.LastStatus == 200 && st.DeadLetters == 2
	})

	// Replay the rest of the destination (since a time before both).
	admin(t, http.MethodPost, "/hookrelay/dead_letters/replay",
		map[string]any{"destination": "erp", "since": start.UTC().Format(time.RFC3339)}, &rep)
	if rep.Replayed != 2 {
		t.Fatalf("replayed %d, want 2", rep.Replayed)
	}
	testutil.WaitFor(t, 15*time.Second, "the replayed deliveries", func() bool { return erp.Count() == 6 })
	settled(t, "erp")
	if n := erp.Count(); n != 6 {
		t.Errorf("%d deliveries, want 6", n)
	}
	for id, n := range erp.idsReceived() {
		if n != 2 {
			t.Errorf("event %s received %d times, want 2", id, n)
		}
	}
	if left := deadLetters(t, ""); left.Total != 0 {
		t.Errorf("%d dead letters left", left.Total)
	}
}

func TestAdminPauseResume(t *testing.T) {
	tc := caddyAt.NewTester(t)
	erp, bi := newSink(t, nil), newSink(t, nil)
	load(t, tc, config(t, queueDir(t), []dest{{name: "erp", url: erp.URL}, {name: "bi", url: bi.URL}}, ""))

	var pr struct {
		Destination string `json:"destination"`
		Paused      bool   `json:"paused"`
	}
	admin(t, http.MethodPost, "/hookrelay/destinations/erp/pause", nil, &pr)
	if pr.Destination != "erp" || !pr.Paused {
		t.Errorf("pause answered %+v", pr)
	}
	postAve(t, "P-1", "P-2", "P-3")
	// The other destination is not held back.
	testutil.WaitFor(t, 15*time.Second, "3 deliveries to bi", func() bool { return bi.Count() == 3 })
	testutil.WaitFor(t, 10*time.Second, "3 pending for the paused erp", func() bool {
		st := status(t, "erp")
		return st.Paused && st.Pending == 3
	})
	if n := erp.Count(); n != 0 {
		t.Fatalf("%d deliveries to a paused destination", n)
	}
	if st := status(t, "bi"); st.Paused || st.Pending != 0 {
		t.Errorf("bi = %+v, want not paused and nothing pending", st)
	}
	var one destinationStatus
	admin(t, http.MethodGet, "/hookrelay/destinations/erp", nil, &one)
	if !one.Paused || one.Pending != 3 {
		t.Errorf("GET /hookrelay/destinations/erp = %+v", one)
	}

	admin(t, http.MethodPost, "/hookrelay/destinations/erp/resume", nil, &pr)
	if pr.Paused {
		t.Errorf("resume answered %+v", pr)
	}
	testutil.WaitFor(t, 15*time.Second, "3 deliveries to erp after resume", func() bool { return erp.Count() == 3 })
	testutil.WaitFor(t, 10*time.Second, "erp to settle", func() bool {
		st := status(t, "erp")
		return !st.Paused && st.Pending == 0 && st.InFlight == 0 && st.RecentCounts.Delivered == 3
	})
}

func TestAdminBadRequests(t *testing.T) {
	tc := caddyAt.NewTester(t)
	erp := newSink(t, nil)
	load(t, tc, config(t, queueDir(t), []dest{{name: "erp", url: erp.URL}}, ""))

	for _, c := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"GET", "/hookrelay/dead_letters?limit=abc", "", 400, `invalid limit "abc": use a number from 1 to 1000`},
		{"GET", "/hookrelay/dead_letters?limit=0", "", 400, "invalid limit"},
		{"GET", "/hookrelay/dead_letters?destination=no%20spaces", "", 400, `invalid destination "no spaces"`},
		{"GET", "/hookrelay/dead_letters?cursor=x", "", 400, `invalid cursor "x"`},
		{"POST", "/hookrelay/dead_letters", "", 405, "method POST not allowed on /hookrelay/dead_letters; use GET"},
		{"GET", "/hookrelay/dead_letters/replay", "", 405, "use POST"},
		{"POST", "/hookrelay/dead_letters/replay", `{}`, 400, "nothing to replay: give ids, or a destination"},
		{"POST", "/hookrelay/dead_letters/replay", `{"ids":[1],"destination":"erp"}`, 400, "give either ids or a destination, not both"},
		{"POST", "/hookrelay/dead_letters/replay", `{"destination":"erp","since":"yesterday"}`, 400, `invalid since "yesterday": use an RFC 3339 time`},
		{"POST", "/hookrelay/dead_letters/replay", `{"ids":["x"]}`, 400, "invalid replay request"},
		{"POST", "/hookrelay/dead_letters/replay", `{"id":[1]}`, 400, `unknown field "id"`},
		{"POST", "/hookrelay/dead_letters/replay", `not json`, 400, "invalid replay request"},
		{"DELETE", "/hookrelay/destinations", "", 405, "use GET"},
		{"POST", "/hookrelay/destinations/nope/pause", "", 404, `no running destination has that name: "nope"`},
		{"GET", "/hookrelay/destinations/nope", "", 404, "no running destination has that name"},
		{"POST", "/hookrelay/destinations/erp/explode", "", 404, `unknown action "explode" on destination erp: use pause or resume`},
		{"GET", "/hookrelay/destinations/erp/pause", "", 405, "use POST"},
		{"POST", "/hookrelay/destinations/bad.name/pause", "", 400, `invalid destination name "bad.name"`},
	} {
		status, body := do(t, c.method, adminURL+c.path, "application/json", []byte(c.body))
		var e struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(body, &e); err != nil || status != c.status || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s %s %s = %d %s; want %d and an error containing %q", c.method, c.path, c.body, status, body, c.status, c.want)
		}
	}
	if erp.Count() != 0 {
		t.Errorf("bad requests caused %d deliveries", erp.Count())
	}

	// With no hookrelay app running, the endpoints say so.
	unloadAll()
	status, body := do(t, http.MethodGet, adminURL+"/hookrelay/destinations", "", nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "hookrelay is not running") {
		t.Errorf("without the app: %d %s", status, body)
	}
}
