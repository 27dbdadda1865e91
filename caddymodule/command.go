package caddymodule

import (
	"fmt"
	"os"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/hookrelay/hookrelay/relay/jwtverify"
)

// DevSecret is the HMAC secret the default Caddyfile verifies with when
// HOOKRELAY_DEV_SECRET is not set. It is public: never use it in
// production.
const DevSecret = "hookrelay-development-secret-change-me"

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "hookrelay",
		Usage: "token|status|dead-letters|replay|pause|resume|webhooks [flags]",
		Short: "hookrelay tools: development tokens, status, dead letters, replay, pause, registered webhooks",
		Long: `
Tools for hookrelay.

'status', 'dead-letters', 'replay', 'pause', 'resume' and 'webhooks' talk
to a running Caddy's admin API: at --address, else the admin address of
--config, else localhost:2019.

	caddy hookrelay status
	caddy hookrelay dead-letters --destination erp
	caddy hookrelay replay 17 18
	caddy hookrelay replay --destination erp --since 2h
	caddy hookrelay pause erp
	caddy hookrelay resume erp

'webhooks' manages the webhooks that tenants register at run time (the
hookrelay option's webhooks block); each runs as the destination wh-<id>,
which pause, resume, dead-letters and replay take:

	caddy hookrelay webhooks list --tenant acme
	caddy hookrelay webhooks create --tenant acme --topic orders/created \
	    --url https://erp.example.com/hooks --api-key-header X-Api-Key=...
	caddy hookrelay webhooks rotate 4821937065
	caddy hookrelay webhooks delete 4821937065
	caddy hookrelay pause wh-4821937065

'token' prints an HS256 JWT for the Ave-Hub-signature header, signed with
--secret, else $HOOKRELAY_DEV_SECRET, else the public development secret
the default Caddyfile accepts. Use it to try the relay locally:

	curl -H "Ave-Hub-signature: $(caddy hookrelay token)" \
	     --data @examples/ave-tracking.json \
	     http://localhost:8080/api-webhook/public/api/v1/shipping-events-hook
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(tokenCommand(), statusCommand(), deadLettersCommand(), replayCommand(),
				pauseCommand("pause"), pauseCommand("resume"), webhooksCommand())
		},
	})
}

func tokenCommand() *cobra.Command {
	var (
		secret   string
		ttl      time.Duration
		issuer   string
		audience string
	)
	c := &cobra.Command{
		Use:   "token",
		Short: "Print a signed development token (HS256)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if secret == "" {
				secret = os.Getenv("HOOKRELAY_DEV_SECRET")
			}
			if secret == "" {
				secret = DevSecret
			}
			if ttl <= 0 {
				return fmt.Errorf("--ttl must be positive")
			}
			now := time.Now()
			claims := map[string]any{
				"iat": now.Unix(),
				"exp": now.Add(ttl).Unix(),
			}
			if issuer != "" {
				claims["iss"] = issuer
			}
			if audience != "" {
				claims["aud"] = audience
			}
			tok, err := jwtverify.Sign("HS256", []byte(secret), claims, "")
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	c.Flags().StringVar(&secret, "secret", "", "HMAC secret (default $HOOKRELAY_DEV_SECRET, else the development secret)")
	c.Flags().DurationVar(&ttl, "ttl", time.Hour, "token lifetime")
	c.Flags().StringVar(&issuer, "iss", "", "issuer claim")
	c.Flags().StringVar(&audience, "aud", "", "audience claim")
	return c
}
