package ave

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// refData is the tracking's JSON as encoding/json writes it, HTML
// characters not escaped: what Tracking.data must write.
func refData(t *testing.T, tr *Tracking) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(tr); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
}

// checkData fails the test unless tr's data is refData's, and fits in
// encodedLen when no string needs escaping.
func checkData(t *testing.T, tr *Tracking) {
	t.Helper()
	got, err := tr.data()
	if err != nil {
		t.Fatal(err)
	}
	want := refData(t, tr)
	if !bytes.Equal(got, want) {
		t.Fatalf("data of %+v\n got %s\nwant %s", tr, got, want)
	}
	if !bytes.Contains(want, []byte{'\\'}) && len(want) > tr.encodedLen() {
		t.Fatalf("encodedLen %d, data %d bytes", tr.encodedLen(), len(want))
	}
}

func TestTrackingJSON(t *testing.T) {
	full := Sample()
	one := Sample()
	one.ProofsOfDelivery = nil
	empty := Tracking{Incident: &Incident{}, Replacement: &Replacement{}, ProofOfDelivery: &ProofOfDelivery{}, ProofsOfDelivery: []ProofOfDelivery{}}
	odd := Tracking{
		ShipmentID: "<a&b>\u2028\"\\\x01\x7f\xff", Status: Status{Code: "-0", Name: "ñ 🚚", At: "\t"},
		Incident: &Incident{State: "x"}, Replacement: &Replacement{Kind: KindContinuation},
		ProofOfDelivery: &ProofOfDelivery{Bytes: -1}, ProofsOfDelivery: []ProofOfDelivery{{Bytes: 1 << 40}},
	}
	for _, tr := range []Tracking{full, one, {}, empty, odd} {
		checkData(t, &tr)
	}
	// Every guide the tests normalize.
	for _, s := range fuzzSeeds() {
		trs, err := Normalize([]byte(s), Options{})
		if err != nil {
			continue
		}
		for i := range trs {
			checkData(t, &trs[i])
		}
	}
}

// TestTrackingJSONRandom compares with encoding/json over many random
// trackings, every group present or not, of strings built of the
// characters that matter to the encoding.
func TestTrackingJSONRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	pieces := []string{"a", "é", "🚚", "<", ">", "&", `"`, `\`, "\u2028", "\u2029", "\x00", "\x1f", "\x7f", "\xff", "\xe2\x80", " ", "/"}
	text := func() string {
		if r.IntN(3) == 0 {
			return ""
		}
		var b strings.Builder
		for range r.IntN(8) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		return b.String()
	}
	proof := func() ProofOfDelivery {
		return ProofOfDelivery{MimeType: text(), Base64: text(), Bytes: r.IntN(1<<20) - 10}
	}
	for range 3000 {
		tr := Tracking{
			ShipmentID: text(), Status: Status{Code: text(), Name: text(), At: text()},
			DocumentURL: text(), Notes: text(),
		}
		if r.IntN(2) == 0 {
			tr.Incident = &Incident{Code: text(), Name: text(), At: text(), State: text()}
		}
		if r.IntN(2) == 0 {
			tr.Replacement = &Replacement{TrackingNumber: text(), Kind: text()}
		}
		if r.IntN(2) == 0 {
			p := proof()
			tr.ProofOfDelivery = &p
		}
		if k := r.IntN(4); k > 0 {
			tr.ProofsOfDelivery = make([]ProofOfDelivery, k-1)
			for i := range tr.ProofsOfDelivery {
				tr.ProofsOfDelivery[i] = proof()
			}
		}
		checkData(t, &tr)
	}
}

func FuzzTrackingJSON(f *testing.F) {
	f.Add("consecutivo123", "4", "EN ENTREGA", "2022-12-11T11:04:43-05:00", "NOVEDAD", "return", "https://x.co/a?b=<c>&d", "image/png", "iVBORw0KGgo=", 8, "nota \u2028 \xff", uint8(0xff))
	f.Add("", "", "", "", "", "", "", "", "", 0, "", uint8(0))
	f.Fuzz(func(t *testing.T, id, code, name, at, incident, kind, url, mime, b64 string, n int, notes string, groups uint8) {
		tr := Tracking{ShipmentID: id, Status: Status{Code: code, Name: name, At: at}, DocumentURL: url, Notes: notes}
		if groups&1 != 0 {
			tr.Incident = &Incident{Code: incident, Name: name, At: at, State: notes}
		}
		if groups&2 != 0 {
			tr.Replacement = &Replacement{TrackingNumber: id, Kind: kind}
		}
		if groups&4 != 0 {
			tr.ProofOfDelivery = &ProofOfDelivery{MimeType: mime, Base64: b64, Bytes: n}
		}
		if groups&8 != 0 {
			tr.ProofsOfDelivery = make([]ProofOfDelivery, int(groups>>4))
			for i := range tr.ProofsOfDelivery {
				tr.ProofsOfDelivery[i] = ProofOfDelivery{MimeType: mime, Base64: b64[:len(b64)*i/16], Bytes: n + i}
			}
		}
		checkData(t, &tr)
	})
}
