// Package ingress holds hookrelay's Caddy-level tests of the ingress half
// of the contract, run against a real Caddy in-process (caddytest): every
// answer of hook_verify and hook_normalize (status, Content-Type and exact
// body), body limits and stalled bodies, the queue being unavailable, JWKS
// rotation, tokens kept out of the access log and of error logs, what a
// route answers when hook_normalize is not followed by hook_relay, and the
// published secrets of the default Caddyfile reported at load.
package ingress

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	// hookrelay's modules, for the in-process Caddy that caddytest runs.
	_ "github.com/hookrelay/hookrelay"
	"github.com/hookrelay/hookrelay/internal/testutil"
)

// caddyAt is the in-process Caddy of this package (it owns 3050 and
// 9580-9599; 9943 for the https_port its configs never use).
var caddyAt = testutil.InProcess{AdminPort: 3050, HTTPPort: httpPort, HTTPSPort: 9943}

// httpPort is the one HTTP port the package's configs listen on.
const httpPort = 9580

// siteAddress is the address of the site of every config.
var siteAddress = fmt.Sprintf(":%d", httpPort)

// baseDir holds every test's queue directory. It is removed after the
// whole package ran, when no config uses it any more.
var baseDir string

func TestMain(m *testing.M) {
	testutil.RunIsolated(m, func(dir string) { baseDir = dir }, func() { _ = caddyAt.Unload() })
}

// globals is the global options block every config of this package starts
// with, options added inside it.
func globals(options ...string) string {
	return caddyAt.Globals(append([]string{"grace_period 1s", "persist_config off"}, options...)...)
}

// start loads caddyfile into the in-process Caddy (starting it the first
// time, a reload after) and, when the test ends, replaces it with a config
// that runs only the admin API, so that no listener, queue or verifier
// outlives the test. Make the temp directories the config uses before
// calling start: cleanups run last registered first, so the config is gone
// before they are removed.
func start(t *testing.T, caddyfile string) *caddytest.Tester {
	t.Helper()
	tester := caddyAt.NewTester(t)
	caddyAt.Load(t, tester, caddyfile)
	return tester
}

// queueDir returns a fresh directory for one test's embedded queue.
func queueDir(t *testing.T) string { return testutil.QueueDir(t, baseDir) }

// response is what a test request got back.
type response struct {
	status int
	header http.Header
	body   string
}

