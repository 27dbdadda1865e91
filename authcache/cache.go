package authcache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"golang.org/x/sync/singleflight"
)

// DefaultMaxTokens is the number of cached tokens NewCache allows when given 0.
const DefaultMaxTokens = 10000

// ErrClosed is returned by Authorize and Token when a token must be fetched after the Cache was
// closed.
var ErrClosed = errors.New("authcache: cache closed")

// Cache holds OAuth tokens for every destination: a ristretto cache bounded in entries, keyed by a
// SHA-256 hash of the token request (endpoint, headers, params, body) and of how the response is
// read, so that no secret is ever a key, and destinations that use the same credentials share a
// token. Concurrent misses for the same credential make one token request (singleflight).
//
// A Cache is safe for concurrent use. It is meant to outlive configuration reloads: its owner
// creates it once, hands it to each new configuration and closes it when the owner stops.
type Cache struct {
	tokens *ristretto.Cache[string, *entry]
	flight singleflight.Group
	client *http.Client

	// ctx is cancelled by Close and aborts token requests in flight.
	ctx    context.Context
	cancel context.CancelFunc

	// mu serializes the writes to tokens (Set+Wait, compare-and-delete in Reject, Close):
	// ristretto panics or blocks if Close races a Set, Del or Wait. Reads do not take it.
	mu     sync.Mutex
	closed atomic.Bool

	// now is the clock deciding when a cached token is due for refresh (see WithClock).
	now func() time.Time

	fetches, fetchErrors, hits, misses atomic.Uint64
}

// entry is a cached token.
type entry struct {
	token     string
	auth      string    // Authorization header value: "<token_type> <token>"
	refreshAt time.Time // by c.now; the entry is not served from then on
}

// Stats are cumulative counters of a Cache, for metrics. They hold no secrets.
type Stats struct {
	// Fetches counts token requests sent to token endpoints.
	Fetches uint64
	// FetchErrors counts token requests that failed (see TokenError).
	FetchErrors uint64
	// Hits counts Authorize and Token calls answered from the cache.
	Hits uint64
	// Misses counts Authorize and Token calls that had to wait for a token request (their own or a
	// concurrent one for the same credential).
	Misses uint64
}

// Option configures a Cache made by NewCache.
type Option func(*Cache)

// WithClock makes the Cache read the time from now instead of time.Now when it decides whether a
// cached token is due for refresh (OAuthConfig.RefreshBefore) and when it dates a token request.
// It is meant for tests. Cached tokens also leave memory once their time to live has passed by the
// wall clock, so a clock running behind the wall clock does not keep a token longer. now must be
// safe for concurrent use; nil means time.Now.
func WithClock(now func() time.Time) Option {
	return func(c *Cache) {
		if now != nil {
			c.now = now
		}
	}
}

// NewCache returns a Cache holding at most maxTokens tokens (0 means DefaultMaxTokens), which sends
// token requests with client. A nil client means a client with its own copy of
// http.DefaultTransport that does not follow redirects (a 3xx answer fails the token request).
// Each token request is bounded by OAuthConfig.Timeout, not by the client's Timeout.
func NewCache(maxTokens int64, client *http.Client, opts ...Option) (*Cache, error) {
	if maxTokens < 0 {
		return nil, fmt.Errorf("authcache: max tokens must not be negative, got %d", maxTokens)
	}
	if maxTokens == 0 {
		maxTokens = DefaultMaxTokens
	}
	if client == nil {
		client = defaultClient()
	}
	tokens, err := ristretto.NewCache(&ristretto.Config[string, *entry]{
		NumCounters: 10 * maxTokens, // ristretto's advice: 10x the number of items
		MaxCost:     maxTokens,      // each entry costs 1
		BufferItems: 64,
		// Without this ristretto adds its own per-item overhead to every cost of 1 and the cache
		// would hold only a small fraction of maxTokens.
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("authcache: creating token cache: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cache{
		tokens: tokens,
		client: client,
		ctx:    ctx,
		cancel: cancel,
		now:    time.Now,
	}
	for _, opt := range opts {
		opt(c)
	}
	return c, nil
}

func defaultClient() *http.Client {
	var tr *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = dt.Clone()
	} else {
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment, DialContext: (&net.Dialer{
			Timeout: 30 * time.Second, KeepAlive: 30 * time.Second,
		}).DialContext}
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Close aborts token requests in flight, drops every cached token and releases the cache's
// goroutines. Afterwards, calls that need a token fail with ErrClosed. Close is idempotent.
func (c *Cache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Swap(true) {
		return
	}
	c.cancel()
	c.tokens.Close()
}

// Stats returns the cache's counters.
func (c *Cache) Stats() Stats {
	return Stats{
		Fetches:     c.fetches.Load(),
		FetchErrors: c.fetchErrors.Load(),
		Hits:        c.hits.Load(),
		Misses:      c.misses.Load(),
	}
}

// lookup returns the cached entry for key if it is not yet due for refresh.
func (c *Cache) lookup(key string) (*entry, bool) {
	e, ok := c.tokens.Get(key)
	if !ok || !c.now().Before(e.refreshAt) {
		return nil, false
	}
	return e, true
}

// store caches e under key for ttl (> 0) and makes it visible to the next lookup.
func (c *Cache) store(key string, e *entry, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return
	}
	// SetWithTTL drops the item when ristretto's set buffer is full; draining the buffer with
	// Wait makes room, so a second try normally succeeds. Even when every try is dropped (or the
	// policy rejects the item because the cache is full), the callers waiting on this flight
	// still get e; only later calls fetch again.
	for range 3 {
		if c.tokens.SetWithTTL(key, e, 1, ttl) {
			break
		}
		c.tokens.Wait()
	}
	// Set is applied asynchronously; Wait makes it visible before the flight ends, so a call that
	// starts a new flight afterwards finds the token in its double check.
	c.tokens.Wait()
}

// evict deletes key if its cached entry still carries the Authorization value auth.
func (c *Cache) evict(key, auth string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return
	}
	if e, ok := c.tokens.Get(key); ok && e.auth == auth {
		c.tokens.Del(key) // immediate for Get
	}
}
