package registry

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/event"
)

// Bucket is the key-value bucket of the registry, one key per webhook:
// "wh.<id>".
const Bucket = "HOOKRELAY_WEBHOOKS"

const keyPrefix = "wh."

// Errors of the registry's operations.
var (
	// ErrNotFound: no webhook of that id for that tenant. Another
	// tenant's webhook is not found either.
	ErrNotFound = errors.New("webhook not found")
	// ErrLimit: the tenant has as many webhooks as allowed.
	ErrLimit = errors.New("the tenant has as many webhooks as this relay allows")
	// ErrConflict: the webhook changed meanwhile; read it and try again.
	ErrConflict = errors.New("the webhook was changed by another request; try again")
	// ErrUnavailable: the registry's bucket cannot be reached.
	ErrUnavailable = errors.New("the webhook registry is unavailable; try again")
)

// Engine is what the registry runs webhooks on: *relay.Engine.
type Engine interface {
	Put(d *relay.Destination) error
	Remove(name string)
	Forget(ctx context.Context, name string) error
}

// Registry is the webhooks of every tenant, as the bucket holds them,
// watched and run on this node's engine.
type Registry struct {
	kv  jetstream.KeyValue
	eng Engine
	log *zap.Logger

	mirror   // its mu guards the fields below
	settings Settings
	hooks    map[uint64]*entry
	topics   TopicIndex
	tenants  map[string]int // webhooks per tenant
}

// entry is one webhook as this node runs it.
type entry struct {
	w      *Webhook
	rev    uint64
	filter *Filter
	// filterErr is set when a stored filter does not compile here.
	filterErr string
	// broken says why it does not run here (credentials that do not
	// open, a destination that does not build); empty when it runs.
	broken string
}

// Open watches the bucket and runs its webhooks on eng with settings.
// It returns once the webhooks stored are loaded (or ctx ends).
func Open(ctx context.Context, kv jetstream.KeyValue, eng Engine, settings Settings, log *zap.Logger) (*Registry, error) {
	settings = settings.withDefaults()
	if err := settings.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	r := &Registry{
		kv: kv, eng: eng, log: log,
		settings: settings,
		hooks:    make(map[uint64]*entry),
		tenants:  make(map[string]int),
	}
	if err := r.follow(ctx, kv, r.apply); err != nil {
		return nil, err
	}
	return r, nil
}

// Close stops watching and stops this node's webhooks; what they hold
// stays queued.
func (r *Registry) Close() {
	r.stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, e := range r.hooks {
		if e.broken == "" {
			r.eng.Remove(relay.WebhookName(id))
		}
	}
}

