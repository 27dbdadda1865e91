package call

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// Secrets of the call tests: answers are signed with responseWhsec, the
// forwarded requests with destWhsec.
const (
	responseWhsec = "whsec_c3luYy10ZXN0LXJlc3BvbnNlLWtleS0wMTIzNDU2Nzg5"
	destWhsec     = "whsec_c3luYy10ZXN0LWRlc3RpbmF0aW9uLWtleS0wMTIzNA=="
)

// tipExample returns the absolute path of a file of examples/deuna-tip:
// the tests run the committed example's templates and samples.
func tipExample(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "examples", "deuna-tip", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// merchantReply is what the merchant stub answers on /tip.
const merchantReply = `{"uuid":"u-123","business_id":"biz-7","status":"TIP_APPLIED","amounts":{"subtotal":48000,"tip":5000,"total":53000},"internal_ref":"tx-1"}`

// merchant is a loopback destination with a route per behaviour.
func merchant(t testing.TB) *testutil.Receiver {
	json := http.Header{"Content-Type": {"application/json"}}
	return testutil.NewReceiver(t, func(_ int, r *http.Request, _ []byte) (int, http.Header, []byte) {
		switch r.URL.Path {
		case "/tip":
			return http.StatusOK, json, []byte(merchantReply)
		case "/reject":
			return http.StatusUnprocessableEntity, json, []byte(`{"code":"TIP_TOO_HIGH","message":"The tip cannot exceed 20% of the subtotal."}`)
		case "/boom":
			return http.StatusServiceUnavailable, json, []byte(`{"message":"maintenance"}`)
		case "/html":
			return http.StatusOK, http.Header{"Content-Type": {"text/html"}}, []byte(`<html>ok</html>`)
		case "/slow":
			// Hold the answer until the relay gives up and hangs up.
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return http.StatusOK, json, []byte(`{}`)
		}
		return http.StatusNotFound, nil, nil
	})
}

// The caller of the call routes: hook_call runs only for a caller that
// a handler before it authenticated, here basic_auth.
const (
	callerUser     = "deuna"
	callerPassword = "deuna-checkout-test-password"
	// callerHash is callerPassword's bcrypt hash, of the lowest cost so
	// that the tests stay fast.
	callerHash = "$2a$04$mLL5yDR7ATWyVLOCZJrHJ.6pYH2Bd.p1iCTFVHtTP/g6n5iAXdeSS"
)

// basicAuth is a basic_auth directive that lets callerUser in.
const basicAuth = "\t\tbasic_auth {\n\t\t\t" + callerUser + " " + callerHash + "\n\t\t}\n"

// callRoute is a route with a hook_call to dest behind basicAuth; callOpts
// go into the hook_call block, toOpts into its 'to' block.
func callRoute(path, dest, callOpts, toOpts string) string {
	return callRouteWith(path, basicAuth, callOpts, dest, toOpts)
}

// callRouteWith is a route with the handlers before (whole lines), then a
// hook_call with the extra options callOpts (whole lines) and a 'to' dest
// block holding toOpts.
func callRouteWith(path, before, callOpts, dest, toOpts string) string {
	return fmt.Sprintf(`	route %s {
%s		hook_call {
			max_body 4KB
			response_secret %s
%s
			to %s {
%s
			}
		}
	}
`, path, before, responseWhsec, callOpts, dest, toOpts)
}

// callerHeader carries callerUser's credentials.
func callerHeader() http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(callerUser+":"+callerPassword))}}
}

// post sends body to the relay as callerUser and returns the response,
// body read.
func post(t testing.TB, path string, body []byte) (*http.Response, []byte) {
	t.Helper()
	return postWith(t, path, body, callerHeader())
}

// postWith sends body to the relay with the given headers and returns the
// response, body read.
func postWith(t testing.TB, path string, body []byte, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, baseURL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// verifyAnswer checks the answer's Standard Webhooks signature with the
// reference library.
func verifyAnswer(t testing.TB, resp *http.Response, body []byte) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(responseWhsec)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(body, resp.Header); err != nil {
		t.Errorf("answer signature: %v (headers %v)", err, resp.Header)
	}
}

