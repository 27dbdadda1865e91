package caddymodule

import (
	"os"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// resolveSecret turns a configured secret into its value: Caddy's global
// placeholders ({env.NAME}, {file.path}) are replaced. As a convenience
// for development defaults, a value that is exactly {env.NAME:fallback}
// yields the variable, or the fallback when the variable is unset or
// empty. Request placeholders are never resolved here, and the value is
// never logged.
func resolveSecret(s string) string {
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
