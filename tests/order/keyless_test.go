package order

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/ordertest"
	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestOrderedKeylessGoesToLaneZero: events without a value at the
// destination's order_by path (normalized Ave events with order_by
// data.not_there; raw JSON events without, or with a null, shipment_id)
// all share lane 0: every one is delivered, one at a time, in the order
// they were stored, even though the receiver fails some attempts.
func TestOrderedKeylessGoesToLaneZero(t *testing.T) {
	const (
		aveDest = "keyless_ave"
		rawDest = "keyless_raw"
		events  = 80
	)
	// Every event of a destination is one "key" of the check: its status
	// is its place in the order the events were posted (and stored).
	var aveEvents []ordertest.Ev // what was posted to /ave, in order
	for i := range events {
		aveEvents = append(aveEvents, ordertest.Ev{Key: fmt.Sprintf("kl-%02d", i%7), Status: i})
	}
	place := map[string]int{} // shipment id and status code -> place
	for i, e := range aveEvents {
		place[fmt.Sprintf("%s/%d", e.Key, e.Status+1)] = i
	}
	script := func(ordertest.Attempt) int {
		if rand.Float64() < 0.15 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	ave := ordertest.NewSink(t, script)
	ave.OKDelay = 2 * time.Millisecond
	ave.Decode = func(body []byte) (ordertest.Ev, bool) {
		shipment, status, ok := ordertest.AveFields(body)
		if !ok {
			return ordertest.Ev{}, false
		}
		i, ok := place[shipment+"/"+status]
		return ordertest.Ev{Key: aveDest, Status: i}, ok
	}
	raw := ordertest.NewSink(t, script)
	raw.OKDelay = 2 * time.Millisecond
	raw.Decode = func(body []byte) (ordertest.Ev, bool) {
		var e struct {
			Data struct {
				Seq *int `json:"seq"`
			} `json:"data"`
		}
		if json.Unmarshal(body, &e) != nil || e.Data.Seq == nil {
			return ordertest.Ev{}, false
		}
		return ordertest.Ev{Key: rawDest, Status: *e.Data.Seq}, true
	}

	dir := queueDir(t)
	load(t, caddyAt.NewTester(t), globalOptions(dir)+fmt.Sprintf(`
:%d {
%s
	route /raw {
		hook_relay {
			topic orders/created
%s
%s		}
	}
}
`, httpPort,
		aveRoute([]string{to(ave.URL, aveDest, "order_by data.not_there", "lanes 32", "timeout 2s")}, "schedule 50ms"),
		to(raw.URL, rawDest, "order_by data.shipment_id", "lanes 32", "timeout 2s"),
		retryBlock("schedule 50ms")))

	// One sender: the order of the requests is the order of storage.
	for i := 0; i < len(aveEvents); {
		n := 1 + i%3 // 1 to 3 guides a request
		postStatuses(t, aveEvents[i:min(i+n, len(aveEvents))]...)
		i += n
	}
	for i := range events {
		body := fmt.Sprintf(`{"seq":%d,"note":"no shipment id"}`, i)
		if i%3 == 0 {
			body = fmt.Sprintf(`{"seq":%d,"shipment_id":null}`, i)
		}
		code, b, err := post(baseURL+"/raw", nil, []byte(body))
		if err != nil || code != http.StatusCreated {
			t.Fatalf("POST /raw %s = %d %s %v, want 201", body, code, b, err)
		}
	}

	for _, c := range []struct {
		s    *ordertest.Sink
		dest string
	}{{ave, aveDest}, {raw, rawDest}} {
		acked := map[string]int{c.dest: events}
		c.s.WaitDelivered(t, acked, 60*time.Second)
		settled(t, adminURL, c.dest)
		st := ordertest.CheckOrder(t, c.s.All(), acked)
		t.Logf("%s: %s", c.dest, st)
	}
	testutil.WaitFor(t, 5*time.Second, "no blocked lane", func() bool {
		return status(t, aveDest).BlockedLanes == 0 && status(t, rawDest).BlockedLanes == 0
	})
}