// Configure applies a reload's settings, rebuilding every webhook's
// destination with them.
func (r *Registry) Configure(settings Settings) error {
	settings = settings.withDefaults()
	if err := settings.validate(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.settings = settings
	for _, e := range r.hooks {
		r.runLocked(e)
	}
	return nil
}

// Settings returns the settings in force.
func (r *Registry) Settings() Settings {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.settings
}

// apply takes one bucket entry, under mu.
func (r *Registry) apply(kve jetstream.KeyValueEntry) {
	id, ok := parseKey(kve.Key())
	if !ok {
		return
	}
	if kve.Operation() != jetstream.KeyValuePut {
		r.dropLocked(id, r.ready)
		return
	}
	var w Webhook
	if err := json.Unmarshal(kve.Value(), &w); err != nil || w.ID != id {
		r.log.Error("unreadable webhook in the registry; skipping it", zap.String("key", kve.Key()), zap.Error(err))
		return
	}
	if old, ok := r.hooks[id]; ok {
		r.topics.Remove(old.w.Topic, id)
		r.tenants[old.w.Tenant]--
	}
	e := &entry{w: &w, rev: kve.Revision()}
	if w.Filter != "" {
		f, err := CompileFilter(w.Filter)
		if err != nil {
			e.filterErr = "its filter does not compile: " + err.Error()
		}
		e.filter = f
	}
	r.hooks[id] = e
	r.topics.Add(w.Topic, id)
	r.tenants[w.Tenant]++
	r.runLocked(e)
}

// runLocked builds and puts the webhook's destination on the engine.
func (r *Registry) runLocked(e *entry) {
	name := relay.WebhookName(e.w.ID)
	if e.filterErr != "" {
		e.broken = e.filterErr
		r.eng.Remove(name)
		return
	}
	sec, err := r.open(e.w)
	if err == nil {
		var d *relay.Destination
		if d, err = r.settings.destination(e.w, sec, time.Now()); err == nil {
			err = r.eng.Put(d)
		}
	}
	if err != nil {
		e.broken = err.Error()
		r.eng.Remove(name)
		r.log.Error("a registered webhook cannot run; its events wait until it is fixed",
			zap.Uint64("webhook", e.w.ID), zap.String("tenant", e.w.Tenant), zap.Error(err))
		return
	}
	e.broken = ""
}

// forgetDelay lets every node stop a deleted webhook's runner before its
// consumer is deleted, so that no runner re-creates it.
const forgetDelay = 2 * time.Second

// dropLocked stops a deleted webhook; live (not at load) it also drops
// what the queue holds for it, after forgetDelay.
func (r *Registry) dropLocked(id uint64, live bool) {
	e, ok := r.hooks[id]
	if !ok {
		return
	}
	delete(r.hooks, id)
	r.topics.Remove(e.w.Topic, id)
	if r.tenants[e.w.Tenant]--; r.tenants[e.w.Tenant] <= 0 {
		delete(r.tenants, e.w.Tenant)
	}
	name := relay.WebhookName(id)
	r.eng.Remove(name)
	if !live {
		return
	}
	go func() {
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(forgetDelay):
		}
		ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
		defer cancel()
		if err := r.eng.Forget(ctx, name); err != nil {
			r.log.Debug("dropping a deleted webhook's queued deliveries failed", zap.Uint64("webhook", id), zap.Error(err))
		}
	}()
}

func key(id uint64) string { return keyPrefix + strconv.FormatUint(id, 10) }

func parseKey(k string) (uint64, bool) {
	s, ok := strings.CutPrefix(k, keyPrefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(s, 10, 64)
	return id, err == nil
}

func aad(tenant string, id uint64) []byte {
	return []byte("hookrelay webhook " + strconv.FormatUint(id, 10) + " " + tenant)
}

// open unseals a webhook's secrets.
func (r *Registry) open(w *Webhook) (*Secrets, error) {
	return r.settings.openSecrets(w.Sealed, aad(w.Tenant, w.ID))
}

// seal seals secrets into w.
func (r *Registry) seal(w *Webhook, sec *Secrets) (err error) {
	w.Sealed, err = r.settings.sealSecrets(sec, aad(w.Tenant, w.ID))
	return err
}

// openSecrets opens what sealSecrets sealed with the same aad.
func (s *Settings) openSecrets(blob, aad []byte) (*Secrets, error) {
	plain, err := s.Sealer.Open(blob, aad)
	if err != nil {
		return nil, err
	}
	var sec Secrets
	if err := json.Unmarshal(plain, &sec); err != nil {
		return nil, ErrUnseal
	}
	return &sec, nil
}

// sealSecrets seals sec, bound to aad (who owns it).
func (s *Settings) sealSecrets(sec *Secrets, aad []byte) ([]byte, error) {
	plain, err := json.Marshal(sec)
	if err != nil {
		return nil, err
	}
	return s.Sealer.Seal(plain, aad)
}

// NewSecret returns a random Standard Webhooks secret.
func NewSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// newID returns a random id of ten digits, as the seed's ids look.
func newID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return 1_000_000_000 + binary.BigEndian.Uint64(b[:])%9_000_000_000
}

