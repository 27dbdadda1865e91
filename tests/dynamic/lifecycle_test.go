package dynamic

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// view is a dynamic webhook as the API shows it.
type view struct {
	MerchantID       string          `json:"merchant_id"`
	EventName        string          `json:"event_name"`
	URL              string          `json:"url"`
	ResponseTemplate string          `json:"response_template"`
	Timeout          string          `json:"timeout"`
	Secret           string          `json:"secret"`
	ResponseData     json.RawMessage `json:"response_data"`
}

func decodeView(t *testing.T, a answer) view {
	t.Helper()
	var v view
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("answer %s: %v", a.body, err)
	}
	return v
}

// list returns the event names of the merchant's list.
func (m merchant) list(t *testing.T) []string {
	t.Helper()
	a := m.call(t, http.MethodGet, "", nil)
	if a.status != http.StatusOK {
		t.Fatalf("the list of %s answered %s, want 200", m.id, a)
	}
	var out struct {
		Data []view `json:"data"`
	}
	if err := json.Unmarshal(a.body, &out); err != nil || out.Data == nil {
		t.Fatalf("the list of %s answered %s, want {\"data\":[...]}: %v", m.id, a.body, err)
	}
	names := make([]string, len(out.Data))
	for i, v := range out.Data {
		if v.MerchantID != m.id || v.Secret != "" {
			t.Errorf("the list of %s holds %+v", m.id, v)
		}
		names[i] = v.EventName
	}
	return names
}

// TestLifecycle: a registration answers 201 with the secret once;
// registering the same event name replaces the webhook (200, no secret
// shown, the old secret still signing the answers); a registration that
// gives a secret signs with it from then on. List, get and delete; once
// deleted, the webhook is 404 to get, delete and execute.
func TestLifecycle(t *testing.T) {
	shop := fixedMerchant(t, workedAnswer)
	start(t, config{})
	reg := workedRegistration(shop.URL + "/tip")
	secret := kfc.register(t, reg, http.StatusCreated)

	a := kfc.call(t, http.MethodGet, "/set_tip", nil)
	if a.status != http.StatusOK {
		t.Fatalf("get answered %s", a)
	}
	v := decodeView(t, a)
	if v.MerchantID != kfc.id || v.EventName != "set_tip" || v.URL != shop.URL+"/tip" || v.ResponseTemplate != workedTemplate || v.Timeout != "10s" || v.Secret != "" {
		t.Errorf("get answered %s", a.body)
	}
	sameJSON(t, "response_data, given as a string holding JSON", v.ResponseData, workedAnswer)

	// Replaced: another template (no tip), another url path and timeout.
	reg["response_template"] = `{"order":{"total":{{ json .request.order.total }},"custom_fields":{"tip":"0.00"}}}`
	reg["url"] = shop.URL + "/tip-v2"
	reg["timeout"] = "3s"
	if s := kfc.register(t, reg, http.StatusOK); s != "" {
		t.Errorf("replacing showed the secret %q", s)
	}
	if got := kfc.list(t); len(got) != 1 || got[0] != "set_tip" {
		t.Errorf("after replacing, the list is %v, want [set_tip]", got)
	}
	v = decodeView(t, kfc.call(t, http.MethodGet, "/set_tip", nil))
	if v.URL != shop.URL+"/tip-v2" || v.Timeout != "3s" {
		t.Errorf("after replacing, get shows %+v", v)
	}
	got := kfc.mustExecute(t, "set_tip", secret, workedOrder)
	sameJSON(t, "the replaced webhook", got, `{"order":{"order_id":"A1","total":"10.10","custom_fields":{"tip":"0.00"}}}`)
	if calls := shop.Got(); len(calls) != 1 || calls[0].Path != "/tip-v2" || verify(t, secret, calls[0].Body, calls[0].Header) != nil {
		t.Errorf("the replaced webhook's call: %+v, want one to /tip-v2 signed with the first secret", calls)
	}

	// A new secret given in the body signs from then on.
	const given = "whsec_Z2l2ZW4tc2lnbmluZy1zZWNyZXQtZm9yLXRoZS10ZXN0"
	reg["secret"] = given
	kfc.register(t, reg, http.StatusOK)
	a = kfc.execute(t, "set_tip", workedOrder)
	if a.status != http.StatusOK || verify(t, given, a.body, a.header) != nil {
		t.Errorf("after a secret was given, execute answered %s not signed with it", a)
	}
	if verify(t, secret, a.body, a.header) == nil {
		t.Error("the answer still verifies with the old secret")
	}

	// A second webhook, listed by event name.
	second := workedRegistration(shop.URL + "/tip")
	second["event_name"] = "a_first"
	kfc.register(t, second, http.StatusCreated)
	if got := kfc.list(t); strings.Join(got, ",") != "a_first,set_tip" {
		t.Errorf("the list is %v, want [a_first set_tip]", got)
	}

	// Deleted.
	if a := kfc.call(t, http.MethodDelete, "/set_tip", nil); a.status != http.StatusNoContent || len(a.body) != 0 {
		t.Fatalf("delete answered %s, want 204", a)
	}
	if got := kfc.list(t); strings.Join(got, ",") != "a_first" {
		t.Errorf("after delete, the list is %v, want [a_first]", got)
	}
	before := shop.Count()
	refused(t, kfc.execute(t, "set_tip", workedOrder), http.StatusNotFound, "")
	refused(t, kfc.call(t, http.MethodGet, "/set_tip", nil), http.StatusNotFound, "")
	refused(t, kfc.call(t, http.MethodDelete, "/set_tip", nil), http.StatusNotFound, "")
	refused(t, kfc.execute(t, "never_registered", workedOrder), http.StatusNotFound, "")
	if shop.Count() != before {
		t.Error("executing a deleted webhook called the merchant")
	}

	// Registered again after a delete: new, with a new secret.
	delete(reg, "secret")
	again := kfc.register(t, reg, http.StatusCreated)
	if again == secret || again == given {
		t.Error("a webhook registered again after its delete kept its old secret")
	}
	if a := kfc.execute(t, "set_tip", workedOrder); verify(t, again, a.body, a.header) != nil {
		t.Errorf("execute answered %s, not signed with the new secret", a)
	}
}

