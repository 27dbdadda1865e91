package ingress

import (
	"bytes"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// want500NotStored is the answer of a hook_normalize that nothing after it
// answered for.
var want500NotStored = wantEnvelope("Internal Server Error", "500", "The webhook was validated but not stored.")

// TestNormalizeAloneIsNotAccepted: a route that ends with hook_normalize
// (hook_relay forgotten or misplaced) stores nothing, so it must not tell
// the sender 201. It answers 500 in the contract's envelope, so the sender
// retries, and logs an error that names the cause; bad input is still
// answered 400/422 as before.
func TestNormalizeAloneIsNotAccepted(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	tester := start(t, globals(`	log {
		output file `+logFile+`
		format json
		level DEBUG
	}`)+"\n"+siteAddress+` {
	bind 127.0.0.1
	route /hooks/alone {
		hook_normalize ave_tracking
	}
}
`)
	postHook(t, tester, "/hooks/alone", nil, testutil.AvePayload("guia-1"), false).expect(t, 500, want500NotStored)
	postHook(t, tester, "/hooks/alone", nil, testutil.AvePayload("guia-1", "guia-2"), true).expect(t, 500, want500NotStored)
	postHook(t, tester, "/hooks/alone", nil, []byte(`{"tipo":"json","body":{}}`), false).
		expect(t, 422, `{"errors":[{"title":"Unprocessable Content","detail":"El campo body debe ser un arreglo","status_code":"422","source":{"pointer":"/body"}}]}`)
	postHook(t, tester, "/hooks/alone", nil, []byte(`[]`), false).
		expect(t, 400, want400("The request body must be a JSON object, not an array."))

	const cause = "no handler after hook_normalize stored or forwarded the events"
	var entries []testutil.LogEntry
	testutil.WaitFor(t, 10*time.Second, "the error in the log", func() bool {
		entries = testutil.Logged(t, logFile, "http.handlers.hook_normalize", cause)
		return len(entries) > 0
	})
	// Every such request is the same misconfiguration: one error names
	// it, the rest are Debug, so senders cannot flood the log.
	nErrors := 0
	for _, e := range entries {
		if e.Level == "error" {
			nErrors++
		}
	}
	if nErrors != 1 {
		t.Errorf("%d errors logged for the same misconfiguration, want 1: %+v", nErrors, entries)
	}
	if !strings.Contains(entries[0].Msg, "hook_relay") {
		t.Errorf("the error does not say what to do: %q", entries[0].Msg)
	}
}

// TestNormalizeThenRespondOrProxy: whatever answers after hook_normalize
// answers the sender. A route that only validates and passes the webhook
// on with reverse_proxy gets the upstream's answer, and the upstream gets
// the body as the sender sent it; an explicit respond is answered as
// written. An invalid body reaches neither.
func TestNormalizeThenRespondOrProxy(t *testing.T) {
	upstream := testutil.NewReceiver(t, func(int, *http.Request, []byte) (int, http.Header, []byte) {
		return http.StatusAccepted, http.Header{"Content-Type": {"application/json"}}, []byte(`{"queued":true}`)
	})
	tester := start(t, globals()+"\n"+siteAddress+` {
	bind 127.0.0.1
	route /hooks/proxy {
		hook_normalize ave_tracking
		reverse_proxy `+upstream.Listener.Addr().String()+`
	}
	route /hooks/respond {
		hook_normalize ave_tracking
		header Content-Type application/json
		respond `+"`"+wantSuccess+"`"+` 201
	}
}
`)
	for _, chunked := range []bool{false, true} {
		payload := testutil.AvePayload("guia-1", "guia-2")
		before := upstream.Count()
		postHook(t, tester, "/hooks/proxy", nil, payload, chunked).expect(t, http.StatusAccepted, `{"queued":true}`)
		got := upstream.Got()
		if len(got) != before+1 {
			t.Fatalf("chunked=%v: the upstream got %d requests, want 1", chunked, len(got)-before)
		}
		if last := got[len(got)-1]; last.Method != http.MethodPost || last.Path != "/hooks/proxy" || !bytes.Equal(last.Body, payload) {
			t.Errorf("chunked=%v: the upstream got %s %s %q, want POST /hooks/proxy with the body as sent", chunked, last.Method, last.Path, last.Body)
		}
	}
	before := upstream.Count()
	postHook(t, tester, "/hooks/proxy", nil, []byte(`{"tipo":"json","body":{}}`), false).
		expect(t, 422, `{"errors":[{"title":"Unprocessable Content","detail":"El campo body debe ser un arreglo","status_code":"422","source":{"pointer":"/body"}}]}`)
	if n := upstream.Count() - before; n != 0 {
		t.Errorf("an invalid body reached the upstream (%d requests)", n)
	}

	postHook(t, tester, "/hooks/respond", nil, testutil.AvePayload("guia-1"), false).expect(t, 201, wantSuccess)
}
