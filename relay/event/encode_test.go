package event

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// checkEncode fails the test unless ev.AppendJSON writes what
// json.Marshal writes, after a prefix it must keep, and fails where
// json.Marshal fails.
func checkEncode(t *testing.T, ev *Event) {
	t.Helper()
	want, wantErr := json.Marshal(ev)
	prefix := []byte("prefix")
	got, err := ev.AppendJSON(bytes.Clone(prefix))
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("AppendJSON(%+v) error %v, json.Marshal error %v", ev, err, wantErr)
	}
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("AppendJSON lost the bytes it appends to: %q", got)
	}
	got = got[len(prefix):]
	if err != nil {
		if len(got) != 0 {
			t.Fatalf("AppendJSON failed but appended %q", got)
		}
		return
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendJSON(%+v)\n got %q\nwant %q", ev, got, want)
	}
	if plain := !bytes.ContainsAny(want, `\`); plain && len(want) > ev.EncodedLen() {
		t.Fatalf("EncodedLen %d, encoded %d bytes without escapes", ev.EncodedLen(), len(want))
	}
}

func TestAppendJSONLikeMarshal(t *testing.T) {
	at := time.Date(2026, 11, 22, 9, 0, 0, 123456789, time.UTC)
	base := func() Event {
		return Event{
			ID: "evt_2h7at2q24kcnkjmtmxmgybt6sl", Topic: "shipments/tracking", Source: "aveonline",
			ReceivedAt: at, Data: json.RawMessage(`{"shipment_id":"guia-1"}`),
		}
	}
	bogota := time.FixedZone("-05", -5*3600)
	odd := time.FixedZone("odd", 5*3600+30*60+17)
	strs := []string{
		"", "plain", "dirección 🚚", `a"b\c`, "<script>&amp;</script>", "\u2028\u2029x\u2027\u202a",
		"\x00\x01\x1f\x7f\b\f\n\r\t", "bad \xff\xfe utf8 \xe2\x80", "\xe2\x80\xa8\xe2\x80\xa9", "/", `\u0041`,
	}
	datas := []string{
		`{}`, `[]`, `null`, `true`, `false`, `0`, `-1.5e+10`, `"x"`, `""`,
		" \t\r\n{ \"a\" : [ 1 , 2 , { } , [ ] ] , \"b\" : null }\n",
		`{"html":"<b>&</b>","sep":"` + "\u2028\u2029" + `","esc":"\u003c\"\\\/\b\f\n\r\t\u2028"}`,
		"[\"bad \xff utf8\", \"\xe2\x80\xa8\", \"\xe2\x80\"]",
		`{"a":1,"a":2}`, `{"deep":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
		strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
		// Not JSON: json.Marshal fails on each.
		``, ` `, `{`, `{"a":1}}`, `1 2`, `[1,]`, `{'a':1}`, `01`, `"\x"`, "\"a\tb\"", `tru`, `nul`, `1.`, `-`,
		`<`, `{"a":1} <`, "\xe2\x80\xa8", `"abc`, `{"a" 1}`, `[1 2]`, `{,}`,
		strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
	}
	var cases []Event
	for _, s := range strs {
		for _, field := range []func(*Event){
			func(e *Event) { e.ID = s }, func(e *Event) { e.Topic = s },
			func(e *Event) { e.Source = s }, func(e *Event) { e.Tenant = s },
		} {
			ev := base()
			field(&ev)
			cases = append(cases, ev)
		}
	}
	for _, d := range datas {
		ev := base()
		ev.Data = json.RawMessage(d)
		cases = append(cases, ev)
	}
	for _, tm := range []time.Time{
		{}, at, at.In(bogota), at.In(odd), time.Date(2026, 1, 2, 3, 4, 5, 0, bogota), time.Date(2026, 1, 2, 3, 4, 5, 100, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 24*3600)), time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("x", -24*3600+60)),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 100*3600)), time.Now(), time.Unix(1<<40, 0),
	} {
		ev := base()
		ev.ReceivedAt = tm
		cases = append(cases, ev)
	}
	nilData := base()
	nilData.Data = nil
	cases = append(cases, nilData, Event{})
	for _, ev := range cases {
		checkEncode(t, &ev)
	}
}

