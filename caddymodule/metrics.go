package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookrelay/hookrelay/relay"
)

// The collectors are created once and registered with every config's
// registry, so that they keep counting across reloads. Labels are
// bounded: a status code, a destination name, an outcome.
//
// Registered webhooks, which tenants create at run time, would make the
// destination label unbounded: by default they all count under the one
// value destination="webhooks" (webhooksLabel). The webhooks block's
// per_webhook_metrics gives each its own, destination="wh-<id>", for at
// most maxWebhookSeries webhooks at a time; the series of a webhook that
// is deleted, or of every webhook once per_webhook_metrics is turned off,
// are dropped at the next scrape.
var (
	ingressRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "hookrelay",
		Name:      "ingress_requests_total",
		Help:      "Inbound webhook requests by the status they were answered with.",
	}, []string{"code"})

	eventsEnqueued = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "hookrelay",
		Name:      "events_enqueued_total",
		Help:      "Messages stored for delivery, one per event and destination.",
	})

	deliveryAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "hookrelay",
		Name:      "delivery_attempts_total",
		Help:      "Delivery attempts by destination and outcome (delivered, retry, dead_letter). " + destinationLabelHelp,
	}, []string{"destination", "outcome"})

	attemptSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "hookrelay",
		Name:      "delivery_attempt_duration_seconds",
		Help:      "Time one delivery attempt took, by destination. " + destinationLabelHelp,
		Buckets:   prometheus.ExponentialBuckets(0.005, 2.5, 10),
	}, []string{"destination"})

	deadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "hookrelay",
		Name:      "dead_letters_total",
		Help:      "Messages moved to the dead-letter stream, by destination. " + destinationLabelHelp,
	}, []string{"destination"})

	dynamicExecutions = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "hookrelay",
		Name:      "dynamic_execution_duration_seconds",
		Help:      "Executions of merchants' dynamic webhooks (the merchant's call included), by the status they were answered with.",
		Buckets:   prometheus.ExponentialBuckets(0.001, 2.5, 12),
	}, []string{"code"})

	deadLettersDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "hookrelay",
		Name:      "dead_letters_dropped_total",
		Help:      "Oldest dead letters dropped to make room when the dead-letter store was full (dead_letter_limit).",
	})
)

var collectors = []prometheus.Collector{ingressRequests, eventsEnqueued, deliveryAttempts, attemptSeconds, deadLetters,
	deadLettersDropped, dynamicExecutions, engineCollector{}}

// registerMetrics registers the collectors with the config's registry;
// a collector already registered there is fine.
func registerMetrics(ctx caddy.Context) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return err
			}
		}
	}
	return nil
}

// webhooksLabel is the destination label of every registered webhook
// together, unless per_webhook_metrics is on. No configured destination
// may take the name (relay reserves it).
const webhooksLabel = relay.WebhooksLabel

// maxWebhookSeries bounds the registered webhooks with series of their
// own under per_webhook_metrics; the others count under webhooksLabel.
const maxWebhookSeries = 1000

const destinationLabelHelp = `destination is a configured destination's name, or "webhooks" for every registered webhook together; ` +
	`with the webhooks block's per_webhook_metrics, "wh-<id>" for each (at most 1000 at a time, the others under "webhooks").`

// perWebhookMetrics reports whether the running config's webhooks block
// asks for a series per registered webhook. The running app is the one
// most recently started, so a reload that fails to start leaves the
// previous config's choice in force.
func perWebhookMetrics() bool {
	running.mu.Lock()
	defer running.mu.Unlock()
	if len(running.started) == 0 {
		return false
	}
	wc := running.started[len(running.started)-1].Webhooks
	return wc != nil && wc.PerWebhookMetrics
}

// webhookSeries are the registered webhooks that have series of their
// own in the delivery metrics.
type webhookSeries struct {
	mu    sync.Mutex
	names map[string]struct{}
}

var ownSeries = &webhookSeries{names: make(map[string]struct{})}

// observe records an attempt of the registered webhook dest under its
// label: its own when per_webhook_metrics is on and fewer than
// maxWebhookSeries webhooks have their own, else webhooksLabel. It
// records under the lock, so that prune never leaves a series it does
// not know of.
func (s *webhookSeries) observe(dest string, outcome relay.Outcome, took time.Duration) {
	label := webhooksLabel
	per := perWebhookMetrics()
	s.mu.Lock()
	defer s.mu.Unlock()
	if per {
		if _, ok := s.names[dest]; ok || len(s.names) < maxWebhookSeries {
			s.names[dest] = struct{}{}
			label = dest
		}
	}
	observeAttempt(label, outcome, took)
}

