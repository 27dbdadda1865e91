package testutil

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Caddy is Caddy running as a child process, for tests that kill it.
type Caddy struct {
	Cmd       *exec.Cmd
	AdminAddr string
	Dir       string

	mu  sync.Mutex
	log bytes.Buffer
}

// logWriter collects the child's output for failure reports.
type logWriter struct{ c *Caddy }

func (w logWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.c.log.Write(p)
}

// Log returns what the child printed so far.
func (c *Caddy) Log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.log.String()
}

// StartCaddy runs the binary with caddyfile in dir (its data directory is
// dir/data, so an embedded queue survives a restart with the same dir),
// waits until adminAddr answers, and kills it when the test ends.
func StartCaddy(t testing.TB, bin, dir, adminAddr, caddyfile string) *Caddy {
	t.Helper()
	cfgPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &Caddy{AdminAddr: adminAddr, Dir: dir}
	cmd := exec.Command(bin, "run", "--config", cfgPath, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"HOME="+dir,
	)
	cmd.Stdout = logWriter{c}
	cmd.Stderr = logWriter{c}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.Cmd = cmd
	t.Cleanup(func() { c.Kill() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + adminAddr + "/config/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			c.Kill()
			t.Fatalf("caddy did not start: %v\n%s", err, c.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

// Kill sends SIGKILL and waits for the process to end. It is safe to call
// more than once.
func (c *Caddy) Kill() {
	if c.Cmd == nil || c.Cmd.Process == nil || c.Cmd.ProcessState != nil {
		return
	}
	_ = c.Cmd.Process.Signal(syscall.SIGKILL)
	_ = c.Cmd.Wait()
}

// Stop asks Caddy to stop gracefully (SIGTERM) and waits up to 30s, then
// kills it.
func (c *Caddy) Stop() error {
	if c.Cmd == nil || c.Cmd.Process == nil || c.Cmd.ProcessState != nil {
		return nil
	}
	_ = c.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- c.Cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		c.Kill()
		return fmt.Errorf("caddy did not stop within 30s")
	}
}
