package transform_test

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/relay/transform"
)

// numbers is the data of the arithmetic tests: DEUNA carries totals as
// strings, merchants answer strings or JSON numbers.
const numbers = `{"total":"10.10","tip":"1.20","n":12,"neg":"-2.345","zero":"0","big":98765432109876543210,
  "e":"1e3","small":"1E-2","frac":0.5,"null":null,"bool":true,"obj":{},"arr":[],"word":"abc","plus":"+1",
  "space":" 1","hex":"0x10","nan":"NaN","inf":"Infinity","lead":"01","dot":"1.","huge":"1e999999999"}`

func TestArithmetic(t *testing.T) {
	data := decode(t, numbers)
	tests := []struct{ tmpl, want string }{
		// add: the scale is the larger operand scale
		{`{{ add .total .tip }}`, `11.30`},
		{`{{ add 0.1 0.2 }}`, `0.3`},
		{`{{ add "10.10" "1.20" }}`, `11.30`},
		{`{{ add .total 1 }}`, `11.10`},
		{`{{ add .n .n .n }}`, `36`},
		{`{{ add .total .tip .tip "0.001" }}`, `12.501`},
		{`{{ add .big 1 }}`, `98765432109876543211`},
		{`{{ add .e 0 }}`, `1000`},
		{`{{ add .small 0 }}`, `0.01`},
		{`{{ add .frac .frac }}`, `1.0`},
		{`{{ add "-0.00" 0 }}`, `0.00`},
		{`{{ add .neg "2.345" }}`, `0.000`},
		{`{{ add (add .total .tip) .tip }}`, `12.50`},
		// sub
		{`{{ sub .total .tip }}`, `8.90`},
		{`{{ sub .tip .total }}`, `-8.90`},
		{`{{ sub .total .total }}`, `0.00`},
		{`{{ sub 1 0.01 }}`, `0.99`},
		// mul: the scale is the sum of the scales
		{`{{ mul .total 0.03 }}`, `0.3030`},
		{`{{ mul "10.10" "0.03" }}`, `0.3030`},
		{`{{ mul .n 2 3 }}`, `72`},
		{`{{ mul .e .e }}`, `1000000`},
		{`{{ mul .neg 0 }}`, `0.000`},
		{`{{ mul "-1" 0 }}`, `0`},
		// div: exact at the ideal scale, else 34 decimals
		{`{{ div "10.00" 2 }}`, `5.00`},
		{`{{ div 10 4 }}`, `2.5`},
		{`{{ div 1 3 }}`, `0.3333333333333333333333333333333333`},
		{`{{ div 2 3 }}`, `0.6666666666666666666666666666666667`},
		{`{{ div -2 3 }}`, `-0.6666666666666666666666666666666667`},
		{`{{ div "1.0" "0.5" }}`, `2`},
		{`{{ div 0 "0.5" }}`, `0`},
		{`{{ div "0.000" 7 }}`, `0.000`},
		{`{{ div 100 "1e2" }}`, `1`},
		{`{{ div "1.10" 1 }}`, `1.10`},
		{`{{ div .total 3 }}`, `3.3666666666666666666666666666666667`},
		// round: half away from zero, exactly places decimals
		{`{{ round "11.3" 2 }}`, `11.30`},
		{`{{ round "2.345" 2 }}`, `2.35`},
		{`{{ round "-2.345" 2 }}`, `-2.35`},
		{`{{ round .neg 1 }}`, `-2.3`},
		{`{{ round "2.5" 0 }}`, `3`},
		{`{{ round "-2.5" 0 }}`, `-3`},
		{`{{ round "-0.001" 2 }}`, `0.00`},
		{`{{ round 1234.5 -2 }}`, `1200`},
		{`{{ round 1250 -2 }}`, `1300`},
		{`{{ round .total "1" }}`, `10.1`},
		{`{{ round (mul .total 0.03) 2 }}`, `0.30`},
		{`{{ round 1 32 }}`, `1.` + strings.Repeat("0", 32)},
		// cmp
		{`{{ cmp .total .tip }}`, `1`},
		{`{{ cmp .tip .total }}`, `-1`},
		{`{{ cmp "1.0" "1.00" }}`, `0`},
		{`{{ cmp .zero 0 }}`, `0`},
		{`{{ if gt (cmp .total .tip) 0 }}more{{ end }}`, `more`},
		{`{{ if eq (cmp .zero "0") 0 }}zero{{ end }}`, `zero`},
		// min, max: the chosen operand, with its scale
		{`{{ min .total .tip }}`, `1.20`},
		{`{{ max .total .tip 3 }}`, `10.10`},
		{`{{ min 5 }}`, `5`},
		{`{{ min "1.0" "1.00" 2 }}`, `1.0`},
		{`{{ max "-1" .neg }}`, `-1`},
		{`{{ min 0.1 1 }}`, `0.1`},
		// a Number is a value like the others
		{`{{ upper (add .total 1) }}`, `11.10`},
		{`{{ json (add .total .tip) }}`, `11.30`},
		{`{{ json (dict "t" (add .total .tip) "l" (list (sub 1 2))) | len }}`, `20`}, // {"l":[-1],"t":11.30}
		{`{{ json (default 0 (add .total 0)) }}`, `10.10`},
		{`{{ print (add 1 1) "-" (mul 2 2) }}`, `2-4`},
		{`{{ printf "%s|%v" (add 1 1) (add "1.50" 0) }}`, `2|1.50`},
		{`{{ len (print (add .total .tip)) }}`, `5`},
		{`{{ $t := add .total .tip }}{{ $t = add $t 1 }}{{ $t }}`, `12.30`},
		{`{{ index (list "a" "b" "c") (add 1 1) }}`, `c`},
		{`{{ with add .total .tip }}{{ . }}{{ end }}`, `11.30`},
		{`{{ add (index . "total") .n }}`, `22.10`},
	}
	for _, tt := range tests {
		t.Run(tt.tmpl, func(t *testing.T) {
			// A bare number is not always JSON (1.), so wrap the output.
			tm := mustParse(t, "a.tmpl", `{"v":"`+tt.tmpl+`"}`)
			out, err := tm.Render(data)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			var got struct{ V string }
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("output %s: %v", out, err)
			}
			if got.V != tt.want {
				t.Errorf("got %s, want %s", got.V, tt.want)
			}
		})
	}
}

