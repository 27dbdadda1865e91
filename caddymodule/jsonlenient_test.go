package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLenientJSON(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
	}{
		{"strict JSON unchanged", `{"a":[1,2,{"b":null}],"c":"d"}`, `{"a":[1,2,{"b":null}],"c":"d"}`},
		{"trailing comma in an object", `{"a":1,}`, `{"a":1 }`},
		{"trailing comma in an array", `[1,2,]`, `[1,2 ]`},
		{"trailing comma before space and a line break", "{\"a\":\"b\", \n}", "{\"a\":\"b\"  \n}"},
		{"nested trailing commas", `{"a":[{"b":1,},],}`, `{"a":[{"b":1 } ] }`},
		{"after true, false, null", `[true,false,null,]`, `[true,false,null ]`},
		{"line comment", "{\"a\":1 // one\n}", "{\"a\":1       \n}"},
		{"line comment ending the body", "{\"a\":1}// end", "{\"a\":1}      "},
		{"line comment before CRLF", "{\"a\":1, // x\r\n}", "{\"a\":1      \r\n}"},
		{"block comment", `{"a":/* one */1}`, `{"a":         1}`},
		{"block comment over lines", "{/* a\nb */\"a\":1}", "{    \n    \"a\":1}"},
		{"comment between the comma and the bracket", `[1, /* last */ ]`, `[1             ]`},
		{"comment markers in strings", `{"u":"https://x.com/a//b","c":"/* no */","e":",]"}`, `{"u":"https://x.com/a//b","c":"/* no */","e":",]"}`},
		{"escaped quotes", `{"a":"\"//\\", "b":1,}`, `{"a":"\"//\\", "b":1 }`},
		{"escaped backslash before the closing quote", `["\\",]`, `["\\" ]`},
		{"byte order mark", "\xef\xbb\xbf{\"a\":1}", "   {\"a\":1}"},
		{"a comma that follows no value stays", `[,]`, `[,]`},
		{"an empty member stays", `{,}`, `{,}`},
		{"a doubled comma stays", `[1,,]`, `[1,,]`},
		{"a comma after a colon stays", `{"a":,}`, `{"a":,}`},
		{"a lone slash stays", `{"a":1/2}`, `{"a":1/2}`},
		{"an unterminated string is left to the decoder", `{"a":"b,}`, `{"a":"b,}`},
		{"empty", ``, ``},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := lenientJSON([]byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
		})
	}

	_, err := lenientJSON([]byte(`{"a": /* not closed`))
	var le *lenientError
	if !errors.As(err, &le) || le.Offset != 6 {
		t.Errorf("an open block comment: %v, want a lenientError at 6", err)
	}
	in := []byte(`[1,2]`)
	if _, err := lenientJSON(in); err != nil || string(in) != `[1,2]` {
		t.Errorf("the input was changed: %s", in)
	}
}

// TestLenientJSONSeed: the bodies and answers of Ventiapp's documentation
// (seed 000) are JSON once the pre-pass ran, and only the create's "Body
// Parameters" sample and the examples with trailing commas needed it.
func TestLenientJSONSeed(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "ventiapp", "*.json"))
	if err != nil || len(files) != 7 {
		t.Fatalf("%d seed files: %v", len(files), err)
	}
	needed := map[string]bool{
		"create_body_parameters.json": true, "create_oauth_example.json": true,
		"create_apikey_example.json": true, "list_answer.json": true,
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out, err := lenientJSON(b)
		if err != nil || !json.Valid(out) {
			t.Errorf("%s: not JSON after the pre-pass (%v):\n%s", f, err, out)
		}
		if name := filepath.Base(f); json.Valid(b) == needed[name] {
			t.Errorf("%s: valid JSON as published: %v, want %v", name, json.Valid(b), !needed[name])
		}
	}
}

// FuzzLenientJSON: the pre-pass never panics, keeps the length (so that
// offsets stay those of the input), leaves JSON as it is, blanks only
// bytes outside strings, and running it twice changes nothing more.
func FuzzLenientJSON(f *testing.F) {
	for _, s := range []string{`{"a":1,}`, "[1,/* c */]", "{\"a\":1 // c\n}", `["\\",]`, `{"a":"/*"}`, "\xef\xbb\xbf[]", `[,]`, `/*`, `"\`} {
		f.Add([]byte(s))
	}
	if files, _ := filepath.Glob(filepath.Join("testdata", "ventiapp", "*.json")); len(files) > 0 {
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		out, err := lenientJSON(in)
		if !bytes.Equal(in, orig) {
			t.Fatal("the input was changed")
		}
		if err != nil {
			var le *lenientError
			if !errors.As(err, &le) || le.Offset < 0 || le.Offset >= int64(len(in)) || !bytes.HasPrefix(in[le.Offset:], []byte("/*")) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if len(out) != len(in) {
			t.Fatalf("length %d, input %d", len(out), len(in))
		}
		for i := range out {
			if out[i] != in[i] && out[i] != ' ' {
				t.Fatalf("byte %d changed to %q", i, out[i])
			}
		}
		if json.Valid(in) && !bytes.Equal(out, in) {
			t.Fatalf("JSON changed:\n%q\n%q", in, out)
		}
		again, err := lenientJSON(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("a second pass changed %q to %q (%v)", out, again, err)
		}
	})
}
