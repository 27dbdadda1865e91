package caddymodule

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// failingNext is a handler after ours that fails: it writes status first
// when status is not 0, then returns err.
func failingNext(status int, err error) caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		if status != 0 {
			w.WriteHeader(status)
			_, _ = io.WriteString(w, "written")
		}
		return err
	})
}

// nextFailures are the failures of a later handler and how hook_verify and
// hook_normalize answer them: in the envelope unless something answered,
// logged at Error for a 5xx and at Debug otherwise.
var nextFailures = []struct {
	name     string
	next     caddyhttp.Handler
	status   int // answered
	body     string
	logLevel zapcore.Level
	failure  int // logged
}{
	{"upstream down", failingNext(0, caddyhttp.Error(http.StatusBadGateway, errors.New("dial tcp: connection refused"))),
		502, wantEnvelope("Bad Gateway", "502", "The webhook could not be processed; send it again later."), zap.ErrorLevel, 502},
	{"plain error", failingNext(0, errors.New("boom")),
		500, wantEnvelope("Internal Server Error", "500", "The webhook could not be processed; send it again later."), zap.ErrorLevel, 500},
	{"refused", failingNext(0, caddyhttp.Error(http.StatusForbidden, errors.New("not for you"))),
		403, wantEnvelope("Forbidden", "403", "The request could not be processed."), zap.DebugLevel, 403},
	{"status out of range", failingNext(0, caddyhttp.Error(200, errors.New("odd"))),
		500, wantEnvelope("Internal Server Error", "500", "The webhook could not be processed; send it again later."), zap.ErrorLevel, 500},
	{"answered, then failed", failingNext(http.StatusAccepted, errors.New("late")),
		202, "written", zap.ErrorLevel, 500},
}

func observedLogger() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.DebugLevel)
	return zap.New(core), logs
}

func checkFailureAnswer(t *testing.T, w *httptest.ResponseRecorder, logs *observer.ObservedLogs, status int, body string, level zapcore.Level, failure int) {
	t.Helper()
	if w.Code != status || w.Body.String() != body {
		t.Errorf("answer %d %s, want %d %s", w.Code, w.Body.String(), status, body)
	}
	if strings.HasPrefix(body, "{") && w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q", w.Header().Get("Content-Type"))
	}
	entries := logs.FilterMessage("webhook request failed").All()
	if len(entries) != 1 || entries[0].Level != level {
		t.Fatalf("logged %v, want one entry at %v", entries, level)
	}
	if entries[0].ContextMap()["status"] != int64(failure) {
		t.Errorf("logged status %v, want %d", entries[0].ContextMap()["status"], failure)
	}
}

func TestServeNextAnswersFailures(t *testing.T) {
	for _, c := range nextFailures {
		t.Run(c.name, func(t *testing.T) {
			log, logs := observedLogger()
			w := httptest.NewRecorder()
			if answered := serveNext(w, httptest.NewRequest(http.MethodPost, "/", nil), c.next, log); !answered {
				t.Error("serveNext reports no answer")
			}
			checkFailureAnswer(t, w, logs, c.status, c.body, c.logLevel, c.failure)
		})
	}
	t.Run("no failure", func(t *testing.T) {
		log, logs := observedLogger()
		for status, want := range map[int]bool{0: false, http.StatusCreated: true} {
			w := httptest.NewRecorder()
			if answered := serveNext(w, httptest.NewRequest(http.MethodPost, "/", nil), failingNext(status, nil), log); answered != want {
				t.Errorf("next writing %d: answered %v, want %v", status, answered, want)
			}
		}
		if logs.Len() != 0 {
			t.Errorf("logged %v", logs.All())
		}
	})
}

