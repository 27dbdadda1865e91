package ingress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
	"github.com/hookrelay/hookrelay/relay/event"
)

const (
	hubSecret = "integration-test-hmac-secret-0123456789"
	hubIssuer = "https://hub.aveonline.example"
)

// hooksConfig has three ingress routes, after the global options
// globals(options) and an embedded queue; each route ends with a
// hook_relay that stores what it accepts into that queue for a loopback
// receiver:
//
//   - /hooks/hs: HS256 with a secret from the environment, a required
//     issuer and audience, the issuer claim copied into a response header,
//     and a 4 KiB body limit;
//   - /hooks/bearer: HS256 that also takes "Authorization: Bearer", which
//     later handlers must not see once verified;
//   - /hooks/keys: PEM public keys (RSA with kid rsa-1, EC P-256 with kid
//     ec-1, Ed25519 without kid) and the default algorithm list.
func hooksConfig(t *testing.T, options, rsaFile, ecFile, edFile string) string {
	sink := newSink(t)
	return globals(options, sink.globals) + "\n" + siteAddress + ` {
	bind 127.0.0.1
	route /hooks/hs {
		hook_verify {
			secret {env.HOOKRELAY_TEST_HMAC}
			algorithms HS256
			issuer ` + hubIssuer + `
			audience hookrelay
		}
		header X-Hook-Issuer {http.vars.hook.claims.iss}
		header X-Token-Seen "{http.request.header.Ave-Hub-signature}"
		hook_normalize ave_tracking {
			max_body 4KiB
		}
` + sink.relay("ingress_hs") + `	}
	route /hooks/bearer {
		hook_verify {
			secret {env.HOOKRELAY_TEST_HMAC}
			algorithms HS256
			allow_bearer
		}
		header X-Auth-Seen "{http.request.header.Authorization}"
		hook_normalize ave_tracking
` + sink.relay("ingress_bearer") + `	}
	route /hooks/keys {
		hook_verify {
			public_key ` + rsaFile + ` rsa-1
			public_key ` + ecFile + ` ec-1
			public_key ` + edFile + `
		}
		hook_normalize ave_tracking
` + sink.relay("ingress_keys") + `	}
}
`
}