// Create registers a webhook for tenant. It returns the webhook and its
// signing secret (generated when in gives none), which the API shows
// once.
func (r *Registry) Create(ctx context.Context, tenant string, in Input) (*Webhook, string, error) {
	if tenant == "" {
		return nil, "", errors.New("no tenant")
	}
	s := r.Settings()
	if ve := s.check(&in); ve != nil {
		return nil, "", ve
	}
	r.mu.RLock()
	n := r.tenants[tenant]
	r.mu.RUnlock()
	if n >= s.MaxPerTenant {
		return nil, "", ErrLimit
	}
	now := time.Now().UTC().Truncate(time.Second)
	sec := &Secrets{Authorization: in.Authorization, Headers: in.Headers, Params: in.Params, Secret: in.Secret}
	if sec.Secret == "" {
		sec.Secret = NewSecret()
	}
	w := &Webhook{
		Tenant: tenant, Topic: in.Topic, Address: in.Address, Filter: in.Filter, OrderBy: in.OrderBy, Retry: in.Retry,
		Auth: in.Authorization.Summary(), HeaderNames: in.Headers.Names(), ParamNames: in.Params.Names(),
		CreatedAt: now, UpdatedAt: now, APIVersion: s.APIVersion,
	}
	for range 5 {
		w.ID = newID()
		if err := r.seal(w, sec); err != nil {
			return nil, "", err
		}
		val, err := json.Marshal(w)
		if err != nil {
			return nil, "", err
		}
		rev, err := r.kv.Create(ctx, key(w.ID), val)
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		r.waitRev(ctx, rev)
		return w, sec.Secret, nil
	}
	return nil, "", fmt.Errorf("%w: no free id", ErrUnavailable)
}

// Get returns tenant's webhook id.
func (r *Registry) Get(tenant string, id uint64) (*Webhook, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.hooks[id]
	if !ok || e.w.Tenant != tenant {
		return nil, ErrNotFound
	}
	return e.w, nil
}

// List returns up to limit of tenant's webhooks with ids above after, in
// id order, and whether more follow.
func (r *Registry) List(tenant string, after uint64, limit int) ([]*Webhook, bool) {
	r.mu.RLock()
	var out []*Webhook
	for id, e := range r.hooks {
		if e.w.Tenant == tenant && id > after {
			out = append(out, e.w)
		}
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Webhook) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	if limit > 0 && len(out) > limit {
		return out[:limit], true
	}
	return out, false
}

// Update changes tenant's webhook id: fn gets the current input (with
// its secrets) and changes it; the result is checked like a create and
// stored if the webhook did not change meanwhile.
func (r *Registry) Update(ctx context.Context, tenant string, id uint64, fn func(in *Input) error) (*Webhook, error) {
	r.mu.RLock()
	e, ok := r.hooks[id]
	r.mu.RUnlock()
	if !ok || e.w.Tenant != tenant {
		return nil, ErrNotFound
	}
	sec, err := r.open(e.w)
	if err != nil {
		return nil, err
	}
	in := Input{
		Topic: e.w.Topic, Address: e.w.Address, Filter: e.w.Filter, OrderBy: e.w.OrderBy, Retry: e.w.Retry,
		Authorization: sec.Authorization, Headers: sec.Headers, Params: sec.Params, Secret: sec.Secret,
	}
	if err := fn(&in); err != nil {
		return nil, err
	}
	s := r.Settings()
	if ve := s.check(&in); ve != nil {
		return nil, ve
	}
	w := *e.w
	w.Topic, w.Address, w.Filter, w.OrderBy, w.Retry = in.Topic, in.Address, in.Filter, in.OrderBy, in.Retry
	w.Auth, w.HeaderNames, w.ParamNames = in.Authorization.Summary(), in.Headers.Names(), in.Params.Names()
	w.UpdatedAt = time.Now().UTC().Truncate(time.Second)
	nsec := &Secrets{Authorization: in.Authorization, Headers: in.Headers, Params: in.Params, Secret: in.Secret,
		PreviousSecret: sec.PreviousSecret}
	if in.Secret != sec.Secret {
		// A secret given outright replaces the old one at once; Rotate
		// keeps the old one signing for a grace period.
		nsec.PreviousSecret, w.PreviousSecretUntil = "", time.Time{}
	}
	return r.store(ctx, &w, nsec, e.rev)
}

