package caddymodule

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
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
)

var collectors = []prometheus.Collector{ingressRequests, eventsEnqueued, deliveryAttempts, attemptSeconds, deadLetters}

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

func (deliveryObserver) Attempt(dest, outcome string, took time.Duration) {
	deliveryAttempts.WithLabelValues(dest, outcome).Inc()
	attemptSeconds.WithLabelValues(dest).Observe(took.Seconds())
	if outcome == "dead_letter" {
		deadLetters.WithLabelValues(dest).Inc()
	}
}