// TestAppendJSONRandom compares with json.Marshal over many random
// events, built of the characters that matter to the encoding.
func TestAppendJSONRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	pieces := []string{"a", "é", "🚚", "<", ">", "&", `"`, `\`, "\u2028", "\u2029", "\x00", "\x1f", "\x7f", "\xff", "\xe2", "\xe2\x80", " ", "\n", "/"}
	text := func() string {
		var b strings.Builder
		for range r.IntN(12) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		return b.String()
	}
	var value func(depth int) any
	value = func(depth int) any {
		switch k := r.IntN(8); {
		case k == 0 && depth < 4:
			m := map[string]any{}
			for range r.IntN(4) {
				m[text()] = value(depth + 1)
			}
			return m
		case k == 1 && depth < 4:
			a := make([]any, r.IntN(4))
			for i := range a {
				a[i] = value(depth + 1)
			}
			return a
		case k == 2:
			return r.Float64() * 1e6
		case k == 3:
			return r.IntN(2) == 0
		case k == 4:
			return nil
		}
		return text()
	}
	spaces := []string{"", " ", "\n\t", "\r\n  "}
	for range 5000 {
		// Data as a sender might have spelled it: escaped or not, with
		// whitespace or not.
		v := value(0)
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(r.IntN(2) == 0)
		if r.IntN(2) == 0 {
			enc.SetIndent(spaces[r.IntN(len(spaces))], spaces[r.IntN(len(spaces))])
		}
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		data := buf.Bytes()
		if r.IntN(4) == 0 {
			// Raw characters the encoder would have escaped or refused.
			data = bytes.ReplaceAll(data, []byte(`\u003c`), []byte("<"))
			data = bytes.ReplaceAll(data, []byte(`\u2028`), []byte("\u2028"))
			data = bytes.ReplaceAll(data, []byte(`\ufffd`), []byte("\xff"))
		}
		ev := Event{
			ID: text(), Topic: text(), Source: text(), Tenant: text(), Data: data,
			ReceivedAt: time.Unix(r.Int64N(1<<36)-1<<35, r.Int64N(1e9)).In(time.FixedZone("z", (r.IntN(48)-24)*1800)),
		}
		checkEncode(t, &ev)
	}
}

func TestAppendJSONAllocs(t *testing.T) {
	ev := benchEvent()
	buf := make([]byte, 0, ev.EncodedLen())
	if n := testing.AllocsPerRun(100, func() { _, _ = ev.AppendJSON(buf[:0]) }); n != 0 {
		t.Errorf("AppendJSON into a large enough buffer allocates %v times", n)
	}
	if b, _ := ev.AppendJSON(nil); ev.EncodedLen() > len(b)+32 {
		t.Errorf("EncodedLen = %d, for %d bytes", ev.EncodedLen(), len(b))
	}
}

func FuzzEventEncode(f *testing.F) {
	for _, s := range canonicalSeeds {
		f.Add("evt_x", "shipments/tracking", "aveonline", "", int64(1795338000), int64(123456789), 0, []byte(s))
	}
	f.Add("<>&", "\u2028", "\xff", "t\"\\", int64(-62135596800), int64(0), 3600, []byte(" {\"a\" : \"<\u2028>\" } "))
	f.Add("", "", "", "", int64(253402300800), int64(1), -86399, []byte("[1,\n2]"))
	f.Fuzz(func(t *testing.T, id, topic, source, tenant string, sec, nsec int64, offset int, data []byte) {
		ev := Event{
			ID: id, Topic: topic, Source: source, Tenant: tenant,
			ReceivedAt: time.Unix(sec, nsec).In(time.FixedZone("z", offset)),
			Data:       data,
		}
		in := bytes.Clone(data)
		checkEncode(t, &ev)
		if !bytes.Equal(in, data) {
			t.Fatal("AppendJSON modified the data")
		}
	})
}

func TestValidAllocs(t *testing.T) {
	deep := []byte(strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth))
	for _, in := range [][]byte{[]byte(benchData), deep, []byte(`{"a":[1,2,{"b":null}]} `)} {
		if n := testing.AllocsPerRun(10, func() { Valid(in) }); n != 0 {
			t.Errorf("Valid(%.20s) allocates %v times", in, n)
		}
	}
}
