package caddymodule

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
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
	httpcaddyfile.RegisterHandlerDirective("hook_call", parseCall)
	httpcaddyfile.RegisterHandlerDirective("hook_dashboard", parseDashboard)
	httpcaddyfile.RegisterHandlerDirective("hook_demo_receiver", parseDemoReceiver)
	// Each lands just before respond, after the previous one, so they
	// run in this order outside a route block too: hook_verify, then
	// hook_normalize, then hook_relay or hook_call.
	httpcaddyfile.RegisterDirectiveOrder("hook_verify", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterDirectiveOrder("hook_normalize", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterDirectiveOrder("hook_relay", httpcaddyfile.Before, "respond")
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
		default:
			return nil, d.Errf("unknown hookrelay option %q", d.Val())
		}
	}
	return httpcaddyfile.App{
		Name:  "hookrelay",
		Value: caddyconfig.JSON(app, nil),
	}, nil
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

func parseRelay(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	r := new(RelayHandler)
	err := r.UnmarshalCaddyfile(h.Dispenser)
	return r, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	hook_relay {
//	    topic <topic>                    # required
//	    max_body <size>                  # raw bodies; default 20MB
//	    to <url> {                       # repeatable
//	        name <name>
//	        header <name> <value>        # repeatable
//	        param <name> <value>         # repeatable
//	        timeout <duration>
//	        secret <whsec_...>           # Standard Webhooks signature
//	        workers <n>
//	        max_pending <n>
//	        template <file> | `<inline template>`
//	        sample <file>
//	        fields <path>...
//	        custom_fields <path>...
//	        auth oauth {
//	            token_url <url>
//	            login_header <name> <value>
//	            login_param <name> <value>
//	            login_body <name> <value>
//	            login_body_format form|json
//	            token_key <dotted.path>
//	            expires_key <dotted.path>
//	            token_type <type>
//	            default_ttl <duration>
//	            refresh_before <duration>
//	        }
//	        auth api_key {
//	            header <name> <value>
//	        }
//	    }
//	    retry {
//	        schedule <duration>...       # last step repeats
//	        max_age <duration>
//	        on_4xx dead_letter|retry
//	    }
//	}
//
// Each event is stored, answered 201 and delivered in the background,
// with retries; template reshapes the delivered body, checked over sample
// (default: a normalized ave_tracking event), and fields/custom_fields
// keep only those paths of it. A synchronous call that answers with the
// destination's reply is hook_call.
func (h *RelayHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "topic":
			if !d.AllArgs(&h.Topic) {
				return d.ArgErr()
			}
		case "mode", "response_secret", "allow_unauthenticated":
			return d.Errf("hook_relay has no %s option: a synchronous call answered with the destination's reply is the hook_call directive (see docs/call.md)", d.Val())
		case "max_body":
			size, err := parseSizeArg(d)
			if err != nil {
				return err
			}
			h.MaxBody = size
		case "to":
			dest, err := parseDestination(d)
			if err != nil {
				return err
			}
			h.Destinations = append(h.Destinations, dest)
		case "retry":
			rc, err := parseRetry(d)
			if err != nil {
				return err
			}
			h.Retry = rc
		default:
			return d.Errf("unknown hook_relay option %q", d.Val())
		}
	}
	return nil
}

func parseCall(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	c := new(Call)
	err := c.UnmarshalCaddyfile(h.Dispenser)
	return c, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	hook_call {
//	    topic <topic>                    # optional
//	    max_body <size>                  # default 20MB
//	    response_secret <whsec_...>      # signs the answers
//	    allow_unauthenticated            # forward callers no earlier handler authenticated (dangerous)
//	    to <url> {                       # exactly one
//	        name <name>
//	        header <name> <value>        # repeatable
//	        param <name> <value>         # repeatable
//	        timeout <duration>
//	        secret <whsec_...>           # Standard Webhooks signature
//	        auth oauth|api_key { ... }   # as in hook_relay
//	    }
//	    sample <file>                    # a sample of the caller's body
//	    response_template <file> | `<inline template>`
//	    response_sample <file>
//	    error_response_template <file> | `<inline template>`
//	    error_response_sample <file>
//	    fields <path>...
//	    custom_fields <path>...
//	}
//
// The request's JSON body is forwarded at once to the destination with its
// auth, headers, params, secret and timeout; nothing is stored or retried
// and no queue is started. A 2xx JSON reply is rendered through
// response_template (reply as .result, the request as .request, as in
// {{ .result.uuid }}), keeps fields/custom_fields, and is answered 200. A
// non-2xx or failed exchange is rendered through error_response_template
// (.result the error body or null, .status, .error) and answered with the
// destination's 4xx status, 502 when it failed or 504 when it timed out.
// Without templates the reply's JSON is passed through. response_template
// is checked at load over response_sample (DEUNA's response_data) with
// sample as .request; error_response_template over an unreachable
// destination and error_response_sample. With response_secret every
// answer carries a Standard Webhooks signature. hook_call answers 401 to
// a caller that no earlier handler authenticated (hook_verify,
// basic_auth), unless allow_unauthenticated says that is intended.
func (h *Call) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "topic":
			if !d.AllArgs(&h.Topic) {
				return d.ArgErr()
			}
		case "response_secret":
			if !d.AllArgs(&h.ResponseSecret) {
				return d.ArgErr()
			}
		case "allow_unauthenticated":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.AllowUnauthenticated = true
		case "max_body":
			size, err := parseSizeArg(d)
			if err != nil {
				return err
			}
			h.MaxBody = size
		case "to":
			if h.Destination != nil {
				return d.Err("hook_call calls one destination; use one 'to'")
			}
			dest, err := parseDestination(d)
			if err != nil {
				return err
			}
			h.Destination = dest
		case "sample":
			if !d.AllArgs(&h.Sample) {
				return d.ArgErr()
			}
		case "response_template", "error_response_template":
			var t string
			if !d.AllArgs(&t) {
				return d.ArgErr()
			}
			inline, file := templateArg(t)
			if opt == "response_template" {
				h.ResponseTemplate, h.ResponseTemplateFile = inline, file
			} else {
				h.ErrorResponseTemplate, h.ErrorResponseTemplateFile = inline, file
			}
		case "response_sample":
			if !d.AllArgs(&h.ResponseSample) {
				return d.ArgErr()
			}
		case "error_response_sample":
			if !d.AllArgs(&h.ErrorResponseSample) {
				return d.ArgErr()
			}
		case "fields", "custom_fields":
			f := d.RemainingArgs()
			if len(f) == 0 {
				return d.ArgErr()
			}
			if opt == "fields" {
				h.Fields = append(h.Fields, f...)
			} else {
				h.CustomFields = append(h.CustomFields, f...)
			}
		case "retry":
			return d.Err("hook_call retries nothing; remove the retry block")
		default:
			return d.Errf("unknown hook_call option %q", opt)
		}
	}
	return nil
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
		case "workers", "max_pending":
			name := d.Val()
			var s string
			if !d.AllArgs(&s) {
				return nil, d.ArgErr()
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return nil, d.Errf("%s must be a positive number, not %q", name, s)
			}
			if name == "workers" {
				dest.Workers = n
			} else {
				dest.MaxPending = n
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

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*RelayHandler)(nil)
	_ caddyfile.Unmarshaler = (*Call)(nil)
)
