package order

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/ordertest"
	"github.com/hookrelay/hookrelay/internal/testutil"
)

// deadLetter is an entry of GET /hookrelay/dead_letters.
type deadLetter struct {
	ID          uint64 `json:"id"`
	EventID     string `json:"event_id"`
	Destination string `json:"destination"`
	LastStatus  int    `json:"last_status"`
	Reason      string `json:"reason"`
}

// deadLetters lists a destination's dead letters.
func deadLetters(t *testing.T, dest string) []deadLetter {
	t.Helper()
	code, b := testutil.Do(t, http.MethodGet, adminURL+"/hookrelay/dead_letters?destination="+dest, nil, nil)
	var page struct {
		DeadLetters []deadLetter `json:"dead_letters"`
	}
	if code != http.StatusOK || json.Unmarshal(b, &page) != nil {
		t.Fatalf("GET /hookrelay/dead_letters?destination=%s = %d %s", dest, code, b)
	}
	return page.DeadLetters
}

// delivered2xx returns the statuses a key's attempts were answered 2xx
// for, in the order they arrived, adjacent repeats collapsed.
func delivered2xx(as []ordertest.Attempt) []int {
	var seq []int
	for _, a := range as {
		if a.OK() && (len(seq) == 0 || seq[len(seq)-1] != a.Status) {
			seq = append(seq, a.Status)
		}
	}
	return seq
}

// TestOrderedDeadLetterReleasesLane: K's first status is answered 400 and
// dead-lettered; that releases K's lane and its later statuses flow, in
// order. The dead letter, replayed over the admin API while a later status
// of K fails and blocks K's lane, is delivered on its own (not behind it),
// after the newer statuses of K: documented behaviour.
func TestOrderedDeadLetterReleasesLane(t *testing.T) {
	const (
		dest = "dl_sink"
		K    = "dl-K"
	)
	var refusedHead, releasedLast atomic.Bool
	s := ordertest.NewSink(t, func(a ordertest.Attempt) int {
		switch {
		case a.Key == K && a.Status == 0 && refusedHead.CompareAndSwap(false, true):
			return http.StatusBadRequest
		case a.Key == K && a.Status == 5 && !releasedLast.Load():
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	load(t, caddyAt.NewTester(t), aveConfig(queueDir(t), []string{to(s.URL, dest,
		"order_by data.shipment_id",
		"lanes 8",
		"timeout 2s",
	)}, "schedule 50ms 3s"))

	for k := range 5 {
		postStatuses(t, ordertest.Ev{Key: K, Status: k})
	}
	testutil.WaitFor(t, 20*time.Second, "K's statuses 1 to 4 after its head was dead-lettered", func() bool {
		return s.Delivered(ordertest.Ev{Key: K, Status: 4}) >= 1
	})
	as := s.Of(K)
	var head []ordertest.Attempt
	for _, a := range as {
		if a.Status == 0 {
			head = append(head, a)
		}
	}
	if len(head) != 1 || head[0].Answer != http.StatusBadRequest {
		t.Fatalf("K's head: %d attempts %v; want one, answered 400", len(head), head)
	}
	for _, a := range as {
		if a.Status > 0 && !a.Start.After(head[0].End) {
			t.Errorf("status %d of K attempted at %v, before its head was answered 400 at %v", a.Status, a.Start, head[0].End)
		}
	}
	if seq := delivered2xx(as); !slices.Equal(seq, []int{1, 2, 3, 4}) {
		t.Errorf("K's statuses delivered in the order %v, want [1 2 3 4]", seq)
	}
	for _, problem := range slices.Concat(ordertest.EarlyAttempts(K, as), ordertest.Overlapping(K, as)) {
		t.Error(problem)
	}

	var dl deadLetter
	testutil.WaitFor(t, 10*time.Second, "K's head among the dead letters", func() bool {
		for _, d := range deadLetters(t, dest) {
			if d.EventID == head[0].EventID {
				dl = d
				return true
			}
		}
		return false
	})
	if dl.LastStatus != http.StatusBadRequest || dl.Reason != "permanent_failure" {
		t.Errorf("dead letter = %+v; want last_status 400, reason permanent_failure", dl)
	}

	// A later status of K fails and blocks K's lane.
	postStatuses(t, ordertest.Ev{Key: K, Status: 5})
	testutil.WaitFor(t, 10*time.Second, "the second failure of K's status 5", func() bool {
		return s.AttemptsOf(ordertest.Ev{Key: K, Status: 5}) >= 2
	})
	testutil.WaitFor(t, 10*time.Second, "the status to show K's blocked lane", func() bool {
		st := status(t, dest)
		return st.BlockedLanes >= 1 && st.OldestBlockedKey == K
	})

	// The replay: delivered on its own, not behind status 5.
	code, b := testutil.Do(t, http.MethodPost, adminURL+"/hookrelay/dead_letters/replay",
		http.Header{"Content-Type": {"application/json"}}, fmt.Appendf(nil, `{"ids":[%d]}`, dl.ID))
	var rep struct {
		Replayed int `json:"replayed"`
	}
	if code != http.StatusOK || json.Unmarshal(b, &rep) != nil || rep.Replayed != 1 {
		t.Fatalf("POST /hookrelay/dead_letters/replay = %d %s, want 200 and 1 replayed", code, b)
	}
	replayedAt := time.Now()
	testutil.WaitFor(t, 10*time.Second, "the replayed head, while status 5 blocks K's lane", func() bool {
		return s.Delivered(ordertest.Ev{Key: K, Status: 0}) >= 1
	})
	t.Logf("the replayed dead letter was delivered %v after the replay, K's lane blocked by status 5 (%d attempts so far)",
		time.Since(replayedAt).Round(time.Millisecond), s.AttemptsOf(ordertest.Ev{Key: K, Status: 5}))

	releasedLast.Store(true)
	testutil.WaitFor(t, 15*time.Second, "K's status 5 once the receiver takes it", func() bool {
		return s.Delivered(ordertest.Ev{Key: K, Status: 5}) >= 1
	})
	settled(t, adminURL, dest)
	as = s.Of(K)
	if seq := delivered2xx(as); !slices.Equal(seq, []int{1, 2, 3, 4, 0, 5}) {
		t.Errorf("K's statuses delivered in the order %v, want [1 2 3 4 0 5]: the replay after the newer ones", seq)
	}
	for _, problem := range ordertest.Overlapping(K, as) {
		t.Error(problem)
	}
	for _, a := range as {
		if a.Status == 0 && a.OK() && a.EventID != head[0].EventID {
			t.Errorf("the replay came with webhook-id %q, the original with %q", a.EventID, head[0].EventID)
		}
	}
	if left := deadLetters(t, dest); len(left) != 0 {
		t.Errorf("dead letters after the replay: %+v, want none", left)
	}
}
