// Package caddymodule is hookrelay's Caddy face: module registration, JSON
// config, Caddyfile parsing, provisioning and the HTTP handler glue. The
// engine itself lives in the relay and authcache packages, which never import
// Caddy.
package caddymodule
