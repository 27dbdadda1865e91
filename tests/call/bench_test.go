package call

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

// BenchmarkCallVsReverseProxy measures, in one run and against the same
// loopback destination, a hook_call (forward, DEUNA tip
// template, fields, signed answer) and a plain reverse_proxy, one request
// at a time over keep-alive connections, alternating the two so both see
// the same machine. The call route opts out of caller authentication
// (allow_unauthenticated), so that both routes do the same work but the
// relay's. It reports each one's mean latency and their ratio:
//
//	go test -run '^$' -bench CallVsReverseProxy -benchtime 3000x ./tests/call/
func BenchmarkCallVsReverseProxy(b *testing.B) {
	rc := testutil.NewReceiver(b, func(int, *http.Request, []byte) (int, http.Header, []byte) {
		return http.StatusOK, http.Header{"Content-Type": {"application/json"}}, []byte(merchantReply)
	})
	site := callRouteWith("/call", "", "\t\t\tallow_unauthenticated"+fmt.Sprintf(`
				sample %s
				response_template %s
				response_sample %s
				fields order.order_id order.total_amount order.status
				custom_fields order.custom_fields.tip order.custom_fields.business_id`,
		tipExample(b, "order.json"), tipExample(b, "tip.tmpl"), tipExample(b, "merchant-reply.json")), rc.URL+"/tip", "") +
		fmt.Sprintf("\thandle /proxy {\n\t\trewrite * /tip\n\t\treverse_proxy %s\n\t}\n", rc.Listener.Addr())
	tc := caddyAt.NewTester(b)
	caddyAt.Load(b, tc, config("", site))
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
		do("/call")
		do("/proxy")
	}
	var callTotal, proxyTotal time.Duration
	n := 0
	for b.Loop() {
		callTotal += do("/call")
		proxyTotal += do("/proxy")
		n++
	}
	callNs := float64(callTotal.Nanoseconds()) / float64(n)
	proxyNs := float64(proxyTotal.Nanoseconds()) / float64(n)
	b.ReportMetric(callNs, "call-ns/req")
	b.ReportMetric(proxyNs, "proxy-ns/req")
	b.ReportMetric(callNs/proxyNs, "call/proxy")
	b.Logf("%d requests each: call %.1fµs, reverse_proxy %.1fµs, ratio %.2f, added %.1fµs per request",
		n, callNs/1e3, proxyNs/1e3, callNs/proxyNs, (callNs-proxyNs)/1e3)
}
