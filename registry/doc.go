// Package registry keeps the webhooks that apps and merchants register at
// run time (CONTRACT.md section 4) in a JetStream key-value bucket on the
// relay's queue, and runs each as a destination of the relay engine.
//
// Every node watches the bucket, so a webhook created or deleted on one
// node is live on all of them within a second, without a reload, and
// survives restarts. A webhook's credentials (its authorization, custom
// headers and params, and its signing secrets) are sealed with AES-GCM
// under a key from the config before they are stored; the bucket holds
// only the sealed blob and what is not secret.
//
// The package is free of Caddy; the API handler and the routing glue live
// in caddymodule.
package registry
