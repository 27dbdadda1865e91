package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap/zaptest"

	_ "github.com/hookrelay/hookrelay/caddymodule"
	"github.com/hookrelay/hookrelay/internal/testutil"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/event"
)

// TestStorageNATSCaddyfile: the storage nats block adapts to the app's
// JSON, tls sub-block included, and rejects half a client certificate.
func TestStorageNATSCaddyfile(t *testing.T) {
	adapt := func(storage string) (map[string]any, error) {
		cfg := "{\n\thookrelay {\n\t\t" + storage + "\n\t}\n}\n"
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
		if err != nil {
			return nil, err
		}
		var doc struct {
			Apps struct {
				Hookrelay struct {
					Storage map[string]any `json:"storage"`
				} `json:"hookrelay"`
			} `json:"apps"`
		}
		if err := json.Unmarshal(out, &doc); err != nil {
			return nil, err
		}
		return doc.Apps.Hookrelay.Storage, nil
	}

	got, err := adapt(`storage nats tls://n1:4222 tls://n2:4222 {
			credentials /etc/hookrelay/relay.creds
			tls {
				ca /etc/hookrelay/ca.pem
				cert /etc/hookrelay/client.pem
				key /etc/hookrelay/client-key.pem
			}
			replicas 3
		}`)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got)
	want := `{"credentials":"/etc/hookrelay/relay.creds","replicas":3,` +
		`"tls":{"ca":"/etc/hookrelay/ca.pem","cert":"/etc/hookrelay/client.pem","key":"/etc/hookrelay/client-key.pem"},` +
		`"urls":["tls://n1:4222","tls://n2:4222"]}`
	if string(b) != want {
		t.Errorf("storage adapted to\n%s\nwant\n%s", b, want)
	}

	for _, bad := range []string{
		"storage nats nats://n1:4222 {\n tls {\n cert /c.pem\n }\n }",
		"storage nats nats://n1:4222 {\n tls {\n key /k.pem\n }\n }",
		"storage nats nats://n1:4222 {\n tls {\n ca\n }\n }",
		"storage nats nats://n1:4222 {\n tls {\n verify off\n }\n }",
		"storage nats nats://n1:4222 {\n tls extra\n }",
	} {
		if _, err := adapt(bad); err == nil {
			t.Errorf("%q adapted without an error", bad)
		}
	}
}

// TestStorageNATSMutualTLS: the engine reaches a JetStream server that
// requires TLS and a client certificate, with the CA, cert and key of
// its storage, and stores and delivers through it.
func TestStorageNATSMutualTLS(t *testing.T) {
	dir := t.TempDir()
	pki := newPKI(t, dir)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: pki.serverCert, KeyFile: pki.serverKey, CaFile: pki.ca, Verify: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := &server.Options{
		ServerName: "hr-tls",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT, // the OS assigns it; read back below
		JetStream:  true,
		StoreDir:   filepath.Join(dir, "js"),
		TLS:        true,
		TLSVerify:  true,
		TLSConfig:  tc,
		TLSTimeout: 5,
		NoSigs:     true,
		NoLog:      true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats server did not start")
	}

	port := srv.Addr().(*net.TCPAddr).Port

	dst := newSink(t)
	eng, err := relay.Open(relay.Options{
		Queue: relay.QueueConfig{
			URLs:     []string{"nats://127.0.0.1:" + strconv.Itoa(port)},
			Replicas: 1,
			TLSCA:    pki.ca,
			TLSCert:  pki.clientCert,
			TLSKey:   pki.clientKey,
		},
		Logger: zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	if err := eng.Apply(t, []*relay.Destination{{Name: destName, URL: dst.URL + "/deliveries"}}); err != nil {
		t.Fatal(err)
	}
	ev := event.Event{
		ID:         event.NewID("tls-test"),
		Topic:      "shipments/tracking",
		Source:     "test",
		ReceivedAt: time.Now().UTC(),
		Data:       json.RawMessage(`{"shipment_id":"tls-1"}`),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eng.Enqueue(ctx, []event.Event{ev}, []string{destName}); err != nil {
		t.Fatalf("enqueue over mutual TLS: %v", err)
	}
	testutil.WaitFor(t, 30*time.Second, "the delivery over mutual TLS", func() bool { return dst.delivered([]string{"tls-1"}) })
	dst.check()
	if srv.NumClients() == 0 {
		t.Error("no client connected over TLS")
	}
}

// pki is a throwaway CA with a server certificate for 127.0.0.1 and a
// client certificate, as PEM files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hookrelay test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, name string, usage x509.ExtKeyUsage, ips []net.IP) (certPath, keyPath string) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		certPath = writePEM(t, dir, name+".pem", "CERTIFICATE", der)
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		keyPath = writePEM(t, dir, name+"-key.pem", "EC PRIVATE KEY", keyDER)
		return certPath, keyPath
	}
	var p pki
	p.ca = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	p.serverCert, p.serverKey = issue(2, "server", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	p.clientCert, p.clientKey = issue(3, "client", x509.ExtKeyUsageClientAuth, nil)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, strings.ReplaceAll(name, "/", "_"))
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDocsClusterExamples: the examples of docs/cluster.md are valid: the
// NATS server configuration loads, the Caddyfile adapts, the JSON parses.
func TestDocsClusterExamples(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "cluster.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string][]string{}
	var lang string
	var cur []string
	for _, line := range strings.Split(string(doc), "\n") {
		switch {
		case lang == "" && strings.HasPrefix(line, "```") && len(line) > 3:
			lang, cur = strings.TrimPrefix(line, "```"), nil
		case lang != "" && line == "```":
			blocks[lang] = append(blocks[lang], strings.Join(cur, "\n")+"\n")
			lang = ""
		case lang != "":
			cur = append(cur, line)
		}
	}
	if len(blocks["conf"]) == 0 || len(blocks["caddyfile"]) == 0 || len(blocks["json"]) == 0 {
		t.Fatalf("expected conf, caddyfile and json examples, found %d, %d, %d", len(blocks["conf"]), len(blocks["caddyfile"]), len(blocks["json"]))
	}
	for _, conf := range blocks["conf"] {
		path := filepath.Join(t.TempDir(), "nats.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		opts, err := server.ProcessConfigFile(path)
		if err != nil {
			t.Errorf("the NATS configuration does not load: %v", err)
			continue
		}
		if !opts.JetStream || opts.SyncInterval != time.Second || len(opts.Routes) != 3 {
			t.Errorf("the NATS configuration loads as jetstream=%v sync=%v routes=%d", opts.JetStream, opts.SyncInterval, len(opts.Routes))
		}
	}
	for _, cf := range blocks["caddyfile"] {
		if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil); err != nil {
			t.Errorf("the Caddyfile does not adapt: %v", err)
		}
	}
	for _, js := range blocks["json"] {
		if !json.Valid([]byte(js)) {
			t.Errorf("invalid JSON example:\n%s", js)
		}
	}
}
