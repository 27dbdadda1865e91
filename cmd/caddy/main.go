// Command caddy is Caddy with its standard modules plus hookrelay's, so that
//
//	go run ./cmd/caddy run
//
// works from a checkout without xcaddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// hookrelay's modules.
	_ "github.com/hookrelay/hookrelay"
)

func main() {
	caddycmd.Main()
}
