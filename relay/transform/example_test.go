package transform_test

import (
	"fmt"

	"github.com/hookrelay/hookrelay/relay/transform"
)

func ExampleTemplate_Render() {
	tm, err := transform.Parse("erp.tmpl", `{
  "guide": {{ json .data.shipment_id }},
  "day": "{{ date "2006-01-02" "America/Bogota" .received_at }}",
  "incident": {{ json (default "none" .data.incident.code) }},
  "notes": {{ json (index . "data.notes") }}
}`)
	if err != nil {
		fmt.Println(err)
		return
	}
	event, _ := transform.DecodeJSON([]byte(`{"received_at":"2026-11-22T03:00:00Z",
		"data":{"shipment_id":"G-1","status":{"code":"1"},"notes":"dice \"urgente\""}}`))
	out, err := tm.Render(event)
	fmt.Println(string(out), err)
	// Output: {"guide":"G-1","day":"2026-11-21","incident":"none","notes":"dice \"urgente\""} <nil>
}

func ExampleTemplate_Check() {
	tm, _ := transform.Parse("tip.tmpl", `{
  "order": {
    "order_id": "{{ .result.uuid }}",
    "custom_fields": { "business_id": "{{ .result.business_id }}" }
  }
}`)
	sample, _ := transform.DecodeJSON([]byte(`{"result":{"uuid":"u-1"}}`))
	fmt.Println(tm.Check(sample))
	// Output: template "tip.tmpl" line 4: at <.result.business_id>: map has no entry for key "business_id"
}

func ExampleSelect() {
	out, _ := transform.Select([]byte(`{"order":{"order_id":"u-1","total":10,"custom_fields":{"business_id":"b-1","x":1}}}`),
		[]string{"order.order_id", "order.custom_fields.business_id"})
	fmt.Println(string(out))
	// Output: {"order":{"custom_fields":{"business_id":"b-1"},"order_id":"u-1"}}
}