func TestCall(t *testing.T) {
	rc := merchant(t)
	templates := fmt.Sprintf(`
				sample %s
				response_template %s
				response_sample %s
				error_response_template %s
				error_response_sample %s
				fields order.order_id order.total_amount order.status
				custom_fields order.custom_fields.tip order.custom_fields.business_id`,
		tipExample(t, "order.json"), tipExample(t, "tip.tmpl"), tipExample(t, "merchant-reply.json"),
		tipExample(t, "tip-error.tmpl"), tipExample(t, "merchant-error.json"))
	creds := `
				param account acme
				header X-Merchant kfc-web
				secret ` + destWhsec + `
				auth api_key {
					header X-Api-Key k-123
				}`
	site := callRoute("/tip", rc.URL+"/tip", templates, creds) +
		callRoute("/reject", rc.URL+"/reject", templates, "") +
		callRoute("/down", fmt.Sprintf("http://127.0.0.1:%d/tip", deadPort), templates, "") +
		callRoute("/slow", rc.URL+"/slow", "", "\t\t\t\ttimeout 300ms") +
		callRoute("/boom", rc.URL+"/boom", "", "") +
		callRoute("/html", rc.URL+"/html", templates, "") +
		callRoute("/plain", rc.URL+"/tip", "\t\t\tfields uuid amounts.total", "")
	tc := caddyAt.NewTester(t)
	caddyAt.Load(t, tc, config("", site))

	order, err := os.ReadFile(tipExample(t, "order.json"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("success", func(t *testing.T) {
		before := rc.Count()
		resp, body := post(t, "/tip", order)
		want := `{"order":{"custom_fields":{"business_id":"biz-7","tip":5000},"order_id":"u-123","status":"tip_applied","total_amount":53000}}`
		if resp.StatusCode != http.StatusOK || string(body) != want {
			t.Fatalf("got %d %s\nwant 200 %s", resp.StatusCode, body, want)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		verifyAnswer(t, resp, body)

		got := rc.Got()
		if len(got) != before+1 {
			t.Fatalf("merchant got %d requests, want 1", len(got)-before)
		}
		req := got[len(got)-1]
		if req.Method != http.MethodPost || !bytes.Equal(req.Body, order) {
			t.Errorf("forwarded %s %q, want POST of the order as sent", req.Method, req.Body)
		}
		if q, _ := url.ParseQuery(req.Query); q.Get("account") != "acme" {
			t.Errorf("query %q, want account=acme", req.Query)
		}
		if req.Header.Get("X-Api-Key") != "k-123" || req.Header.Get("X-Merchant") != "kfc-web" {
			t.Errorf("forwarded headers %v", req.Header)
		}
		if auth := req.Header.Get("Authorization"); auth != "" {
			t.Errorf("the caller's credentials reached the merchant: Authorization %q", auth)
		}
		wh, _ := standardwebhooks.NewWebhook(destWhsec)
		if err := wh.Verify(req.Body, req.Header); err != nil {
			t.Errorf("forwarded request signature: %v", err)
		}
		if id := req.Header.Get("webhook-id"); id == "" || id != resp.Header.Get("webhook-id") {
			t.Errorf("webhook-id %q forwarded, %q answered; want the same id", id, resp.Header.Get("webhook-id"))
		}
	})

	for _, tt := range []struct {
		name, path string
		body       []byte
		status     int
		want       string
	}{
		{"destination 4xx rendered with its status", "/reject", order, http.StatusUnprocessableEntity,
			`{"error":{"code":"TIP_TOO_HIGH","merchant_status":422,"message":"The tip cannot exceed 20% of the subtotal."}}`},
		{"destination down", "/down", order, http.StatusBadGateway,
			`{"error":{"code":"MERCHANT_UNAVAILABLE","merchant_status":0,"message":"unreachable"}}`},
		{"destination timeout", "/slow", order, http.StatusGatewayTimeout,
			`{"errors":[{"title":"Gateway Timeout","detail":"The destination did not answer within 300ms.","status_code":"504"}]}`},
		{"destination 5xx without templates", "/boom", order, http.StatusBadGateway,
			`{"errors":[{"title":"Bad Gateway","detail":"The destination answered 503 Service Unavailable.","status_code":"502"}]}`},
		{"reply not JSON", "/html", order, http.StatusBadGateway,
			`{"error":{"code":"MERCHANT_UNAVAILABLE","merchant_status":200,"message":"invalid JSON reply"}}`},
		{"pass-through with fields", "/plain", []byte(`{"any":"json"}`), http.StatusOK,
			`{"amounts":{"total":53000},"uuid":"u-123"}`},
		{"body not JSON", "/tip", []byte(`{"order_id":`), http.StatusBadRequest,
			`{"errors":[{"title":"Bad Request","detail":"The request body is not valid JSON.","status_code":"400"}]}`},
		{"body too large", "/tip", []byte(`{"pad":"` + strings.Repeat("x", 5000) + `"}`), http.StatusRequestEntityTooLarge,
			`{"errors":[{"title":"Payload Too Large","detail":"The request body is larger than the limit of 4000 bytes.","status_code":"413"}]}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, tt.path, tt.body)
			if resp.StatusCode != tt.status || !jsonEqual(body, tt.want) {
				t.Fatalf("got %d %s\nwant %d %s", resp.StatusCode, body, tt.status, tt.want)
			}
			verifyAnswer(t, resp, body)
		})
	}

	t.Run("no queue started", func(t *testing.T) {
		// hook_call must not start the hookrelay app: its default
		// embedded queue would live here.
		dir := filepath.Join(os.Getenv("XDG_DATA_HOME"), "caddy", "hookrelay")
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s exists (%v): hook_call started the queue", dir, err)
		}
	})
}

// TestCallTemplateRefused checks that a hook_call whose
// response_template fails over its response_sample is refused with the
// template's name, line and reason.
func TestCallTemplateRefused(t *testing.T) {
	dir := testDir(t)
	tc := caddyAt.NewTester(t)
	caddyAt.Load(t, tc, emptyConfig)
	tmpl := writeFile(t, dir, "tip.tmpl", "{\n  \"order_id\": \"{{ .result.uuid }}\",\n  \"tip\": {{ .result.amounts.tip }}\n}\n")
	reply := writeFile(t, dir, "reply.json", `{"uuid":"u-1","amounts":{"total":3}}`)
	msg := loadError(t, config("", callRoute("/tip", "http://127.0.0.1:9399/", fmt.Sprintf(
		"\t\t\tresponse_template %s\n\t\t\tresponse_sample %s", tmpl, reply), "")))
	want := fmt.Sprintf(`checking response_template over response_sample %s: template %q line 3: at <.result.amounts.tip>: map has no entry for key "tip"`, reply, tmpl)
	if !strings.Contains(msg, want) {
		t.Errorf("refused with\n%s\nwant it to contain\n%s", msg, want)
	}

	// Output that is not JSON, inline template.
	msg = loadError(t, config("", callRoute("/tip", "http://127.0.0.1:9399/",
		"\t\t\terror_response_template `{\"error\": {{ .error }}}`", "")))
	if want := `template "error_response_template": output is not valid JSON`; !strings.Contains(msg, want) {
		t.Errorf("refused with\n%s\nwant it to contain\n%s", msg, want)
	}

	// Two destinations.
	msg = loadError(t, config("", `	hook_call {
		to http://127.0.0.1:9399/a
		to http://127.0.0.1:9399/b
	}`))
	if want := "hook_call calls one destination; use one 'to'"; !strings.Contains(msg, want) {
		t.Errorf("refused with\n%s\nwant it to contain\n%s", msg, want)
	}
}

// jsonEqual compares JSON documents, ignoring key order and spacing.
func jsonEqual(got []byte, want string) bool {
	var a, b any
	if json.Unmarshal(got, &a) != nil || json.Unmarshal([]byte(want), &b) != nil {
		return false
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
