package dynamic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
)

// realOrder returns an execute body of a checkout's real size: n items
// with their options, about 500 bytes each.
func realOrder(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"order":{"order_id":"R-200","currency":"USD","total":"2500.00","payment_method":"CARD",` +
		`"shipping_address":{"line1":"Av. Amazonas N34-451","city":"Quito","country":"EC"},"custom_fields":{"channel":"web"},"items":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"it-%04d","sku":"KFC-%04d","name":"Combo %d: 8 presas, papas familiares y bebida 1.5 L",`+
			`"description":"Pollo crujiente con receta original, acompañado de papas familiares, ensalada de col y una bebida grande a elección; sin cebolla (nota del cliente nº %d).",`+
			`"image":"https://cdn.kfc.example/img/combos/familiar/%04d-1200x900.jpg","quantity":%d,"unit_price":"12.50","total_price":"%d.50","options":[{"name":"salsa","value":"BBQ"},{"name":"bebida","value":"cola"}],"tags":["combo","familiar"]}`,
			i, i, i, i, i, 1+i%3, 12+i)
	}
	b.WriteString(`]}}`)
	return b.Bytes()
}

// TestRealSizeOrder: an order of 200 items, about 100 KB, executes like a
// small one: the merchant gets it as it was sent, and with an empty
// response_body the answer is the whole order, every item as it was, with
// the tip merged.
func TestRealSizeOrder(t *testing.T) {
	shop := fixedMerchant(t, workedAnswer)
	start(t, config{})
	reg := workedRegistration(shop.URL + "/tip")
	reg["response_body"] = map[string]any{}
	secret := kfc.register(t, reg, http.StatusCreated)

	body := realOrder(200)
	if len(body) < 95_000 {
		t.Fatalf("the order is %d bytes, want about 100 KB", len(body))
	}
	got := kfc.mustExecute(t, "set_tip", secret, body)

	var want map[string]any
	if err := json.Unmarshal(body, &want); err != nil {
		t.Fatal(err)
	}
	order := want["order"].(map[string]any)
	order["total"] = "2501.20"
	order["custom_fields"].(map[string]any)["tip"] = "1.20"
	wantJSON, _ := json.Marshal(want)
	sameJSON(t, "the whole order", got, string(wantJSON))

	if calls := shop.Got(); len(calls) != 1 || !bytes.Equal(calls[0].Body, body) {
		t.Errorf("the merchant did not get the order as it was sent (%d calls)", len(calls))
	}
}