func TestArithmeticErrors(t *testing.T) {
	data := decode(t, numbers)
	tests := []struct{ tmpl, want string }{
		{`{{ add .total .word }}`, `add: argument 2 is "abc", not a number`},
		{`{{ add .word 1 }}`, `add: argument 1 is "abc", not a number`},
		{`{{ add 1 2 .word }}`, `add: argument 3 is "abc", not a number`},
		{`{{ add .total (index . "missing") }}`, `add: argument 2 is null, not a number`},
		{`{{ add .total .null }}`, `add: argument 2 is null, not a number`},
		{`{{ sub .bool 1 }}`, `sub: argument 1 is a bool, not a number`},
		{`{{ mul 1 .obj }}`, `mul: argument 2 is an object, not a number`},
		{`{{ div .arr 1 }}`, `div: argument 1 is an array, not a number`},
		{`{{ cmp 1 .plus }}`, `cmp: argument 2 is "+1", not a number`},
		{`{{ min .space }}`, `min: argument 1 is " 1", not a number`},
		{`{{ max 1 .hex }}`, `max: argument 2 is "0x10", not a number`},
		{`{{ add .nan 1 }}`, `add: argument 1 is "NaN", not a number`},
		{`{{ add .inf 1 }}`, `add: argument 1 is "Infinity", not a number`},
		{`{{ add .lead 1 }}`, `add: argument 1 is "01", not a number`},
		{`{{ add .dot 1 }}`, `add: argument 1 is "1.", not a number`},
		{`{{ add "" 1 }}`, `add: argument 1 is "", not a number`},
		{`{{ add "1e" 1 }}`, `add: argument 1 is "1e", not a number`},
		{`{{ add "` + strings.Repeat("long text ", 10) + `" 1 }}`, `add: argument 1 is "long text long text long text lo"…, not a number`},
		// bounds
		{`{{ add .huge 1 }}`, `add: argument 1 is "1e999999999", out of range (exponent beyond ±256)`},
		{`{{ add "1e-999999999999999999999" 1 }}`, `out of range`},
		{`{{ add "1e257" 1 }}`, `out of range`},
		{`{{ add "1.5e-256" 1 }}`, `out of range`},
		{`{{ add 1e300 1 }}`, `add: argument 1 is 1e+300, out of range (exponent beyond ±256)`},
		{`{{ add "` + strings.Repeat("9", 257) + `" 1 }}`, `add: argument 1 is a string of 257 bytes, too long for a number (at most 256)`},
		{`{{ mul "1e256" "1e256" }}`, `mul: result is too large (more than 512 digits)`},
		{`{{ mul "1e-256" "0.1" }}`, `mul: result is too large (more than 256 decimal places)`},
		{`{{ $x := "1e200" }}{{ range 3 }}{{ $x = mul $x $x }}{{ end }}`, `mul: result is too large`},
		{`{{ mul "1e200" "1e200" "1e200" }}`, `mul: result is too large`},
		{`{{ add "1e256" "1e-256" }}`, `add: result is too large`},
		// div
		{`{{ div 1 0 }}`, `div: division by zero`},
		{`{{ div .total "0.00" }}`, `div: division by zero`},
		{`{{ div 1 .word }}`, `div: argument 2 is "abc", not a number`},
		// round
		{`{{ round 1 33 }}`, `round: places is 33, not an integer from -32 to 32`},
		{`{{ round 1 -33 }}`, `round: places is -33, not an integer from -32 to 32`},
		{`{{ round 1 2.5 }}`, `round: places is 2.5, not an integer from -32 to 32`},
		{`{{ round 1 "x" }}`, `round: places is "x", not an integer from -32 to 32`},
		{`{{ round 1 .null }}`, `round: places is null, not an integer from -32 to 32`},
		{`{{ round .word 2 }}`, `round: argument 1 is "abc", not a number`},
		{`{{ round "` + strings.Repeat("9", 252) + `e256" 5 }}`, `round: result is too large`},
		// arity
		{`{{ add 1 }}`, `wrong number of args for add: want at least 2 got 1`},
		{`{{ sub 1 2 3 }}`, `wrong number of args for sub: want 2 got 3`},
		{`{{ min }}`, `wrong number of args for min: want at least 1 got 0`},
		{`{{ cmp 1 }}`, `wrong number of args for cmp: want 2 got 1`},
		// a Number is compared with cmp
		{`{{ if eq (add 1 2) "3" }}{{ end }}`, `compare it with cmp`},
		{`{{ if ne 3 (add 1 2) }}{{ end }}`, `compare it with cmp`},
		{`{{ if lt (add 1 2) 4 }}{{ end }}`, `invalid type for comparison`},
		{`{{ date "2006" "UTC" (add 1 2) }}`, `a number is not a time`},
		{`{{ len (add 1 2) }}`, `len of type transform.Number`},
		{`{{ (add 1 2).d }}`, `d is an unexported field`},
		{`{{ (add 1 2).Pow 2 }}`, `can't evaluate field Pow`},
	}
	for _, tt := range tests {
		t.Run(tt.tmpl, func(t *testing.T) {
			_, err := mustParse(t, "a.tmpl", "{\n\"v\": \""+tt.tmpl+"\"}").Render(data)
			var re *transform.RenderError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v (%T), want *RenderError", err, err)
			}
			// "error calling add: argument 2 ..." names the function once.
			reason := strings.Replace(re.Reason, "error calling ", "", 1)
			if !strings.Contains(reason, tt.want) {
				t.Errorf("reason %q does not contain %q", re.Reason, tt.want)
			}
			if re.Line != 2 {
				t.Errorf("Line = %d, want 2", re.Line)
			}
		})
	}
}

