package ops

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// hookrelayCLI runs 'caddy hookrelay <args>' as Caddy's CLI registers it
// (a fresh command tree each time, as flags keep their values) and
// returns what it printed and its error.
func hookrelayCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	reg, ok := caddycmd.Commands()["hookrelay"]
	if !ok || reg.CobraFunc == nil {
		t.Fatal("the hookrelay command is not registered")
	}
	root := &cobra.Command{Use: "hookrelay", SilenceUsage: true, SilenceErrors: true}
	reg.CobraFunc(root)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestCLIStatusAndReplay(t *testing.T) {
	tc := caddyAt.NewTester(t)
	erp := newSink(t, failFirst(1))
	bi := newSink(t, nil)
	load(t, tc, config(t, queueDir(t), []dest{{name: "erp", url: erp.URL}, {name: "bi", url: bi.URL}}, ""))

	postAve(t, "C-1")
	testutil.WaitFor(t, 15*time.Second, "the dead letter", func() bool { return deadLetters(t, "?destination=erp").Total == 1 })
	testutil.WaitFor(t, 15*time.Second, "the delivery to bi", func() bool { return status(t, "bi").RecentCounts.Delivered == 1 })
	dl := deadLetters(t, "").DeadLetters[0]

	out, err := hookrelayCLI(t, "status", "--address", adminAddr)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	t.Logf("caddy hookrelay status:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "DESTINATION") {
		t.Fatalf("status printed:\n%s\nwant a header and 2 rows", out)
	}
	// Rows are sorted by name: bi, then erp.
	if f := strings.Fields(lines[1]); len(f) < 2 || f[0] != "bi" || f[1] != "ok" || !strings.Contains(lines[1], " 200 ") || !strings.Contains(lines[1], "1/0/0") {
		t.Errorf("bi row: %q", lines[1])
	}
	if f := strings.Fields(lines[2]); len(f) < 2 || f[0] != "erp" || f[1] != "degraded" || !strings.Contains(lines[2], " 404 ") ||
		!strings.Contains(lines[2], "0/0/1") || f[len(f)-1] != "1" {
		t.Errorf("erp row: %q", lines[2])
	}

	out, err = hookrelayCLI(t, "dead-letters", "--address", adminAddr, "--destination", "erp")
	if err != nil || !strings.Contains(out, dl.EventID) || !strings.Contains(out, "HTTP 404 Not Found") || !strings.Contains(out, "1 of 1 dead letters") {
		t.Errorf("dead-letters: %v\n%s", err, out)
	}

	// Errors are the admin API's messages.
	if out, err := hookrelayCLI(t, "replay", "--address", adminAddr); err == nil || !strings.Contains(err.Error(), "nothing to replay") {
		t.Errorf("replay without ids = %v\n%s", err, out)
	}
	if out, err := hookrelayCLI(t, "replay", "--address", adminAddr, "--destination", "erp", "--since", "soon"); err == nil || !strings.Contains(err.Error(), `invalid --since "soon"`) {
		t.Errorf("replay --since soon = %v\n%s", err, out)
	}
	if out, err := hookrelayCLI(t, "pause", "--address", adminAddr, "nope"); err == nil ||
		!strings.Contains(err.Error(), "HTTP 404") || !strings.Contains(err.Error(), "no running destination has that name") {
		t.Errorf("pause nope = %v\n%s", err, out)
	}
	// An address that refuses connections for the whole test.
	nothing := testutil.ClosedPort(t).Addr
	if out, err := hookrelayCLI(t, "status", "--address", nothing); err == nil || !strings.Contains(err.Error(), nothing) {
		t.Errorf("status against nothing = %v\n%s", err, out)
	}

	// Replay by id: the destination gets the event once more.
	out, err = hookrelayCLI(t, "replay", "--address", adminAddr, strconv.FormatUint(dl.ID, 10))
	if err != nil || strings.TrimSpace(out) != "replayed 1 dead letter(s)" {
		t.Fatalf("replay %d: %v\n%s", dl.ID, err, out)
	}
	testutil.WaitFor(t, 15*time.Second, "the replayed delivery", func() bool { return erp.Count() == 2 })
	settled(t, "erp")
	if n := erp.idsReceived()[dl.EventID]; n != 2 {
		t.Errorf("event received %d times, want 2", n)
	}
	if out, err := hookrelayCLI(t, "replay", "--address", adminAddr, "--destination", "erp", "--since", "1h"); err != nil || strings.TrimSpace(out) != "replayed 0 dead letter(s)" {
		t.Errorf("replay of an empty destination: %v\n%s", err, out)
	}

	// Pause and resume from the CLI.
	if out, err := hookrelayCLI(t, "pause", "--address", adminAddr, "erp"); err != nil || strings.TrimSpace(out) != "erp paused" {
		t.Fatalf("pause erp: %v\n%s", err, out)
	}
	out, _ = hookrelayCLI(t, "status", "--address", adminAddr)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[2], "erp") || strings.Fields(lines[2])[1] != "paused" {
		t.Errorf("status after pause:\n%s", out)
	}
	if out, err := hookrelayCLI(t, "resume", "--address", adminAddr, "erp"); err != nil || strings.TrimSpace(out) != "erp resumed" {
		t.Errorf("resume erp: %v\n%s", err, out)
	}

	// --json prints the admin API's answer.
	out, err = hookrelayCLI(t, "status", "--address", adminAddr, "--json")
	if err != nil || !strings.Contains(out, `"destinations"`) || !strings.Contains(out, `"name": "erp"`) {
		t.Errorf("status --json: %v\n%s", err, out)
	}
}
