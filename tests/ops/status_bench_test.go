package ops

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// BenchmarkAdminStatusWithParkedRetries times what an operator's status
// calls cost while a destination has 0 and then 200,000 retries parked
// for later (a long outage): GET /hookrelay/destinations and a /metrics
// scrape of the in-process Caddy. The queue is a loopback NATS server, so
// that the retries can be parked directly.
//
//	go test -run '^$' -bench AdminStatusWithParkedRetries -benchtime 20x ./tests/ops/
func BenchmarkAdminStatusWithParkedRetries(b *testing.B) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: b.TempDir(), NoSigs: true})
	if err != nil {
		b.Fatal(err)
	}
	srv.Start()
	defer func() { unloadAll(); srv.Shutdown() }()
	if !srv.ReadyForConnections(10 * time.Second) {
		b.Fatal("nats did not start")
	}
	app := newSink(b, nil)
	cfg := config(b, "", []dest{{name: "app", url: app.URL}}, "")
	cfg = strings.Replace(cfg, "storage embedded \n", "storage nats "+srv.ClientURL()+" {\n\t\t\treplicas 1\n\t\t}\n", 1)
	if err := loadConfig(cfg); err != nil {
		b.Fatal(err)
	}
	testutil.WaitFor(b, 30*time.Second, "the destination's consumer", func() bool {
		st, code := tryStatus("app")
		return code == 200 && st.Name == "app"
	})
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1<<14))
	parked := 0
	at := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	for _, target := range []int{0, 200_000} {
		for ; parked < target; parked++ {
			id := "evt_bench" + strconv.Itoa(parked)
			m := &nats.Msg{Subject: "hookrelay.sched.app." + id, Header: nats.Header{
				"Hookrelay-Event":              {id},
				jetstream.ScheduleHeader:       {"@at " + at},
				jetstream.ScheduleTargetHeader: {"hookrelay.out.app"},
			}, Data: []byte(`{"id":"` + id + `"}`)}
			if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
		<-js.PublishAsyncComplete()
		testutil.WaitFor(b, time.Minute, fmt.Sprintf("%d parked retries in the status", target), func() bool {
			st, _ := tryStatus("app")
			return st.InRetry == uint64(target)
		})
		b.Run(fmt.Sprintf("parked=%d/destinations", target), func(b *testing.B) {
			for b.Loop() {
				if _, code := tryStatus("app"); code != http.StatusOK {
					b.Fatalf("GET /hookrelay/destinations = %d", code)
				}
			}
		})
		b.Run(fmt.Sprintf("parked=%d/metrics", target), func(b *testing.B) {
			for b.Loop() {
				resp, err := httpClient.Get(adminURL + "/metrics")
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("GET /metrics: %v", err)
				}
				resp.Body.Close()
			}
		})
	}
}

// loadConfig adapts a Caddyfile and runs it in this process.
func loadConfig(caddyfile string) error {
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		return err
	}
	return caddy.Load(cfg, true)
}

// tryStatus reads one destination's status without failing.
func tryStatus(name string) (destinationStatus, int) {
	var st destinationStatus
	resp, err := httpClient.Get(adminURL + "/hookrelay/destinations/" + name)
	if err != nil {
		return st, 0
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		_ = jsonDecode(resp, &st)
	}
	return st, resp.StatusCode
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }
