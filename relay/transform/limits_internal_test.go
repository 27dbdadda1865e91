package transform

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// fmtArgs are printf arguments of every kind a template can pass.
func fmtArgs(s string, n int64, f float64, pick uint8) []any {
	all := []any{
		s, int(n), f, json.Number("12.5"), true, nil, Number{d: decimal.New(n, -2)},
		[]any{s, int(n), []any{f, nil}}, map[string]any{s: []any{s}, "k": map[string]any{}},
		time.Unix(n%1e10, 0).UTC(), -1,
	}
	var args []any
	for i := range 4 {
		args = append(args, all[int(pick>>(2*i)+uint8(i))%len(all)])
	}
	return args[:int(pick)%5]
}

func TestPrintfBound(t *testing.T) {
	formats := []string{
		"", "x", "%", "%%", "%v", "%d %s", "%5d|%-5s|%05.2f", "%[2]*[1]d", "%[3]v %[1]v", "%*.*f", "%.*s", "%[9]d",
		"%q %x %X % x %#x %#v %+q %U %#U %c %b %o %O %e %E %g %G %t %p %T", "%!", "%[", "%[1", "%[x]d", "%.[2]d",
		"%999999d", "%9999999d", "%99999999d", "%.999999f", "%10v", "%-10.3v", "%#10x", "%+v %+d", "%w",
	}
	for _, format := range formats {
		for pick := 0; pick < 256; pick += 3 {
			args := fmtArgs("a\"é\x00<", 7, 3.25, uint8(pick))
			checkPrintfBound(t, format, args)
		}
	}
}

func FuzzPrintfBound(f *testing.F) {
	f.Add("%v|%5.2f|%[1]q|%*d", "x", int64(3), 1.5, uint8(0x1b))
	f.Add("%x % x %#v", "a\"b", int64(-1), -0.0, uint8(0xff))
	f.Fuzz(func(t *testing.T, format, s string, n int64, fl float64, pick uint8) {
		checkPrintfBound(t, format, fmtArgs(s, n, fl, pick))
	})
}

func checkPrintfBound(t *testing.T, format string, args []any) {
	t.Helper()
	bound, deep := printfBound(format, args, 2<<20)
	if deep || bound > 2<<20 {
		return // too large to check by formatting
	}
	if got := len(fmt.Sprintf(format, args...)); got > bound {
		t.Fatalf("printf %q %#v: %d bytes, bound %d", format, args, got, bound)
	}
}

func TestPrintSize(t *testing.T) {
	for pick := range 256 {
		args := fmtArgs("a\"é\x00<", -7, 3.25, uint8(pick))
		z := sizer{limit: 1 << 30, mul: 1, intLen: 20, floatLen: 24}
		for _, a := range args {
			z.walk(a, 0)
		}
		bound := z.n + len(args) + 1
		if got := len(fmt.Sprintln(args...)); got > bound {
			t.Errorf("println %#v: %d bytes, bound %d", args, got, bound)
		}
	}
	for _, n := range []string{"0", "-1", "1.50", "-0.001", "123456789012345678901234567890.5", "1e3", "0.000"} {
		d, err := decimal.NewFromString(n)
		if err != nil {
			t.Fatal(err)
		}
		num := Number{d: normalize(d)}
		if got, want := numberTextLen(num), len(num.String()); got != want {
			t.Errorf("numberTextLen(%s) = %d, want %d", num, got, want)
		}
	}
	if strings.Count(fmt.Sprint(Number{}), "0") != 1 {
		t.Error("zero Number")
	}
}
