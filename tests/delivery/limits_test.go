package delivery

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// photo returns a real PNG of about size bytes: a noisy picture, as a
// phone camera's proof of delivery is, which does not compress.
func photo(t *testing.T, size int) []byte {
	t.Helper()
	side := 16
	for side*side*3 < size {
		side += 16
	}
	img := image.NewNRGBA(image.Rect(0, 0, side, side))
	r := rand.New(rand.NewPCG(1, uint64(size)))
	for i := 0; i < len(img.Pix); i += 4 {
		v := r.Uint32()
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = byte(v), byte(v>>8), byte(v>>16), 255
	}
	var b bytes.Buffer
	// Noise does not compress: spare the encoder the try.
	if err := (&png.Encoder{CompressionLevel: png.NoCompression}).Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// guideWithProof is one delivered guide carrying img as its proof.
func guideWithProof(id string, img []byte) string {
	return fmt.Sprintf(`{"id_envio":%q,"cod_estado":"5","nombre_estado":"ENTREGADO","fecha_estado":"2022-12-11 15:04:43",`+
		`"base64_entrega_digitalizada":{"mime_type":"image/png","base64":%q}}`, id, base64.StdEncoding.EncodeToString(img))
}

func payload(guides ...string) []byte {
	return []byte(`{"tipo":"json","body":[` + strings.Join(guides, ",") + `]}`)
}

// proofOf returns the proof of delivery a sink received in d.
func proofOf(t *testing.T, d delivery) []byte {
	t.Helper()
	var ev struct {
		Data struct {
			Proof struct {
				Base64 string `json:"base64"`
				Bytes  int    `json:"bytes"`
			} `json:"proof_of_delivery"`
		} `json:"data"`
	}
	if err := json.Unmarshal(d.Body, &ev); err != nil {
		t.Fatalf("delivery body: %v", err)
	}
	b, err := base64.StdEncoding.DecodeString(ev.Data.Proof.Base64)
	if err != nil {
		t.Fatalf("proof: %v", err)
	}
	if ev.Data.Proof.Bytes != len(b) {
		t.Errorf("proof bytes = %d, decoded %d", ev.Data.Proof.Bytes, len(b))
	}
	return b
}

// Proofs of delivery of real size get through with max_body 20MB: a
// 900 KB photo, a 3 MB one, and a 14 MB one, whose request (base64 and
// a second guide) comes close to the 20MB limit. Before, any event
// over NATS's default 1 MB max payload got 503 on every retry.
func TestLargeProofOfDeliveryIsDelivered(t *testing.T) {
	s := newSink(t, nil)
	tc := caddyAt.NewTester(t)
	cfg := strings.Replace(relayConfig(queueDir(t), []string{to(s.URL+"/hooks", "pod")}),
		"hook_normalize ave_tracking", "hook_normalize ave_tracking {\n\t\t\tmax_body 20MB\n\t\t}", 1)
	load(t, tc, cfg)

	for _, c := range []struct {
		id   string
		size int
	}{{"POD-900K", 900 << 10}, {"POD-3M", 3 << 20}, {"POD-14M", 14 << 20}} {
		img := photo(t, c.size)
		body := payload(testutil.AveGuide(c.id+"-small"), guideWithProof(c.id, img))
		status, resp, _, err := post(baseURL+"/ave", signedHeader(t), body)
		if err != nil || status != http.StatusCreated {
			t.Fatalf("%s (%d byte PNG, %d byte request) = %d %s %v, want 201", c.id, len(img), len(body), status, resp, err)
		}
		testutil.WaitFor(t, 20*time.Second, c.id+" to be delivered", func() bool { return s.deliveredShipments()[c.id] == 1 })
		for _, d := range s.deliveries() {
			if d.ShipmentID == c.id && !bytes.Equal(proofOf(t, d), img) {
				t.Errorf("%s: the delivered proof differs from the %d byte PNG sent", c.id, len(img))
			}
		}
		t.Logf("%s: %d byte PNG in a %d byte request delivered whole", c.id, len(img), len(body))
	}
}

// natsServer starts a standalone NATS server with JetStream on loopback,
// with its default max payload (1 MB), as a cluster's servers have.
func natsServer(t *testing.T) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server did not start")
	}
	t.Cleanup(func() {
		if err := caddyAt.Unload(); err != nil {
			t.Errorf("unloading the config: %v", err)
		}
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv.ClientURL()
}

func natsConfig(url string, site string) string {
	return caddyAt.Globals(fmt.Sprintf("\thookrelay {\n\t\tstorage nats %s {\n\t\t\treplicas 1\n\t\t}\n\t}", url)) +
		fmt.Sprintf("\n:%d {\n%s\n}\n", httpPort, site)
}

// On a queue whose servers take at most 1 MB per message, an event that
// cannot fit is answered 413 naming the limit, and nothing of its request
// is stored (its small guide neither).
func TestEventLargerThanTheQueueIs413(t *testing.T) {
	url := natsServer(t)
	s := newSink(t, nil)
	tc := caddyAt.NewTester(t)
	load(t, tc, natsConfig(url, fmt.Sprintf(`	route /ave {
		hook_verify {
			secret %s
			algorithms HS256
		}
		hook_normalize ave_tracking
		hook_relay {
			topic shipments/tracking
			to %s/hooks {
				name pod
			}
		}
	}`, verifySecret, s.URL)))

	body := payload(testutil.AveGuide("TL-small"), guideWithProof("TL-big", photo(t, 1200<<10)))
	status, resp, _, err := post(baseURL+"/ave", signedHeader(t), body)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(string(resp), `"title":"Payload Too Large"`) ||
		!strings.Contains(string(resp), "limit of 1044480 bytes") {
		t.Fatalf("POST = %d %s, want 413 naming the limit", status, resp)
	}
	if got := metric(t, "hookrelay_events_enqueued_total"); got != 0 {
		t.Errorf("%v messages stored for a refused request", got)
	}
	// A small request still goes through and is the only delivery.
	postAve(t, "/ave", "TL-after")
	testutil.WaitFor(t, 15*time.Second, "the small event", func() bool { return s.deliveredShipments()["TL-after"] == 1 })
	if got := s.deliveredShipments(); len(got) != 1 {
		t.Errorf("delivered %v, want only TL-after", got)
	}

	// A raw route whose max_body cannot fit in one message is refused at load.
	err = tryLoad(natsConfig(url, fmt.Sprintf(`	route /raw {
		hook_relay {
			topic raw
			max_body 5MB
			to %s/hooks
		}
	}`, s.URL)))
	if err == nil || !strings.Contains(err.Error(), "max_body 5000000 is larger than the queue can store in one message (1044480 bytes") {
		t.Errorf("loading a raw route with max_body 5MB: %v, want a refusal naming the limit", err)
	}
}

// tryLoad posts a Caddyfile to the admin endpoint and returns its error.
func tryLoad(caddyfile string) error {
	req, _ := http.NewRequest(http.MethodPost, adminURL+"/load", strings.NewReader(caddyfile))
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%d %s", resp.StatusCode, b.String())
	}
	return nil
}

