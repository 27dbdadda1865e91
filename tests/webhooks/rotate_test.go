package webhooks

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestRotate: after POST /v1/webhooks/{id}/rotate, deliveries carry two
// signatures: one that the official Standard Webhooks library verifies
// with the old secret, and one it verifies with the new secret the rotate
// answered, so that a receiver can switch secrets without losing events.
func TestRotate(t *testing.T) {
	const oldSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	rc := newReceiver(t, nil)
	start(t, config{webhooks: []string{"allow_network 127.0.0.0/8", trustedCA(t, rc.Server)}})

	status, body := apiA.call(t, http.MethodPost, "/v1/webhooks", map[string]any{"topic": topic, "address": rc.URL + "/rotate", "secret": oldSecret})
	if status != http.StatusCreated {
		t.Fatalf("POST /v1/webhooks answered %d %s, want 201", status, body)
	}
	var created struct {
		ID uint64 `json:"id"`
	}
	if err := json.Unmarshal(body, &created); err != nil || created.ID == 0 {
		t.Fatalf("POST /v1/webhooks answered %s: %v", body, err)
	}
	id := created.ID

	post(t, eventsPath, nil, `{"orderId":"rotate-1"}`)
	rc.waitCount(t, 1, "the event before the rotation")
	settled(t, webhookName(id))
	before := rc.Got()[0]
	if sigs := strings.Fields(before.Header.Get("webhook-signature")); len(sigs) != 1 {
		t.Errorf("before the rotation webhook-signature = %q, want one signature", sigs)
	}
	if err := verify(t, oldSecret, before); err != nil {
		t.Errorf("before the rotation the old secret does not verify: %v", err)
	}

	status, body = apiA.call(t, http.MethodPost, fmt.Sprintf("/v1/webhooks/%d/rotate", id), nil)
	if status != http.StatusOK && status != http.StatusCreated {
		t.Fatalf("rotate answered %d %s, want 200", status, body)
	}
	newSecret := secretIn(t, body)
	if newSecret == oldSecret || !strings.HasPrefix(newSecret, "whsec_") {
		t.Fatalf("rotate answered the secret %q, want a new whsec_ secret", newSecret)
	}

	post(t, eventsPath, nil, `{"orderId":"rotate-2"}`)
	rc.waitCount(t, 2, "the event after the rotation")
	settled(t, webhookName(id))
	after := rc.Got()[1]
	sigs := strings.Fields(after.Header.Get("webhook-signature"))
	if len(sigs) != 2 {
		t.Fatalf("after the rotation webhook-signature = %q, want two signatures", after.Header.Get("webhook-signature"))
	}
	// Each signature alone: one verifies with the old secret only, the
	// other with the new one only.
	verifiedBy := make([]string, len(sigs))
	for i, sig := range sigs {
		one := after
		one.Header = after.Header.Clone()
		one.Header.Set("webhook-signature", sig)
		oldOK, newOK := verify(t, oldSecret, one) == nil, verify(t, newSecret, one) == nil
		switch {
		case oldOK && !newOK:
			verifiedBy[i] = "old"
		case newOK && !oldOK:
			verifiedBy[i] = "new"
		default:
			verifiedBy[i] = fmt.Sprintf("old %v, new %v", oldOK, newOK)
		}
	}
	if !(verifiedBy[0] == "old" && verifiedBy[1] == "new" || verifiedBy[0] == "new" && verifiedBy[1] == "old") {
		t.Errorf("the two signatures verify with %q, want one with the old secret and one with the new", verifiedBy)
	}
	// And the header as delivered verifies with either secret.
	for name, secret := range map[string]string{"old": oldSecret, "new": newSecret} {
		if err := verify(t, secret, after); err != nil {
			t.Errorf("the delivery does not verify with the %s secret: %v", name, err)
		}
	}
}
