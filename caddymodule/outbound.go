package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/hookrelay/hookrelay/authcache"
	"github.com/hookrelay/hookrelay/relay"
)

const outboundKey = "outbound"

// outbound is the state that every outbound request shares, across
// config reloads: one OAuth token cache for hook_relay's deliveries and
// hook_call's calls alike, and hook_call's HTTP client. It is held apart
// from the hookrelay app, so that hook_call never starts the queue; the
// app's engine holds it too, for its runners' tokens. It lives in
// runtimeState's outbound pool.
type outbound struct {
	// tokens caches OAuth tokens by credential.
	tokens *authcache.Cache
	// client sends hook_relay's deliveries and hook_call's requests; it
	// follows no redirects (a 3xx is a failure of the destination) and
	// keeps its idle connections across reloads.
	client *http.Client
}

// Destruct drops the cached tokens and the idle connections when the last
// holder is gone.
func (o *outbound) Destruct() error {
	o.tokens.Close()
	o.client.CloseIdleConnections()
	return nil
}

// acquireOutbound takes a hold on the shared outbound state; every
// successful call must be matched by one releaseOutbound.
func acquireOutbound() (*outbound, error) {
	val, _, err := running.outbound.LoadOrNew(outboundKey, func() (caddy.Destructor, error) {
		tokens, err := authcache.NewCache(0, nil)
		if err != nil {
			return nil, err
		}
		return &outbound{tokens: tokens, client: relay.NewClient()}, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(*outbound), nil
}

// releaseOutbound gives back a hold taken by acquireOutbound.
func releaseOutbound() error {
	_, err := running.outbound.Delete(outboundKey)
	return err
}
