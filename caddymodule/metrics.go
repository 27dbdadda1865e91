package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookrelay/hookrelay/relay"
)

// The collectors are created once and registered with every config's
// registry, so that they keep counting across reloads. Labels are
// bounded: a status code, a destination name, an outcome.
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
		Help:      "Delivery attempts by destination and outcome (delivered, retry, dead_letter).",
	}, []string{"destination", "outcome"})

	attemptSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "hookrelay",
		Name:      "delivery_attempt_duration_seconds",
		Help:      "Time one delivery attempt took, by destination.",
		Buckets:   prometheus.ExponentialBuckets(0.005, 2.5, 10),
	}, []string{"destination"})

	deadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "hookrelay",
		Name:      "dead_letters_total",
		Help:      "Messages moved to the dead-letter stream, by destination.",
	}, []string{"destination"})

	deadLettersDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "hookrelay",
		Name:      "dead_letters_dropped_total",
		Help:      "Oldest dead letters dropped to make room when the dead-letter store was full (dead_letter_limit).",
	})
)

var collectors = []prometheus.Collector{ingressRequests, eventsEnqueued, deliveryAttempts, attemptSeconds, deadLetters, deadLettersDropped, engineCollector{}}

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

// observeIngress counts an inbound request by the status it got.
func observeIngress(_ *http.Request, status int) {
	ingressRequests.WithLabelValues(strconv.Itoa(status)).Inc()
}

func observeEnqueued(n int) { eventsEnqueued.Add(float64(n)) }

// deliveryObserver feeds the engine's attempts into the metrics.
type deliveryObserver struct{}

func (deliveryObserver) Attempt(dest string, outcome relay.Outcome, took time.Duration) {
	deliveryAttempts.WithLabelValues(dest, outcome.String()).Inc()
	attemptSeconds.WithLabelValues(dest).Observe(took.Seconds())
	if outcome == relay.OutcomeDeadLetter {
		deadLetters.WithLabelValues(dest).Inc()
	}
}

func (deliveryObserver) DeadLettersDropped(n uint64) { deadLettersDropped.Add(float64(n)) }

// engineCollector reports, at each scrape, the running engine's queue
// state per destination and its token cache counters. It reads the
// running engine (running.engine), so a reload never leaves it reading a
// stopped one.
type engineCollector struct{}

var (
	queueDepthDesc = prometheus.NewDesc("hookrelay_queue_depth",
		"Messages waiting for a destination: stored, in flight, and parked for a later retry.",
		[]string{"destination"}, nil)
	retriesWaitingDesc = prometheus.NewDesc("hookrelay_retries_waiting",
		"Messages of a destination waiting for a retry.",
		[]string{"destination"}, nil)
	deadLettersStoredDesc = prometheus.NewDesc("hookrelay_dead_letters_stored",
		"Dead letters kept for a destination, awaiting inspection or replay.",
		[]string{"destination"}, nil)
	pausedDesc = prometheus.NewDesc("hookrelay_destination_paused",
		"1 while deliveries to a destination are paused.",
		[]string{"destination"}, nil)
	goneDesc = prometheus.NewDesc("hookrelay_destination_gone",
		"1 while a destination is marked gone (it answered 410) and paused until resumed.",
		[]string{"destination"}, nil)
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
		queueDepthDesc, retriesWaitingDesc, deadLettersStoredDesc, pausedDesc, goneDesc,
		tokenFetchesDesc, tokenFetchErrorsDesc, tokenHitsDesc, tokenMissesDesc,
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

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stats, err := eng.Stats(ctx)
	if err != nil {
		return
	}
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
	}
}
