package jsonenc

import (
	"bytes"
	"encoding/json"
	"testing"
)

// encodingJSON is how encoding/json writes s.
func encodingJSON(t *testing.T, s string, escapeHTML bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(escapeHTML)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
}

var seeds = []string{
	"", "plain", "dirección 🚚", `a"b\c`, "<script>&amp;</script>", "\u2028\u2029x\u2027\u202a",
	"\x00\x01\x1f\x7f\b\f\n\r\t", "bad \xff\xfe utf8 \xe2\x80", "\xe2\x80\xa8\xe2\x80\xa9", "/", `\u0041`,
	"\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf", "\ufffd", "ends in \xe2",
}

func TestAppendString(t *testing.T) {
	for _, s := range seeds {
		for _, html := range []bool{true, false} {
			want := encodingJSON(t, s, html)
			if got := AppendString([]byte("x"), s, html); string(got) != "x"+string(want) {
				t.Errorf("AppendString(%q, html %v) = %q, want x%q", s, html, got, want)
			}
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, html := range []bool{true, false} {
			if got, want := AppendString(nil, s, html), encodingJSON(t, s, html); !bytes.Equal(got, want) {
				t.Fatalf("AppendString(%q, html %v) = %q, want %q", s, html, got, want)
			}
		}
	})
}
