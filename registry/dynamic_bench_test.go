package registry

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/call"
	"github.com/hookrelay/hookrelay/relay/transform"
)

// benchOrder is a DEUNA order of about 600 bytes, the execute body of
// bench/execute.sh.
const benchOrder = `{"order":{"order_id":"A1","store_code":"kfc-001","currency":"USD","total":"10.10",` +
	`"sub_total":"9.00","tax_amount":"1.10","payment_method":"CARD","status":"pending",` +
	`"items":[{"id":"1","name":"Bucket 8","quantity":1,"unit_price":"7.50","total":"7.50"},` +
	`{"id":"2","name":"Pepsi","quantity":1,"unit_price":"1.50","total":"1.50"}],` +
	`"shipping_address":{"address1":"Av. Amazonas 123","city":"Quito","country":"EC"},` +
	`"customer":{"first_name":"Ana","last_name":"Paz","email":"ana@example.com"},` +
	`"custom_fields":{"channel":"web"}}}`

const benchTipTemplate = `{"order":{"order_id":{{ json .request.order.order_id }},` +
	`"total":"{{ add .request.order.total .result.tip }}","custom_fields":{"tip":{{ json .result.tip }}}}}`

// BenchmarkDynamicExecute runs KFC Web's tip webhook over an order,
// against a merchant on loopback: Execute end to end (the call included),
// then its parts without the call.
//
//	go test -run '^$' -bench DynamicExecute -benchmem ./registry/
func BenchmarkDynamicExecute(b *testing.B) {
	reply := []byte(`{"uuid":"u-1","business_id":"b-9","tip":"1.20"}`)
	merchant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(reply)
	}))
	b.Cleanup(merchant.Close)
	e := open(b, b.TempDir(), testSettings(b, newSealKey(b)))
	ctx := context.Background()
	kv, err := e.eng.KeyValue(ctx, DynamicBucket, "bench")
	if err != nil {
		b.Fatal(err)
	}
	dyn, err := OpenDynamic(ctx, kv, testSettings(b, newSealKey(b)), zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(dyn.Close)
	in := DynamicInput{
		EventName:        "tip",
		URL:              merchant.URL + "/tip",
		FieldsUpdate:     FieldSet{Fields: []string{"total"}, CustomFields: []string{"tip"}},
		ResponseBody:     FieldSet{Fields: []string{"order_id", "total"}, CustomFields: []string{"tip"}},
		ResponseTemplate: benchTipTemplate,
		ResponseData:     json.RawMessage(reply),
		RequestData:      json.RawMessage(benchOrder),
	}
	if _, _, _, err := dyn.Register(ctx, "kfc-web", in); err != nil {
		b.Fatal(err)
	}
	body := []byte(benchOrder)
	decode := func() map[string]any {
		v, err := transform.DecodeJSON(body)
		if err != nil {
			b.Fatal(err)
		}
		return v.(map[string]any)
	}
	b.Run("execute", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ex, err := dyn.Execute(ctx, "kfc-web", "tip", "msg_1", body, decode())
			if err != nil || ex.Status != http.StatusOK {
				b.Fatalf("execute: %v %+v", err, ex)
			}
		}
	})
	run := dyn.hooks[dynKey("kfc-web", "tip")].run
	b.Run("answer", func(b *testing.B) {
		// Everything but the call: render, merge, reduce.
		b.ReportAllocs()
		for b.Loop() {
			a := run.call.Answer(ctx, body, decode(), call.Exchange{Status: http.StatusOK, Body: reply})
			if a.Status != http.StatusOK {
				b.Fatalf("answer: %+v", a)
			}
		}
	})
	b.Run("sign", func(b *testing.B) {
		b.ReportAllocs()
		out := []byte(`{"order":{"custom_fields":{"tip":"1.20"},"order_id":"A1","total":"11.30"}}`)
		for b.Loop() {
			run.signer.Sign("msg_1", time.Now(), out)
		}
	})
	_ = relay.WebhookName
}
