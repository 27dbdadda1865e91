package dynamic

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// The worked example of CONTRACT.md section 5.
const (
	workedOrder  = `{"order":{"order_id":"A1","total":"10.10","payment_method":"CARD","custom_fields":{}}}`
	workedAnswer = `{"uuid":"u-1","tip":"1.20"}`
	// workedTemplate sets order_id (to the merchant's uuid, as the seed's
	// template does: fields_update does not list it, so it is dropped),
	// total (total + tip) and custom_fields.tip.
	workedTemplate = `{"order": {
  "order_id": "{{ .result.uuid }}",
  "total": "{{ add .request.order.total .result.tip }}",
  "custom_fields": {"tip": {{ json .result.tip }}}
}}`
	workedResult = `{"order":{"custom_fields":{"tip":"1.20"},"order_id":"A1","total":"11.30"}}`
)

// workedRegistration is the worked example's registration, calling url.
func workedRegistration(url string) map[string]any {
	return map[string]any{
		"event_name":        "set_tip",
		"url":               url,
		"fields_update":     map[string]any{"fields": []string{"total"}, "custom_fields": []string{"tip"}},
		"response_body":     map[string]any{"fields": []string{"order_id", "total"}, "custom_fields": []string{"tip"}},
		"response_template": workedTemplate,
		// As the seed types it: a string that holds JSON.
		"response_data": workedAnswer,
		"request_data":  json.RawMessage(workedOrder),
	}
}

// TestContractWorkedExample: the worked example of the contract, byte for
// byte. The merchant gets the execute body as it was sent, POSTed, signed
// with the secret the registration showed; the answer is exactly the
// contract's (keys sorted), 200, signed with that secret too.
func TestContractWorkedExample(t *testing.T) {
	shop := fixedMerchant(t, workedAnswer)
	start(t, config{})
	secret := kfc.register(t, workedRegistration(shop.URL+"/tip"), http.StatusCreated)

	a := kfc.execute(t, "set_tip", workedOrder)
	if a.status != http.StatusOK || string(a.body) != workedResult {
		t.Errorf("execute answered %s, want exactly 200 %s", a, workedResult)
	}
	if err := verify(t, secret, a.body, a.header); err != nil {
		t.Errorf("the answer is not signed with the secret the registration showed: %v (headers %v)", err, a.header)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("the answer's Content-Type is %q", ct)
	}

	calls := shop.Got()
	if len(calls) != 1 {
		t.Fatalf("the merchant got %d calls, want 1", len(calls))
	}
	c := calls[0]
	if c.Method != http.MethodPost || c.Path != "/tip" {
		t.Errorf("the merchant got %s %s, want POST /tip", c.Method, c.Path)
	}
	if string(c.Body) != workedOrder {
		t.Errorf("the merchant got %s, want the execute body as it was sent, %s", c.Body, workedOrder)
	}
	if !strings.HasPrefix(c.Header.Get("Content-Type"), "application/json") {
		t.Errorf("the merchant's call has Content-Type %q, want application/json", c.Header.Get("Content-Type"))
	}
	if err := verify(t, secret, c.Body, c.Header); err != nil {
		t.Errorf("the merchant's call is not signed with the webhook's secret: %v (headers %v)", err, c.Header)
	}
	if id := c.Header.Get("webhook-id"); id == "" || id != a.header.Get("webhook-id") {
		t.Errorf("the call's webhook-id is %q and the answer's %q, want the same", id, a.header.Get("webhook-id"))
	}
}

// TestOnlyFieldsUpdateMerged: what the template sets beyond fields_update
// is dropped. The template sets order_id, payment_method, a new field, a
// custom field not listed and total; only total and custom_fields.tip are
// listed, and with an empty response_body the whole order comes back with
// the original values of everything else.
func TestOnlyFieldsUpdateMerged(t *testing.T) {
	shop := fixedMerchant(t, workedAnswer)
	start(t, config{})
	reg := workedRegistration(shop.URL + "/tip")
	reg["response_body"] = map[string]any{}
	reg["response_template"] = `{"order": {
  "order_id": "X",
  "payment_method": "HACK",
  "refund_to": "attacker",
  "total": "{{ add .request.order.total .result.tip }}",
  "custom_fields": {"tip": {{ json .result.tip }}, "vip": true}
}}`
	secret := kfc.register(t, reg, http.StatusCreated)
	order := `{"order":{"order_id":"A1","total":"10.10","payment_method":"CARD","items":[{"sku":"k-1","qty":2}],"custom_fields":{"note":"sin cebolla"}}}`
	got := kfc.mustExecute(t, "set_tip", secret, order)
	sameJSON(t, "execute", got, `{"order":{"order_id":"A1","total":"11.30","payment_method":"CARD","items":[{"sku":"k-1","qty":2}],"custom_fields":{"note":"sin cebolla","tip":"1.20"}}}`)

	// Numbers the order holds come back as they were: never through a float.
	order = `{"order":{"order_id":"A2","customer_id":123456789012345678901,"weight":1.50,"total":"10.10","custom_fields":{}}}`
	got = kfc.mustExecute(t, "set_tip", secret, order)
	for _, n := range []string{`"customer_id":123456789012345678901`, `"weight":1.50`} {
		if !strings.Contains(string(got), n) {
			t.Errorf("execute answered %s, want it to hold %s as it was sent", got, n)
		}
	}
}

// TestMergePaths: fields_update paths are dotted paths in the order (and
// in its custom_fields): only the leaf listed is replaced, its siblings
// stay; a listed path the template does not set is left as it was; an
// order without custom_fields gets them; response_body keeps only the
// listed leaves.
func TestMergePaths(t *testing.T) {
	shop := fixedMerchant(t, `{"uuid":"u-1","tip":"1.20","level":"gold"}`)
	start(t, config{})
	reg := workedRegistration(shop.URL + "/tip")
	reg["fields_update"] = map[string]any{
		"fields":        []string{"amounts.total", "amounts.discount", "status"},
		"custom_fields": []string{"tip", "loyalty.level"},
	}
	reg["response_body"] = map[string]any{
		"fields":        []string{"order_id", "amounts.total", "amounts.subtotal", "status"},
		"custom_fields": []string{"tip", "loyalty"},
	}
	reg["response_template"] = `{"order": {
  "amounts": {"total": "{{ add .request.order.amounts.total .result.tip }}", "subtotal": "0.00"},
  "custom_fields": {"tip": {{ json .result.tip }}, "loyalty": {"level": {{ json .result.level }}, "points": 99}}
}}`
	reg["request_data"] = json.RawMessage(`{"order":{"order_id":"A1","amounts":{"subtotal":"9.00","total":"10.10"}}}`)
	reg["response_data"] = `{"uuid":"u-1","tip":"1.20","level":"gold"}`
	secret := kfc.register(t, reg, http.StatusCreated)

	got := kfc.mustExecute(t, "set_tip", secret,
		`{"order":{"order_id":"A1","status":"OPEN","amounts":{"subtotal":"9.00","tax":"1.10","total":"10.10"}}}`)
	sameJSON(t, "nested paths", got,
		`{"order":{"order_id":"A1","status":"OPEN","amounts":{"subtotal":"9.00","total":"11.30"},"custom_fields":{"tip":"1.20","loyalty":{"level":"gold"}}}}`)
}
