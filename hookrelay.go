// Package hookrelay is a webhook relay that runs inside Caddy: it verifies and
// normalizes inbound webhooks at the edge, stores each event durably in NATS
// JetStream before answering, and delivers it to the apps behind the edge with
// the credentials, payload shape, signature and retry policy each one needs.
//
// Importing this package registers every hookrelay Caddy module, so that
//
//	xcaddy build --with github.com/hookrelay/hookrelay
//
// produces a Caddy binary with the relay built in.
package hookrelay

import (
	// Register the Caddy modules.
	_ "github.com/hookrelay/hookrelay/caddymodule"
)
