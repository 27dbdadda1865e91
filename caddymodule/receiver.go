package caddymodule

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(DemoReceiver{})
}

// DemoReceiver stands in for the app behind the edge in the default
// Caddyfile: it logs every webhook it receives (its id, topic and body, at
// Info) and answers 200. It is a demonstration aid, not for production:
// it writes payloads to the log on purpose.
type DemoReceiver struct {
	log *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (DemoReceiver) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.hook_demo_receiver",
		New: func() caddy.Module { return new(DemoReceiver) },
	}
}

// Provision gets the logger.
func (rc *DemoReceiver) Provision(ctx caddy.Context) error {
	rc.log = ctx.Logger()
	return nil
}

// ServeHTTP logs the webhook and answers 200.
func (rc *DemoReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		if ce := rc.log.Check(zap.DebugLevel, "demo receiver could not read a webhook"); ce != nil {
			ce.Write(zap.Error(err))
		}
		writeError(w, http.StatusBadRequest, "The request body could not be read.")
		return nil
	}
	var ev struct {
		Topic string `json:"topic"`
	}
	_ = json.Unmarshal(body, &ev)
	rc.log.Info("demo receiver got a webhook",
		zap.String("webhook_id", r.Header.Get("webhook-id")),
		zap.Bool("signed", r.Header.Get("webhook-signature") != ""),
		zap.String("topic", ev.Topic),
		zap.ByteString("body", body))
	writeJSON(w, http.StatusOK, []byte(`{"received":true}`))
	return nil
}

func parseDemoReceiver(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	rc := new(DemoReceiver)
	err := rc.UnmarshalCaddyfile(h.Dispenser)
	return rc, err
}

// UnmarshalCaddyfile takes no options:
//
//	hook_demo_receiver
func (rc *DemoReceiver) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() || d.NextBlock(0) {
		return d.Err("hook_demo_receiver takes no options")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*DemoReceiver)(nil)
	_ caddyhttp.MiddlewareHandler = (*DemoReceiver)(nil)
	_ caddyfile.Unmarshaler       = (*DemoReceiver)(nil)
)
