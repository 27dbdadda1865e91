package cluster

import (
	"testing"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestMain removes the Caddy binary the tests build and keeps any
// in-process Caddy state out of the real directories.
func TestMain(m *testing.M) { testutil.RunIsolated(m, nil, nil) }
