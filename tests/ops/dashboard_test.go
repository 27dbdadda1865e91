package ops

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/chromedp/chromedp"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// chromiumPath is Debian's chromium (apt-get install -y chromium).
const chromiumPath = "/usr/bin/chromium"

const dashboardSite = "\thandle /status {\n\t\thook_dashboard\n\t}\n"

// browser starts a headless chromium for the test. Without chromium the
// test fails, unless HOOKRELAY_SKIP_BROWSER=1 says to skip it.
func browser(t *testing.T) context.Context {
	t.Helper()
	if os.Getenv("HOOKRELAY_SKIP_BROWSER") == "1" {
		t.Skip("HOOKRELAY_SKIP_BROWSER=1: not testing in a browser")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("this test needs Debian's chromium at %s (apt-get install -y chromium): %v; set HOOKRELAY_SKIP_BROWSER=1 to skip it", chromiumPath, err)
	}
	profile, err := os.MkdirTemp("", "hookrelay-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(profile) })
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
	)
	// Runs before the profile is removed: cancelAlloc waits for the
	// browser to exit.
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelTimeout)
	// Start the browser now, so a failure to launch is reported as such.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	return ctx
}

// waitJS waits until the JavaScript expression is true in the page.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
		t.Fatalf("waiting for %s (%s): %v\npage:\n%s", what, expr, err, html)
	}
}

func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("text of %s: %v", css, err)
	}
	return s
}

func TestDashboardInBrowser(t *testing.T) {
	ctx := browser(t)
	tc := caddyAt.NewTester(t)
	// erp refuses every odd attempt: each new event is dead-lettered, and
	// its replay is delivered.
	erp := newSink(t, func(n int) int {
		if n%2 == 1 {
			return http.StatusNotFound
		}
		return http.StatusOK
	})
	bi := newSink(t, nil)
	// ship is ordered and always busy: its lane of D-1 is blocked.
	ship := newSink(t, func(int) int { return http.StatusServiceUnavailable })
	load(t, tc, config(t, queueDir(t), []dest{{name: "erp", url: erp.URL}, {name: "bi", url: bi.URL},
		{name: "ship", url: ship.URL, lines: []string{"order_by data.shipment_id", "lanes 4"}}}, dashboardSite))

	postAve(t, "D-1")
	testutil.WaitFor(t, 15*time.Second, "the dead letter", func() bool { return deadLetters(t, "?destination=erp").Total == 1 })
	dl := deadLetters(t, "?destination=erp").DeadLetters[0]

	if err := chromedp.Do(ctx, chromedp.Navigate(baseURL+"/status"), chromedp.WaitVisible(chromedp.CSS("#dest-erp"))); err != nil {
		t.Fatalf("opening the status page: %v", err)
	}
	// The destinations render, with their health, backlog and outcomes,
	// and for the ordered one its blocked lane and key.
	waitJS(t, ctx, "the destinations", `document.querySelectorAll("#destinations tbody tr").length === 3 &&
		document.querySelector("#dest-ship .blocked").textContent.startsWith("1 of 4") &&
		document.querySelector("#dest-bi .blocked").textContent === "unordered" &&
		document.querySelector("#dest-erp .dead-letters").textContent === "1" &&
		document.querySelector("#dest-bi .badge").textContent === "ok"`)
	erpRow := text(t, ctx, "#dest-erp")
	for _, want := range []string{"erp", "degraded", "HTTP 404", "HTTP 404 Not Found", "✗ 1"} {
		if !strings.Contains(erpRow, want) {
			t.Errorf("erp row %q lacks %q", erpRow, want)
		}
	}
	if biRow := text(t, ctx, "#dest-bi"); !strings.Contains(biRow, "HTTP 200") || !strings.Contains(biRow, "✓ 1") {
		t.Errorf("bi row: %q", biRow)
	}
	if shipRow := text(t, ctx, "#dest-ship .blocked"); !strings.Contains(shipRow, "D-1") || !strings.Contains(shipRow, "oldest") {
		t.Errorf("ship's blocked lanes %q lack the key D-1 or since when", shipRow)
	}
	if dead := text(t, ctx, "#dead-erp"); !strings.Contains(dead, dl.EventID) || !strings.Contains(dead, topic) {
		t.Errorf("dead letters of erp %q lack the event id %s or the topic", dead, dl.EventID)
	}

	// The replay button requeues the dead letter: erp gets it once more.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#dead-erp button.replay`))); err != nil {
		t.Fatalf("clicking replay: %v", err)
	}
	testutil.WaitFor(t, 15*time.Second, "the replayed delivery", func() bool { return erp.Count() == 2 })
	settled(t, "erp")
	if n := erp.idsReceived()[dl.EventID]; n != 2 {
		t.Errorf("event received %d times, want 2", n)
	}
	waitJS(t, ctx, "the replay message", `document.querySelector("#message").textContent === "Replayed 1 dead letter."`)
	// The page refreshes itself: the dead letter goes, the delivery shows.
	waitJS(t, ctx, "the refreshed row", `document.querySelector("#dest-erp .dead-letters").textContent === "0" &&
		document.querySelector("#dest-erp .badge").textContent === "ok" &&
		document.querySelector("#dead-letters").textContent.includes("None.")`)

	// A new dead letter shows up without a reload; "Replay all" requeues it.
	postAve(t, "D-2")
	waitJS(t, ctx, "the new dead letter", `document.querySelector("#dest-erp .dead-letters").textContent === "1" &&
		document.querySelector("#dead-erp button.replay-all") !== null`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#dead-erp button.replay-all`))); err != nil {
		t.Fatalf("clicking replay all: %v", err)
	}
	testutil.WaitFor(t, 15*time.Second, "the second replayed delivery", func() bool { return erp.Count() == 4 })
	waitJS(t, ctx, "no dead letters", `document.querySelector("#dest-erp .dead-letters").textContent === "0"`)
}