// postHook POSTs body to path on the test server with the given headers.
// When chunked is set the body is sent without a Content-Length.
func postHook(t *testing.T, tester *caddytest.Tester, path string, header map[string]string, body []byte, chunked bool) response {
	t.Helper()
	var rd io.Reader = bytes.NewReader(body)
	if chunked {
		rd = io.MultiReader(rd) // hides the length from NewRequest
	}
	req, err := http.NewRequest(http.MethodPost, caddyAt.BaseURL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if chunked {
		req.ContentLength = -1 // unknown: the client sends it chunked
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := tester.Client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer to POST %s: %v", path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// expect checks a response against the contract: status, JSON content
// type and the exact body.
func (r response) expect(t *testing.T, status int, body string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status = %d, want %d (body %s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if r.body != body {
		t.Errorf("body =\n%s\nwant\n%s", r.body, body)
	}
}

// The contract's bodies.
const wantSuccess = `{"status":"success","message":"Your webhook event was received successfully","status_code":201}`

func wantEnvelope(title, status, detail string) string {
	return `{"errors":[{"title":"` + title + `","detail":"` + detail + `","status_code":"` + status + `"}]}`
}

func want401(detail string) string { return wantEnvelope("Unauthenticated", "401", detail) }
func want400(detail string) string { return wantEnvelope("Bad Request", "400", detail) }

// keySet holds the signing keys of the tests, generated once per process.
type keySet struct {
	rsa     *rsa.PrivateKey
	rsaOld  *rsa.PrivateKey // a second RSA key: "the wrong key"
	ec      *ecdsa.PrivateKey
	ed      ed25519.PrivateKey
	ed2     ed25519.PrivateKey
	ed2Pub  ed25519.PublicKey
	edPub   ed25519.PublicKey
	rsaPEM  []byte // the PKIX PEM of rsa's public key
	ecPEM   []byte
	edPEM   []byte
	keysErr error
}

var (
	testKeysOnce sync.Once
	testKeys     keySet
)

func signingKeys(t testing.TB) *keySet {
	t.Helper()
	testKeysOnce.Do(func() {
		k := &testKeys
		if k.rsa, k.keysErr = rsa.GenerateKey(rand.Reader, 2048); k.keysErr != nil {
			return
		}
		if k.rsaOld, k.keysErr = rsa.GenerateKey(rand.Reader, 2048); k.keysErr != nil {
			return
		}
		if k.ec, k.keysErr = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); k.keysErr != nil {
			return
		}
		if k.edPub, k.ed, k.keysErr = ed25519.GenerateKey(rand.Reader); k.keysErr != nil {
			return
		}
		if k.ed2Pub, k.ed2, k.keysErr = ed25519.GenerateKey(rand.Reader); k.keysErr != nil {
			return
		}
		for _, p := range []struct {
			pub any
			dst *[]byte
		}{{&k.rsa.PublicKey, &k.rsaPEM}, {&k.ec.PublicKey, &k.ecPEM}, {k.edPub, &k.edPEM}} {
			der, err := x509.MarshalPKIXPublicKey(p.pub)
			if err != nil {
				k.keysErr = err
				return
			}
			*p.dst = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		}
	})
	if testKeys.keysErr != nil {
		t.Fatal(testKeys.keysErr)
	}
	return &testKeys
}

// writeKeyFiles writes the public keys as PEM files into a temp dir and
// returns their paths. The names end in .pem: caddytest rewrites paths
// ending in .key or .crt.
func writeKeyFiles(t *testing.T, k *keySet) (rsaFile, ecFile, edFile string) {
	t.Helper()
	dir := t.TempDir()
	rsaFile, ecFile, edFile = filepath.Join(dir, "rsa.pem"), filepath.Join(dir, "ec.pem"), filepath.Join(dir, "ed.pem")
	for path, b := range map[string][]byte{rsaFile: k.rsaPEM, ecFile: k.ecPEM, edFile: k.edPEM} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return rsaFile, ecFile, edFile
}

// unsignedToken is an "alg: none" token.
func unsignedToken(c map[string]any) string {
	enc := base64.RawURLEncoding
	var b strings.Builder
	b.WriteString(enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)))
	b.WriteByte('.')
	parts := make([]string, 0, len(c))
	for k, v := range c {
		parts = append(parts, fmt.Sprintf("%q:%v", k, claimJSON(v)))
	}
	b.WriteString(enc.EncodeToString([]byte("{" + strings.Join(parts, ",") + "}")))
	b.WriteByte('.')
	return b.String()
}

func claimJSON(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}

// hookSink is where the routes that check ingress answers store what they
// accept, since hook_normalize answers no 201 by itself: an embedded queue
// in a per-test directory and a loopback receiver.
type hookSink struct {
	globals string // the hookrelay global option
	rc      *testutil.Receiver
}

// newSink makes the queue directory and the receiver; call it before
// start, so they outlive the config.
func newSink(t *testing.T) *hookSink {
	t.Helper()
	return &hookSink{
		globals: "\thookrelay {\n\t\tstorage embedded " + queueDir(t) + "\n\t}\n",
		rc:      testutil.NewReceiver(t, nil),
	}
}

// relay is a hook_relay directive that stores into the sink's queue for
// the receiver's path, "/<name>"; each route of a config needs its own
// name.
func (s *hookSink) relay(name string) string {
	return "\t\thook_relay {\n\t\t\ttopic shipments/tracking\n\t\t\tto " + s.rc.URL + "/" + name + " {\n" +
		"\t\t\t\tname " + name + "\n\t\t\t}\n\t\t}\n"
}
