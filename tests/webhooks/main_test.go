package webhooks

import (
	"testing"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestMain keeps the in-process Caddy out of the real data and config
// directories, and unloads the last config once every test ran.
func TestMain(m *testing.M) {
	testutil.RunIsolated(m, func(dir string) { baseDir = dir }, func() { _ = caddyAt.Unload() })
}
