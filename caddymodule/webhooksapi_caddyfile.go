package caddymodule

import (
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func parseWebhooksAPI(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	api := new(WebhooksAPI)
	err := api.UnmarshalCaddyfile(h.Dispenser)
	return api, err
}

// UnmarshalCaddyfile sets up the webhook API from Caddyfile tokens:
//
//	hook_webhooks {
//	    prefix <path>                  # stripped before routing; default none
//	    tenant <placeholder>           # the caller's tenant, e.g. {http.vars.hook.claims.sub}
//	    token <secret> <tenant>        # repeatable; a static Bearer token and its tenant
//	    max_body <size>                # default 64KiB
//	}
//
// tenant, or at least one token line, is required, not both. A token is a
// secret: write it as a placeholder such as {env.ACME_API_TOKEN}, which
// stays a placeholder in the adapted JSON and is resolved when the config
// is loaded.
func (h *WebhooksAPI) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "prefix":
			if !d.AllArgs(&h.Prefix) {
				return d.ArgErr()
			}
			if !strings.HasPrefix(h.Prefix, "/") || strings.HasSuffix(h.Prefix, "/") {
				return d.Errf("prefix %q must start with / and not end with one", h.Prefix)
			}
		case "tenant":
			if !d.AllArgs(&h.Tenant) {
				return d.ArgErr()
			}
		case "token":
			var t WebhooksAPIToken
			if !d.AllArgs(&t.Token, &t.Tenant) {
				return d.Err("token needs a value and a tenant: token <secret> <tenant>")
			}
			h.Tokens = append(h.Tokens, t)
		case "max_body":
			size, err := parseSizeArg(d)
			if err != nil {
				return err
			}
			h.MaxBody = size
		default:
			return d.Errf("unknown hook_webhooks option %q", d.Val())
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*WebhooksAPI)(nil)