// prune drops the series of the webhooks that keep does not want.
func (s *webhookSeries) prune(keep func(name string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name := range s.names {
		if keep(name) {
			continue
		}
		delete(s.names, name)
		deliveryAttempts.DeletePartialMatch(prometheus.Labels{"destination": name})
		attemptSeconds.DeleteLabelValues(name)
		deadLetters.DeleteLabelValues(name)
	}
}

// observeIngress counts an inbound request by the status it got.
func observeIngress(_ *http.Request, status int) {
	ingressRequests.WithLabelValues(strconv.Itoa(status)).Inc()
}

func observeExecution(status int, took time.Duration) {
	dynamicExecutions.WithLabelValues(strconv.Itoa(status)).Observe(took.Seconds())
}

func observeEnqueued(n int) { eventsEnqueued.Add(float64(n)) }

// deliveryObserver feeds the engine's attempts into the metrics.
type deliveryObserver struct{}

func (deliveryObserver) Attempt(dest string, outcome relay.Outcome, took time.Duration) {
	if _, ok := relay.WebhookID(dest); ok {
		ownSeries.observe(dest, outcome, took)
		return
	}
	observeAttempt(dest, outcome, took)
}

func observeAttempt(label string, outcome relay.Outcome, took time.Duration) {
	deliveryAttempts.WithLabelValues(label, outcome.String()).Inc()
	attemptSeconds.WithLabelValues(label).Observe(took.Seconds())
	if outcome == relay.OutcomeDeadLetter {
		deadLetters.WithLabelValues(label).Inc()
	}
}

func (deliveryObserver) DeadLettersDropped(n uint64) { deadLettersDropped.Add(float64(n)) }

// engineCollector reports, at each scrape, the running engine's queue
// state per destination, its registered webhooks and its token cache
// counters. It reads the running engine (running.engine), so a reload
// never leaves it reading a stopped one.
//
// The per-destination gauges cover the configuration's destinations;
// with per_webhook_metrics also the first maxWebhookSeries registered
// webhooks by id (each read costs the queue a request per webhook).
type engineCollector struct{}

// gaugeScope says which destinations the per-destination gauges cover.
const gaugeScope = " Covers the configured destinations; with the webhooks block's per_webhook_metrics " +
	"also registered webhooks as wh-<id>, the first 1000 by id."

var (
	queueDepthDesc = prometheus.NewDesc("hookrelay_queue_depth",
		"Messages waiting for a destination: stored, in flight, and parked for a later retry."+gaugeScope,
		[]string{"destination"}, nil)
	retriesWaitingDesc = prometheus.NewDesc("hookrelay_retries_waiting",
		"Messages of a destination waiting for a retry."+gaugeScope,
		[]string{"destination"}, nil)
	deadLettersStoredDesc = prometheus.NewDesc("hookrelay_dead_letters_stored",
		"Dead letters kept for a destination, awaiting inspection or replay."+gaugeScope,
		[]string{"destination"}, nil)
	pausedDesc = prometheus.NewDesc("hookrelay_destination_paused",
		"1 while deliveries to a destination are paused."+gaugeScope,
		[]string{"destination"}, nil)
	goneDesc = prometheus.NewDesc("hookrelay_destination_gone",
		"1 while a destination is marked gone (it answered 410) and paused until resumed."+gaugeScope,
		[]string{"destination"}, nil)
	blockedLanesDesc = prometheus.NewDesc("hookrelay_blocked_lanes",
		"Lanes of an ordered destination whose first event failed and waits for its retry, holding back the later events of the lane, as this node saw them."+gaugeScope,
		[]string{"destination"}, nil)
	oldestBlockedDesc = prometheus.NewDesc("hookrelay_oldest_blocked_seconds",
		"How long the longest-blocked lane of an ordered destination has waited since its first event first failed, as this node saw it; 0 when no lane is blocked."+gaugeScope,
		[]string{"destination"}, nil)
	webhooksRegisteredDesc = prometheus.NewDesc("hookrelay_webhooks_registered",
		"Webhooks registered by tenants, all tenants together; absent when the webhook registry is off.",
		nil, nil)
	webhooksBrokenDesc = prometheus.NewDesc("hookrelay_webhooks_broken",
		"Registered webhooks that cannot run on this node (credentials that do not open, a filter that does not compile); "+
			"their events wait. caddy hookrelay webhooks list says why.",
		nil, nil)
	tokenFetchesDesc = prometheus.NewDesc("hookrelay_token_fetches_total",
		"Token requests sent to OAuth token endpoints.", nil, nil)
	tokenFetchErrorsDesc = prometheus.NewDesc("hookrelay_token_fetch_errors_total",
		"Token requests that failed.", nil, nil)
	tokenHitsDesc = prometheus.NewDesc("hookrelay_token_cache_hits_total",
		"Deliveries authorized with a cached token.", nil, nil)
	tokenMissesDesc = prometheus.NewDesc("hookrelay_token_cache_misses_total",
		"Deliveries that waited for a token request.", nil, nil)
)

// Describe sends the descriptors of every metric Collect may send.
func (engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		queueDepthDesc, retriesWaitingDesc, deadLettersStoredDesc, pausedDesc, goneDesc, blockedLanesDesc, oldestBlockedDesc,
		webhooksRegisteredDesc, webhooksBrokenDesc, tokenFetchesDesc, tokenFetchErrorsDesc, tokenHitsDesc, tokenMissesDesc,
	} {
		ch <- d
	}
}

