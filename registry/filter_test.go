package registry

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
)

// filterTestEventJSON is an event as a webhook receives it, in JSON.
const filterTestEventJSON = `{
	"id": "evt_abcdefghijklmnopqrstuvwxyz",
	"topic": "orders/updated",
	"source": "ave",
	"received_at": "2026-12-01T10:00:00Z",
	"tenant": "acme",
	"data": {
		"status": "delivered",
		"total": 150.5,
		"count": 3,
		"currency": "CLP",
		"items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}],
		"customer": {"email": "Ana@Example.com"},
		"note": null
	}
}`

func filterTestEvent(tb testing.TB) map[string]any {
	tb.Helper()
	var ev map[string]any
	if err := json.Unmarshal([]byte(filterTestEventJSON), &ev); err != nil {
		tb.Fatal(err)
	}
	return ev
}

func TestFilterMatch(t *testing.T) {
	ev := filterTestEvent(t)
	tests := []struct {
		expr string
		want bool
	}{
		{`data.status == "delivered"`, true},
		{`data.status == "cancelled"`, false},
		{`data.status != "cancelled"`, true},
		{`topic.startsWith("orders/")`, true},
		{`topic.startsWith("products/")`, false},
		{`topic == "orders/updated"`, true},
		{`has(data.total) && double(data.total) > 100.0`, true},
		{`has(data.total) && double(data.total) > 200.0`, false},
		{`has(data.discount) && double(data.discount) > 0.0`, false},
		{`data.total > 100`, true}, // a JSON number (a double) compares with an int
		{`data.count == 3`, true},
		{`data.count in [1, 2, 3]`, true},
		{`tenant == "acme"`, true},
		{`tenant == "globex"`, false},
		{`event.source == "ave"`, true},
		{`event.id.startsWith("evt_")`, true},
		{`event.received_at.startsWith("2026-12")`, true},
		{`event.data.status == data.status`, true},
		{`data.items.exists(i, i.sku == "B-2")`, true},
		{`data.items.all(i, i.qty > 1)`, false},
		{`size(data.items) == 2`, true},
		{`data.customer.email.lowerAscii().endsWith("@example.com")`, true}, // ext.Strings
		{`data.currency.matches("^[A-Z]{3}$")`, true},
		{`data.note == null`, true},
		{`"status" in data && !("refund" in data)`, true},
		{`data.status == "delivered" ? true : false`, true},
		{"topic.startsWith('orders/') &&\n\tdata.status == 'delivered'", true},
	}
	for _, tt := range tests {
		f, err := CompileFilter(tt.expr)
		if err != nil {
			t.Errorf("CompileFilter(%q) = %v", tt.expr, err)
			continue
		}
		if f.String() != tt.expr {
			t.Errorf("String() = %q, want %q", f.String(), tt.expr)
		}
		got, err := f.Match(ev)
		if err != nil || got != tt.want {
			t.Errorf("%q: Match = %v, %v; want %v, nil", tt.expr, got, err, tt.want)
		}
		got, err = f.MatchContext(context.Background(), ev)
		if err != nil || got != tt.want {
			t.Errorf("%q: MatchContext = %v, %v; want %v, nil", tt.expr, got, err, tt.want)
		}
	}
}

// TestFilterMatchError: what fails at run time is not a match, and says why.
func TestFilterMatchError(t *testing.T) {
	ev := filterTestEvent(t)
	tests := []struct {
		expr, wantErr string
	}{
		{`data.refund == 1`, "no such key: refund"},                     // a key the event lacks
		{`data.customer.phone.startsWith("+56")`, "no such key: phone"}, // deeper
		{`event.missing == "x"`, "no such key: missing"},
		{`data.status > 1`, "no such overload"}, // a string is no number
		{`data.status`, "the result is string, not bool"},
		{`data.items[5].sku == "x"`, "index out of bounds"},
	}
	for _, tt := range tests {
		f, err := CompileFilter(tt.expr)
		if err != nil {
			t.Errorf("CompileFilter(%q) = %v", tt.expr, err)
			continue
		}
		got, err := f.Match(ev)
		if got || err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%q: Match = %v, %v; want false and an error with %q", tt.expr, got, err, tt.wantErr)
		}
	}
}

// TestFilterEventWithoutFields: an event without topic, tenant or data
// gives the empty strings, and data is a key the event lacks.
func TestFilterEventWithoutFields(t *testing.T) {
	for _, ev := range []map[string]any{nil, {}, {"topic": 1, "tenant": false}} {
		for expr, want := range map[string]bool{
			`topic == "" && tenant == ""`: true,
			`size(event) >= 0`:            true,
		} {
			f, err := CompileFilter(expr)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := f.Match(ev); got != want || err != nil {
				t.Errorf("%q over %v: Match = %v, %v; want %v, nil", expr, ev, got, err, want)
			}
		}
		f, err := CompileFilter(`data.status == "x"`)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := f.Match(ev); got || err == nil {
			t.Errorf("data over %v: Match = %v, %v; want false and an error", ev, got, err)
		}
	}
}

