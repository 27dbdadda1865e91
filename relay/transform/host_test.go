package transform_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/relay/transform"
)

// A template sees only the data it is rendered over: no function reads a
// file, the environment or the network (the helpers Caddy's and Sprig's
// templates have for that are not defined), builtin call finds no
// function in JSON data, and the values functions return expose no method
// beyond String and MarshalJSON.
func TestTemplatesCannotReachTheHost(t *testing.T) {
	for _, name := range []string{"env", "getenv", "expandenv", "readFile", "include", "import", "listFiles",
		"fileExists", "httpInclude", "exec", "os", "hostname", "placeholder", "getHostByName", "fail"} {
		t.Run(name, func(t *testing.T) {
			_, err := transform.Parse("t", `{"x": {{ json (`+name+` "HOME") }}}`)
			var pe *transform.ParseError
			if err == nil || !errors.As(err, &pe) || !strings.Contains(pe.Reason, `function "`+name+`" not defined`) {
				t.Fatalf("Parse with %s: %v, want function %q not defined", name, err, name)
			}
		})
	}
	data, err := transform.DecodeJSON([]byte(`{"f": "os.Getenv", "n": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{
		`{{ call .f "HOME" }}`,      // a string is not a function
		`{{ (add .n 1).Pow 2 }}`,    // a Number has no Pow
		`{{ (add .n 1).Exponent }}`, // nor anything of decimal.Decimal
		`{{ .n.Float64 }}`,          // json.Number's methods print a number at most
	} {
		tm, err := transform.Parse("t", text)
		if err != nil {
			continue // refused at parse: as good
		}
		out, err := tm.Render(data)
		if err == nil && !strings.ContainsAny(string(out), "0123456789") {
			t.Errorf("%s rendered %q", text, out)
		}
		if strings.Contains(text, "call") || strings.Contains(text, "Pow") || strings.Contains(text, "Exponent") {
			if err == nil {
				t.Errorf("%s rendered %q, want an error", text, out)
			}
		}
	}
}