// Collect reads the running engine; it sends nothing when none runs, and
// only the token counters when the queue cannot be read in time.
func (engineCollector) Collect(ch chan<- prometheus.Metric) {
	eng := running.engine()
	if eng == nil {
		return
	}
	ts := eng.tokens.Stats()
	ch <- prometheus.MustNewConstMetric(tokenFetchesDesc, prometheus.CounterValue, float64(ts.Fetches))
	ch <- prometheus.MustNewConstMetric(tokenFetchErrorsDesc, prometheus.CounterValue, float64(ts.FetchErrors))
	ch <- prometheus.MustNewConstMetric(tokenHitsDesc, prometheus.CounterValue, float64(ts.Hits))
	ch <- prometheus.MustNewConstMetric(tokenMissesDesc, prometheus.CounterValue, float64(ts.Misses))

	// The registered webhooks: counted, and the names of those whose
	// queues are shown (with per_webhook_metrics).
	per := perWebhookMetrics()
	var hooks []string
	registered := map[string]bool{}
	if reg := eng.registry.get(); reg != nil {
		all := reg.All() // in id order
		broken := 0
		for _, in := range all {
			if in.Broken != "" {
				broken++
			}
			if per {
				registered[in.Destination] = true
				if len(hooks) < maxWebhookSeries {
					hooks = append(hooks, in.Destination)
				}
			}
		}
		ch <- prometheus.MustNewConstMetric(webhooksRegisteredDesc, prometheus.GaugeValue, float64(len(all)))
		ch <- prometheus.MustNewConstMetric(webhooksBrokenDesc, prometheus.GaugeValue, float64(broken))
	}
	ownSeries.prune(func(name string) bool { return registered[name] })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stats, err := eng.Stats(ctx)
	if err != nil {
		return
	}
	sendQueueGauges(ch, stats)
	if len(hooks) > 0 {
		// After the configured destinations, so that a slow read of a
		// thousand webhooks never hides theirs.
		if stats, err = eng.StatusOf(ctx, hooks); err == nil {
			sendQueueGauges(ch, stats)
		}
	}
}

// sendQueueGauges sends the per-destination gauges of stats.
func sendQueueGauges(ch chan<- prometheus.Metric, stats []relay.DestinationStatus) {
	for _, st := range stats {
		paused := 0.0
		if st.Paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(st.Depth()), st.Name)
		ch <- prometheus.MustNewConstMetric(retriesWaitingDesc, prometheus.GaugeValue, float64(st.InRetry), st.Name)
		ch <- prometheus.MustNewConstMetric(deadLettersStoredDesc, prometheus.GaugeValue, float64(st.DeadLetters), st.Name)
		ch <- prometheus.MustNewConstMetric(pausedDesc, prometheus.GaugeValue, paused, st.Name)
		gone := 0.0
		if st.Gone {
			gone = 1
		}
		ch <- prometheus.MustNewConstMetric(goneDesc, prometheus.GaugeValue, gone, st.Name)
		if st.Ordered {
			oldest := 0.0
			if st.OldestBlockedSince != nil {
				oldest = max(time.Since(*st.OldestBlockedSince).Seconds(), 0)
			}
			ch <- prometheus.MustNewConstMetric(blockedLanesDesc, prometheus.GaugeValue, float64(st.BlockedLanes), st.Name)
			ch <- prometheus.MustNewConstMetric(oldestBlockedDesc, prometheus.GaugeValue, oldest, st.Name)
		}
	}
}
