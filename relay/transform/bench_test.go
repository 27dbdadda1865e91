package transform_test

import (
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/relay/transform"
)

// BenchmarkRenderAveERP measures what a delivery worker does per message
// for a destination with a template: decode the stored event and render it.
func BenchmarkRenderAveERP(b *testing.B) {
	tm := mustParse(b, "erp.tmpl", erpTemplate)
	event := []byte(fullEvent)
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	for b.Loop() {
		data, err := transform.DecodeJSON(event)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tm.Render(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSelect keeps a handful of DEUNA-style fields of an order.
func BenchmarkSelect(b *testing.B) {
	body := []byte(order)
	paths := []string{"order.order_id", "order.total", "order.custom_fields.business_id", "order.custom_fields.tip", "order.items.1.sku"}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := transform.Select(body, paths); err != nil {
			b.Fatal(err)
		}
	}
}

// kfcOrder is a realistic response_template input: a DEUNA order and the
// merchant's answer, as the relay builds it per call.
const kfcOrder = `{
  "result": {"uuid": "0b6d6c9e-4c8e-4b8e-9a47-1c2b3d4e5f60", "tip": "1.20", "points_available": "1500", "point_value": "0.01"},
  "request": {"order": {
    "order_id": "KFC-000123456", "order_token": "tok_8f7e6d5c4b3a", "currency": "USD", "total": "25.50",
    "sub_total": "23.00", "tax_amount": "2.50", "payment_method": "CASH", "status": "pending",
    "items": [
      {"id": "1", "name": "Combo Familiar", "quantity": 1, "unit_price": {"amount": "18.00", "currency": "USD"}},
      {"id": "2", "name": "Pepsi 1.5L", "quantity": 2, "unit_price": {"amount": "2.50", "currency": "USD"}}
    ],
    "shipping_address": {"address1": "Av. Francisco de Miranda", "city": "Caracas", "country": "VE"},
    "custom_fields": {"business_id": "KFC-VE", "store": "CCS-12"}
  }}
}`

// BenchmarkRenderKFC renders each DEUNA seed template over an order, as a
// synchronous call does: decode the merchant's answer and the order, render.
func BenchmarkRenderKFC(b *testing.B) {
	for _, name := range []string{"kfc-web-tip.tmpl", "kfc-venezuela-tax.tmpl", "wow-points.tmpl"} {
		tm := parseFile(b, name)
		in := []byte(kfcOrder)
		b.Run(strings.TrimSuffix(name, ".tmpl")+"/decode+render", func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				data, err := transform.DecodeJSON(in)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tm.Render(data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(strings.TrimSuffix(name, ".tmpl")+"/render", func(b *testing.B) {
			data, err := transform.DecodeJSON(in)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tm.Render(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