// TestVerifyAnswersNextFailure: a later handler's failure after a verified
// token (hook_verify followed by reverse_proxy, say) is answered in the
// envelope, not with Caddy's empty error response.
func TestVerifyAnswersNextFailure(t *testing.T) {
	const secret = "verify-next-secret"
	v := provisionVerify(t, &Verify{Secret: secret, Algorithms: []string{"HS256"}})
	tok := testutil.Sign(t, "HS256", []byte(secret), testutil.Claims(nil), "")
	for _, c := range nextFailures {
		t.Run(c.name, func(t *testing.T) {
			log, logs := observedLogger()
			v.log = log
			r := withCaddyVars(httptest.NewRequest(http.MethodPost, "/", nil))
			r.Header.Set("Ave-Hub-signature", tok)
			w := httptest.NewRecorder()
			if err := v.ServeHTTP(w, r, c.next); err != nil {
				t.Fatalf("ServeHTTP returned %v", err)
			}
			checkFailureAnswer(t, w, logs, c.status, c.body, c.logLevel, c.failure)
		})
	}
}

// TestNormalizeAnswersNextFailure: a later handler's failure is answered
// in the envelope with its status, not as "validated but not stored".
func TestNormalizeAnswersNextFailure(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	n := &Normalize{Format: "ave_tracking"}
	if err := n.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range nextFailures {
		t.Run(c.name, func(t *testing.T) {
			log, logs := observedLogger()
			n.log = log
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(testutil.AvePayload("guia-1"))))
			w := httptest.NewRecorder()
			if err := n.ServeHTTP(w, r, c.next); err != nil {
				t.Fatalf("ServeHTTP returned %v", err)
			}
			checkFailureAnswer(t, w, logs, c.status, c.body, c.logLevel, c.failure)
			if e := logs.FilterMessageSnippet("no handler after hook_normalize").All(); len(e) != 0 {
				t.Errorf("a failure of the next handler is logged as a missing one: %v", e)
			}
		})
	}
}

// errReader fails every read.
type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// TestDemoReceiverUnreadableBody: a body that cannot be read is answered
// 400 in the envelope.
func TestDemoReceiverUnreadableBody(t *testing.T) {
	log, logs := observedLogger()
	rc := &DemoReceiver{log: log}
	w := httptest.NewRecorder()
	if err := rc.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", errReader{}), nil); err != nil {
		t.Fatalf("ServeHTTP returned %v", err)
	}
	if want := want400("The request body could not be read."); w.Code != 400 || w.Body.String() != want {
		t.Errorf("answer %d %s, want 400 %s", w.Code, w.Body.String(), want)
	}
	if e := logs.FilterLevelExact(zap.DebugLevel).All(); len(e) != 1 {
		t.Errorf("logged %v, want one Debug entry", logs.All())
	}
}

// TestDashboardAnswersFailures: the dashboard answers its failures as
// {"error": ...}, never with Caddy's empty response, and answers 503 while
// no relay runs.
func TestDashboardAnswersFailures(t *testing.T) {
	log, _ := observedLogger()
	db := &Dashboard{DeadLetters: 20, log: log}
	for _, c := range []struct {
		name, method, target, ctype, body string
		status                            int
		want                              string
	}{
		{"unknown asset", http.MethodGet, "/status?asset=../dashboard.go", "", "", 404, `{"error":"no such asset: use dashboard.css or dashboard.js"}`},
		{"state, no relay", http.MethodGet, "/status?format=json", "", "", 503, `{"error":"the relay is not running"}`},
		{"replay, no relay", http.MethodPost, "/status", "application/json", `{"destination":"erp"}`, 503, `{"error":"the relay is not running"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(c.method, c.target, strings.NewReader(c.body))
			if c.ctype != "" {
				r.Header.Set("Content-Type", c.ctype)
			}
			w := httptest.NewRecorder()
			if err := db.ServeHTTP(w, r, nil); err != nil {
				t.Fatalf("ServeHTTP returned %v", err)
			}
			if w.Code != c.status || w.Body.String() != c.want || w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("answer %d %q %s, want %d %s", w.Code, w.Header().Get("Content-Type"), w.Body.String(), c.status, c.want)
			}
		})
	}
}