// TestIngressResponses sends a real HTTP request for every row of the
// contract's response table (CONTRACT.md, section 1) except 503 (see
// TestIngressQueueUnavailable) and checks status, Content-Type and the exact
// body.
func TestIngressResponses(t *testing.T) {
	t.Setenv("HOOKRELAY_TEST_HMAC", hubSecret)
	k := signingKeys(t)
	rsaFile, ecFile, edFile := writeKeyFiles(t, k)
	tester := start(t, hooksConfig(t, "", rsaFile, ecFile, edFile))

	now := time.Now()
	hub := map[string]any{"iss": hubIssuer, "aud": "hookrelay"}
	hubWith := func(extra map[string]any) map[string]any {
		c := testutil.Claims(hub)
		for k, v := range extra {
			if v == nil {
				delete(c, k)
				continue
			}
			c[k] = v
		}
		return c
	}
	hs := func(c map[string]any) string { return testutil.Sign(t, "HS256", []byte(hubSecret), c, "") }
	good := hs(testutil.Claims(hub))
	payload := testutil.AvePayload("guia-1")
	sig := func(tok string) map[string]string { return map[string]string{"Ave-Hub-signature": tok} }
	other := hs(hubWith(map[string]any{"sub": "someone"}))
	firstDot := strings.IndexByte(good, '.')
	lastDot := strings.LastIndexByte(good, '.')

	invalid422 := `{"tipo":"xml","body":[` +
		`{"cod_estado":4,"nombre_estado":"EN ENTREGA","fecha_estado":"2022/12/11 11:04","tipo_guia_reeemplazo":"X","ruta_digitalizada":"no es una url"},` +
		`"guia",` + testutil.AveGuide("guia-3") + `]}`
	want422 := `{"errors":[` +
		`{"title":"Unprocessable Content","detail":"El campo tipo debe ser json","status_code":"422","source":{"pointer":"/tipo"}},` +
		`{"title":"Unprocessable Content","detail":"El campo id_envio es obligatorio","status_code":"422","source":{"pointer":"/body/0/id_envio"}},` +
		`{"title":"Unprocessable Content","detail":"El campo fecha_estado debe tener el formato AAAA-MM-DD HH:MM:ss","status_code":"422","source":{"pointer":"/body/0/fecha_estado"}},` +
		`{"title":"Unprocessable Content","detail":"El campo tipo_guia_reeemplazo debe ser DEV, REEMP o CONT","status_code":"422","source":{"pointer":"/body/0/tipo_guia_reeemplazo"}},` +
		`{"title":"Unprocessable Content","detail":"El campo ruta_digitalizada debe ser una URL válida","status_code":"422","source":{"pointer":"/body/0/ruta_digitalizada"}},` +
		`{"title":"Unprocessable Content","detail":"El elemento body/1 debe ser un objeto","status_code":"422","source":{"pointer":"/body/1"}}` +
		`]}`

	tests := []struct {
		name   string
		path   string
		header map[string]string
		body   []byte
		status int
		want   string
	}{
		// 201: accepted and stored.
		{"201 HS256", "/hooks/hs", sig(good), payload, 201, wantSuccess},
		{"201 several guides", "/hooks/hs", sig(good), testutil.AvePayload("guia-1", "guia-2", "guia-3"), 201, wantSuccess},
		{"201 bearer", "/hooks/bearer", map[string]string{"Authorization": "Bearer " + good}, payload, 201, wantSuccess},
		{"201 bearer lower case", "/hooks/bearer", map[string]string{"Authorization": "bearer " + good}, payload, 201, wantSuccess},
		{"201 header first", "/hooks/bearer", map[string]string{"Ave-Hub-signature": good, "Authorization": "Bearer not-a-token"}, payload, 201, wantSuccess},
		{"201 RS256 with kid", "/hooks/keys", sig(testutil.Sign(t, "RS256", k.rsa, testutil.Claims(nil), "rsa-1")), payload, 201, wantSuccess},
		{"201 PS256 with kid", "/hooks/keys", sig(testutil.Sign(t, "PS256", k.rsa, testutil.Claims(nil), "rsa-1")), payload, 201, wantSuccess},
		{"201 ES256 with kid", "/hooks/keys", sig(testutil.Sign(t, "ES256", k.ec, testutil.Claims(nil), "ec-1")), payload, 201, wantSuccess},
		{"201 ES256 without kid", "/hooks/keys", sig(testutil.Sign(t, "ES256", k.ec, testutil.Claims(nil), "")), payload, 201, wantSuccess},
		{"201 EdDSA", "/hooks/keys", sig(testutil.Sign(t, "EdDSA", k.ed, testutil.Claims(nil), "")), payload, 201, wantSuccess},

		// 401: the signature header is missing or the token is refused.
		{"401 missing header", "/hooks/hs", nil, payload, 401, want401("The signature header is missing.")},
		{"401 empty header", "/hooks/hs", sig(""), payload, 401, want401("The signature header is missing.")},
		{"401 token in Authorization only", "/hooks/hs", map[string]string{"Authorization": "Bearer " + good}, payload, 401, want401("The signature header is missing.")},
		{"401 bearer with another scheme", "/hooks/bearer", map[string]string{"Authorization": "Basic " + good}, payload, 401, want401("The signature header is missing.")},
		{"401 bearer invalid signature", "/hooks/bearer", map[string]string{"Authorization": "Bearer " + testutil.Sign(t, "HS256", []byte("not-the-hub-secret"), testutil.Claims(nil), "")}, payload, 401, want401("The signature is invalid.")},
		{"400 bearer malformed", "/hooks/bearer", map[string]string{"Authorization": "Bearer " + good[:lastDot]}, payload, 400, want400(wantMalformed)},
		{"401 invalid signature", "/hooks/hs", sig(testutil.Sign(t, "HS256", []byte("not-the-hub-secret"), testutil.Claims(hub), "")), payload, 401, want401("The signature is invalid.")},
		{"401 signature of another token", "/hooks/hs", sig(good[:lastDot] + other[strings.LastIndexByte(other, '.'):]), payload, 401, want401("The signature is invalid.")},
		{"401 expired", "/hooks/hs", sig(hs(hubWith(map[string]any{"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()}))), payload, 401, want401("The token has expired.")},
		{"401 not yet valid", "/hooks/hs", sig(hs(hubWith(map[string]any{"nbf": now.Add(time.Hour).Unix()}))), payload, 401, want401("The token is not valid yet.")},
		{"401 wrong issuer", "/hooks/hs", sig(hs(hubWith(map[string]any{"iss": "https://evil.example"}))), payload, 401, want401("The token issuer is not accepted.")},
		{"401 missing issuer", "/hooks/hs", sig(hs(hubWith(map[string]any{"iss": nil}))), payload, 401, want401("The token issuer is not accepted.")},
		{"401 wrong audience", "/hooks/hs", sig(hs(hubWith(map[string]any{"aud": "someone-else"}))), payload, 401, want401("The token audience is not accepted.")},
		{"401 missing audience", "/hooks/hs", sig(hs(hubWith(map[string]any{"aud": nil}))), payload, 401, want401("The token audience is not accepted.")},
		{"401 algorithm not allowed HS384", "/hooks/hs", sig(testutil.Sign(t, "HS384", []byte(hubSecret), testutil.Claims(hub), "")), payload, 401, want401("The token algorithm is not allowed.")},
		{"401 algorithm not allowed RS256", "/hooks/hs", sig(testutil.Sign(t, "RS256", k.rsa, testutil.Claims(hub), "rsa-1")), payload, 401, want401("The token algorithm is not allowed.")},
		{"401 alg none", "/hooks/hs", sig(unsignedToken(testutil.Claims(hub))), payload, 401, want401("The token algorithm is not allowed.")},
		{"401 alg none with keys", "/hooks/keys", sig(unsignedToken(testutil.Claims(nil))), payload, 401, want401("The token algorithm is not allowed.")},
		{"401 HS256 with the RSA public key as secret", "/hooks/keys", sig(testutil.Sign(t, "HS256", k.rsaPEM, testutil.Claims(nil), "rsa-1")), payload, 401, want401("The token algorithm is not allowed.")},
		{"401 wrong RSA key", "/hooks/keys", sig(testutil.Sign(t, "RS256", k.rsaOld, testutil.Claims(nil), "rsa-1")), payload, 401, want401("The signature is invalid.")},
		{"401 wrong Ed25519 key", "/hooks/keys", sig(testutil.Sign(t, "EdDSA", k.ed2, testutil.Claims(nil), "")), payload, 401, want401("The signature is invalid.")},
		{"401 RSA kid on an EC token", "/hooks/keys", sig(testutil.Sign(t, "ES256", k.ec, testutil.Claims(nil), "rsa-1")), payload, 401, want401("The signature is invalid.")},
		{"401 expired RS256", "/hooks/keys", sig(testutil.Sign(t, "RS256", k.rsa, testutil.Claims(map[string]any{"exp": now.Add(-time.Minute).Unix()}), "rsa-1")), payload, 401, want401("The token has expired.")},

		// 400: the header is not a well-formed JWT.
		{"400 truncated token", "/hooks/hs", sig(good[:firstDot+10]), payload, 400, want400(wantMalformed)},
		{"400 two segments", "/hooks/hs", sig(good[:lastDot]), payload, 400, want400(wantMalformed)},
		{"400 non-base64url characters", "/hooks/hs", sig(strings.Replace(good, ".", ".+/", 1)), payload, 400, want400(wantMalformed)},
		{"400 padded base64", "/hooks/hs", sig(good[:firstDot] + "=" + good[firstDot:]), payload, 400, want400(wantMalformed)},
		{"400 not a JWT", "/hooks/hs", sig("hello"), payload, 400, want400(wantMalformed)},
		{"400 four segments", "/hooks/hs", sig(good + ".e30"), payload, 400, want400(wantMalformed)},

		// 400: the body is not JSON, or not an object.
		{"400 body not JSON", "/hooks/hs", sig(good), []byte(`{"tipo":"json","body":[`), 400, want400("The request body is not valid JSON: unexpected end of JSON input (at byte 23).")},
		{"400 body is a form", "/hooks/hs", sig(good), []byte(`tipo=json`), 400, want400("The request body is not valid JSON: invalid character 'i' in literal true (expecting 'r') (at byte 2).")},
		{"400 body with trailing data", "/hooks/hs", sig(good), append(append([]byte(nil), payload...), []byte(` {}`)...), 400, want400(fmt.Sprintf("The request body must hold a single JSON object, but more data follows it at byte %d.", len(payload)+1))},
		{"400 body is an array", "/hooks/hs", sig(good), []byte(`[` + string(payload) + `]`), 400, want400("The request body must be a JSON object, not an array.")},
		{"400 body is a string", "/hooks/hs", sig(good), []byte(`"json"`), 400, want400("The request body must be a JSON object, not a string.")},
		{"400 body is null", "/hooks/hs", sig(good), []byte(`null`), 400, want400("The request body must be a JSON object, not null.")},
		{"400 empty body", "/hooks/hs", sig(good), nil, 400, want400("The request body is empty.")},

		// 422: validation, one entry per problem, Spanish details and pointers.
		{"422 several problems", "/hooks/hs", sig(good), []byte(invalid422), 422, want422},
		{"422 body not an array", "/hooks/hs", sig(good), []byte(`{"tipo":"json","body":{"id_envio":"1"}}`), 422,
			`{"errors":[{"title":"Unprocessable Content","detail":"El campo body debe ser un arreglo","status_code":"422","source":{"pointer":"/body"}}]}`},
		{"422 missing tipo and body", "/hooks/keys", sig(testutil.Sign(t, "EdDSA", k.ed, testutil.Claims(nil), "")), []byte(`{}`), 422,
			`{"errors":[{"title":"Unprocessable Content","detail":"El campo tipo es obligatorio","status_code":"422","source":{"pointer":"/tipo"}},` +
				`{"title":"Unprocessable Content","detail":"El campo body es obligatorio","status_code":"422","source":{"pointer":"/body"}}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := postHook(t, tester, tc.path, tc.header, tc.body, false)
			resp.expect(t, tc.status, tc.want)
			if _, sig := tc.header["Ave-Hub-signature"]; tc.path == "/hooks/bearer" && tc.status == 201 {
				// A bearer token is a credential too: once it is
				// verified, later handlers do not get it. An
				// Authorization header that was not the credential
				// is left alone.
				want := ""
				if sig {
					want = tc.header["Authorization"]
				}
				if seen := resp.header.Get("X-Auth-Seen"); seen != want {
					t.Errorf("after hook_verify, Authorization = %q, want %q", seen, want)
				}
			}
			if tc.path != "/hooks/hs" {
				return
			}
			// The claims are placeholders once verified: the route
			// copies {http.vars.hook.claims.iss} into a header, which a
			// refused token never reaches.
			verified := tc.status != 401 && tc.want != want400(wantMalformed)
			got, has := resp.header["X-Hook-Issuer"]
			switch {
			case !verified && has:
				t.Errorf("X-Hook-Issuer = %q on a refused token", got)
			case verified && (len(got) != 1 || got[0] != hubIssuer):
				t.Errorf("X-Hook-Issuer = %q, want %q", got, hubIssuer)
			}
			// The verified token is not passed on to later handlers.
			if seen := resp.header.Get("X-Token-Seen"); seen != "" {
				t.Errorf("a handler after hook_verify saw the token header %q", seen)
			}
		})
	}
}

// wantMalformed is the contract's detail for a header that is not a JWT.
const wantMalformed = "Error while decoding from Base64Url, invalid base64 characters detected"

// TestIngressBodyTooLarge checks 413 both for a body announced by its
// Content-Length and for a chunked one, and that a body of exactly the limit
// passes.
func TestIngressBodyTooLarge(t *testing.T) {
	t.Setenv("HOOKRELAY_TEST_HMAC", hubSecret)
	k := signingKeys(t)
	rsaFile, ecFile, edFile := writeKeyFiles(t, k)
	tester := start(t, hooksConfig(t, "", rsaFile, ecFile, edFile))
	header := map[string]string{"Ave-Hub-signature": testutil.Sign(t, "HS256", []byte(hubSecret), testutil.Claims(map[string]any{"iss": hubIssuer, "aud": "hookrelay"}), "")}

	const limit = 4096
	payload := testutil.AvePayload("guia-1")
	pad := func(n int) []byte { // a valid payload of exactly n bytes
		return append(append([]byte(nil), payload...), bytes.Repeat([]byte(" "), n-len(payload))...)
	}
	want413 := wantEnvelope("Payload Too Large", "413", "The request body is larger than the limit of 4096 bytes.")

	for _, chunked := range []bool{false, true} {
		mode := "Content-Length"
		if chunked {
			mode = "chunked"
		}
		t.Run(mode, func(t *testing.T) {
			postHook(t, tester, "/hooks/hs", header, pad(limit), chunked).expect(t, 201, wantSuccess)
			postHook(t, tester, "/hooks/hs", header, pad(limit+1), chunked).expect(t, 413, want413)
			postHook(t, tester, "/hooks/hs", header, pad(64<<10), chunked).expect(t, 413, want413)
			// The connection survives or is replaced: the next request works.
			postHook(t, tester, "/hooks/hs", header, payload, chunked).expect(t, 201, wantSuccess)
		})
	}
}

// TestIngressRelayDelivers runs the whole route, hook_relay included, with
// an embedded queue in a temp dir: the sender gets 201 and a loopback
// receiver gets each guide as a normalized event.
func TestIngressRelayDelivers(t *testing.T) {
	t.Setenv("HOOKRELAY_TEST_HMAC", hubSecret)
	rc := testutil.NewReceiver(t, nil)
	dir := queueDir(t)
	tester := start(t, globals(`
	hookrelay {
		storage embedded `+dir+`
	}`)+"\n"+siteAddress+` {
	bind 127.0.0.1
	route /hooks/relay {
		hook_verify {
			secret {env.HOOKRELAY_TEST_HMAC}
			algorithms HS256
		}
		hook_normalize ave_tracking
		hook_relay {
			topic shipments/tracking
			to `+rc.URL+`/tracking {
				name receiver
				header X-Source aveonline
			}
		}
	}
}
`)
	header := map[string]string{"Ave-Hub-signature": testutil.Sign(t, "HS256", []byte(hubSecret), testutil.Claims(nil), "")}
	postHook(t, tester, "/hooks/relay", header, testutil.AvePayload("guia-1", "guia-2"), false).expect(t, 201, wantSuccess)

	testutil.WaitFor(t, 60*time.Second, "two deliveries", func() bool { return rc.Count() >= 2 })
	// Each delivery's webhook-id is the id derived from its whole
	// normalized data.
	byShipment := map[string]testutil.Received{}
	for _, got := range rc.Got() {
		var ev struct {
			Data json.RawMessage `json:"data"`
		}
		var data struct {
			ShipmentID string `json:"shipment_id"`
		}
		if json.Unmarshal(got.Body, &ev) != nil || json.Unmarshal(ev.Data, &data) != nil {
			t.Fatalf("delivery body %s", got.Body)
		}
		want, err := event.IDFromData("aveonline", ev.Data)
		if err != nil || got.Header.Get("webhook-id") != want {
			t.Errorf("%s: webhook-id %s, want %s (%v)", data.ShipmentID, got.Header.Get("webhook-id"), want, err)
		}
		byShipment[data.ShipmentID] = got
	}
	for _, shipment := range []string{"guia-1", "guia-2"} {
		got, ok := byShipment[shipment]
		if !ok {
			t.Errorf("no delivery for %s; got %d deliveries", shipment, len(rc.Got()))
			continue
		}
		if got.Method != http.MethodPost || got.Path != "/tracking" {
			t.Errorf("%s: %s %s, want POST /tracking", shipment, got.Method, got.Path)
		}
		if ct := got.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", shipment, ct)
		}
		if src := got.Header.Get("X-Source"); src != "aveonline" {
			t.Errorf("%s: X-Source %q", shipment, src)
		}
		var ev struct {
			ID         string          `json:"id"`
			Topic      string          `json:"topic"`
			Source     string          `json:"source"`
			ReceivedAt time.Time       `json:"received_at"`
			Data       json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(got.Body, &ev); err != nil {
			t.Fatalf("%s: delivered body is not an event: %v\n%s", shipment, err, got.Body)
		}
		if ev.ID != got.Header.Get("webhook-id") || ev.Topic != "shipments/tracking" || ev.Source != "aveonline" || ev.ReceivedAt.IsZero() {
			t.Errorf("%s: event envelope = %+v", shipment, ev)
		}
		var data bytes.Buffer
		if err := json.Compact(&data, ev.Data); err != nil {
			t.Fatal(err)
		}
		want := `{"shipment_id":"` + shipment + `",` +
			`"status":{"code":"4","name":"EN ENTREGA","at":"2022-12-11T11:04:43-05:00"},` +
			`"incident":{"code":"NOVEDAD","name":"DIRECCION ERRONEA","at":"2022-12-11T11:31:00-05:00","state":"EJECUTADA"},` +
			`"replacement":{"tracking_number":"123-444-222","kind":"return"},` +
			`"document_url":"https://laruta.com/docs/1.pdf",` +
			`"notes":"no se encuentra la dirección"}`
		if data.String() != want {
			t.Errorf("%s: data =\n%s\nwant\n%s", shipment, data.String(), want)
		}
	}

	// A refused request stores nothing and still answers in the envelope.
	postHook(t, tester, "/hooks/relay", nil, testutil.AvePayload("guia-9"), false).
		expect(t, 401, want401("The signature header is missing."))
	postHook(t, tester, "/hooks/relay", header, []byte(`{"tipo":"json","body":[]}`), false).
		expect(t, 422, `{"errors":[{"title":"Unprocessable Content","detail":"El campo body debe tener al menos un elemento","status_code":"422","source":{"pointer":"/body"}}]}`)
}

// TestIngressQueueUnavailable gets the contract's 503 for real: the queue is
// a NATS cluster at an address where nothing listens, so nothing can be
// stored and the sender is told to retry.
func TestIngressQueueUnavailable(t *testing.T) {
	t.Setenv("HOOKRELAY_TEST_HMAC", hubSecret)
	rc := testutil.NewReceiver(t, nil)
	natsURL := "nats://" + testutil.ClosedPort(t).Addr
	tester := start(t, globals(`
	hookrelay {
		storage nats `+natsURL+`
	}`)+"\n"+siteAddress+` {
	bind 127.0.0.1
	route /hooks/relay {
		hook_verify {
			secret {env.HOOKRELAY_TEST_HMAC}
			algorithms HS256
		}
		hook_normalize ave_tracking
		hook_relay {
			topic shipments/tracking
			to `+rc.URL+`/tracking
		}
	}
}
`)
	header := map[string]string{"Ave-Hub-signature": testutil.Sign(t, "HS256", []byte(hubSecret), testutil.Claims(nil), "")}
	resp := postHook(t, tester, "/hooks/relay", header, testutil.AvePayload("guia-1"), false)
	resp.expect(t, 503, wantEnvelope("Service Unavailable", "503", "The event could not be stored. Please retry later."))
	if ra := resp.header.Get("Retry-After"); ra == "" {
		t.Error("a 503 without Retry-After")
	}
	// Verification and validation still answer before the queue is asked.
	postHook(t, tester, "/hooks/relay", nil, testutil.AvePayload("guia-1"), false).
		expect(t, 401, want401("The signature header is missing."))
	if n := rc.Count(); n != 0 {
		t.Errorf("the receiver got %d deliveries from a queue that is down", n)
	}
}

// TestIngressStalledBodyIsCut: a sender that stops sending its body within
// the server's read_body timeout (the default Caddyfile sets one) gets the
// contract's 400 instead of holding its handler, and nothing is accepted.
func TestIngressStalledBodyIsCut(t *testing.T) {
	t.Setenv("HOOKRELAY_TEST_HMAC", hubSecret)
	rsaFile, ecFile, edFile := writeKeyFiles(t, signingKeys(t))
	start(t, hooksConfig(t, `	servers {
		timeouts {
			read_body 300ms
		}
	}`, rsaFile, ecFile, edFile))
	token := testutil.Sign(t, "HS256", []byte(hubSecret), testutil.Claims(map[string]any{"iss": hubIssuer, "aud": "hookrelay"}), "")
	payload := testutil.AvePayload("guia-stalled")

	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A generous bound: it only catches a handler that never answers.
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /hooks/hs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"+
		"Ave-Hub-signature: %s\r\nContent-Length: %d\r\n\r\n", token, len(payload))
	if _, err := conn.Write(payload[:len(payload)/2]); err != nil {
		t.Fatal(err)
	}
	// ... and the rest never comes.
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || string(body) != want400("The request body could not be read.") {
		t.Fatalf("stalled body: %d %s", resp.StatusCode, body)
	}
}
