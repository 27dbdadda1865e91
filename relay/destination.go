package relay

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Authorizer sets credentials on outbound deliveries. The authcache
// package provides OAuth client-credentials and API-key authorizers.
type Authorizer interface {
	// Authorize sets the credentials on a delivery request.
	Authorize(ctx context.Context, req *http.Request) error
	// Reject reports that the destination answered 401 to req; it returns
	// true when one more try with a fresh credential may help.
	Reject(req *http.Request) bool
}

// Destination is one place events are delivered to, with everything a
// delivery needs. Its settings can change on a config reload while
// messages wait: they are read at each attempt, by name.
type Destination struct {
	// Name identifies the destination: its subject, consumer and metrics
	// label. See ValidName.
	Name string
	// URL receives a POST per event.
	URL string
	// Header is added to every delivery.
	Header http.Header
	// Query parameters are added to URL on every delivery.
	Query url.Values
	// Timeout bounds one attempt, including the token fetch; 0 means 30s.
	Timeout time.Duration
	// Signer, when set, adds a Standard Webhooks webhook-signature.
	Signer *Signer
	// Auth, when set, adds credentials to every delivery.
	Auth Authorizer
	// Transform, when set, turns the stored event JSON into the delivered
	// body. An error is a permanent failure for that message.
	Transform func(event []byte) ([]byte, error)
	// Retry is the destination's route's retry policy.
	Retry RetryPolicy
	// Workers is how many deliveries run at once; 0 means DefaultWorkers.
	Workers int
	// Client, when set, sends this destination's deliveries instead of the
	// engine's client; webhooks registered over the API use one whose
	// dialer refuses internal addresses.
	Client *http.Client
	// MaxPending is the most messages handed out and not yet acknowledged
	// (including those waiting for a short retry); 0 means 1000.
	MaxPending int
	// OrderBy, when set, delivers the events that share the value at this
	// dotted path of the stored event (such as data.shipment_id) one at a
	// time, in the order they were stored: a failing event holds back the
	// later events of its lane only (see Lanes), through every retry, until
	// it is delivered or dead-lettered. Events without the value go to
	// lane 0. See ParseOrderBy for the path's rules and docs/ordering.md.
	OrderBy string
	// Lanes is how many lanes an ordered destination's keys are spread
	// over: each lane delivers one event at a time, and lanes run in
	// parallel (at most Workers attempts at once). 0 means DefaultLanes.
	Lanes int

	// targetURL is URL with Query merged in, set by the engine; each
	// request gets a copy.
	targetURL *url.URL
	// orderPath is OrderBy parsed, set by the engine; nil when unordered.
	orderPath []string
}

// Validate checks the destination's settings against the rules of
// names.go; its errors wrap ErrInvalidName, ErrInvalidURL,
// ErrInvalidHeader or ErrNegative.
func (d *Destination) Validate() error {
	if err := CheckName(d.Name); err != nil {
		return err
	}
	if err := CheckURL(d.URL); err != nil {
		return fmt.Errorf("destination %s: %w", d.Name, err)
	}
	for k, vs := range d.Header {
		for _, v := range vs {
			if err := CheckHeader(k, v); err != nil {
				return fmt.Errorf("destination %s: %w", d.Name, err)
			}
		}
	}
	if d.Timeout < 0 || d.Workers < 0 || d.MaxPending < 0 {
		return fmt.Errorf("destination %s: %w", d.Name, ErrNegative)
	}
	if err := d.Retry.Validate(); err != nil {
		return fmt.Errorf("destination %s: %w", d.Name, err)
	}
	if d.Lanes < 0 || d.Lanes > MaxLanes {
		return fmt.Errorf("destination %s: lanes must be between 1 and %d: %w", d.Name, MaxLanes, ErrInvalidOrder)
	}
	if d.OrderBy != "" {
		if _, err := ParseOrderBy(d.OrderBy); err != nil {
			return fmt.Errorf("destination %s: %w", d.Name, err)
		}
	}
	return nil
}

// DefaultWorkers is a destination's concurrent attempts unless it says
// otherwise. On loopback, a destination's attempts wait mostly on the
// round trip, so fewer leave the machine idle: 16 drained a backlog at
// about 10,000 deliveries/s on 2 cores where 32 reach about 14,000 (see
// bench/throughput.sh).
const DefaultWorkers = 32

func (d *Destination) withDefaults() *Destination {
	c := *d
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.MaxPending == 0 {
		c.MaxPending = 1000
	}
	if c.Lanes == 0 {
		c.Lanes = DefaultLanes
	}
	c.orderPath, _ = ParseOrderBy(c.OrderBy)
	c.Retry = c.Retry.withDefaults()
	if u, err := mergeQuery(c.URL, c.Query); err == nil {
		// Parsed again from its text, as a request made from that text
		// would parse it.
		c.targetURL, _ = url.Parse(u.String())
	}
	return &c
}