// When the waiting deliveries reach queue_limit, ingress answers 503
// with Retry-After, drops nothing, and stores again once they drain.
func TestFullQueueAnswers503WithRetryAfter(t *testing.T) {
	var up = make(chan struct{})
	s := newSink(t, func(int, delivery) (int, http.Header) {
		select {
		case <-up:
			return http.StatusOK, nil
		default:
			return http.StatusServiceUnavailable, nil
		}
	})
	tc := caddyAt.NewTester(t)
	dir := queueDir(t)
	cfg := strings.Replace(relayConfig(dir, []string{to(s.URL+"/hooks", "slow")}, "schedule 200ms"),
		"storage embedded "+dir, "storage embedded "+dir+"\n\t\tqueue_limit 64KB", 1)
	load(t, tc, cfg)

	// The queue's size is read about every half second: post until the
	// answer changes, with a deadline rather than a pace.
	accepted := 0
	var status int
	var resp []byte
	var hdr http.Header
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		var err error
		status, resp, hdr, err = post(baseURL+"/ave", signedHeader(t), testutil.AvePayload(fmt.Sprintf("FULL-%05d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusCreated {
			break
		}
		accepted++
	}
	if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || !strings.Contains(string(resp), `"title":"Service Unavailable"`) {
		t.Fatalf("after %d accepted: %d %s (Retry-After %q), want 503 with Retry-After", accepted, status, resp, hdr.Get("Retry-After"))
	}
	if accepted == 0 {
		t.Fatal("nothing accepted before the queue was full")
	}
	t.Logf("queue_limit 64KB: %d events accepted, then 503", accepted)
	close(up)
	testutil.WaitFor(t, 30*time.Second, "every accepted event to be delivered", func() bool { return len(s.deliveredShipments()) >= accepted })
	testutil.WaitFor(t, 10*time.Second, "ingress to store again", func() bool {
		status, _, _, _ := post(baseURL+"/ave", signedHeader(t), testutil.AvePayload("FULL-after"))
		return status == http.StatusCreated
	})
}

// The dead letters are bounded: a destination that refuses everything
// does not fill the store; the oldest dead letters are dropped, counted
// and logged, and ingress keeps answering 201.
func TestDeadLettersAreBounded(t *testing.T) {
	s := newSink(t, func(int, delivery) (int, http.Header) { return http.StatusBadRequest, nil })
	tc := caddyAt.NewTester(t)
	dir := queueDir(t)
	cfg := strings.Replace(relayConfig(dir, []string{to(s.URL+"/hooks", "refuses")}),
		"storage embedded "+dir, "storage embedded "+dir+"\n\t\tdead_letter_limit 32KB", 1)
	load(t, tc, cfg)
	const n = 150
	for i := range n {
		postAve(t, "/ave", fmt.Sprintf("DL-%04d", i))
	}
	testutil.WaitFor(t, 30*time.Second, "every event to be refused", func() bool { return s.attempts() >= n })
	testutil.WaitFor(t, 15*time.Second, "dead letters to be dropped", func() bool {
		return metric(t, "hookrelay_dead_letters_dropped_total") > 0
	})
	stored := metric(t, `hookrelay_dead_letters_stored{destination="refuses"}`)
	dropped := metric(t, "hookrelay_dead_letters_dropped_total")
	if stored >= n || stored == 0 {
		t.Errorf("%v dead letters stored of %d; the limit did not hold", stored, n)
	}
	t.Logf("dead_letter_limit 32KB: %v kept, %v dropped of %d", stored, dropped, n)
	postAve(t, "/ave", "DL-after")
}
