package caddymodule

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// scrape returns the admin API's /metrics text.
func (e *webhooksEnv) scrape() string {
	e.t.Helper()
	resp, err := http.Get(webhooksCaddy.AdminURL() + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	e.saw(string(b))
	return string(b)
}

// webhookSeriesIn returns the series of m whose destination label is a
// registered webhook's own.
func webhookSeriesIn(m map[string]float64) []string {
	var out []string
	for s := range m {
		if strings.Contains(s, `destination="wh-`) {
			out = append(out, s)
		}
	}
	return out
}

// TestWebhookMetricsCardinality: with three registered webhooks and the
// default settings, their attempts and dead letters count under
// destination="webhooks" and no series is a webhook's own; the gauges
// count them. With per_webhook_metrics, each has its own delivery and
// queue series; turned off again, those series go at the next scrapes.
func TestWebhookMetricsCardinality(t *testing.T) {
	e := newWebhooksEnv(t)
	counters := testutil.NewCounters(webhooksCaddy.AdminURL())
	e.load(webhooksOpts{})
	counters.Start(t)
	ok1 := e.create("acme", webhookTopic, "/ok").Webhook.Destination
	ok2 := e.create("globex", webhookTopic, "/ok2").Webhook.Destination
	rej := e.create("globex", webhookTopic, "/reject").Webhook.Destination

	delivered := func(n int) {
		t.Helper()
		e.send()
		eventually(t, "the deliveries", func() bool {
			var dls deadLettersResponse
			e.adminJSON(http.MethodGet, "/hookrelay/dead_letters?destination="+rej, nil, http.StatusOK, &dls)
			return e.recv.count("/ok") == n && e.recv.count("/ok2") == n && dls.Total == uint64(n)
		})
	}
	delivered(1)
	var m map[string]float64
	eventually(t, "the attempts counted", func() bool {
		m = counters.Series(t)
		return m[`hookrelay_delivery_attempts_total{destination="webhooks",outcome="delivered"}`] == 2 &&
			m[`hookrelay_delivery_attempts_total{destination="webhooks",outcome="dead_letter"}`] == 1
	})
	if own := webhookSeriesIn(m); len(own) > 0 {
		t.Errorf("series of webhooks of their own by default: %v", own)
	}
	if m[`hookrelay_dead_letters_total{destination="webhooks"}`] != 1 || m[`hookrelay_delivery_attempt_duration_seconds_count{destination="webhooks"}`] < 3 {
		t.Errorf("dead letters and durations under webhooks: %v, %v",
			m[`hookrelay_dead_letters_total{destination="webhooks"}`], m[`hookrelay_delivery_attempt_duration_seconds_count{destination="webhooks"}`])
	}
	if m["hookrelay_webhooks_registered"] != 3 || m["hookrelay_webhooks_broken"] != 0 {
		t.Errorf("registered %v, broken %v; want 3 and 0", m["hookrelay_webhooks_registered"], m["hookrelay_webhooks_broken"])
	}
	if text := e.scrape(); !strings.Contains(text, "# HELP hookrelay_delivery_attempts_total") || !strings.Contains(text, "per_webhook_metrics") {
		t.Error("the help of the delivery metrics does not explain the webhooks label")
	}

	// per_webhook_metrics: a series of its own per webhook.
	e.load(webhooksOpts{perWebhook: true})
	delivered(2)
	eventually(t, "the webhooks' own series", func() bool {
		m = counters.Series(t)
		return m[`hookrelay_delivery_attempts_total{destination="`+ok1+`",outcome="delivered"}`] == 1 &&
			m[`hookrelay_delivery_attempts_total{destination="`+ok2+`",outcome="delivered"}`] == 1 &&
			m[`hookrelay_dead_letters_total{destination="`+rej+`"}`] == 1
	})
	for _, d := range []string{ok1, ok2, rej} {
		if _, ok := m[`hookrelay_queue_depth{destination="`+d+`"}`]; !ok {
			t.Errorf("no queue depth of %s with per_webhook_metrics", d)
		}
	}
	if m[`hookrelay_dead_letters_stored{destination="`+rej+`"}`] != 2 {
		t.Errorf("dead letters stored of %s = %v, want 2", rej, m[`hookrelay_dead_letters_stored{destination="`+rej+`"}`])
	}
	if m[`hookrelay_delivery_attempts_total{destination="webhooks",outcome="delivered"}`] != 2 {
		t.Error("attempts under per_webhook_metrics were also counted under webhooks")
	}

	// Deleted, and then per_webhook_metrics off: the series go.
	e.adminJSON(http.MethodDelete, "/hookrelay/webhooks/"+strings.TrimPrefix(ok2, "wh-"), nil, http.StatusOK, nil)
	eventually(t, "the deleted webhook's series to go", func() bool {
		m = counters.Series(t)
		_, stays := m[`hookrelay_delivery_attempts_total{destination="`+ok2+`",outcome="delivered"}`]
		_, other := m[`hookrelay_delivery_attempts_total{destination="`+ok1+`",outcome="delivered"}`]
		return !stays && other && m["hookrelay_webhooks_registered"] == 2
	})
	e.load(webhooksOpts{})
	eventually(t, "every webhook's own series to go", func() bool {
		m = counters.Series(t)
		return len(webhookSeriesIn(m)) == 0
	})
}
