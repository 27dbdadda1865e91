package caddymodule

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/dustin/go-humanize"

	"github.com/hookrelay/hookrelay/destination"
	"github.com/hookrelay/hookrelay/relay"
)

// init registers the global option and every directive with its parser
// (each module's UnmarshalCaddyfile lives beside the module) and its order.
// The orders are relative to each other, so they are registered here, in
// one place, rather than in init functions whose order follows file names.
func init() {
	httpcaddyfile.RegisterGlobalOption("hookrelay", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("hook_verify", parseVerify)
	httpcaddyfile.RegisterHandlerDirective("hook_normalize", parseNormalize)
	httpcaddyfile.RegisterHandlerDirective("hook_relay", parseRelay)
	httpcaddyfile.RegisterHandlerDirective("hook_webhooks", parseWebhooksAPI)
	httpcaddyfile.RegisterHandlerDirective("hook_call", parseCall)
	httpcaddyfile.RegisterHandlerDirective("hook_dashboard", parseDashboard)
	httpcaddyfile.RegisterHandlerDirective("hook_demo_receiver", parseDemoReceiver)
	// Each lands just before respond, after the previous one, so they
	// run in this order outside a route block too: hook_verify, then
	// hook_normalize, then hook_relay or hook_call.
	httpcaddyfile.RegisterDirectiveOrder("hook_verify", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterDirectiveOrder("hook_normalize", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterDirectiveOrder("hook_relay", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterDirectiveOrder("hook_webhooks", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterDirectiveOrder("hook_call", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterDirectiveOrder("hook_dashboard", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterDirectiveOrder("hook_demo_receiver", httpcaddyfile.Before, "respond")
}

// parseGlobalOption sets up the hookrelay app from the global option:
//
//	hookrelay {
//	    storage embedded [<dir>]
//	    storage nats <url>... {
//	        credentials <file>
//	        tls {
//	            ca <file>
//	            cert <file>
//	            key <file>
//	        }
//	        replicas <n>
//	    }
//	    sync always | <interval>
//	    dedupe_window <duration>
//	    dead_letter_retention <duration>
//	    queue_limit <size>
//	    dead_letter_limit <size>
//	    webhooks {                       # the webhook registry (hook_webhooks)
//	        seal_key <base64 key>...     # required; the first seals
//	        allow_network <cidr>...      # internal ranges registered addresses may reach
//	        trusted_ca <pem file>
//	        resolver <host:port>...
//	        allow_http
//	        retry { ... }                # a webhook's default policy
//	        min_retry_delay <duration>
//	        max_retry_age <duration>
//	        timeout <duration>
//	        workers <n>
//	        max_pending <n>
//	        lanes <n>                    # of a webhook registered with an order_by
//	        max_per_tenant <n>
//	        api_version <version>
//	        rotation_grace <duration>
//	        per_webhook_metrics          # a metrics series per webhook (default: one for all)
//	    }
//	}
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	d.Next() // the option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "storage":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			switch d.Val() {
			case "embedded":
				st := &StorageConfig{}
				if d.NextArg() {
					st.Dir = d.Val()
				}
				if d.NextArg() {
					return nil, d.ArgErr()
				}
				app.Storage = st
			case "nats":
				st := &StorageConfig{URLs: d.RemainingArgs()}
				if len(st.URLs) == 0 {
					return nil, d.Err("storage nats needs at least one URL")
				}
				for sub := d.Nesting(); d.NextBlock(sub); {
					switch d.Val() {
					case "credentials":
						if !d.AllArgs(&st.Credentials) {
							return nil, d.ArgErr()
						}
					case "replicas":
						var v string
						if !d.AllArgs(&v) {
							return nil, d.ArgErr()
						}
						n, err := strconv.Atoi(v)
						if err != nil || n < 1 {
							return nil, d.Errf("replicas must be a positive number, not %q", v)
						}
						st.Replicas = n
					case "tls":
						if d.NextArg() {
							return nil, d.ArgErr()
						}
						tc := &StorageTLS{}
						for tn := d.Nesting(); d.NextBlock(tn); {
							var dst *string
							switch d.Val() {
							case "ca":
								dst = &tc.CA
							case "cert":
								dst = &tc.Cert
							case "key":
								dst = &tc.Key
							default:
								return nil, d.Errf("unknown storage nats tls option %q", d.Val())
							}
							if !d.AllArgs(dst) {
								return nil, d.ArgErr()
							}
						}
						if (tc.Cert == "") != (tc.Key == "") {
							return nil, d.Err("storage nats tls needs both cert and key, or neither")
						}
						st.TLS = tc
					default:
						return nil, d.Errf("unknown storage nats option %q", d.Val())
					}
				}
				app.Storage = st
			default:
				return nil, d.Errf("storage must be embedded or nats, not %q", d.Val())
			}
		case "sync":
			var v string
			if !d.AllArgs(&v) {
				return nil, d.ArgErr()
			}
			if v == "always" {
				app.SyncAlways = true
				continue
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return nil, d.Errf("sync must be 'always' or a positive interval, not %q", v)
			}
			app.SyncInterval = caddy.Duration(dur)
		case "dedupe_window":
			dur, err := parseDurationArg(d)
			if err != nil {
				return nil, err
			}
			app.DedupeWindow = dur
		case "dead_letter_retention":
			dur, err := parseDurationArg(d)
			if err != nil {
				return nil, err
			}
			app.DeadLetterRetention = dur
		case "queue_limit":
			size, err := parseSizeArg(d)
			if err != nil {
				return nil, err
			}
			app.QueueLimit = size
		case "dead_letter_limit":
			size, err := parseSizeArg(d)
			if err != nil {
				return nil, err
			}
			app.DeadLetterLimit = size
		case "webhooks":
			wc, err := parseWebhooks(d)
			if err != nil {
				return nil, err
			}
			app.Webhooks = wc
		default:
			return nil, d.Errf("unknown hookrelay option %q", d.Val())
		}
	}
	return httpcaddyfile.App{
		Name:  "hookrelay",
		Value: caddyconfig.JSON(app, nil),
	}, nil
}

// parseWebhooks parses the global option's webhooks block.
func parseWebhooks(d *caddyfile.Dispenser) (*WebhooksConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	wc := &WebhooksConfig{}
	for n := d.Nesting(); d.NextBlock(n); {
		opt := d.Val()
		var err error
		switch opt {
		case "seal_key":
			wc.SealKeys = append(wc.SealKeys, d.RemainingArgs()...)
			if len(wc.SealKeys) == 0 {
				return nil, d.ArgErr()
			}
		case "allow_network":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			wc.AllowNetworks = append(wc.AllowNetworks, args...)
		case "resolver":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			wc.Resolvers = append(wc.Resolvers, args...)
		case "trusted_ca":
			if !d.AllArgs(&wc.TrustedCA) {
				return nil, d.ArgErr()
			}
		case "api_version":
			if !d.AllArgs(&wc.APIVersion) {
				return nil, d.ArgErr()
			}
		case "allow_http":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			wc.AllowHTTP = true
		case "per_webhook_metrics":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			wc.PerWebhookMetrics = true
		case "retry":
			wc.Retry, err = parseRetry(d)
		case "min_retry_delay":
			wc.MinRetryDelay, err = parseDurationArg(d)
		case "max_retry_age":
			wc.MaxRetryAge, err = parseDurationArg(d)
		case "timeout":
			wc.Timeout, err = parseDurationArg(d)
		case "rotation_grace":
			wc.RotationGrace, err = parseDurationArg(d)
		case "workers", "max_pending", "max_per_tenant", "lanes":
			var v string
			if !d.AllArgs(&v) {
				return nil, d.ArgErr()
			}
			n, perr := strconv.Atoi(v)
			if perr != nil || n < 1 {
				return nil, d.Errf("%s must be a positive number, not %q", opt, v)
			}
			switch opt {
			case "workers":
				wc.Workers = n
			case "max_pending":
				wc.MaxPending = n
			case "lanes":
				wc.Lanes = n
			default:
				wc.MaxPerTenant = n
			}
		default:
			return nil, d.Errf("unknown webhooks option %q", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	if len(wc.SealKeys) == 0 {
		return nil, d.Err("webhooks needs a seal_key: the credentials tenants register are stored sealed with it")
	}
	return wc, nil
}

// parseDurationArg reads exactly one positive duration argument.
func parseDurationArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	var v string
	if !d.AllArgs(&v) {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return 0, d.Errf("%s: invalid duration %q: %v", name, v, err)
	}
	if dur <= 0 {
		return 0, d.Errf("%s must be positive", name)
	}
	return caddy.Duration(dur), nil
}

// parseSizeArg reads one size such as 20MB.
func parseSizeArg(d *caddyfile.Dispenser) (int64, error) {
	var s string
	if !d.AllArgs(&s) {
		return 0, d.ArgErr()
	}
	size, err := humanize.ParseBytes(s)
	if err != nil || size == 0 || size > 1<<40 {
		return 0, d.Errf("invalid size %q", s)
	}
	return int64(size), nil
}

// parseDestination parses a 'to' block. It checks syntax, and the URL
// with relay's rule so that a bad one is reported at its line; the other
// rules are checked by destination.Config.Build when the config is
// provisioned.
func parseDestination(d *caddyfile.Dispenser) (*destination.Config, error) {
	dest := new(destination.Config)
	if !d.NextArg() {
		return nil, d.Err("to needs a URL")
	}
	dest.URL = d.Val()
	if relay.CheckURL(dest.URL) != nil {
		return nil, d.Errf("to: %q is not an absolute http(s) URL", dest.URL)
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "name":
			if !d.AllArgs(&dest.Name) {
				return nil, d.ArgErr()
			}
		case "header":
			var k, v string
			if !d.AllArgs(&k, &v) {
				return nil, d.ArgErr()
			}
			if dest.Headers == nil {
				dest.Headers = http.Header{}
			}
			dest.Headers.Add(k, v)
		case "param":
			var k, v string
			if !d.AllArgs(&k, &v) {
				return nil, d.ArgErr()
			}
			if dest.Params == nil {
				dest.Params = url.Values{}
			}
			dest.Params.Add(k, v)
		case "timeout":
			dur, err := parseDurationArg(d)
			if err != nil {
				return nil, err
			}
			dest.Timeout = destination.Duration(dur)
		case "secret":
			if !d.AllArgs(&dest.Secret) {
				return nil, d.ArgErr()
			}
		case "workers", "max_pending", "lanes":
			name := d.Val()
			var s string
			if !d.AllArgs(&s) {
				return nil, d.ArgErr()
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return nil, d.Errf("%s must be a positive number, not %q", name, s)
			}
			switch name {
			case "workers":
				dest.Workers = n
			case "max_pending":
				dest.MaxPending = n
			default:
				if n > relay.MaxLanes {
					return nil, d.Errf("lanes must be at most %d, not %d", relay.MaxLanes, n)
				}
				dest.Lanes = n
			}
		case "order_by":
			if !d.AllArgs(&dest.OrderBy) {
				return nil, d.ArgErr()
			}
			if _, err := relay.ParseOrderBy(dest.OrderBy); err != nil {
				return nil, d.Err(err.Error())
			}
		case "template":
			var t string
			if !d.AllArgs(&t) {
				return nil, d.ArgErr()
			}
			dest.Template, dest.TemplateFile = templateArg(t)
		case "sample":
			if !d.AllArgs(&dest.Sample) {
				return nil, d.ArgErr()
			}
		case "fields":
			f := d.RemainingArgs()
			if len(f) == 0 {
				return nil, d.ArgErr()
			}
			dest.Fields = append(dest.Fields, f...)
		case "custom_fields":
			f := d.RemainingArgs()
			if len(f) == 0 {
				return nil, d.ArgErr()
			}
			dest.CustomFields = append(dest.CustomFields, f...)
		case "response_template", "error_response_template", "response_sample", "error_response_sample":
			return nil, d.Errf("%s is an option of hook_call, beside its 'to' block, not inside it (see docs/call.md)", d.Val())
		case "auth":
			ac, err := parseAuth(d)
			if err != nil {
				return nil, err
			}
			dest.Auth = ac
		default:
			return nil, d.Errf("unknown destination option %q", d.Val())
		}
	}
	return dest, nil
}

func parseAuth(d *caddyfile.Dispenser) (*destination.AuthConfig, error) {
	ac := new(destination.AuthConfig)
	if !d.AllArgs(&ac.Type) {
		return nil, d.Err("auth needs a type: oauth or api_key")
	}
	if err := destination.CheckAuthType(ac.Type); err != nil {
		return nil, d.Err(err.Error())
	}
	pair := func() (destination.KeyValue, error) {
		var kv destination.KeyValue
		if !d.AllArgs(&kv.Name, &kv.Value) {
			return kv, d.ArgErr()
		}
		return kv, nil
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if ac.Type == destination.AuthAPIKey && opt != "header" {
			return nil, d.Errf("unknown auth api_key option %q (only header)", opt)
		}
		switch opt {
		case "header", "login_header", "login_param", "login_body":
			kv, err := pair()
			if err != nil {
				return nil, err
			}
			switch opt {
			case "header":
				ac.Headers = append(ac.Headers, kv)
			case "login_header":
				ac.LoginHeaders = append(ac.LoginHeaders, kv)
			case "login_param":
				ac.LoginParams = append(ac.LoginParams, kv)
			case "login_body":
				ac.LoginBody = append(ac.LoginBody, kv)
			}
		case "token_url":
			if !d.AllArgs(&ac.TokenURL) {
				return nil, d.ArgErr()
			}
		case "login_body_format":
			if !d.AllArgs(&ac.LoginBodyFormat) {
				return nil, d.ArgErr()
			}
			if ac.LoginBodyFormat != "form" && ac.LoginBodyFormat != "json" {
				return nil, d.Errf("login_body_format must be form or json, not %q", ac.LoginBodyFormat)
			}
		case "token_key":
			if !d.AllArgs(&ac.TokenKey) {
				return nil, d.ArgErr()
			}
		case "expires_key":
			if !d.AllArgs(&ac.ExpiresKey) {
				return nil, d.ArgErr()
			}
		case "token_type":
			if !d.AllArgs(&ac.TokenType) {
				return nil, d.ArgErr()
			}
		case "default_ttl":
			dur, err := parseDurationArg(d)
			if err != nil {
				return nil, err
			}
			ac.DefaultTTL = destination.Duration(dur)
		case "refresh_before":
			dur, err := parseDurationArg(d)
			if err != nil {
				return nil, err
			}
			ac.RefreshBefore = destination.Duration(dur)
		default:
			return nil, d.Errf("unknown auth oauth option %q", opt)
		}
	}
	if ac.Type == destination.AuthOAuth && ac.TokenURL == "" {
		return nil, d.Err("auth oauth needs a token_url")
	}
	return ac, nil
}

func parseRetry(d *caddyfile.Dispenser) (*destination.RetryConfig, error) {
	rc := new(destination.RetryConfig)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "schedule":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			for _, a := range args {
				dur, err := destination.ParseDuration(a)
				if err != nil || dur <= 0 {
					return nil, d.Errf("schedule: invalid delay %q", a)
				}
				rc.Schedule = append(rc.Schedule, destination.Duration(dur))
			}
		case "max_age":
			dur, err := parseDurationArg(d)
			if err != nil {
				return nil, err
			}
			rc.MaxAge = destination.Duration(dur)
		case "on_4xx":
			if !d.AllArgs(&rc.On4xx) {
				return nil, d.ArgErr()
			}
			if err := destination.CheckOn4xx(rc.On4xx); err != nil {
				return nil, d.Err(err.Error())
			}
		default:
			return nil, d.Errf("unknown retry option %q", d.Val())
		}
	}
	return rc, nil
}