func TestDivisionByZeroLine(t *testing.T) {
	tm := mustParse(t, "split.tmpl", "{\n  \"each\": \"{{ div .request.order.total .result.people }}\"\n}")
	_, err := tm.Render(decode(t, `{"result":{"people":0},"request":{"order":{"total":"10.10"}}}`))
	var re *transform.RenderError
	if !errors.As(err, &re) || re.Line != 2 || !strings.Contains(re.Reason, "division by zero") {
		t.Fatalf("err = %#v, want a *RenderError on line 2 about division by zero", err)
	}
	if want := `template "split.tmpl" line 2: at <div .request.order.total .result.people>: error calling div: division by zero`; err.Error() != want {
		t.Errorf("err = %q\nwant  %q", err, want)
	}
}

// TestNumberMethods checks that a Number shows templates String and
// MarshalJSON only: a decimal's methods (Pow, ...) must not be reachable.
func TestNumberMethods(t *testing.T) {
	n := mustParse(t, "n", `{{ json (list (add "1.10" 2)) }}`)
	out, err := n.Render(nil)
	if err != nil || string(out) != `[3.10]` {
		t.Fatalf("Render = %s, %v", out, err)
	}
	b, err := json.Marshal(map[string]any{"v": transform.Number{}})
	if err != nil || string(b) != `{"v":0}` {
		t.Errorf("Marshal(zero Number) = %s, %v", b, err)
	}
	out, err = mustParse(t, "n", `{{ json (dict "t" (add "10.10" "1.20") "l" (list (sub 1 2))) }}`).Render(nil)
	if err != nil || string(out) != `{"l":[-1],"t":11.30}` {
		t.Errorf("Render = %s, %v", out, err)
	}
	if s := (transform.Number{}).String(); s != "0" {
		t.Errorf("zero Number prints %q", s)
	}
	out, err = mustParse(t, "n", `"{{ (add 1 2).String }}"`).Render(nil)
	if err != nil || string(out) != `"3"` {
		t.Errorf("String method: %s, %v", out, err)
	}
}

// deunaOrder is the data of a response_template: the merchant's answer
// under result, the original request under request.
func deunaOrder(t testing.TB, result, order string) any {
	t.Helper()
	return decode(t, `{"result":`+result+`,"request":{"order":`+order+`}}`)
}

