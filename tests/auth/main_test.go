package auth

import (
	"testing"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestMain keeps the in-process Caddy out of the real data and config
// directories.
func TestMain(m *testing.M) { testutil.RunIsolated(m, nil, nil) }