// Rotate replaces tenant's webhook's signing secret with a new random
// one; the old one keeps signing, beside it, for the rotation grace
// period. It returns the webhook and the new secret.
func (r *Registry) Rotate(ctx context.Context, tenant string, id uint64) (*Webhook, string, error) {
	r.mu.RLock()
	e, ok := r.hooks[id]
	r.mu.RUnlock()
	if !ok || e.w.Tenant != tenant {
		return nil, "", ErrNotFound
	}
	sec, err := r.open(e.w)
	if err != nil {
		return nil, "", err
	}
	now := time.Now().UTC()
	w := *e.w
	w.UpdatedAt = now.Truncate(time.Second)
	w.PreviousSecretUntil = now.Add(r.Settings().RotationGrace).Truncate(time.Second)
	nsec := *sec
	nsec.PreviousSecret, nsec.Secret = sec.Secret, NewSecret()
	out, err := r.store(ctx, &w, &nsec, e.rev)
	if err != nil {
		return nil, "", err
	}
	return out, nsec.Secret, nil
}

// store seals and writes w if its revision is still rev.
func (r *Registry) store(ctx context.Context, w *Webhook, sec *Secrets, rev uint64) (*Webhook, error) {
	if err := r.seal(w, sec); err != nil {
		return nil, err
	}
	val, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	nrev, err := r.kv.Update(ctx, key(w.ID), val, rev)
	if conflict(err) {
		return nil, ErrConflict
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	r.waitRev(ctx, nrev)
	return w, nil
}

// Delete removes tenant's webhook id and returns it. Its waiting
// deliveries are dropped; its dead letters stay for their retention.
func (r *Registry) Delete(ctx context.Context, tenant string, id uint64) (*Webhook, error) {
	r.mu.RLock()
	e, ok := r.hooks[id]
	r.mu.RUnlock()
	if !ok || e.w.Tenant != tenant {
		return nil, ErrNotFound
	}
	err := r.kv.Delete(ctx, key(id), jetstream.LastRevision(e.rev))
	if conflict(err) {
		return nil, ErrConflict
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// Wait, at most 5s, until this node no longer holds the webhook.
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r.waitUntil(waitCtx, func() bool { _, still := r.hooks[id]; return !still })
	return e.w, nil
}

// Secrets opens a webhook's secrets, for sending a test event or showing
// an operator whether they open; never for an API answer.
func (r *Registry) Secrets(w *Webhook) (*Secrets, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.open(w)
}

// Match returns the destination names of the webhooks that take ev: of
// its topic, of its tenant (every tenant's when it has none), whose
// filter passes. doc decodes the event for filters, once, when one is
// needed; it may return nil, and a filter over nil does not match.
func (r *Registry) Match(ev *event.Event, doc func() map[string]any) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	var decoded map[string]any
	r.topics.Match(ev.Topic, func(id uint64) {
		e := r.hooks[id]
		if e == nil || e.broken != "" || (ev.Tenant != "" && e.w.Tenant != ev.Tenant) {
			return
		}
		if e.filter != nil {
			if decoded == nil {
				if decoded = doc(); decoded == nil {
					return
				}
			}
			if ok, err := e.filter.Match(decoded); !ok || err != nil {
				return
			}
		}
		out = append(out, relay.WebhookName(id))
	})
	return out
}

// Info is a webhook as operators see it: never its credentials.
type Info struct {
	ID          uint64       `json:"id"`
	Destination string       `json:"destination"`
	Tenant      string       `json:"tenant"`
	Topic       string       `json:"topic"`
	Address     string       `json:"address"`
	Filter      string       `json:"filter,omitempty"`
	OrderBy     string       `json:"order_by,omitempty"`
	Auth        *AuthSummary `json:"auth,omitempty"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
	// Broken says why it does not run on this node; empty when it runs.
	Broken string `json:"broken,omitempty"`
}

// All returns every tenant's webhooks, in id order, for operators.
func (r *Registry) All() []Info {
	r.mu.RLock()
	out := make([]Info, 0, len(r.hooks))
	for _, e := range r.hooks {
		w := e.w
		out = append(out, Info{ID: w.ID, Destination: relay.WebhookName(w.ID), Tenant: w.Tenant, Topic: w.Topic,
			Address: w.Address, Filter: w.Filter, OrderBy: w.OrderBy, Auth: w.Auth, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt, Broken: e.broken})
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b Info) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Len returns how many webhooks are registered.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.hooks)
}
