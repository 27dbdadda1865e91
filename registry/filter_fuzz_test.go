package registry

import (
	"errors"
	"strings"
	"testing"
)

// FuzzCompileFilter: no expression makes CompileFilter panic, its refusals
// are one-line *FilterErrors, and what compiles runs over a sample event
// without panicking.
//
//	go test -run '^$' -fuzz '^FuzzCompileFilter$' -fuzztime 60s ./registry/
func FuzzCompileFilter(f *testing.F) {
	for _, s := range []string{
		`data.status == "delivered"`,
		`topic.startsWith("orders/")`,
		`has(data.total) && double(data.total) > 100.0`,
		`tenant == "acme"`,
		`event.source == "ave"`,
		`data.items.exists(i, i.sku == "B-2")`,
		`data.customer.email.lowerAscii().split("@")[1] == "example.com"`,
		`data.currency.matches("^[A-Z]{3}$")`,
		`"%s-%d".format([topic, 1]) != ""`,
		`data.status ==`,
		`foo == 1`,
		`1 + 2`,
		`data.items[5].sku == "x"`,
		`[1,2,3].all(a, [1,2,3].all(b, true))`,
		"topic == 'a' &&\n  foo",
		"'\xff' == topic",
		"\"\r0", // CEL quotes the bad token, line break included
		`b"\xff" == bytes(topic)`,
		`dyn(data).status == 1u`,
		`int(data.total) / 0 == 1`,
		`timestamp(event.received_at) > timestamp("2026-01-01T00:00:00Z")`,
		`duration("1h") > duration("1m")`,
	} {
		f.Add(s)
	}
	f.Add(filterHostile[1])
	ev := filterTestEvent(f)
	f.Fuzz(func(t *testing.T, expr string) {
		flt, err := CompileFilter(expr)
		if err != nil {
			if !errors.Is(err, ErrInvalidFilter) {
				t.Fatalf("CompileFilter(%q) = %v, does not wrap ErrInvalidFilter", expr, err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("CompileFilter(%q): message on more than one line: %q", expr, err)
			}
			return
		}
		if flt.String() != expr {
			t.Fatalf("String() = %q, want %q", flt.String(), expr)
		}
		if ok, err := flt.Match(ev); ok && err != nil {
			t.Fatalf("Match(%q) = true, %v", expr, err)
		}
	})
}
