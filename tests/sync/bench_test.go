package sync

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// BenchmarkSyncVsReverseProxy measures, in one run and against the same
// loopback destination, a sync-mode hook_relay (forward, DEUNA tip
// template, fields, signed answer) and a plain reverse_proxy, one request
// at a time over keep-alive connections, alternating the two so both see
// the same machine. The sync route opts out of caller authentication
// (allow_unauthenticated), so that both routes do the same work but the
// relay's. It reports each one's mean latency and their ratio:
//
//	go test -run '^$' -bench SyncVsReverseProxy -benchtime 3000x ./tests/sync/
func BenchmarkSyncVsReverseProxy(b *testing.B) {
	rc := testutil.NewReceiver(b, func(int, *http.Request, []byte) (int, http.Header, []byte) {
		return http.StatusOK, http.Header{"Content-Type": {"application/json"}}, []byte(merchantReply)
	})
	site := syncRouteWith("/sync", "", "\t\t\tallow_unauthenticated\n", rc.URL+"/tip", fmt.Sprintf(`
				sample %s
				response_template %s
				response_sample %s
				fields order.order_id order.total_amount order.status
				custom_fields order.custom_fields.tip order.custom_fields.business_id`,
		tipExample(b, "order.json"), tipExample(b, "tip.tmpl"), tipExample(b, "merchant-reply.json"))) +
		fmt.Sprintf("\thandle /proxy {\n\t\trewrite * /tip\n\t\treverse_proxy %s\n\t}\n", rc.Listener.Addr())
	tc := newTester(b)
	load(b, tc, config("", site))
	order, err := os.ReadFile(tipExample(b, "order.json"))
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 10 * time.Second}
	do := func(path string) time.Duration {
		start := time.Now()
		resp, err := client.Post(baseURL+path, "application/json", bytes.NewReader(order))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s answered %d", path, resp.StatusCode)
		}
		return time.Since(start)
	}
	// Warm the connections and the template pools.
	for range 50 {
		do("/sync")
		do("/proxy")
	}
	var syncTotal, proxyTotal time.Duration
	n := 0
	for b.Loop() {
		syncTotal += do("/sync")
		proxyTotal += do("/proxy")
		n++
	}
	syncNs := float64(syncTotal.Nanoseconds()) / float64(n)
	proxyNs := float64(proxyTotal.Nanoseconds()) / float64(n)
	b.ReportMetric(syncNs, "sync-ns/req")
	b.ReportMetric(proxyNs, "proxy-ns/req")
	b.ReportMetric(syncNs/proxyNs, "sync/proxy")
	b.Logf("%d requests each: sync %.1fµs, reverse_proxy %.1fµs, ratio %.2f, added %.1fµs per request",
		n, syncNs/1e3, proxyNs/1e3, syncNs/proxyNs, (syncNs-proxyNs)/1e3)
}