// TestTenants: a merchant reaches only its own webhooks. Merchant B's
// token on A's paths answers 403 to list, get, delete, register and
// execute, and calls nothing; B registering the same event name makes
// B's own webhook and leaves A's as it was. No credential answers 401,
// and a token is taken from Authorization: Bearer as well as from
// merchant_token.
func TestTenants(t *testing.T) {
	shopA := fixedMerchant(t, workedAnswer)
	shopB := fixedMerchant(t, `{"uuid":"b","tip":"5.00"}`)
	start(t, config{})
	secretA := kfc.register(t, workedRegistration(shopA.URL+"/tip"), http.StatusCreated)

	intruder := kfc.as(wow) // wow's token on kfc's paths
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{http.MethodGet, "", nil},
		{http.MethodGet, "/set_tip", nil},
		{http.MethodDelete, "/set_tip", nil},
		{http.MethodPost, "/set_tip/execute", workedOrder},
		{http.MethodPost, "", workedRegistration(shopB.URL + "/tip")},
	} {
		refused(t, intruder.call(t, c.method, c.path, c.body), http.StatusForbidden, "")
	}
	if shopA.Count()+shopB.Count() != 0 {
		t.Error("a refused request called a merchant")
	}

	// B's own webhook of the same event name.
	secretB := wow.register(t, workedRegistration(shopB.URL+"/tip"), http.StatusCreated)
	if secretB == secretA {
		t.Fatal("two merchants' webhooks share a secret")
	}
	sameJSON(t, "B's execution", wow.mustExecute(t, "set_tip", secretB, workedOrder),
		`{"order":{"order_id":"A1","total":"15.10","custom_fields":{"tip":"5.00"}}}`)
	sameJSON(t, "A's execution", kfc.mustExecute(t, "set_tip", secretA, workedOrder), workedResult)
	if shopA.Count() != 1 || shopB.Count() != 1 {
		t.Errorf("merchant A got %d calls and B %d, want 1 each", shopA.Count(), shopB.Count())
	}
	if v := decodeView(t, kfc.call(t, http.MethodGet, "/set_tip", nil)); v.URL != shopA.URL+"/tip" {
		t.Errorf("A's webhook became %+v", v)
	}

	// B deletes its own; A's stays.
	if a := wow.call(t, http.MethodDelete, "/set_tip", nil); a.status != http.StatusNoContent {
		t.Fatalf("B's delete answered %s", a)
	}
	if got := kfc.list(t); len(got) != 1 {
		t.Errorf("after B's delete, A's list is %v", got)
	}
	if got := wow.list(t); len(got) != 0 {
		t.Errorf("after B's delete, B's list is %v", got)
	}

	// Credentials.
	refused(t, merchant{id: kfc.id}.call(t, http.MethodGet, "", nil), http.StatusUnauthorized, "")
	refused(t, merchant{id: kfc.id}.call(t, http.MethodPost, "/set_tip/execute", workedOrder), http.StatusUnauthorized, "")
	refused(t, merchant{id: kfc.id, token: "not-a-token"}.call(t, http.MethodGet, "", nil), http.StatusUnauthorized, "")
	bearer := kfc
	bearer.bearer = true
	sameJSON(t, "executed with a Bearer token", bearer.mustExecute(t, "set_tip", secretA, workedOrder), workedResult)
	if shopA.Count() != 2 {
		t.Errorf("merchant A got %d calls, want 2", shopA.Count())
	}
}

