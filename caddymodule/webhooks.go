package caddymodule

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/destination"
	"github.com/hookrelay/hookrelay/netguard"
	"github.com/hookrelay/hookrelay/registry"
	"github.com/hookrelay/hookrelay/relay"
)

// WebhooksConfig enables the webhook registry: webhooks that apps and
// merchants register at run time over the hook_webhooks API, kept in the
// queue's key-value bucket and run on every node.
type WebhooksConfig struct {
	// SealKeys seal the credentials given to the API (AES-256-GCM): each
	// 32 random bytes in base64 (openssl rand -base64 32), usually a
	// placeholder such as {env.HOOKRELAY_SEAL_KEY} or {file.*}. The first
	// seals; the others still open what they sealed, for rotating the
	// key. Required: without one the registry and its API do not start.
	SealKeys []string `json:"seal_keys,omitempty"`

	// AllowNetworks are CIDR ranges that registered addresses may reach
	// although they are internal (loopback, private, link-local, CGNAT,
	// ...). Default: none; every internal address is refused, at
	// registration and at every connection.
	AllowNetworks []string `json:"allow_networks,omitempty"`

	// TrustedCA is a PEM file of more certificate authorities to trust
	// for registered https addresses (a private PKI). Default: the
	// system's roots only.
	TrustedCA string `json:"trusted_ca,omitempty"`

	// Resolvers are DNS servers (host:port, UDP and TCP) that resolve
	// registered addresses instead of the system's resolver. Default: the
	// system's. Whatever a name resolves to, the guard checks the address
	// dialed.
	Resolvers []string `json:"resolvers,omitempty"`

	// AllowHTTP accepts http:// addresses. Default: false; the seed
	// requires https.
	AllowHTTP bool `json:"allow_http,omitempty"`

	// Retry is a registered webhook's retry policy unless it sets its
	// own. Default: the Falabella schedule for 30 days.
	Retry *destination.RetryConfig `json:"retry,omitempty"`

	// MinRetryDelay is the shortest step a webhook's own schedule may
	// have. Default: 10s.
	MinRetryDelay caddy.Duration `json:"min_retry_delay,omitempty"`

	// MaxRetryAge is the longest max age a webhook may set. Default: 30
	// days.
	MaxRetryAge caddy.Duration `json:"max_retry_age,omitempty"`

	// Timeout bounds one delivery attempt. Default: 30s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// Workers is how many deliveries to one webhook run at once.
	// Default: 4.
	Workers int `json:"workers,omitempty"`

	// MaxPending is the most messages of one webhook handed out and not
	// yet acknowledged. Default: 200.
	MaxPending int `json:"max_pending,omitempty"`

	// Lanes is how many lanes a webhook registered with an order_by
	// spreads its keys over (1 to 1024). Default: 8.
	Lanes int `json:"lanes,omitempty"`

	// MaxPerTenant bounds each tenant's webhooks. Default: 1000.
	MaxPerTenant int `json:"max_per_tenant,omitempty"`

	// APIVersion is the api_version stamped on created webhooks.
	// Default: 1.0.9.
	APIVersion string `json:"api_version,omitempty"`

	// RotationGrace is how long a rotated-out signing secret keeps
	// signing beside the new one. Default: 24h.
	RotationGrace caddy.Duration `json:"rotation_grace,omitempty"`

	// PerWebhookMetrics gives registered webhooks series of their own
	// (destination="wh-<id>"): in the delivery metrics for up to 1000 at
	// a time, and queue gauges for the first 1000 by id. Default: false,
	// and every registered webhook counts under destination="webhooks",
	// so that tenants cannot grow the metrics without bound.
	PerWebhookMetrics bool `json:"per_webhook_metrics,omitempty"`
}

// DefaultMaxRetryAge bounds a registered webhook's own max age.
const DefaultMaxRetryAge = 30 * 24 * time.Hour

