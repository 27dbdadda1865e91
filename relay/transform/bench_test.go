package transform_test

import (
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
