package dynamic

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testnet"
)

// errorTemplate is the error_response_template of the failure tests: the
// merchant's message when it gave one, else the relay's short reason.
const errorTemplate = `{"errors": [{
  "title": "merchant_error",
  "detail": {{ json (default .error .result.message) }},
  "status_code": "{{ .status }}"
}]}`

// hang answers nothing until the caller leaves (or the test ends).
func hang(t *testing.T) func(*http.Request, []byte) reply {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	return func(r *http.Request, _ []byte) reply {
		select {
		case <-r.Context().Done():
		case <-release:
		}
		return reply{}
	}
}

// TestMerchantFailures: what a merchant does wrong becomes the answer, at
// once and signed: a merchant that never answers is a 504 within its
// timeout, through the error template when there is one; a 5xx, a
// redirect, HTML, or JSON the template cannot render is a 502; a 4xx is
// its status, through the error template or as the merchant's JSON body;
// a template that loops only over some answers is stopped, a 502, never
// a hang.
func TestMerchantFailures(t *testing.T) {
	shop := fixedMerchant(t, workedAnswer)
	start(t, config{})
	url := shop.URL + "/tip"

	withErrors := workedRegistration(url)
	withErrors["event_name"] = "with_errors"
	withErrors["timeout"] = "300ms"
	withErrors["error_response_template"] = errorTemplate
	secret := kfc.register(t, withErrors, http.StatusCreated)

	bare := workedRegistration(url)
	bare["event_name"] = "bare"
	bare["timeout"] = "300ms"
	bareSecret := kfc.register(t, bare, http.StatusCreated)

	// A template that loops over the answer's items: the sample has one.
	loopy := workedRegistration(url)
	loopy["event_name"] = "loopy"
	loopy["error_response_template"] = errorTemplate
	loopy["response_data"] = `{"uuid":"u-1","tip":"1.20","items":[1]}`
	loopy["response_template"] = `{{ range .result.items }}{{ range $.result.items }}{{ range $.result.items }}` +
		`{{ range $.result.items }}{{ range $.result.items }}{{ end }}{{ end }}{{ end }}{{ end }}{{ end }}` + workedTemplate
	loopySecret := kfc.register(t, loopy, http.StatusCreated)

	items := strings.TrimSuffix(strings.Repeat("1,", 500), ",")
	cases := []struct {
		name   string
		event  string
		secret string
		answer func(*http.Request, []byte) reply
		status int
		// body is the exact answer expected; detail, a string the error
		// envelope's detail must hold (without an error template).
		body, detail string
		within       time.Duration
	}{
		{name: "a merchant that hangs", event: "with_errors", secret: secret, answer: hang(t),
			status: http.StatusGatewayTimeout, within: 1200 * time.Millisecond,
			body: `{"errors":[{"title":"merchant_error","detail":"timeout","status_code":"0"}]}`},
		{name: "a merchant that hangs, no error template", event: "bare", secret: bareSecret, answer: hang(t),
			status: http.StatusGatewayTimeout, within: 1200 * time.Millisecond, detail: "300ms"},
		{name: "a 503", event: "with_errors", secret: secret,
			answer: func(*http.Request, []byte) reply { return reply{status: 503, ctype: "text/plain", body: "down"} },
			status: http.StatusBadGateway,
			body:   `{"errors":[{"title":"merchant_error","detail":"HTTP 503 Service Unavailable","status_code":"503"}]}`},
		{name: "a 503, no error template", event: "bare", secret: bareSecret,
			answer: func(*http.Request, []byte) reply {
				return reply{status: 503, ctype: "application/json", body: `{"message":"down"}`}
			},
			status: http.StatusBadGateway, detail: "503"},
		{name: "a 422 with a message", event: "with_errors", secret: secret,
			answer: func(*http.Request, []byte) reply {
				return reply{status: 422, ctype: "application/json", body: `{"message":"tip too high"}`}
			},
			status: http.StatusUnprocessableEntity,
			body:   `{"errors":[{"title":"merchant_error","detail":"tip too high","status_code":"422"}]}`},
		{name: "a 422, no error template", event: "bare", secret: bareSecret,
			answer: func(*http.Request, []byte) reply {
				return reply{status: 422, ctype: "application/json", body: "{\"message\": \"tip too high\",\n \"code\": 7}"}
			},
			status: http.StatusUnprocessableEntity, body: `{"message":"tip too high","code":7}`},
		{name: "a 409 without JSON", event: "with_errors", secret: secret,
			answer: func(*http.Request, []byte) reply { return reply{status: 409, ctype: "text/plain", body: "conflict"} },
			status: http.StatusConflict,
			body:   `{"errors":[{"title":"merchant_error","detail":"HTTP 409 Conflict","status_code":"409"}]}`},
		{name: "an HTML page", event: "with_errors", secret: secret,
			answer: func(*http.Request, []byte) reply {
				return reply{status: 200, ctype: "text/html", body: "<html><body>Checkout</body></html>"}
			},
			status: http.StatusBadGateway,
			body:   `{"errors":[{"title":"merchant_error","detail":"invalid JSON reply","status_code":"200"}]}`},
		{name: "an HTML page, no error template", event: "bare", secret: bareSecret,
			answer: func(*http.Request, []byte) reply {
				return reply{status: 200, ctype: "text/html", body: "<html><body>Checkout</body></html>"}
			},
			status: http.StatusBadGateway, detail: "not JSON"},
		{name: "an answer without the tip", event: "with_errors", secret: secret,
			answer: func(*http.Request, []byte) reply { return jsonReply(`{"uuid":"u-1"}`) },
			status: http.StatusBadGateway,
			body:   `{"errors":[{"title":"merchant_error","detail":"reply does not fit the response template","status_code":"200"}]}`},
		{name: "an answer that is not an object", event: "bare", secret: bareSecret,
			answer: func(*http.Request, []byte) reply { return jsonReply(`["u-1","1.20"]`) },
			status: http.StatusBadGateway, detail: "transformed"},
		{name: "a tip that is not a number", event: "bare", secret: bareSecret,
			answer: func(*http.Request, []byte) reply { return jsonReply(`{"uuid":"u-1","tip":"mucho"}`) },
			status: http.StatusBadGateway, detail: "transformed"},
		{name: "a redirect", event: "bare", secret: bareSecret,
			answer: func(r *http.Request, _ []byte) reply {
				if r.URL.Path == "/elsewhere" {
					return jsonReply(workedAnswer)
				}
				return reply{status: http.StatusFound, ctype: "text/plain", body: "moved", location: "/elsewhere"}
			},
			status: http.StatusBadGateway, detail: "302"},
		{name: "an answer the template loops over", event: "loopy", secret: loopySecret,
			answer: func(*http.Request, []byte) reply {
				return jsonReply(`{"uuid":"u-1","tip":"1.20","items":[` + items + `]}`)
			},
			status: http.StatusBadGateway, within: 2 * time.Second,
			body: `{"errors":[{"title":"merchant_error","detail":"reply does not fit the response template","status_code":"200"}]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			shop.setAnswer(c.answer)
			before := shop.Count()
			a := kfc.execute(t, c.event, workedOrder)
			if a.status != c.status {
				t.Errorf("answered %s, want %d", a, c.status)
			}
			if c.within > 0 && a.took > c.within {
				t.Errorf("answered after %v, want within %v", a.took, c.within)
			}
			switch {
			case c.body != "":
				if string(a.body) != c.body {
					t.Errorf("answered %s, want %s", a.body, c.body)
				}
			default:
				refused(t, a, c.status, "", c.detail)
			}
			if err := verify(t, c.secret, a.body, a.header); err != nil {
				t.Errorf("the answer is not signed with the webhook's secret: %v", err)
			}
			if n := shop.Count() - before; n != 1 {
				t.Errorf("the merchant got %d calls, want 1", n)
			}
		})
	}

	// The merchant, answering again, is executed as before.
	shop.setAnswer(func(*http.Request, []byte) reply { return jsonReply(workedAnswer) })
	if got := kfc.mustExecute(t, "with_errors", secret, workedOrder); string(got) != workedResult {
		t.Errorf("after the failures, execute answered %s", got)
	}
}

// TestSSRFAtExecution: a webhook registered while 127.0.0.0/8 was allowed
// is refused at the connection once a reload no longer allows it: execute
// answers 502, and the merchant accepts no connection. So is a url whose
// name resolved to a public address when it was registered and resolves
// to loopback, link-local or private when it is executed.
func TestSSRFAtExecution(t *testing.T) {
	ln, err := testnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	trap := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, workedAnswer)
	}))
	trap.Listener.Close()
	trap.Listener = ln
	trap.StartTLS()
	t.Cleanup(trap.Close)

	dir := queueDir(t)
	start(t, config{storage: "embedded " + dir})
	reg := workedRegistration(trap.URL + "/tip")
	reg["error_response_template"] = errorTemplate
	secret := kfc.register(t, reg, http.StatusCreated)

	start(t, config{storage: "embedded " + dir, webhooks: []string{trustedCA(t)}})
	for range 2 {
		a := kfc.execute(t, "set_tip", workedOrder)
		if a.status != http.StatusBadGateway {
			t.Errorf("execute answered %s, want 502", a)
		}
		if want := `{"errors":[{"title":"merchant_error","detail":"unreachable","status_code":"0"}]}`; string(a.body) != want {
			t.Errorf("execute answered %s, want %s", a.body, want)
		}
		if err := verify(t, secret, a.body, a.header); err != nil {
			t.Errorf("the refusal is not signed: %v", err)
		}
	}
	// Registering it again is refused too.
	refused(t, kfc.call(t, http.MethodPost, "", reg), http.StatusUnprocessableEntity, "/url")

	// Names are resolved at every call: a name that resolves to a public
	// address when registered and to an internal one when executed is
	// refused at the connection.
	dns := testnet.NewDNS(t)
	port := ln.Addr().(*net.TCPAddr).Port
	start(t, config{storage: "embedded " + dir, webhooks: []string{trustedCA(t), "resolver " + dns.Addr()}})
	for name, addr := range map[string]string{"loop.test": "127.0.0.1", "metadata.test": "169.254.169.254", "private.test": "10.0.0.1"} {
		dns.Set(name, "93.184.216.34")
		named := workedRegistration(fmt.Sprintf("https://%s:%d/tip", name, port))
		named["event_name"] = strings.TrimSuffix(name, ".test")
		named["timeout"] = "2s"
		named["error_response_template"] = errorTemplate
		kfc.register(t, named, http.StatusCreated)
		dns.Set(name, addr)
		if a := kfc.execute(t, named["event_name"].(string), workedOrder); a.status != http.StatusBadGateway {
			t.Errorf("%s resolving to %s: execute answered %s, want 502", name, addr, a)
		}
	}
	ln.AssertNoConnection(t)
}

// TestBadExecuteBodies: an execute body that is not a JSON object, has no
// order object or is over 1 MiB is refused in the contract's envelope,
// and the merchant is not called.
func TestBadExecuteBodies(t *testing.T) {
	shop := fixedMerchant(t, workedAnswer)
	start(t, config{})
	kfc.register(t, workedRegistration(shop.URL+"/tip"), http.StatusCreated)

	for _, c := range []struct {
		name, body, pointer string
		status              int
	}{
		{"empty", "", "", http.StatusBadRequest},
		{"not JSON", `{"order": {"order_id": "A1",`, "", http.StatusBadRequest},
		{"two values", `{"order":{}} {"order":{}}`, "", http.StatusBadRequest},
		{"an array", `[]`, "", http.StatusBadRequest},
		{"a string", `"order"`, "", http.StatusBadRequest},
		{"no order", `{}`, "/order", http.StatusUnprocessableEntity},
		{"an order that is a string", `{"order":"x"}`, "/order", http.StatusUnprocessableEntity},
		{"an order that is null", `{"order":null}`, "/order", http.StatusUnprocessableEntity},
		{"an order that is an array", `{"order":[{"order_id":"A1"}]}`, "/order", http.StatusUnprocessableEntity},
		{"custom_fields that are not an object", `{"order":{"order_id":"A1","custom_fields":"x"}}`, "/order/custom_fields", http.StatusUnprocessableEntity},
	} {
		t.Run(c.name, func(t *testing.T) {
			refused(t, kfc.execute(t, "set_tip", []byte(c.body)), c.status, c.pointer)
		})
	}

	big := bigOrder(1<<20 + 1)
	t.Run("over 1 MiB", func(t *testing.T) {
		refused(t, kfc.execute(t, "set_tip", big), http.StatusRequestEntityTooLarge, "")
	})
	t.Run("over 1 MiB, chunked", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, baseURL+kfc.webhooks()+"/set_tip/execute", io.MultiReader(bytes.NewReader(big)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header["merchant_token"] = []string{kfc.token}
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		refused(t, answer{status: resp.StatusCode, body: body}, http.StatusRequestEntityTooLarge, "")
	})
	if n := shop.Count(); n != 0 {
		t.Errorf("the merchant got %d calls, want none", n)
	}
}

// bigOrder returns an execute body of at least size bytes.
func bigOrder(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"order":{"order_id":"BIG","total":"10.10","custom_fields":{},"items":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"SKU-%06d","name":"Combo familiar %d con papas y bebida","qty":1,"price":"12.50"}`, i, i)
	}
	b.WriteString(`]}}`)
	return b.Bytes()
}
