package dynamic

import (
	"net/http"
	"testing"
)

// TestSeedKFCWebTip: KFC Web's registration of examples/deuna-dynamic
// adds the tip the merchant answers to the order's total, and calls the
// merchant with the api-key it registered.
func TestSeedKFCWebTip(t *testing.T) {
	shop := newMerchant(t, func(r *http.Request, _ []byte) reply {
		if r.Header.Get("X-Api-Key") != "kfc-web-demo-merchant-key" {
			return reply{status: http.StatusUnauthorized, ctype: "application/json", body: `{"message":"bad key"}`}
		}
		return jsonReply(`{"uuid":"u-77","tip":"2.50"}`)
	})
	start(t, config{})
	secret := kfc.register(t, exampleRegistration(t, "kfc-web-tip.json", shop.URL+"/kfc-web/tip"), http.StatusCreated)

	got := kfc.mustExecute(t, "set_tip", secret, example(t, "order-kfc-web.json"))
	sameJSON(t, "tip", got, `{"order":{"order_id":"A1","total":"12.60","custom_fields":{"tip":"2.50"}}}`)

	got = kfc.mustExecute(t, "set_tip", secret, `{"order":{"order_id":"B2","total":"99.99","custom_fields":{"note":"x"}}}`)
	sameJSON(t, "tip over 99.99", got, `{"order":{"order_id":"B2","total":"102.49","custom_fields":{"tip":"2.50"}}}`)
	if n := shop.Count(); n != 2 {
		t.Errorf("the merchant got %d calls, want 2", n)
	}
}

// TestSeedKFCVenezuelaTax: KFC Venezuela's registration adds 3% tax,
// rounded to cents, to the total of an order paid in CASH, and leaves any
// other order as it is (its answer has no tax: response_body lists only
// paths the order has).
func TestSeedKFCVenezuelaTax(t *testing.T) {
	shop := fixedMerchant(t, `{"accepted":true}`)
	start(t, config{})
	secret := kfcVE.register(t, exampleRegistration(t, "kfc-venezuela-tax.json", shop.URL+"/kfc-venezuela/tax"), http.StatusCreated)

	for _, c := range []struct{ name, order, want string }{
		{"the example's cash order (33.33 + 0.9999 rounded to 1.00)", string(example(t, "order-kfc-venezuela-cash.json")),
			`{"order":{"order_id":"V-7","total":"34.33","payment_method":"CASH","custom_fields":{"tax":"1.00"}}}`},
		{"a cash order (10.10 + 0.303 rounded to 0.30)", `{"order":{"order_id":"V-1","total":"10.10","payment_method":"CASH","custom_fields":{}}}`,
			`{"order":{"order_id":"V-1","total":"10.40","payment_method":"CASH","custom_fields":{"tax":"0.30"}}}`},
		{"a cash order (19.99 + 0.5997 rounded to 0.60)", `{"order":{"order_id":"V-2","total":"19.99","payment_method":"CASH","custom_fields":{}}}`,
			`{"order":{"order_id":"V-2","total":"20.59","payment_method":"CASH","custom_fields":{"tax":"0.60"}}}`},
		{"the example's card order, unchanged", string(example(t, "order-kfc-venezuela-card.json")),
			`{"order":{"order_id":"V-8","total":"33.33","payment_method":"CARD"}}`},
		{"a transfer order, unchanged", `{"order":{"order_id":"V-3","total":"10.10","payment_method":"TRANSFER","custom_fields":{"x":1}}}`,
			`{"order":{"order_id":"V-3","total":"10.10","payment_method":"TRANSFER"}}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			sameJSON(t, c.name, kfcVE.mustExecute(t, "cash_tax", secret, c.order), c.want)
		})
	}
}

// TestSeedWowPoints: Wow+'s registration pays part of the total with the
// customer's points: the amount is points × point value, at most the
// total; the total is reduced by it and the custom fields record the
// points used and the amount.
func TestSeedWowPoints(t *testing.T) {
	shop := fixedMerchant(t, `{"customer_id":"c-9","points_available":500,"point_value":"0.01"}`)
	start(t, config{})
	secret := wow.register(t, exampleRegistration(t, "wow-points.json", shop.URL+"/wow/points"), http.StatusCreated)

	t.Run("points cover part of the total", func(t *testing.T) {
		got := wow.mustExecute(t, "pay_with_points", secret, example(t, "order-wow.json"))
		sameJSON(t, "500 points of 0.01 over 10.10", got,
			`{"order":{"order_id":"W-1","total":"5.10","custom_fields":{"points_used":500,"points_amount":"5.00"}}}`)
	})
	t.Run("points would exceed the total", func(t *testing.T) {
		shop.setAnswer(func(*http.Request, []byte) reply {
			return jsonReply(`{"customer_id":"c-9","points_available":5000,"point_value":"0.01"}`)
		})
		got := wow.mustExecute(t, "pay_with_points", secret, example(t, "order-wow.json"))
		sameJSON(t, "5000 points of 0.01 over 10.10", got,
			`{"order":{"order_id":"W-1","total":"0.00","custom_fields":{"points_used":1010,"points_amount":"10.10"}}}`)
	})
}