const cardOrder = `{"order_id":"A1","total":"10.10","payment_method":"CARD","currency":"USD","custom_fields":{}}`

func TestWorkedExample(t *testing.T) {
	tm := mustParse(t, "tip.tmpl", `{"order":{"order_id":{{ json .request.order.order_id }},"total":"{{ add .request.order.total .result.tip }}","custom_fields":{"tip":{{ json .result.tip }}}}}`)
	out, err := tm.Render(deunaOrder(t, `{"uuid":"u-1","tip":"1.20"}`, `{"order_id":"A1","total":"10.10","payment_method":"CARD","custom_fields":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"order":{"order_id":"A1","total":"11.30","custom_fields":{"tip":"1.20"}}}`; string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}

func parseFile(t testing.TB, name string) *transform.Template {
	t.Helper()
	text, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return mustParse(t, name, string(text))
}

func TestSeedTemplates(t *testing.T) {
	tests := []struct {
		file, result, order, want string
	}{
		{"kfc-web-tip.tmpl", `{"uuid":"u-1","tip":"1.20"}`, cardOrder,
			`{"order":{"order_id":"A1","total":"11.30","custom_fields":{"tip":"1.20"}}}`},
		{"kfc-web-tip.tmpl", `{"tip":2}`, `{"order_id":"A2","total":"7.5"}`,
			`{"order":{"order_id":"A2","total":"9.5","custom_fields":{"tip":2}}}`},
		{"kfc-web-tip.tmpl", `{"tip":"0.00"}`, `{"order_id":"A3","total":10}`,
			`{"order":{"order_id":"A3","total":"10.00","custom_fields":{"tip":"0.00"}}}`},

		{"kfc-venezuela-tax.tmpl", `{}`, `{"order_id":"V1","total":"10.10","payment_method":"CASH"}`,
			`{"order":{"order_id":"V1","total":"10.40","custom_fields":{"tax":"0.30"}}}`},
		{"kfc-venezuela-tax.tmpl", `{}`, `{"order_id":"V2","total":"25.50","payment_method":"CASH"}`, // 0.765 rounds up
			`{"order":{"order_id":"V2","total":"26.27","custom_fields":{"tax":"0.77"}}}`},
		{"kfc-venezuela-tax.tmpl", `{}`, `{"order_id":"V3","total":100,"payment_method":"CASH"}`,
			`{"order":{"order_id":"V3","total":"103.00","custom_fields":{"tax":"3.00"}}}`},
		{"kfc-venezuela-tax.tmpl", `{}`, `{"order_id":"V4","total":"10.10","payment_method":"CARD"}`,
			`{"order":{"order_id":"V4","total":"10.10","custom_fields":{"tax":"0.00"}}}`},
		{"kfc-venezuela-tax.tmpl", `{}`, `{"order_id":"V5","total":"10"}`,
			`{"order":{"order_id":"V5","total":"10","custom_fields":{"tax":"0.00"}}}`},

		{"wow-points.tmpl", `{"points_available":"1500","point_value":"0.01"}`, cardOrder, // points pay it all
			`{"order":{"order_id":"A1","total":"0.00","custom_fields":{"points_used":1010,"points_amount":"10.10"}}}`},
		{"wow-points.tmpl", `{"points_available":"500","point_value":"0.01"}`, cardOrder,
			`{"order":{"order_id":"A1","total":"5.10","custom_fields":{"points_used":500,"points_amount":"5.00"}}}`},
		{"wow-points.tmpl", `{"points_available":120,"point_value":0.05}`, `{"order_id":"W3","total":"4.99"}`,
			`{"order":{"order_id":"W3","total":"0.00","custom_fields":{"points_used":100,"points_amount":"4.99"}}}`},
		{"wow-points.tmpl", `{"points_available":"0","point_value":"0.01"}`, cardOrder,
			`{"order":{"order_id":"A1","total":"10.10","custom_fields":{"points_used":0,"points_amount":"0.00"}}}`},
		{"wow-points.tmpl", `{"points_available":"100","point_value":"0"}`, cardOrder,
			`{"order":{"order_id":"A1","total":"10.10","custom_fields":{"points_used":0,"points_amount":"0.00"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.file+" "+tt.order, func(t *testing.T) {
			out, err := parseFile(t, tt.file).Render(deunaOrder(t, tt.result, tt.order))
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.want {
				t.Errorf("got  %s\nwant %s", out, tt.want)
			}
		})
	}
	// A merchant answer that is not a number fails the render, naming it.
	_, err := parseFile(t, "wow-points.tmpl").Render(deunaOrder(t, `{"points_available":"many","point_value":"0.01"}`, cardOrder))
	if err == nil || !strings.Contains(err.Error(), `argument 1 is "many", not a number`) {
		t.Errorf("err = %v", err)
	}
}
