package caddymodule

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/authcache"
	"github.com/hookrelay/hookrelay/destination"
	"github.com/hookrelay/hookrelay/registry"
	"github.com/hookrelay/hookrelay/relay"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the hookrelay app: it owns the durable queue (NATS JetStream,
// embedded or on an existing cluster) and the delivery workers, which
// keep OAuth tokens in the cache they share with hook_call. They live in
// a pool keyed by the storage, so a config reload neither restarts the
// queue nor drops, duplicates or stalls a delivery in flight; each new
// config pushes its destinations into the running engine.
//
// When no hookrelay app is configured but a route uses hook_relay, the
// app runs with its defaults: the embedded queue under Caddy's data
// directory.
type App struct {
	// Storage says where the queue lives. Default: embedded, under
	// <caddy data dir>/hookrelay.
	Storage *StorageConfig `json:"storage,omitempty"`

	// SyncAlways makes the embedded queue fsync every write before it
	// acknowledges it (and so before hook_relay answers 201). Default:
	// false, and writes are fsynced every SyncInterval.
	SyncAlways bool `json:"sync_always,omitempty"`

	// SyncInterval is how often the embedded queue fsyncs when SyncAlways
	// is off. Default: 1s. Every write reaches the operating system
	// before it is acknowledged either way, so a crash of the process
	// loses nothing; a power loss can lose up to this interval.
	SyncInterval caddy.Duration `json:"sync_interval,omitempty"`

	// DedupeWindow is how long a stored message id is remembered, so that
	// a sender's resend of the same event (after a timeout or a 503) is not
	// stored twice. Default: 10 minutes. The queue keeps every id of the
	// window in memory (on the order of 150 bytes each), so a long window
	// at high traffic costs memory: 24h at 100 events/s is ~9M ids. An
	// event already delivered and removed is not deduplicated however long
	// the window: receivers dedupe on webhook-id.
	DedupeWindow caddy.Duration `json:"dedupe_window,omitempty"`

	// DeadLetterRetention is how long dead letters are kept for
	// inspection and replay. Default: 30 days.
	DeadLetterRetention caddy.Duration `json:"dead_letter_retention,omitempty"`

	// QueueLimit bounds, in bytes, the events waiting for delivery. When
	// it is reached, ingress answers 503 with Retry-After and nothing
	// waiting is dropped. Default: no bound but the queue's storage (the
	// embedded server's is 75% of the free disk at start).
	QueueLimit int64 `json:"queue_limit,omitempty"`

	// DeadLetterLimit bounds, in bytes, the dead letters kept. When it is
	// reached, the oldest dead letters are dropped to make room, with a
	// warning in the log and hookrelay_dead_letters_dropped_total.
	// Default: 1 GiB.
	DeadLetterLimit int64 `json:"dead_letter_limit,omitempty"`

	// Webhooks enables the webhook registry and its API (hook_webhooks).
	// Default: off.
	Webhooks *WebhooksConfig `json:"webhooks,omitempty"`

	engine *pooledEngine
	// webhooks are the registry's settings built from Webhooks; nil when
	// off.
	webhooks *registry.Settings
	key      string
	log      *zap.Logger

	mu    *sync.Mutex
	dests []*relay.Destination
}

// StorageConfig selects the queue.
type StorageConfig struct {
	// Dir is the embedded queue's directory. Default:
	// <caddy data dir>/hookrelay. Ignored when URLs are set.
	Dir string `json:"dir,omitempty"`

	// URLs of an existing NATS JetStream cluster. When set, the queue
	// lives there and every Caddy node pointing at it shares it.
	URLs []string `json:"urls,omitempty"`

	// Credentials is a NATS credentials file for URLs.
	Credentials string `json:"credentials,omitempty"`

	// Replicas of each stream on a cluster. Default: 3.
	Replicas int `json:"replicas,omitempty"`

	// TLS sets the certificate authorities that verify the servers and
	// the client certificate, and makes the connection to URLs require
	// TLS. Default: TLS only when a URL has the tls:// scheme or the
	// server asks for it, verified with the system's roots.
	TLS *StorageTLS `json:"tls,omitempty"`
}

// StorageTLS is how the connection to a NATS cluster is secured.
type StorageTLS struct {
	// CA is a PEM file of the certificate authorities that sign the
	// servers' certificates. Default: the system's roots.
	CA string `json:"ca,omitempty"`

	// Cert is a PEM file of the client certificate, for clusters that
	// verify clients. Default: none. Requires Key.
	Cert string `json:"cert,omitempty"`

	// Key is a PEM file of Cert's private key. Default: none. Requires
	// Cert.
	Key string `json:"key,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "hookrelay",
		New: func() caddy.Module { return new(App) },
	}
}

// pooledEngine is the durable part: queue and workers. It holds the
// shared outbound state (see outbound.go) while it runs, since its
// workers' OAuth credentials keep their tokens there.
type pooledEngine struct {
	*relay.Engine
	tokens   *authcache.Cache // the outbound state's token cache
	registry registryHolder
}

// Destruct stops the engine when the last config using it is gone, then
// gives back its hold on the outbound state.
func (p *pooledEngine) Destruct() error {
	p.closeRegistry()
	err := p.Engine.Close()
	return errors.Join(err, releaseOutbound())
}

// Provision opens (or joins) the engine for the configured storage.
func (a *App) Provision(ctx caddy.Context) error {
	a.log = ctx.Logger()
	a.mu = new(sync.Mutex)
	if err := registerMetrics(ctx); err != nil {
		return err
	}
	st := a.storage()
	// The cheap checks first: a bad config must not open the queue.
	if err := st.Validate(); err != nil {
		return err
	}
	if a.Webhooks != nil {
		// Built and checked before the queue opens; its token cache is
		// the engine's, set below.
		settings, err := a.Webhooks.settings()
		if err != nil {
			return err
		}
		a.webhooks = &settings
	}
	a.key = st.Key()
	eng, loaded, err := running.acquire(a.key, func() (*pooledEngine, error) {
		out, err := acquireOutbound()
		if err != nil {
			return nil, err
		}
		eng, err := relay.Open(relay.Options{
			Queue:      st,
			Logger:     caddy.Log().Named("hookrelay"),
			Observer:   deliveryObserver{},
			HTTPClient: out.client, // one connection pool for deliveries and calls
		})
		if err != nil {
			_ = releaseOutbound()
			return nil, err
		}
		return &pooledEngine{Engine: eng, tokens: out.tokens}, nil
	})
	if err != nil {
		a.key = ""
		return fmt.Errorf("starting the hookrelay queue: %w", err)
	}
	a.engine = eng
	if a.webhooks != nil {
		a.webhooks.Tokens = eng.tokens
	}
	if loaded {
		// A reload onto the running queue: push this config's stream
		// settings into it.
		restart, err := a.engine.Reconfigure(ctx, st)
		if err != nil {
			// The streams keep their previous settings; the relay works on.
			a.log.Warn("could not apply the new queue settings; the previous ones stay in force", zap.Error(err))
		}
		if restart {
			a.log.Warn("a change of the sync setting takes effect at the next start of Caddy, not on reload")
		}
	}
	return nil
}

func (a *App) storage() relay.QueueConfig {
	st := relay.QueueConfig{
		SyncAlways:          a.SyncAlways,
		SyncInterval:        time.Duration(a.SyncInterval),
		DedupeWindow:        time.Duration(a.DedupeWindow),
		DeadLetterRetention: time.Duration(a.DeadLetterRetention),
		MaxBytes:            a.QueueLimit,
		DeadLetterMaxBytes:  a.DeadLetterLimit,
	}
	if a.Storage != nil {
		st.URLs = a.Storage.URLs
		st.Credentials = a.Storage.Credentials
		st.Replicas = a.Storage.Replicas
		st.Dir = a.Storage.Dir
		if t := a.Storage.TLS; t != nil {
			st.TLSCA, st.TLSCert, st.TLSKey = t.CA, t.Cert, t.Key
		}
	}
	if len(st.URLs) == 0 && st.Dir == "" {
		st.Dir = filepath.Join(caddy.AppDataDir(), "hookrelay")
	}
	return st
}

// Validate checks the settings (relay.QueueConfig's rules).
func (a *App) Validate() error {
	return a.storage().Validate()
}

// register adds a handler's destinations; hook_relay calls it while the
// config is provisioned, before Start.
func (a *App) register(dests []*relay.Destination) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	names := make([]string, 0, len(a.dests)+len(dests))
	for _, d := range a.dests {
		names = append(names, d.Name)
	}
	for _, d := range dests {
		names = append(names, d.Name)
	}
	if err := destination.CheckNames(names); err != nil {
		return err
	}
	a.dests = append(a.dests, dests...)
	return nil
}

// Start pushes this config's destinations into the running engine.
func (a *App) Start() error {
	a.mu.Lock()
	dests := append([]*relay.Destination(nil), a.dests...)
	a.mu.Unlock()
	if err := a.engine.Apply(a, dests); err != nil {
		return err
	}
	if err := a.engine.applyRegistry(a.webhooks, a.log); err != nil {
		a.engine.Release(a)
		return err
	}
	running.start(a)
	a.log.Info("relay started", zap.Int("destinations", len(dests)), zap.Bool("embedded", a.engine.QueueConfig().Embedded()))
	return nil
}

// Stop withdraws this config's destinations; if a newer config is
// running, its destinations keep running untouched.
func (a *App) Stop() error {
	running.stop(a)
	if a.engine != nil {
		a.engine.Release(a)
	}
	return nil
}

// Cleanup releases this config's hold on the engine; the last one out
// stops it.
func (a *App) Cleanup() error {
	if a.key == "" {
		return nil
	}
	err := running.release(a.key)
	a.key = ""
	return err
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
