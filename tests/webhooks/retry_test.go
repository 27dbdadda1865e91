package webhooks

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestRegisteredWebhookRetriesAndDeadLetters: a registered webhook runs on
// its own retry schedule (1s, where the block's default would wait an
// hour): a 500 is retried and the next attempt delivers. A 400 is
// dead-lettered at once; replayed through the admin API once the
// receiver is fixed, it is delivered.
func TestRegisteredWebhookRetriesAndDeadLetters(t *testing.T) {
	flaky := newReceiver(t, func(n int, _ *http.Request, _ []byte) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	refusing := newReceiver(t, func(int, *http.Request, []byte) int { return http.StatusBadRequest })
	start(t, config{webhooks: []string{
		"allow_network 127.0.0.0/8", trustedCA(t, flaky.Server),
		"min_retry_delay 1s",
		"retry {\n\t\t\t\tschedule 1h\n\t\t\t}",
	}})
	own := map[string]any{"schedule": []string{"1s"}, "max_age": "1h"}
	flakyID := apiA.create(t, map[string]any{"topic": topic, "address": flaky.URL + "/flaky", "retry": own})
	refusingID := apiA.create(t, map[string]any{"topic": topic, "address": refusing.URL + "/refusing", "retry": own})

	post(t, eventsPath, nil, `{"orderId":"retry-1"}`)

	t.Run("500 then 200", func(t *testing.T) {
		flaky.waitCount(t, 2, "the retry after the 500")
		settled(t, webhookName(flakyID))
		got := flaky.Got()
		if len(got) != 2 {
			t.Fatalf("the webhook got %d attempts, want the 500 and the delivery", len(got))
		}
		if a, b := got[0].Header.Get("webhook-id"), got[1].Header.Get("webhook-id"); a == "" || a != b {
			t.Errorf("webhook-ids %q and %q, want the same event", a, b)
		}
		// The webhook's own 1s step, jitter only adding to it.
		if gap := got[1].At.Sub(got[0].At); gap < time.Second {
			t.Errorf("the retry came %v after the 500, before the webhook's 1s step", gap)
		}
		if dls := deadLetters(t, webhookName(flakyID)); len(dls) != 0 {
			t.Errorf("a delivered event left dead letters: %+v", dls)
		}
	})

	t.Run("400, dead letter, replay", func(t *testing.T) {
		name := webhookName(refusingID)
		dls := waitDeadLetters(t, name, 1)
		settled(t, name)
		if len(dls) != 1 || dls[0].Reason != "permanent_failure" || dls[0].LastStatus != http.StatusBadRequest || dls[0].Attempts != 1 {
			t.Fatalf("dead letters %+v, want one permanent_failure after one attempt answered 400", dls)
		}
		if refusing.Count() != 1 {
			t.Fatalf("the webhook got %d attempts, want the one 400", refusing.Count())
		}

		refusing.setAnswer(nil) // fixed: 200
		status, body := admin(t, http.MethodPost, "/hookrelay/dead_letters/replay", fmt.Sprintf(`{"ids":[%d]}`, dls[0].ID))
		var replayed struct {
			Replayed int `json:"replayed"`
		}
		if status != http.StatusOK || json.Unmarshal(body, &replayed) != nil || replayed.Replayed != 1 {
			t.Fatalf("replay answered %d %s, want 1 replayed", status, body)
		}
		refusing.waitCount(t, 2, "the replayed delivery")
		settled(t, name)
		got := refusing.Got()
		if len(got) != 2 || got[1].Header.Get("webhook-id") != dls[0].EventID {
			t.Errorf("after the replay the webhook got %d requests, the last of event %q; want the dead letter's %q",
				len(got), got[len(got)-1].Header.Get("webhook-id"), dls[0].EventID)
		}
		if dls := deadLetters(t, name); len(dls) != 0 {
			t.Errorf("dead letters after the replay: %+v, want none", dls)
		}
	})
}
