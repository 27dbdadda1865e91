package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
)

// RunIsolated runs a test package's tests with Caddy's data and config
// directories in a fresh temporary directory, so that an in-process Caddy
// (caddytest) never writes into the real ones: autosave.json, certificate
// storage, a default embedded queue. use, if set, is given that directory
// before the tests run (e.g. to keep a package's base directory in it);
// after, if set, runs once they are done (e.g. to unload the config). The
// directory, and a Caddy binary built by CaddyBinary, are removed at the
// end. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testutil.RunIsolated(m, nil, nil) }
func RunIsolated(m *testing.M, use func(dir string), after func()) {
	home, err := os.MkdirTemp("", "hookrelay-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	Isolate(home)
	if use != nil {
		use(home)
	}
	code := m.Run()
	if after != nil {
		after()
	}
	if buildPath != "" {
		_ = os.RemoveAll(filepath.Dir(buildPath))
	}
	_ = os.RemoveAll(home)
	os.Exit(code)
}

// Isolate points Caddy's data and config directories below dir.
func Isolate(dir string) {
	os.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	// These two were computed from the real directories when Caddy's
	// package was initialized.
	caddy.ConfigAutosavePath = filepath.Join(dir, "config", "caddy", "autosave.json")
	caddy.DefaultStorage = &certmagic.FileStorage{Path: filepath.Join(dir, "data", "caddy")}
}

// UnsetEnv unsets the environment variable name for the test and restores
// it when the test ends.
func UnsetEnv(t testing.TB, name string) {
	t.Helper()
	t.Setenv(name, "") // restores the old value at the end
	os.Unsetenv(name)
}

// QueueDir returns a fresh directory under base for one test's embedded
// queue. base is a package's directory kept by RunIsolated's use, which
// outlives the test: a config may still use the queue while the next test
// loads its own.
func QueueDir(t testing.TB, base string) string {
	t.Helper()
	dir, err := os.MkdirTemp(base, "queue-")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
