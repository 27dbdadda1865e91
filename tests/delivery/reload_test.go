package delivery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// embeddedServers identifies the NATS servers running in this process
// (the in-process Caddy's embedded queues): each runs exactly one
// JetStream API responder goroutine, and goroutine ids are never reused,
// so the same id means the same server, never restarted.
func embeddedServers(t *testing.T) []string {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 2); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, g := range strings.Split("\n\n"+buf.String(), "\n\ngoroutine ") {
		if strings.Contains(g, "nats-server/v2/server.(*Server).delayedAPIResponder") {
			id, _, _ := strings.Cut(g, " ")
			ids = append(ids, id)
		}
	}
	return ids
}

// TestReloadMidDeliveryLosesNothing reloads the config (a changed header)
// while deliveries are in flight and more wait in the queue: every event
// stored before the reload is delivered after it, the new header applies
// to later attempts, and the queue is not started a second time.
func TestReloadMidDeliveryLosesNothing(t *testing.T) {
	const total, beforeReload = 200, 20
	gate := make(chan struct{})
	var passed atomic.Int64
	s := newSink(t, func(n int, _ delivery) (int, http.Header) {
		// The first attempts go through; then the destination stalls
		// with attempts in flight until the reload is done.
		if passed.Add(1) > beforeReload {
			<-gate
		}
		return http.StatusOK, nil
	})
	var opened atomic.Bool
	openGate := func() {
		if opened.CompareAndSwap(false, true) {
			close(gate)
		}
	}
	t.Cleanup(openGate)

	dir := queueDir(t)
	config := func(version string) string {
		return relayConfig(dir,
			[]string{to(s.URL, "reload_dest", "header X-Config "+version, "workers 4")},
			"schedule 50ms")
	}
	tc := caddyAt.NewTester(t)
	load(t, tc, config("v1"))
	servers := embeddedServers(t)
	if len(servers) != 1 {
		t.Fatalf("embedded queue servers before the reload: %v, want 1", servers)
	}

	want := map[string]bool{}
	for r := range total / 25 {
		ids := guideIDs(fmt.Sprintf("reload-%d", r), 25)
		for _, id := range ids {
			want[id] = true
		}
		postAve(t, "/ave", ids...)
	}
	testutil.WaitFor(t, 15*time.Second, "deliveries to stall mid-way", func() bool {
		return s.attempts() >= beforeReload+4
	})
	if got := len(s.deliveredShipments()); got >= total {
		t.Fatalf("%d events delivered before the reload; want some still queued", got)
	}

	// The reload: same storage, a changed header.
	tc.InitServer(config("v2"), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	if after := embeddedServers(t); len(after) != 1 || after[0] != servers[0] {
		t.Errorf("embedded queue servers (goroutine ids): %v before the reload, %v after; want the same one kept", servers, after)
	}
	openGate()

	testutil.WaitFor(t, 60*time.Second, "every event stored before the reload", func() bool {
		return len(s.deliveredShipments()) == total
	})
	dups := 0
	for id, n := range s.deliveredShipments() {
		if !want[id] {
			t.Errorf("unexpected shipment %q delivered", id)
		}
		dups += n - 1
	}
	versions := map[string]int{}
	for _, d := range s.deliveries() {
		versions[d.Header.Get("X-Config")]++
	}
	if versions["v1"] < beforeReload || versions["v2"] == 0 {
		t.Errorf("X-Config headers seen: %v; want v1 before the reload and v2 after it", versions)
	}
	t.Logf("reload mid-delivery: %d events, %d attempts, headers %v, %d duplicate deliveries", total, s.attempts(), versions, dups)
}

// TestReloadAppliesStreamSettings reloads with a new dedupe window and
// dead-letter retention: the running queue's streams take them at once,
// the queue is not started a second time, and delivery goes on.
func TestReloadAppliesStreamSettings(t *testing.T) {
	s := newSink(t, nil)
	dir := queueDir(t)
	config := func(lines ...string) string {
		base := relayConfig(dir, []string{to(s.URL, "settings_dest")})
		return strings.Replace(base, globalOptions(dir), globalOptions(dir, lines...), 1)
	}
	tc := caddyAt.NewTester(t)
	load(t, tc, config())
	servers := embeddedServers(t)
	streamSetting(t, dir, "HOOKRELAY_OUT", "duplicate_window", 10*time.Minute)
	streamSetting(t, dir, "HOOKRELAY_DLQ", "max_age", 30*24*time.Hour)

	load(t, tc, config("dedupe_window 1h", "dead_letter_retention 48h"))
	streamSetting(t, dir, "HOOKRELAY_OUT", "duplicate_window", time.Hour)
	streamSetting(t, dir, "HOOKRELAY_DLQ", "max_age", 48*time.Hour)
	if got := embeddedServers(t); !slices.Equal(got, servers) {
		t.Fatalf("embedded queue servers after the reload: %v, before: %v", got, servers)
	}
	ids := guideIDs("settings", 1)
	postAve(t, "/ave", ids...)
	testutil.WaitFor(t, 10*time.Second, "the delivery after the reload", func() bool {
		return s.deliveredShipments()[ids[0]] >= 1
	})
}

// streamSetting checks one setting of a stream as the embedded store
// keeps it on disk.
func streamSetting(t *testing.T, dir, stream, key string, want time.Duration) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "jetstream", "$G", "streams", stream, "meta.inf"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("%s meta.inf: %v", stream, err)
	}
	if got, _ := cfg[key].(float64); time.Duration(got) != want {
		t.Fatalf("%s %s = %v, want %v", stream, key, time.Duration(got), want)
	}
}