func TestDashboardHTTP(t *testing.T) {
	tc := caddyAt.NewTester(t)
	erp := newSink(t, nil)
	load(t, tc, config(t, queueDir(t), []dest{{name: "erp", url: erp.URL}}, dashboardSite))
	page := baseURL + "/status"

	req, _ := http.NewRequest(http.MethodGet, page, nil)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("page: %d %v", resp.StatusCode, resp.Header)
	}
	for asset, ctype := range map[string]string{"dashboard.js": "text/javascript", "dashboard.css": "text/css"} {
		resp, err := httpClient.Get(page + "?asset=" + asset)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) {
			t.Errorf("%s: %d %s", asset, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	if status, _ := do(t, http.MethodGet, page+"?asset=../dashboard.go", "", nil); status != http.StatusNotFound {
		t.Errorf("unknown asset: %d, want 404", status)
	}

	postAve(t, "H-1")
	testutil.WaitFor(t, 15*time.Second, "the delivery", func() bool { return erp.Count() == 1 })
	var state struct {
		Destinations []struct {
			Name  string `json:"name"`
			State string `json:"state"`
			destinationStatus
		} `json:"destinations"`
	}
	testutil.WaitFor(t, 10*time.Second, "the JSON to show the delivery", func() bool {
		status, body := do(t, http.MethodGet, page+"?format=json", "", nil)
		if status != 200 {
			t.Fatalf("?format=json = %d %s", status, body)
		}
		if err := json.Unmarshal(body, &state); err != nil {
			t.Fatal(err)
		}
		return len(state.Destinations) == 1 && state.Destinations[0].RecentCounts.Delivered == 1
	})
	if d := state.Destinations[0]; d.Name != "erp" || d.State != "ok" || d.LastStatus != 200 {
		t.Errorf("state = %+v", d)
	}

	for _, c := range []struct {
		name, method, ctype, origin, body string
		status                            int
		want                              string
	}{
		{"not JSON", "POST", "text/plain", "", `{"destination":"erp"}`, 415, "application/json"},
		{"another origin", "POST", "application/json", "http://evil.example", `{"destination":"erp"}`, 403, "from this page only"},
		{"nothing", "POST", "application/json", baseURL, `{}`, 400, "nothing to replay"},
		{"bad body", "POST", "application/json", "", `{"ids":"x"}`, 400, `send {`},
		{"method", "PUT", "application/json", "", ``, 405, "use GET, or POST"},
		{"same origin", "POST", "application/json", baseURL, `{"destination":"erp"}`, 200, `{"replayed":0}`},
	} {
		var hdr []string
		if c.origin != "" {
			hdr = []string{"Origin", c.origin}
		}
		status, body := do(t, c.method, page, c.ctype, []byte(c.body), hdr...)
		if status != c.status || !strings.Contains(string(body), c.want) {
			t.Errorf("%s: %d %s, want %d and %q", c.name, status, body, c.status, c.want)
		}
	}
}

func TestDashboardCaddyfile(t *testing.T) {
	adapter := caddyconfig.GetAdapter("caddyfile")
	// Outside a route: the directive has its own order, before respond.
	out, _, err := adapter.Adapt([]byte(":9481 {\n\trespond /x 204\n\thook_dashboard {\n\t\tdead_letters 5\n\t}\n}\n"), nil)
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	s := string(out)
	dash, resp := strings.Index(s, `"handler":"hook_dashboard"`), strings.Index(s, `"handler":"static_response"`)
	if dash < 0 || !strings.Contains(s, `"dead_letters":5`) || resp < 0 || dash > resp {
		t.Errorf("adapted: %s", s)
	}
	for cfg, want := range map[string]string{
		":9481 {\n\thook_dashboard {\n\t\tcolour red\n\t}\n}\n":     `unknown hook_dashboard option "colour"`,
		":9481 {\n\thook_dashboard {\n\t\tdead_letters 0\n\t}\n}\n": "dead_letters must be a number from 1 to 1000",
		":9481 {\n\thook_dashboard extra\n}\n":                      "wrong argument count",
	} {
		if _, _, err := adapter.Adapt([]byte(cfg), nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("adapting %q: %v, want an error containing %q", cfg, err, want)
		}
	}
}