// TestMerchantTokenNeedsUnderscoreOption: Caddy drops a request header
// with an underscore unless the server lists it, so DEUNA's merchant_token
// authenticates only with servers { expected_underscore_headers
// merchant_token } (every config of this package has it but this one's
// first); Authorization: Bearer works either way.
func TestMerchantTokenNeedsUnderscoreOption(t *testing.T) {
	dir := queueDir(t)
	start(t, config{storage: "embedded " + dir, noUnderscore: true})
	refused(t, kfc.call(t, http.MethodGet, "", nil), http.StatusUnauthorized, "")
	bearer := kfc
	bearer.bearer = true
	if a := bearer.call(t, http.MethodGet, "", nil); a.status != http.StatusOK {
		t.Errorf("with a Bearer token the list answered %s, want 200", a)
	}

	start(t, config{storage: "embedded " + dir})
	if a := kfc.call(t, http.MethodGet, "", nil); a.status != http.StatusOK {
		t.Errorf("with expected_underscore_headers merchant_token, the list answered %s, want 200", a)
	}
	refused(t, kfc.as(wow).call(t, http.MethodGet, "", nil), http.StatusForbidden, "")
}

// TestRoutesAndLimits: a wrong method answers 405 with Allow, a path
// that is no resource 404; a merchant holds at most max_per_tenant
// webhooks (a new one beyond is a 409; replacing one is not refused).
func TestRoutesAndLimits(t *testing.T) {
	shop := fixedMerchant(t, workedAnswer)
	start(t, config{webhooks: []string{allowNetwork, trustedCA(t), "max_per_tenant 2"}})
	reg := workedRegistration(shop.URL + "/tip")
	kfc.register(t, reg, http.StatusCreated)

	for _, c := range []struct{ method, path, allow string }{
		{http.MethodPut, "", "GET, POST"},
		{http.MethodDelete, "", "GET, POST"},
		{http.MethodPost, "/set_tip", "DELETE, GET"},
		{http.MethodGet, "/set_tip/execute", "POST"},
	} {
		a := kfc.call(t, c.method, c.path, nil)
		refused(t, a, http.StatusMethodNotAllowed, "")
		if got := a.header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
	for _, path := range []string{"/set_tip/", "/set_tip/run", "/set_tip/execute/x", "/"} {
		refused(t, kfc.call(t, http.MethodPost, path, workedOrder), http.StatusNotFound, "")
	}
	if got := kfc.list(t); len(got) != 1 {
		t.Errorf("the list is %v", got)
	}

	reg["event_name"] = "second"
	kfc.register(t, reg, http.StatusCreated)
	reg["event_name"] = "third"
	refused(t, kfc.call(t, http.MethodPost, "", reg), http.StatusConflict, "")
	reg["event_name"] = "second"
	kfc.register(t, reg, http.StatusOK)
	// Another merchant has its own allowance.
	reg["event_name"] = "third"
	wow.register(t, reg, http.StatusCreated)

	// A body the merchant may not set, and one too large.
	reg["merchant_id"] = wow.id
	refused(t, kfc.call(t, http.MethodPost, "", reg), http.StatusUnprocessableEntity, "/merchant_id")
	delete(reg, "merchant_id")
	reg["response_data"] = strings.Repeat(" ", 70<<10) + `{"uuid":"u-1","tip":"1.20"}`
	refused(t, kfc.call(t, http.MethodPost, "", reg), http.StatusRequestEntityTooLarge, "")
}

// TestWithoutTemplate: a webhook registered without response_template
// takes the merchant's answer as the DEUNA order itself, merged the same
// way; an answer that is not one is a 502.
func TestWithoutTemplate(t *testing.T) {
	shop := fixedMerchant(t, `{"order":{"order_id":"X","total":"12.00","custom_fields":{"tip":"1.90","hack":true}}}`)
	start(t, config{})
	reg := workedRegistration(shop.URL + "/tip")
	delete(reg, "response_template")
	reg["response_data"] = map[string]any{"order": map[string]any{"total": "1.00"}}
	secret := kfc.register(t, reg, http.StatusCreated)
	sameJSON(t, "the merchant's order", kfc.mustExecute(t, "set_tip", secret, workedOrder),
		`{"order":{"order_id":"A1","total":"12.00","custom_fields":{"tip":"1.90"}}}`)

	shop.setAnswer(func(*http.Request, []byte) reply { return jsonReply(workedAnswer) })
	a := kfc.execute(t, "set_tip", workedOrder)
	refused(t, a, http.StatusBadGateway, "")
	if err := verify(t, secret, a.body, a.header); err != nil {
		t.Errorf("the 502 is not signed: %v", err)
	}

	// Registered so, its sample must be an order.
	reg["event_name"] = "other"
	reg["response_data"] = workedAnswer
	refused(t, kfc.call(t, http.MethodPost, "", reg), http.StatusUnprocessableEntity, "/response_data")
}

// TestSealKeyChanged: a webhook whose credentials no longer open (the
// seal key it was sealed with is gone) answers 503 and calls nothing;
// registering it again repairs it, with a new secret, shown.
func TestSealKeyChanged(t *testing.T) {
	shop := fixedMerchant(t, workedAnswer)
	dir := queueDir(t)
	start(t, config{storage: "embedded " + dir})
	reg := workedRegistration(shop.URL + "/tip")
	old := kfc.register(t, reg, http.StatusCreated)

	// The text of the config must change too, or Caddy keeps the one that
	// runs (the key is a placeholder, resolved when it is provisioned).
	start(t, config{storage: "embedded " + dir, logFile: filepath.Join(t.TempDir(), "caddy.log"),
		sealKey: "b3RoZXItc2VhbC1rZXktZm9yLXRoZS1keW5hbWljLXQ="})
	refused(t, kfc.execute(t, "set_tip", workedOrder), http.StatusServiceUnavailable, "")
	if shop.Count() != 0 {
		t.Error("a webhook that cannot run called its merchant")
	}
	a := kfc.call(t, http.MethodGet, "/set_tip", nil)
	if a.status != http.StatusOK || strings.Contains(string(a.body), old) {
		t.Errorf("get answered %s", a)
	}

	fresh := kfc.register(t, reg, http.StatusOK)
	if !strings.HasPrefix(fresh, "whsec_") || fresh == old {
		t.Fatalf("registering a broken webhook again showed the secret %q, want a new one", fresh)
	}
	sameJSON(t, "repaired", kfc.mustExecute(t, "set_tip", fresh, workedOrder), workedResult)
}