// settings builds the registry's settings: the seal keys resolved, the
// guard and its client; the token cache is the engine's, set by the
// caller. Errors never hold a key.
func (wc *WebhooksConfig) settings() (registry.Settings, error) {
	var s registry.Settings
	if len(wc.SealKeys) == 0 {
		return s, errors.New("webhooks: seal_key is required: the API's credentials are stored sealed with it")
	}
	keys := make([]string, len(wc.SealKeys))
	for i, k := range wc.SealKeys {
		keys[i] = resolveSecret(k)
	}
	sealer, err := registry.NewSealer(keys...)
	if err != nil {
		return s, fmt.Errorf("webhooks: %w", err)
	}
	var allow []netip.Prefix
	for _, n := range wc.AllowNetworks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return s, fmt.Errorf("webhooks: allow_network %q is not a CIDR range", n)
		}
		allow = append(allow, p.Masked())
	}
	guard := netguard.New(allow)
	opts := netguard.ClientOptions{}
	clientKey := strings.Join(wc.AllowNetworks, ",") + "|" + strings.Join(wc.Resolvers, ",")
	if len(wc.Resolvers) > 0 {
		for _, r := range wc.Resolvers {
			if _, _, err := net.SplitHostPort(r); err != nil {
				return s, fmt.Errorf("webhooks: resolver %q must be host:port", r)
			}
		}
		servers := append([]string(nil), wc.Resolvers...)
		var next atomic.Uint32
		opts.Resolver = &net.Resolver{
			PreferGo: true,
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, servers[int(next.Add(1))%len(servers)])
			},
		}
	}
	if wc.TrustedCA != "" {
		pem, err := os.ReadFile(wc.TrustedCA)
		if err != nil {
			return s, fmt.Errorf("webhooks: trusted_ca: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return s, fmt.Errorf("webhooks: trusted_ca %s holds no PEM certificate", wc.TrustedCA)
		}
		opts.RootCAs = pool
		clientKey += "|" + string(pem)
	}
	policy, err := wc.Retry.Policy()
	if err != nil {
		return s, fmt.Errorf("webhooks: retry: %w", err)
	}
	maxAge := time.Duration(wc.MaxRetryAge)
	if maxAge == 0 {
		maxAge = DefaultMaxRetryAge
	}
	minDelay := time.Duration(wc.MinRetryDelay)
	if minDelay == 0 {
		minDelay = registry.DefaultMinRetryDelay
	}
	if wc.Workers < 0 || wc.MaxPending < 0 || wc.MaxPerTenant < 0 || wc.Timeout < 0 || wc.RotationGrace < 0 {
		return s, errors.New("webhooks: workers, max_pending, max_per_tenant, timeout and rotation_grace must not be negative")
	}
	if wc.Lanes < 0 || wc.Lanes > relay.MaxLanes {
		return s, fmt.Errorf("webhooks: lanes must be between 1 and %d", relay.MaxLanes)
	}
	return registry.Settings{
		Sealer:        sealer,
		Guard:         guard,
		Client:        guardedClient(clientKey, guard, opts),
		Retry:         policy,
		MinRetryDelay: minDelay,
		MaxRetryAge:   maxAge,
		Timeout:       time.Duration(wc.Timeout),
		Workers:       wc.Workers,
		MaxPending:    wc.MaxPending,
		Lanes:         wc.Lanes,
		MaxPerTenant:  wc.MaxPerTenant,
		APIVersion:    wc.APIVersion,
		RotationGrace: time.Duration(wc.RotationGrace),
		AllowHTTP:     wc.AllowHTTP,
	}, nil
}

// guardedClients are the registered webhooks' clients by what makes
// them (allowed networks, trusted CAs, resolvers): a reload with the
// same settings keeps its client, its idle connections and the OAuth
// tokens cached for it (the token cache keys tokens by client too).
var guardedClients struct {
	mu sync.Mutex
	m  map[string]*http.Client
}

func guardedClient(key string, guard *netguard.Guard, opts netguard.ClientOptions) *http.Client {
	guardedClients.mu.Lock()
	defer guardedClients.mu.Unlock()
	if c, ok := guardedClients.m[key]; ok {
		return c
	}
	if guardedClients.m == nil {
		guardedClients.m = make(map[string]*http.Client)
	}
	c := netguard.NewClient(guard, opts)
	guardedClients.m[key] = c
	return c
}

// registryHolder is the engine's registry, opened by the first config
// that enables webhooks, reconfigured by later ones and closed by one
// that drops them. It lives with the engine, across reloads.
type registryHolder struct {
	mu  sync.Mutex
	reg *registry.Registry
	dyn *registry.Dynamic
}

// get returns the running registry, or nil.
func (h *registryHolder) get() *registry.Registry {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reg
}

// dynamic returns the running registry of dynamic webhooks, or nil.
func (h *registryHolder) dynamic() *registry.Dynamic {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dyn
}

// apply opens the registry with settings, or applies them to the open
// one; a nil settings closes it.
func (p *pooledEngine) applyRegistry(settings *registry.Settings, log *zap.Logger) error {
	h := &p.registry
	h.mu.Lock()
	defer h.mu.Unlock()
	if settings == nil {
		if h.reg != nil {
			h.closeLocked()
			log.Info("webhook registry stopped; registered webhooks' events stay queued")
		}
		return nil
	}
	if h.reg != nil {
		if err := h.dyn.Configure(*settings); err != nil {
			return err
		}
		return h.reg.Configure(*settings)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := p.KeyValue(ctx, registry.Bucket, "hookrelay: webhooks registered over the API")
	if err != nil {
		return fmt.Errorf("webhook registry: %w", err)
	}
	dkv, err := p.KeyValue(ctx, registry.DynamicBucket, "hookrelay: dynamic webhooks merchants registered over the API")
	if err != nil {
		return fmt.Errorf("webhook registry: %w", err)
	}
	dyn, err := registry.OpenDynamic(ctx, dkv, *settings, caddy.Log().Named("hookrelay.dynamic"))
	if err != nil {
		return fmt.Errorf("webhook registry: %w", err)
	}
	reg, err := registry.Open(ctx, kv, p.Engine, *settings, caddy.Log().Named("hookrelay.registry"))
	if err != nil {
		dyn.Close()
		return fmt.Errorf("webhook registry: %w", err)
	}
	h.reg, h.dyn = reg, dyn
	log.Info("webhook registry started", zap.Int("webhooks", reg.Len()), zap.Int("dynamic_webhooks", dyn.Len()))
	return nil
}

func (h *registryHolder) closeLocked() {
	h.reg.Close()
	h.dyn.Close()
	h.reg, h.dyn = nil, nil
}

// closeRegistry closes the registry when the engine stops.
func (p *pooledEngine) closeRegistry() {
	h := &p.registry
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reg != nil {
		h.closeLocked()
	}
}
