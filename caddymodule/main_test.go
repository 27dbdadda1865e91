package caddymodule

import (
	"bytes"
	"context"
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
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestMain keeps the in-process Caddy of the integration tests out of the
// real data and config directories.
func TestMain(m *testing.M) { testutil.RunIsolated(m, nil, nil) }

// The in-process Caddy of the integration tests: caddytest's default admin
// port, HTTP on 9080 only, bound to the loopback interface.
const (
	ingressAdmin = "localhost:2999"
	ingressBase  = "http://127.0.0.1:9080"
)

// ingressGlobals are the global options every integration config starts
// with; extra is added inside the block.
func ingressGlobals(extra string) string {
	return `{
	admin ` + ingressAdmin + `
	http_port 9080
	https_port 9443
	grace_period 1s
	skip_install_trust
	auto_https off
	persist_config off
` + extra + `
}
`
}

// startIngressCaddy loads caddyfile into the in-process Caddy (starting it the
// first time) and, when the test ends, replaces it with an empty config so
// that no listener, engine or verifier outlives the test. Register temp
// directories the config uses before calling startIngressCaddy: cleanups run last
// registered first, so the config is gone before they are removed.
func startIngressCaddy(t *testing.T, caddyfile string) *caddytest.Tester {
	t.Helper()
	t.Cleanup(func() { unloadIngressCaddy(t) })
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{
		LoadRequestTimeout: 60 * time.Second,
		TestRequestTimeout: 60 * time.Second,
	})
	tester.InitServer(caddyfile, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return tester
}

// unloadIngressCaddy loads a config with nothing but the admin endpoint.
func unloadIngressCaddy(t *testing.T) {
	req, err := http.NewRequest(http.MethodPost, "http://"+ingressAdmin+"/load", strings.NewReader(ingressGlobals("")))
	if err != nil {
		t.Error(err)
		return
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Logf("unloading the test config: %v", err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Errorf("unloading the test config: %d %s", resp.StatusCode, b)
	}
}

// ingressQueueDir is a per-test directory for an embedded queue. It is removed
// after the config using it is unloaded; a removal error (the queue still
// flushing) does not fail the test.
func ingressQueueDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hookrelay-queue-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("removing %s: %v", dir, err)
		}
	})
	return dir
}

// ingressResponse is what a test request got back.
type ingressResponse struct {
	status int
	header http.Header
	body   string
}

// postIngress POSTs body to path on the test server with the given headers. When
// chunked is set the body is sent without a Content-Length.
func postIngress(t *testing.T, tester *caddytest.Tester, path string, header map[string]string, body []byte, chunked bool) ingressResponse {
	t.Helper()
	var rd io.Reader = bytes.NewReader(body)
	if chunked {
		rd = io.MultiReader(rd) // hides the length from NewRequest
	}
	req, err := http.NewRequest(http.MethodPost, ingressBase+path, rd)
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
	return ingressResponse{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// expect checks a response against the contract: status, JSON content
// type and the exact body.
func (r ingressResponse) expect(t *testing.T, status int, body string) {
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

// ingressKeySet holds the signing keys of the tests, generated once per process.
type ingressKeySet struct {
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
	ingressKeysOnce sync.Once
	ingressKeys     ingressKeySet
)

func ingressSigningKeys(t testing.TB) *ingressKeySet {
	t.Helper()
	ingressKeysOnce.Do(func() {
		k := &ingressKeys
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
	if ingressKeys.keysErr != nil {
		t.Fatal(ingressKeys.keysErr)
	}
	return &ingressKeys
}

// writeIngressKeyFiles writes the public keys as PEM files into a temp dir and
// returns their paths. The names end in .pem: caddytest rewrites paths
// ending in .key or .crt.
func writeIngressKeyFiles(t *testing.T, k *ingressKeySet) (rsaFile, ecFile, edFile string) {
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

// unsignedIngressToken is an "alg: none" token.
func unsignedIngressToken(c map[string]any) string {
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

// newIngressChain provisions hook_verify (HS256 with secret) and
// hook_normalize (ave_tracking, maxBody) with a real caddy.Context, as Caddy
// would, and returns the two as one handler, followed by one that answers
// the contract's 201 as hook_relay does once the events are stored.
func newIngressChain(tb testing.TB, secret string, maxBody int64) caddyhttp.Handler {
	tb.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	tb.Cleanup(cancel)
	v := &Verify{Secret: secret, Algorithms: []string{"HS256"}}
	if err := v.Provision(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := v.Validate(); err != nil {
		tb.Fatal(err)
	}
	n := &Normalize{Format: "ave_tracking", MaxBody: maxBody}
	if err := n.Provision(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := n.Validate(); err != nil {
		tb.Fatal(err)
	}
	// Refusals are logged at Debug: encode them, but into the void, so a
	// fuzzing run neither floods the output nor skips the logging code.
	quiet := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.DebugLevel))
	v.log, n.log = quiet, quiet
	end := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		writeSuccess(w)
		return nil
	})
	normalize := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return n.ServeHTTP(w, r, end)
	})
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return v.ServeHTTP(w, r, normalize)
	})
}

// withCaddyVars gives a request the per-request variables Caddy's server sets
// up, where hook_verify puts the claims.
func withCaddyVars(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{}))
}
