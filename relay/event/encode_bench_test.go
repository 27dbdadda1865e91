package event

import (
	"encoding/json"
	"testing"
	"time"
)

// benchData is the data of a normalized one-guide Aveonline event.
const benchData = `{"shipment_id":"guia-1","status":{"code":"4","name":"EN ENTREGA","at":"2022-12-11T11:04:43-05:00"},` +
	`"incident":{"code":"NOVEDAD","name":"DIRECCION ERRONEA","at":"2022-12-11T11:31:00-05:00","state":"EJECUTADA"},` +
	`"replacement":{"tracking_number":"123-444-222","kind":"return"},"document_url":"https://laruta.com/docs/1.pdf",` +
	`"notes":"no se encuentra la dirección"}`

func benchEvent() *Event {
	return &Event{
		ID:         "evt_2h7at2q24kcnkjmtmxmgybt6sl",
		Topic:      "shipments/tracking",
		Source:     "aveonline",
		ReceivedAt: time.Date(2026, 11, 22, 9, 0, 0, 123456789, time.UTC),
		Data:       json.RawMessage(benchData),
	}
}

// BenchmarkEncode encodes a normalized one-guide event, the body stored
// for each destination: with json.Marshal, and with AppendJSON into a
// buffer of EncodedLen bytes as the relay does.
//
//	go test -run '^$' -bench '^BenchmarkEncode' -benchmem ./relay/event/
func BenchmarkEncode(b *testing.B) {
	ev := benchEvent()
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ev.AppendJSON(make([]byte, 0, ev.EncodedLen())); err != nil {
				b.Fatal(err)
			}
		}
	})
}
