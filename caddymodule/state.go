package caddymodule

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
)

// running is the package's state that outlives a config: the engines,
// which app runs, and what outbound requests share. Everything that needs the running engine (the admin
// API, the dashboard, the metrics) asks it, through [runtimeState.engine].
var running = newRuntimeState()

// runtimeState is the running state of the hookrelay app across config
// reloads. It owns the engines, one per queue, in a usage pool: each
// config's app holds the engine of its queue from Provision to Cleanup,
// and the last one out stops it. It also lists the apps that have
// started, oldest first: during a reload the old and the new config
// overlap, and a new config that fails to start leaves the old one
// running. The running engine is the engine of the most recently started
// app that has not stopped.
//
// Which destinations an engine delivers to is the engine's own concern
// (relay.Engine's Apply and Release); this only picks the engine.
type runtimeState struct {
	engines *caddy.UsagePool
	// outbound holds the one *outbound (see outbound.go): the OAuth
	// token cache and hook_call's client.
	outbound *caddy.UsagePool
	// lastStoreWarn is when hook_relay last logged a failure to store
	// at Warn (unix nanoseconds); later ones within 10s go to Debug.
	lastStoreWarn atomic.Int64

	mu      sync.Mutex
	started []*App
}

func newRuntimeState() *runtimeState {
	return &runtimeState{engines: caddy.NewUsagePool(), outbound: caddy.NewUsagePool()}
}

// acquire returns the engine of the queue key, opening it with open when
// no config holds it yet; loaded reports that it was already open. Each
// successful acquire must be matched by a release of key.
func (rs *runtimeState) acquire(key string, open func() (*pooledEngine, error)) (eng *pooledEngine, loaded bool, err error) {
	val, loaded, err := rs.engines.LoadOrNew(key, func() (caddy.Destructor, error) {
		return open()
	})
	if err != nil {
		return nil, false, err
	}
	return val.(*pooledEngine), loaded, nil
}

// release drops one hold on the engine of key; the last one stops it.
func (rs *runtimeState) release(key string) error {
	_, err := rs.engines.Delete(key)
	return err
}

// start records that a started: its engine is now the running one.
func (rs *runtimeState) start(a *App) {
	rs.mu.Lock()
	rs.started = append(slices.DeleteFunc(rs.started, func(x *App) bool { return x == a }), a)
	rs.mu.Unlock()
}

// stop records that a stopped: the running engine is again that of the
// most recently started app that still runs, if any.
func (rs *runtimeState) stop(a *App) {
	rs.mu.Lock()
	rs.started = slices.DeleteFunc(rs.started, func(x *App) bool { return x == a })
	rs.mu.Unlock()
}

// engine returns the running engine, or nil when no hookrelay app runs.
func (rs *runtimeState) engine() *pooledEngine {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if len(rs.started) == 0 {
		return nil
	}
	return rs.started[len(rs.started)-1].engine
}
