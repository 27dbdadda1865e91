// Package ordertest is the receiver, the load feeder and the order check
// of the ordered-delivery tests, used by tests/order and tests/cluster:
// Sink, a loopback destination that records every attempt with its key
// and status; Feeder, which posts the statuses of many keys in order
// within each key; and CheckOrder, which checks the attempts against the
// ordering contract (CONTRACT.md section 6).
package ordertest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Ev is one event of the tests: status number Status (0-based) of key Key.
type Ev struct {
	Key    string
	Status int
}

func (e Ev) String() string { return fmt.Sprintf("%s#%d", e.Key, e.Status) }

// statusGuide is an Ave guide event for status k of shipment id: its
// status code is k+1 (a code of "0" would read as absent) and its time k
// minutes after a fixed start, so that every status of a shipment is its
// own event (event ids derive from the normalized data).
func statusGuide(e Ev) string {
	at := time.Date(2022, 12, 11, 8, 0, 0, 0, time.UTC).Add(time.Duration(e.Status) * time.Minute)
	return fmt.Sprintf(`{"id_envio":%q,"cod_estado":"%d","nombre_estado":"ESTADO %d","fecha_estado":%q}`,
		e.Key, e.Status+1, e.Status+1, at.Format(time.DateTime))
}

// StatusPayload is an Ave tracking body with one guide per event, in order.
func StatusPayload(evs ...Ev) []byte {
	guides := make([]string, len(evs))
	for i, e := range evs {
		guides[i] = statusGuide(e)
	}
	return []byte(`{"tipo":"json","body":[` + strings.Join(guides, ",") + `]}`)
}

// decodeAve reads the key (data.shipment_id) and status (data.status.code
// minus one) of a delivered normalized Ave event.
func decodeAve(body []byte) (Ev, bool) {
	shipment, status, ok := AveFields(body)
	if !ok || shipment == "" {
		return Ev{}, false
	}
	code, err := strconv.Atoi(status)
	if err != nil || code < 1 {
		return Ev{}, false
	}
	return Ev{Key: shipment, Status: code - 1}, true
}

// AveFields reads data.shipment_id and data.status.code of a delivered
// normalized Ave event; ok is false when body is not JSON.
func AveFields(body []byte) (shipment, status string, ok bool) {
	var e struct {
		Data struct {
			ShipmentID string `json:"shipment_id"`
			Status     struct {
				Code string `json:"code"`
			} `json:"status"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "", "", false
	}
	return e.Data.ShipmentID, e.Data.Status.Code, true
}