func TestCompileFilterErrors(t *testing.T) {
	tests := []struct {
		expr, want string // want: in the message
	}{
		{"", "invalid filter: empty expression"},
		{`data.status ==`, "invalid filter: 1:15: Syntax error: mismatched input '<EOF>'"},
		{`foo == 1`, "invalid filter: 1:1: undeclared reference to 'foo'"},
		{"topic == 'a' &&\n  foo == 1 &&\n  bar", "invalid filter: 2:3: undeclared reference to 'foo' (in container ''); 3:3: undeclared reference to 'bar'"},
		{"topic == \"a\r\n\"", `invalid filter: 1:10: Syntax error: token recognition error at: '"a\r'; 2:1: Syntax error: token recognition error at: '"'; 2:2: `},
		{`1 + 2`, "invalid filter: the result is int, it must be bool"},
		{`topic`, "invalid filter: the result is string, it must be bool"},
		{`data.items.map(i, i.sku)`, "invalid filter: the result is list(dyn), it must be bool"},
		{`topic == 1`, "invalid filter: 1:7: found no matching overload for '_==_' applied to '(string, int)'"},
		{`topic.nope()`, "invalid filter: 1:11: undeclared reference to 'nope'"},
		{`data.status.matches("(")`, "error parsing regexp: missing closing )"},
		{strings.Repeat("(", 40) + "true" + strings.Repeat(")", 40), "invalid filter: expression recursion limit exceeded: 32"},
		{"true || " + strings.Repeat(" ", 1020), "invalid filter: 1028 bytes, the limit is 1024"},
		{"[" + strings.Repeat("[].map(a,a,a),", 72) + "[]].size() > 0", "expression count exceeds limit of 1000"}, // 1024 bytes
	}
	for _, tt := range tests {
		f, err := CompileFilter(tt.expr)
		if err == nil {
			t.Errorf("CompileFilter(%.60q) = %q, want an error", tt.expr, f)
			continue
		}
		var fe *FilterError
		if !errors.Is(err, ErrInvalidFilter) || !errors.As(err, &fe) {
			t.Errorf("CompileFilter(%.60q) = %v (%T), want a *FilterError wrapping ErrInvalidFilter", tt.expr, err, err)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "invalid filter: ") || !strings.Contains(msg, tt.want) {
			t.Errorf("CompileFilter(%.60q) = %s\nwant \"invalid filter: ...%s...\"", tt.expr, msg, tt.want)
		}
		if strings.ContainsAny(msg, "\n\r") || strings.Contains(msg, " | ") {
			t.Errorf("CompileFilter(%.60q): message is not one line, or has a snippet: %q", tt.expr, msg)
		}
	}
}

// filterHostile are expressions that would take long to evaluate: each must
// fail to compile or be stopped by the cost limit.
var filterHostile = func() []string {
	l := "[1,2,3,4,5,6,7,8,9,10]"
	nest := func(depth int, inner string) string {
		s := inner
		for i := depth; i > 0; i-- {
			s = l + ".all(v" + string(rune('a'+i)) + ", " + s + ")"
		}
		return s
	}
	return []string{
		nest(5, "true"),  // 10^5 iterations
		nest(6, "true"),  // 10^6
		nest(12, "true"), // 10^12
		nest(5, `data.items.exists(i, i.sku.lowerAscii().contains("x")) || true`),
		nest(4, `[data.customer.email, data.customer.email].join(topic).size() < 0 || true`),
		l + ".map(a, " + l + ".map(b, " + l + ".map(c, " + l + ".map(d, " + l + ".map(e, e))))).size() > 0",
		"[" + strings.Repeat("data.items,", 80) + "data.items].all(x, x.all(y, " + l + ".all(z, " + l + ".all(w, " + l + ".all(q, true)))))",
	}
}()

func TestFilterHostile(t *testing.T) {
	ev := filterTestEvent(t)
	for _, expr := range filterHostile {
		f, err := CompileFilter(expr)
		if err != nil {
			t.Logf("%.60q: refused: %v", expr, err)
			continue
		}
		got, err := f.Match(ev)
		if got || err == nil || !strings.Contains(err.Error(), "cost limit exceeded") {
			t.Errorf("%.60q: Match = %v, %v; want false and the cost limit error", expr, got, err)
		}
	}
}

// TestFilterMatchContext: a done context stops a long evaluation.
func TestFilterMatchContext(t *testing.T) {
	f, err := CompileFilter(filterHostile[2])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("delivery abandoned")
	cancel(cause)
	got, err := f.MatchContext(ctx, filterTestEvent(t))
	if got || !errors.Is(err, cause) {
		t.Errorf("MatchContext(cancelled) = %v, %v; want false and the cause", got, err)
	}
}

// TestFilterConcurrent: one Filter serves many deliveries at once (run
// with -race).
func TestFilterConcurrent(t *testing.T) {
	f, err := CompileFilter(`data.items.exists(i, i.sku == "B-2") && tenant == "acme"`)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		ev := filterTestEvent(t)
		wg.Go(func() {
			for range 100 {
				if ok, err := f.Match(ev); !ok || err != nil {
					t.Errorf("Match = %v, %v", ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkFilterMatch(b *testing.B) {
	ev := filterTestEvent(b)
	f, err := CompileFilter(`topic.startsWith("orders/") && data.status == "delivered" && double(data.total) > 100.0`)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := f.Match(ev); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkFilterHostile measures how long the cost limit lets an
// expression run before it stops it.
func BenchmarkFilterHostile(b *testing.B) {
	ev := filterTestEvent(b)
	f, err := CompileFilter(filterHostile[1])
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := f.Match(ev); err == nil {
			b.Fatal("no cost error")
		}
	}
}

func BenchmarkCompileFilter(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CompileFilter(`topic.startsWith("orders/") && data.status == "delivered" && double(data.total) > 100.0`); err != nil {
			b.Fatal(err)
		}
	}
}
