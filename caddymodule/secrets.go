package caddymodule

import (
	"os"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// resolveSecret turns a configured secret into its value: Caddy's global
// placeholders ({env.NAME}, {file.path}) are replaced. As a convenience
// for development defaults, a value that is exactly {env.NAME:fallback}
// yields the variable, or the fallback when the variable is unset or
// empty. Request placeholders are never resolved here, and the value is
// never logged.
//
// A value that resolves to one of the publishedSecrets (the fallbacks the
// default Caddyfile and the examples print) is reported at ERROR level
// through Caddy's default logger, at every config load: anyone who has
// read this repository knows it.
func resolveSecret(s string) string {
	v := resolveSecretValue(s)
	warnIfPublished(caddy.Log().Named("hookrelay.secrets"), v)
	return v
}

func resolveSecretValue(s string) string {
	if strings.HasPrefix(s, "{env.") && strings.HasSuffix(s, "}") && strings.Count(s, "{") == 1 {
		name, fallback, ok := strings.Cut(s[len("{env."):len(s)-1], ":")
		if ok {
			if v := os.Getenv(name); v != "" {
				return v
			}
			return fallback
		}
	}
	return caddy.NewReplacer().ReplaceKnown(s, "")
}

// publishedSecrets are the secret values printed in this repository (the
// default Caddyfile, the examples, the README), with what they are. They
// are fine on a laptop and useless anywhere else: anyone can sign with
// them. This is the one list of them; add any new published fallback here.
var publishedSecrets = map[string]string{
	DevSecret: "the public development HMAC secret (set HOOKRELAY_DEV_SECRET)",
	"whsec_ZGVtby1yZWNlaXZlci1zaWduaW5nLWtleS0xMjM0NQ==": "the public demo receiver signing secret (set HOOKRELAY_DEMO_WHSEC)",
	"whsec_dGlwLXJlc3BvbnNlLXNpZ25pbmcta2V5LTEyMzQ1":     "the public example response signing secret (set TIP_RESPONSE_WHSEC)",
	"dev-merchant-key": "the public example merchant API key (set MERCHANT_API_KEY)",
}

// warnIfPublished logs, at ERROR, that value is one of the
// publishedSecrets. It names which one, never the value.
func warnIfPublished(log *zap.Logger, value string) {
	if name, ok := publishedSecrets[value]; ok {
		log.Error("a published secret is in use: anyone can forge or read what it protects; never run this configuration in production",
			zap.String("secret", name))
	}
}
