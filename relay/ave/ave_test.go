package ave

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay/event"
)

// kv is one member of a guide: its name and its raw JSON value.
type kv = [2]string

// drop, as the value of an override, removes the member.
const drop = "<drop>"

// baseGuide is the smallest valid guide.
var baseGuide = []kv{
	{"id_envio", `"consecutivo123"`},
	{"cod_estado", `"4"`},
	{"nombre_estado", `"EN ENTREGA"`},
	{"fecha_estado", `"2022-12-11 11:04:43"`},
}

// baseTracking is what baseGuide normalizes to.
var baseTracking = Tracking{
	ShipmentID: "consecutivo123",
	Status:     Status{Code: "4", Name: "EN ENTREGA", At: "2022-12-11T11:04:43-05:00"},
}

// guide returns baseGuide as JSON, with each override replacing the member
// of the same name (or removing it, with drop) or, when there is none,
// appended.
func guide(overrides ...kv) string {
	members := append([]kv(nil), baseGuide...)
	for _, o := range overrides {
		found := false
		for i := range members {
			if members[i][0] == o[0] {
				members[i][1] = o[1]
				found = true
			}
		}
		if !found {
			members = append(members, o)
		}
	}
	var b strings.Builder
	b.WriteByte('{')
	first := true
	for _, m := range members {
		if m[1] == drop {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		fmt.Fprintf(&b, "%q:%s", m[0], m[1])
	}
	b.WriteByte('}')
	return b.String()
}

// request wraps guides in the envelope.
func request(guides ...string) string {
	return `{"tipo":"json","body":[` + strings.Join(guides, ",") + `]}`
}

// Real contents for base64_entrega_digitalizada.
var (
	pngB64 = samplePNG
	// jpegB64 is the start of a JFIF file.
	jpegB64    = base64.StdEncoding.EncodeToString([]byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"))
	pdfContent = []byte("%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
	pdfB64     = base64.StdEncoding.EncodeToString(pdfContent)
	gifB64     = base64.StdEncoding.EncodeToString([]byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"))
	// bigPDF spans several decoding chunks and ends without padding.
	bigPDF = []byte("%PDF-1.7\n" + strings.Repeat("0123456789abcdef", 1000) + "\n%%EOF")
)

// pod builds a base64_entrega_digitalizada value.
func pod(b64, mime string) string {
	return fmt.Sprintf(`{"base64":%q,"mime_type":%q}`, b64, mime)
}

// seedExample is the example of the seed, verbatim but for the value of
// tipo_guia_reeemplazo, which the seed writes as the list of choices.
const seedExample = `{
"tipo": "json",
"body": [
{
"id_envio": "consecutivo123",
"cod_estado": "4",
"nombre_estado": "EN ENTREGA",
"fecha_estado": "2022-12-11 11:04:43",
"cod_novedad": "NOVEDAD",
"nombre_novedad": "DIRECCION ERRONEA",
"fecha_novedad": "2022-12-11 11:31:00",
"estado_novedad": "EJECUTADA",
"guia_reeemplazo": "123-444-222",
"tipo_guia_reeemplazo": "DEV",
"ruta_digitalizada": "https://laruta.com/docs/....",
"base64_entrega_digitalizada":{
"base64":"Base64 was here",
"mime_type":""
},
"observaciones": "no se encuentra la dirección"
}
]
}`

// fullGuide is the seed's example with a real proof of delivery.
var fullGuide = strings.Replace(strings.Replace(seedExample,
	`"Base64 was here"`, `"`+pngB64+`"`, 1),
	`"mime_type":""`, `"mime_type":"image/png"`, 1)

// fullTracking is what fullGuide normalizes to: Sample with its document
// URL and only its first proof of delivery.
func fullTracking() Tracking {
	t := Sample()
	t.DocumentURL = "https://laruta.com/docs/...."
	t.ProofOfDelivery = &ProofOfDelivery{"image/png", pngB64, 71}
	t.ProofsOfDelivery = nil
	return t
}

func mustNormalize(t *testing.T, body string, opts Options) []Tracking {
	t.Helper()
	got, err := Normalize([]byte(body), opts)
	if err != nil {
		t.Fatalf("Normalize(%s): %v", body, err)
	}
	return got
}

func problemsOf(t *testing.T, body string, opts Options) []Problem {
	t.Helper()
	got, err := Normalize([]byte(body), opts)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Normalize(%s) = %v, %v; want a *ValidationError", body, got, err)
	}
	if got != nil {
		t.Errorf("Normalize returned trackings along with an error: %v", got)
	}
	return ve.Problems
}

func p(pointer, detail string) Problem { return Problem{Detail: detail, Pointer: pointer} }

func TestSeedExample(t *testing.T) {
	// As published, the example's proof of delivery is a placeholder: not
	// base64, and without a type.
	got := problemsOf(t, seedExample, Options{})
	want := []Problem{
		p("/body/0/base64_entrega_digitalizada/base64", "El campo base64_entrega_digitalizada.base64 no es un base64 válido"),
		p("/body/0/base64_entrega_digitalizada/mime_type", "El campo base64_entrega_digitalizada.mime_type es obligatorio"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n got %v\nwant %v", got, want)
	}

	for code, kind := range map[string]string{"DEV": KindReturn, "REEMP": KindReplacement, "CONT": KindContinuation} {
		body := strings.Replace(fullGuide, `"DEV"`, `"`+code+`"`, 1)
		tr := mustNormalize(t, body, Options{})
		want := fullTracking()
		want.Replacement.Kind = kind
		if len(tr) != 1 || !reflect.DeepEqual(tr[0], want) {
			t.Errorf("%s: got %+v\nwant %+v", code, tr, want)
		}
	}

	// With the placeholder emptied, the proof of delivery is absent.
	body := strings.Replace(seedExample, `"Base64 was here"`, `""`, 1)
	tr := mustNormalize(t, body, Options{})
	if tr[0].ProofOfDelivery != nil {
		t.Errorf("proof_of_delivery = %+v, want none", tr[0].ProofOfDelivery)
	}
}

var requiredFields = []string{"id_envio", "cod_estado", "nombre_estado", "fecha_estado"}

func TestRequiredFields(t *testing.T) {
	for _, f := range requiredFields {
		for _, tc := range []struct{ value, detail string }{
			{drop, "El campo " + f + " es obligatorio"},
			{`null`, "El campo " + f + " es obligatorio"},
			{`""`, "El campo " + f + " es obligatorio"},
			{`"   "`, "El campo " + f + " es obligatorio"},
			{`"\t\n"`, "El campo " + f + " es obligatorio"},
			{`true`, "El campo " + f + " debe ser una cadena de texto"},
			{`false`, "El campo " + f + " debe ser una cadena de texto"},
			{`{"a":1}`, "El campo " + f + " debe ser una cadena de texto"},
			{`["x"]`, "El campo " + f + " debe ser una cadena de texto"},
		} {
			t.Run(f+"="+tc.value, func(t *testing.T) {
				got := problemsOf(t, request(guide(kv{f, tc.value})), Options{})
				want := []Problem{p("/body/0/"+f, tc.detail)}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("got %v, want %v", got, want)
				}
			})
		}
	}
}

func TestNumbersAsStrings(t *testing.T) {
	for _, tc := range []struct {
		name, value, want string
		get               func(Tracking) string
	}{
		{"cod_estado", `4`, "4", func(t Tracking) string { return t.Status.Code }},
		{"cod_estado", `0`, "0", func(t Tracking) string { return t.Status.Code }},
		{"cod_estado", `"0"`, "0", func(t Tracking) string { return t.Status.Code }},
		{"id_envio", `12345678901234567890`, "12345678901234567890", func(t Tracking) string { return t.ShipmentID }},
		{"id_envio", `-7`, "-7", func(t Tracking) string { return t.ShipmentID }},
		{"cod_estado", `4.0`, "4", func(t Tracking) string { return t.Status.Code }},
		{"cod_estado", `4e0`, "4", func(t Tracking) string { return t.Status.Code }},
		{"cod_estado", `40E-1`, "4", func(t Tracking) string { return t.Status.Code }},
		{"cod_estado", `-0.0`, "0", func(t Tracking) string { return t.Status.Code }},
		{"cod_estado", `"4.0"`, "4.0", func(t Tracking) string { return t.Status.Code }},
		{"id_envio", `12345678901234567890.000`, "12345678901234567890", func(t Tracking) string { return t.ShipmentID }},
		{"nombre_estado", `1e3`, "1000", func(t Tracking) string { return t.Status.Name }},
		{"nombre_estado", `1e999999999`, "1e999999999", func(t Tracking) string { return t.Status.Name }},
		{"cod_novedad", `12.50`, "12.5", func(t Tracking) string { return t.Incident.Code }},
		{"cod_novedad", `0.5e-1`, "0.05", func(t Tracking) string { return t.Incident.Code }},
		{"guia_reeemplazo", `900123456789`, "900123456789", func(t Tracking) string { return t.Replacement.TrackingNumber }},
		{"observaciones", `3`, "3", func(t Tracking) string { return t.Notes }},
		{"estado_novedad", `2`, "2", func(t Tracking) string { return t.Incident.State }},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			got := mustNormalize(t, request(guide(kv{tc.name, tc.value})), Options{})
			if v := tc.get(got[0]); v != tc.want {
				t.Errorf("got %q, want %q", v, tc.want)
			}
		})
	}
}

var optionalFields = []string{
	"cod_novedad", "nombre_novedad", "fecha_novedad", "estado_novedad", "guia_reeemplazo",
	"tipo_guia_reeemplazo", "ruta_digitalizada", "base64_entrega_digitalizada", "observaciones",
}

func TestOptionalAbsent(t *testing.T) {
	for _, f := range optionalFields {
		for _, v := range []string{drop, `""`, `null`, `0`, `"0"`, `"  "`, `0.0`, `-0`, `0e5`} {
			t.Run(f+"="+v, func(t *testing.T) {
				got := mustNormalize(t, request(guide(kv{f, v})), Options{})
				if !reflect.DeepEqual(got, []Tracking{baseTracking}) {
					t.Errorf("got %+v, want %+v", got, baseTracking)
				}
			})
		}
	}
}

func TestOptionalWrongType(t *testing.T) {
	for _, f := range optionalFields {
		if f == "base64_entrega_digitalizada" {
			continue // an object is its type; see TestProofOfDelivery
		}
		for _, v := range []string{`true`, `false`, `{}`, `[]`, `["DEV"]`} {
			t.Run(f+"="+v, func(t *testing.T) {
				got := problemsOf(t, request(guide(kv{f, v})), Options{})
				want := []Problem{p("/body/0/"+f, "El campo "+f+" debe ser una cadena de texto")}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("got %v, want %v", got, want)
				}
			})
		}
	}
}

func TestPartialGroups(t *testing.T) {
	for _, tc := range []struct {
		member kv
		want   Tracking
	}{
		{kv{"cod_novedad", `"N1"`}, Tracking{Incident: &Incident{Code: "N1"}}},
		{kv{"nombre_novedad", `"DIRECCION ERRONEA"`}, Tracking{Incident: &Incident{Name: "DIRECCION ERRONEA"}}},
		{kv{"fecha_novedad", `"2022-12-11 11:31:00"`}, Tracking{Incident: &Incident{At: "2022-12-11T11:31:00-05:00"}}},
		{kv{"estado_novedad", `"EJECUTADA"`}, Tracking{Incident: &Incident{State: "EJECUTADA"}}},
		{kv{"guia_reeemplazo", `"123-444-222"`}, Tracking{Replacement: &Replacement{TrackingNumber: "123-444-222"}}},
		{kv{"tipo_guia_reeemplazo", `"CONT"`}, Tracking{Replacement: &Replacement{Kind: KindContinuation}}},
		{kv{"ruta_digitalizada", `"https://laruta.com/docs/1.pdf"`}, Tracking{DocumentURL: "https://laruta.com/docs/1.pdf"}},
		{kv{"observaciones", `"no se encuentra la dirección"`}, Tracking{Notes: "no se encuentra la dirección"}},
	} {
		t.Run(tc.member[0], func(t *testing.T) {
			want := tc.want
			want.ShipmentID, want.Status = baseTracking.ShipmentID, baseTracking.Status
			got := mustNormalize(t, request(guide(tc.member)), Options{})
			if !reflect.DeepEqual(got[0], want) {
				t.Errorf("got %+v, want %+v", got[0], want)
			}
		})
	}
}

func TestDates(t *testing.T) {
	const (
		format  = "debe tener el formato AAAA-MM-DD HH:MM:ss"
		invalid = "no es una fecha válida"
	)
	for _, tc := range []struct{ value, want, problem string }{
		{`"2022-12-11 11:04:43"`, "2022-12-11T11:04:43-05:00", ""},
		{`"2024-02-29 00:00:00"`, "2024-02-29T00:00:00-05:00", ""},
		{`"2000-02-29 23:59:59"`, "2000-02-29T23:59:59-05:00", ""},
		{`"9999-12-31 23:59:59"`, "9999-12-31T23:59:59-05:00", ""},
		{`"2022-12-11T11:04:43"`, "", format},
		{`"2022-12-11 11:04"`, "", format},
		{`"2022-12-11"`, "", format},
		{`"2022/12/11 11:04:43"`, "", format},
		{`"11-12-2022 11:04:43"`, "", format},
		{`"2022-12-1 11:04:43"`, "", format},
		{`"2022-12-11 1:04:43"`, "", format},
		{`" 2022-12-11 11:04:43"`, "", format},
		{`"2022-12-11 11:04:43 "`, "", format},
		{`"2022-12-11 11:04:43Z"`, "", format},
		{`"2022-12-11 11:04:43.000"`, "", format},
		{`"2022-12-11  11:04:4"`, "", format},
		{`"2022-1a-11 11:04:43"`, "", format},
		{`"+022-12-11 11:04:43"`, "", format},
		{`"２022-12-11 11:04:43"`, "", format},
		{`"ayer"`, "", format},
		{`20221211110443`, "", format},
		{`"2023-02-29 10:00:00"`, "", invalid},
		{`"1900-02-29 10:00:00"`, "", invalid},
		{`"2022-04-31 10:00:00"`, "", invalid},
		{`"2022-13-01 10:00:00"`, "", invalid},
		{`"2022-00-10 10:00:00"`, "", invalid},
		{`"2022-12-00 10:00:00"`, "", invalid},
		{`"2022-12-32 10:00:00"`, "", invalid},
		{`"2022-12-11 24:00:00"`, "", invalid},
		{`"2022-12-11 23:60:00"`, "", invalid},
		{`"2022-12-31 23:59:60"`, "", invalid},
		{`"0000-01-01 00:00:00"`, "", invalid},
	} {
		for _, f := range []string{"fecha_estado", "fecha_novedad"} {
			t.Run(f+"="+tc.value, func(t *testing.T) {
				body := request(guide(kv{f, tc.value}))
				if tc.problem != "" {
					got := problemsOf(t, body, Options{})
					want := []Problem{p("/body/0/"+f, "El campo "+f+" "+tc.problem)}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("got %v, want %v", got, want)
					}
					return
				}
				tr := mustNormalize(t, body, Options{})[0]
				at := tr.Status.At
				if f == "fecha_novedad" {
					at = tr.Incident.At
				}
				if at != tc.want {
					t.Errorf("got %q, want %q", at, tc.want)
				}
			})
		}
	}
}

func TestLocation(t *testing.T) {
	madrid, err := time.LoadLocation("Europe/Madrid")
	if err != nil {
		t.Fatal(err)
	}
	bogotaLoc, err := time.LoadLocation("America/Bogota")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		loc        *time.Location
		date, want string
	}{
		{nil, "2022-12-11 11:04:43", "2022-12-11T11:04:43-05:00"},
		{bogotaLoc, "2022-06-11 11:04:43", "2022-06-11T11:04:43-05:00"},
		{time.UTC, "2022-12-11 11:04:43", "2022-12-11T11:04:43Z"},
		{madrid, "2022-12-11 11:04:43", "2022-12-11T11:04:43+01:00"},
		{madrid, "2022-07-11 11:04:43", "2022-07-11T11:04:43+02:00"},
		{time.FixedZone("", 5*3600+30*60), "2022-12-11 11:04:43", "2022-12-11T11:04:43+05:30"},
	} {
		body := request(guide(kv{"fecha_estado", `"` + tc.date + `"`}, kv{"fecha_novedad", `"` + tc.date + `"`}))
		tr := mustNormalize(t, body, Options{Location: tc.loc})[0]
		if tr.Status.At != tc.want || tr.Incident.At != tc.want {
			t.Errorf("%v %s: got %q and %q, want %q", tc.loc, tc.date, tr.Status.At, tr.Incident.At, tc.want)
		}
	}

	// The same wall clock in another zone is another instant: another id.
	a := mustNormalize(t, request(guide()), Options{})[0]
	b := mustNormalize(t, request(guide()), Options{Location: time.UTC})[0]
	if a.EventID() == b.EventID() {
		t.Error("the same local time in two zones gave the same id")
	}
}

func TestReplacementKind(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{`"DEV"`, KindReturn},
		{`"REEMP"`, KindReplacement},
		{`"CONT"`, KindContinuation},
		{`"dev"`, ""},
		{`"DEVOLUCION"`, ""},
		{`" DEV"`, ""},
		{`"DEV\" | \"REEMP\" | \"CONT"`, ""},
		{`5`, ""},
	} {
		t.Run(tc.value, func(t *testing.T) {
			body := request(guide(kv{"guia_reeemplazo", `"123-444-222"`}, kv{"tipo_guia_reeemplazo", tc.value}))
			if tc.want == "" {
				got := problemsOf(t, body, Options{})
				want := []Problem{p("/body/0/tipo_guia_reeemplazo", "El campo tipo_guia_reeemplazo debe ser DEV, REEMP o CONT")}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("got %v, want %v", got, want)
				}
				return
			}
			tr := mustNormalize(t, body, Options{})[0]
			want := &Replacement{TrackingNumber: "123-444-222", Kind: tc.want}
			if !reflect.DeepEqual(tr.Replacement, want) {
				t.Errorf("got %+v, want %+v", tr.Replacement, want)
			}
		})
	}
}

func TestDocumentURL(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  string // "" when invalid
	}{
		{`"https://laruta.com/docs/...."`, "https://laruta.com/docs/...."},
		{`"http://laruta.com/docs/guia.pdf?id=1&t=2"`, "http://laruta.com/docs/guia.pdf?id=1&t=2"},
		{`"HTTPS://LARUTA.COM/x"`, "HTTPS://LARUTA.COM/x"},
		{`"https:\/\/laruta.com\/docs\/guia.pdf"`, "https://laruta.com/docs/guia.pdf"},
		{`"https://10.0.0.1:8443/g"`, "https://10.0.0.1:8443/g"},
		{`"laruta.com/docs/guia.pdf"`, ""},
		{`"/docs/guia.pdf"`, ""},
		{`"ftp://laruta.com/guia.pdf"`, ""},
		{`"javascript:alert(1)"`, ""},
		{`"mailto:a@laruta.com"`, ""},
		{`"https://"`, ""},
		{`"https:///docs"`, ""},
		{`"https://:443/docs"`, ""},
		{`"https:laruta.com"`, ""},
		{`"https://la ruta.com/x"`, ""},
		{`"https://laruta.com/x y"`, ""},
		{`"https://laruta.com/x\n"`, ""},
		{`"https://laruta.com/%zz"`, ""},
		{`42`, ""},
	} {
		t.Run(tc.value, func(t *testing.T) {
			body := request(guide(kv{"ruta_digitalizada", tc.value}))
			if tc.want == "" {
				got := problemsOf(t, body, Options{})
				want := []Problem{p("/body/0/ruta_digitalizada", "El campo ruta_digitalizada debe ser una URL válida")}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("got %v, want %v", got, want)
				}
				return
			}
			if got := mustNormalize(t, body, Options{})[0].DocumentURL; got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestProofOfDelivery(t *testing.T) {
	const (
		ptrB64   = "/body/0/base64_entrega_digitalizada/base64"
		ptrMime  = "/body/0/base64_entrega_digitalizada/mime_type"
		ptrGroup = "/body/0/base64_entrega_digitalizada"
	)
	bigB64 := base64.RawStdEncoding.EncodeToString(bigPDF)
	jpegRaw := strings.TrimRight(jpegB64, "=")
	for _, tc := range []struct {
		name, value string
		want        *ProofOfDelivery
		problems    []Problem
	}{
		{"png", pod(pngB64, "image/png"), &ProofOfDelivery{"image/png", pngB64, 71}, nil},
		{"jpeg", pod(jpegB64, "image/jpeg"), &ProofOfDelivery{"image/jpeg", jpegB64, 22}, nil},
		{"jpeg unpadded", pod(jpegRaw, "image/jpeg"), &ProofOfDelivery{"image/jpeg", jpegRaw, 22}, nil},
		{"pdf", pod(pdfB64, "application/pdf"), &ProofOfDelivery{"application/pdf", pdfB64, len(pdfContent)}, nil},
		{"pdf over several chunks", pod(bigB64, "application/pdf"), &ProofOfDelivery{"application/pdf", bigB64, len(bigPDF)}, nil},
		{"mime in upper case", pod(pngB64, "IMAGE/PNG"), &ProofOfDelivery{"image/png", pngB64, 71}, nil},
		{"members reversed, unknown member", `{"mime_type":"image/png","name":"x.png","base64":"` + pngB64 + `"}`,
			&ProofOfDelivery{"image/png", pngB64, 71}, nil},
		{"escaped slashes", `{"base64":"` + strings.ReplaceAll(pngB64, "/", `\/`) + `","mime_type":"image\/png"}`,
			&ProofOfDelivery{"image/png", pngB64, 71}, nil},

		{"empty object", `{}`, nil, nil},
		{"both empty", pod("", ""), nil, nil},
		{"both null", `{"base64":null,"mime_type":null}`, nil, nil},
		{"both zero", `{"base64":0,"mime_type":"0"}`, nil, nil},
		{"both blank", pod(" ", "\t"), nil, nil},

		{"an array of one", `[` + pod(pngB64, "image/png") + `]`, &ProofOfDelivery{"image/png", pngB64, 71}, nil},

		{"a string", `"` + pngB64 + `"`, nil, []Problem{p(ptrGroup, "El campo base64_entrega_digitalizada debe ser un objeto o un arreglo de objetos")}},
		{"a boolean", `true`, nil, []Problem{p(ptrGroup, "El campo base64_entrega_digitalizada debe ser un objeto o un arreglo de objetos")}},
		{"a number", `7`, nil, []Problem{p(ptrGroup, "El campo base64_entrega_digitalizada debe ser un objeto o un arreglo de objetos")}},

		{"no mime_type", pod(pngB64, ""), nil, []Problem{p(ptrMime, "El campo base64_entrega_digitalizada.mime_type es obligatorio")}},
		{"no base64", pod("", "image/png"), nil, []Problem{p(ptrB64, "El campo base64_entrega_digitalizada.base64 es obligatorio")}},
		{"base64 not a string", `{"base64":true,"mime_type":"image/png"}`, nil,
			[]Problem{p(ptrB64, "El campo base64_entrega_digitalizada.base64 debe ser una cadena de texto")}},
		{"mime_type not a string", `{"base64":"` + pngB64 + `","mime_type":["image/png"]}`, nil,
			[]Problem{p(ptrMime, "El campo base64_entrega_digitalizada.mime_type debe ser una cadena de texto")}},
		{"gif", pod(gifB64, "image/gif"), nil,
			[]Problem{p(ptrMime, "El campo base64_entrega_digitalizada.mime_type debe ser image/jpeg, image/png o application/pdf")}},
		{"image/jpg", pod(jpegB64, "image/jpg"), nil,
			[]Problem{p(ptrMime, "El campo base64_entrega_digitalizada.mime_type debe ser image/jpeg, image/png o application/pdf")}},
		{"mime with parameters", pod(pngB64, "image/png; q=1"), nil,
			[]Problem{p(ptrMime, "El campo base64_entrega_digitalizada.mime_type debe ser image/jpeg, image/png o application/pdf")}},
		{"png declared as jpeg", pod(pngB64, "image/jpeg"), nil,
			[]Problem{p(ptrB64, "El contenido de base64_entrega_digitalizada no corresponde al tipo image/jpeg")}},
		{"jpeg declared as pdf", pod(jpegB64, "application/pdf"), nil,
			[]Problem{p(ptrB64, "El contenido de base64_entrega_digitalizada no corresponde al tipo application/pdf")}},
		{"gif declared as png", pod(gifB64, "image/png"), nil,
			[]Problem{p(ptrB64, "El contenido de base64_entrega_digitalizada no corresponde al tipo image/png")}},
		{"shorter than the signature", pod("/9g=", "image/jpeg"), nil,
			[]Problem{p(ptrB64, "El contenido de base64_entrega_digitalizada no corresponde al tipo image/jpeg")}},
		{"wrong type and bad base64", pod("no es base64", "image/gif"), nil, []Problem{
			p(ptrB64, "El campo base64_entrega_digitalizada.base64 no es un base64 válido"),
			p(ptrMime, "El campo base64_entrega_digitalizada.mime_type debe ser image/jpeg, image/png o application/pdf"),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := request(guide(kv{"base64_entrega_digitalizada", tc.value}))
			if tc.problems != nil {
				got := problemsOf(t, body, Options{})
				if !reflect.DeepEqual(got, tc.problems) {
					t.Errorf("got %v, want %v", got, tc.problems)
				}
				return
			}
			got := mustNormalize(t, body, Options{})[0].ProofOfDelivery
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}

	for _, b64 := range []string{
		"Base64 was here",
		"iVBORw0KGgo AAAANSUhEUg",
		"iVBORw0KGgo\nAAAANSUhEUg",
		"iVBORw0KGgo\r\nAAAANSUhEUg",
		"iVBORw0KGgo\tAAAANSUhEUg",
		"iVBORw0KGgo-AAAANSUhEUg_",
		"iVBORw0KGgo=AAAANSUhEUg",
		"iVBORw0KGgoA=",
		"iVBORw0KGgoAA=",
		"iVBORw0KGgoAAAA==",
		"iVBORw0KGgoA===",
		"iVBORw0KGgoAAAAAA",
		"=",
		"==",
		"====",
		"data:image/png;base64," + pngB64,
		pngB64 + " ",
		pngB64 + "\n",
		pngB64 + "=",
		pngB64 + "A",
		bigB64 + "!",
		strings.Repeat("A", b64ChunkChars) + "*AAA",
	} {
		t.Run("invalid base64 "+b64[:min(len(b64), 24)], func(t *testing.T) {
			got := problemsOf(t, request(guide(kv{"base64_entrega_digitalizada", pod(b64, "image/png")})), Options{})
			want := []Problem{p(ptrB64, "El campo base64_entrega_digitalizada.base64 no es un base64 válido")}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

func TestProofsOfDelivery(t *testing.T) {
	png := ProofOfDelivery{"image/png", pngB64, 71}
	jpeg := ProofOfDelivery{"image/jpeg", jpegB64, 22}
	pdf := ProofOfDelivery{"application/pdf", pdfB64, len(pdfContent)}
	podPNG, podJPEG, podPDF := pod(pngB64, "image/png"), pod(jpegB64, "image/jpeg"), pod(pdfB64, "application/pdf")
	for _, tc := range []struct {
		name, value string
		want        []ProofOfDelivery // nil: no proof
	}{
		{"empty array", `[]`, nil},
		{"empty array with spaces", "[ \n ]", nil},
		{"only empty elements", `[{}, null, "", 0, "0", " ", {"base64":"","mime_type":null}, {"otro":1}]`, nil},
		{"one", `[` + podPNG + `]`, []ProofOfDelivery{png}},
		{"one among empty elements", `[{},null,` + podPNG + `,"",{"base64":null,"mime_type":""}]`, []ProofOfDelivery{png}},
		{"two", `[` + podPNG + `,` + podPDF + `]`, []ProofOfDelivery{png, pdf}},
		{"three, in the order sent", `[` + podPDF + `,{},` + podJPEG + `,null,` + podPNG + `]`, []ProofOfDelivery{pdf, jpeg, png}},
		{"the same one twice", `[` + podPNG + `,` + podPNG + `]`, []ProofOfDelivery{png, png}},
		{"many", "[" + strings.Repeat(podJPEG+",", 9) + podJPEG + "]", slices.Repeat([]ProofOfDelivery{jpeg}, 10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := mustNormalize(t, request(guide(kv{"base64_entrega_digitalizada", tc.value})), Options{})[0]
			switch len(tc.want) {
			case 0:
				if tr.ProofOfDelivery != nil || tr.ProofsOfDelivery != nil {
					t.Errorf("got %+v and %+v, want no proof", tr.ProofOfDelivery, tr.ProofsOfDelivery)
				}
			case 1:
				if tr.ProofOfDelivery == nil || *tr.ProofOfDelivery != tc.want[0] || tr.ProofsOfDelivery != nil {
					t.Errorf("got %+v and %+v, want %+v alone", tr.ProofOfDelivery, tr.ProofsOfDelivery, tc.want[0])
				}
			default:
				if tr.ProofOfDelivery == nil || *tr.ProofOfDelivery != tc.want[0] || !reflect.DeepEqual(tr.ProofsOfDelivery, tc.want) {
					t.Errorf("got %+v and %+v, want %+v", tr.ProofOfDelivery, tr.ProofsOfDelivery, tc.want)
				}
			}
			// In the data: proof_of_delivery is the first proof,
			// proofs_of_delivery lists them when there are several.
			ev, err := tr.Event("shipments/tracking", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			var data map[string]json.RawMessage
			if err := json.Unmarshal(ev.Data, &data); err != nil {
				t.Fatal(err)
			}
			first, list := data["proof_of_delivery"], data["proofs_of_delivery"]
			switch {
			case len(tc.want) == 0 && (first != nil || list != nil),
				len(tc.want) == 1 && (first == nil || list != nil),
				len(tc.want) > 1 && (first == nil || list == nil):
				t.Errorf("data %s", ev.Data)
			}
			if len(tc.want) > 1 {
				wantList, _ := json.Marshal(tc.want)
				wantFirst, _ := json.Marshal(tc.want[0])
				if string(list) != string(wantList) || string(first) != string(wantFirst) {
					t.Errorf("data %s", ev.Data)
				}
				if !strings.Contains(string(ev.Data), `"proof_of_delivery":`+string(wantFirst)+`,"proofs_of_delivery":[`) {
					t.Errorf("proofs_of_delivery does not follow proof_of_delivery: %s", ev.Data)
				}
			}
		})
	}

	const ptr = "/body/0/base64_entrega_digitalizada/"
	for _, tc := range []struct {
		name, value string
		problems    []Problem
	}{
		{"element without mime_type", `[` + pod(pngB64, "") + `]`,
			[]Problem{p(ptr+"0/mime_type", "El campo base64_entrega_digitalizada.mime_type es obligatorio")}},
		{"second element bad", `[` + podPNG + `,` + pod("no es base64", "image/png") + `]`,
			[]Problem{p(ptr+"1/base64", "El campo base64_entrega_digitalizada.base64 no es un base64 válido")}},
		{"index counts skipped elements", `[{},null,` + pod(pngB64, "image/jpeg") + `]`,
			[]Problem{p(ptr+"2/base64", "El contenido de base64_entrega_digitalizada no corresponde al tipo image/jpeg")}},
		{"elements that are not objects", `[` + podPNG + `,"` + pngB64 + `",true,7,[],[` + podPNG + `]]`, []Problem{
			p(ptr+"1", "El elemento base64_entrega_digitalizada/1 debe ser un objeto"),
			p(ptr+"2", "El elemento base64_entrega_digitalizada/2 debe ser un objeto"),
			p(ptr+"3", "El elemento base64_entrega_digitalizada/3 debe ser un objeto"),
			p(ptr+"4", "El elemento base64_entrega_digitalizada/4 debe ser un objeto"),
			p(ptr+"5", "El elemento base64_entrega_digitalizada/5 debe ser un objeto"),
		}},
		{"every problem of every element", `[` + pod(gifB64, "image/gif") + `,{"base64":true,"mime_type":["x"]},` + pod("", "image/png") + `]`, []Problem{
			p(ptr+"0/mime_type", "El campo base64_entrega_digitalizada.mime_type debe ser image/jpeg, image/png o application/pdf"),
			p(ptr+"1/base64", "El campo base64_entrega_digitalizada.base64 debe ser una cadena de texto"),
			p(ptr+"1/mime_type", "El campo base64_entrega_digitalizada.mime_type debe ser una cadena de texto"),
			p(ptr+"2/base64", "El campo base64_entrega_digitalizada.base64 es obligatorio"),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := problemsOf(t, request(guide(kv{"base64_entrega_digitalizada", tc.value})), Options{})
			if !reflect.DeepEqual(got, tc.problems) {
				t.Errorf("got %v\nwant %v", got, tc.problems)
			}
		})
	}

	// Guides do not share their proofs; a problem points into its own guide.
	body := request(
		guide(kv{"base64_entrega_digitalizada", `[` + podPNG + `,` + podPDF + `]`}),
		guide(kv{"base64_entrega_digitalizada", podJPEG}),
		guide(kv{"base64_entrega_digitalizada", `[` + podJPEG + `,` + podPNG + `]`}),
	)
	got := mustNormalize(t, body, Options{})
	if !reflect.DeepEqual(got[0].ProofsOfDelivery, []ProofOfDelivery{png, pdf}) || *got[1].ProofOfDelivery != jpeg ||
		got[1].ProofsOfDelivery != nil || !reflect.DeepEqual(got[2].ProofsOfDelivery, []ProofOfDelivery{jpeg, png}) ||
		*got[0].ProofOfDelivery != png || *got[2].ProofOfDelivery != jpeg {
		t.Errorf("got %+v", got)
	}
	problems := problemsOf(t, request(guide(), guide(kv{"base64_entrega_digitalizada", `[{},` + pod(pngB64, "") + `]`})), Options{})
	if want := []Problem{p("/body/1/base64_entrega_digitalizada/1/mime_type", "El campo base64_entrega_digitalizada.mime_type es obligatorio")}; !reflect.DeepEqual(problems, want) {
		t.Errorf("got %v, want %v", problems, want)
	}
}

func TestCheckBase64Length(t *testing.T) {
	// Every length around the chunk size, padded and not.
	for _, size := range []int{1, 2, 3, 4, 5, b64ChunkChars/4*3 - 1, b64ChunkChars / 4 * 3, b64ChunkChars/4*3 + 1, b64ChunkChars/4*3 + 2, 3 * b64ChunkChars} {
		content := bytes.Repeat([]byte{0x89, 'P', 'N', 'G', 0x0d}, size)[:size]
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
			s := enc.EncodeToString(content)
			n, head, ok := checkBase64(s)
			if !ok || n != size || !bytes.Equal(head[:min(n, 4)], content[:min(size, 4)]) {
				t.Errorf("size %d: checkBase64(%d chars) = %d, %x, %v", size, len(s), n, head, ok)
			}
		}
	}
}

func TestUnknownAndDuplicateFields(t *testing.T) {
	body := `{"version":2,"tipo":"json","extra":{"a":[1,2,{"b":"}]"}]},"body":[` +
		guide(kv{"ID_ENVIO", `"otro"`}, kv{"Fecha_Estado", `"nope"`}, kv{"nuevo_campo", `{"x":[true,null]}`},
			kv{"cod_estado", `"4"`}, kv{"campo_con_\"comillas\"", `"\\\""`}) +
		`],"tipo_extra":null}`
	got := mustNormalize(t, body, Options{})
	if !reflect.DeepEqual(got, []Tracking{baseTracking}) {
		t.Errorf("got %+v, want %+v", got, baseTracking)
	}

	// A differently cased name is another field: it does not stand in for
	// a required one.
	problems := problemsOf(t, request(guide(kv{"id_envio", drop}, kv{"ID_ENVIO", `"x"`})), Options{})
	if want := []Problem{p("/body/0/id_envio", "El campo id_envio es obligatorio")}; !reflect.DeepEqual(problems, want) {
		t.Errorf("got %v, want %v", problems, want)
	}

	// The last of duplicated names counts, as with encoding/json.
	dup := `{"tipo":"xml","tipo":"json","body":[{"id_envio":"a","id_envio":"b","cod_estado":"4","nombre_estado":"X","fecha_estado":"2022-12-11 11:04:43"}]}`
	if got := mustNormalize(t, dup, Options{}); got[0].ShipmentID != "b" {
		t.Errorf("duplicate id_envio: got %q, want the last, b", got[0].ShipmentID)
	}

	// Escaped names are names.
	esc := request(`{"id\u005fenvio":"a","cod_estado":"4","nombre_estado":"X","fecha_estado":"2022-12-11 11:04:43"}`)
	if got := mustNormalize(t, esc, Options{}); got[0].ShipmentID != "a" {
		t.Errorf("escaped name: got %q", got[0].ShipmentID)
	}
}

func TestStrings(t *testing.T) {
	// PHP's json_encode escapes slashes and non-ASCII characters.
	body := request(guide(
		kv{"observaciones", `"no se encuentra la direcci\u00f3n \/ \"casa\" \ud83d\ude9a\ttab"`},
		kv{"nombre_estado", `"EN ENTREGA"`},
		kv{"cod_novedad", `"  con espacios  "`},
	))
	tr := mustNormalize(t, body, Options{})[0]
	if want := "no se encuentra la dirección / \"casa\" 🚚\ttab"; tr.Notes != want {
		t.Errorf("notes = %q, want %q", tr.Notes, want)
	}
	if tr.Incident.Code != "  con espacios  " {
		t.Errorf("strings must be kept as sent, got %q", tr.Incident.Code)
	}
}

func TestUnquote(t *testing.T) {
	for _, s := range []string{
		``, `plain`, `a\"b`, `\\`, `\/`, `\b\f\n\r\t`, `\u00f3`, `\u00F3`, `\ud83d\ude9a`,
		`\ud83d`, `\ud83dx`, `\ude9a`, `\ud83d\u0041`, `\ud83d\ud83d\ude9a`, `\u0000`,
		"caf\xe9", "\xff\xfe", "ok\xe2\x82", "dirección", `\u2028\u2029`,
	} {
		var want string
		if err := json.Unmarshal([]byte(`"`+s+`"`), &want); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if got := unquote([]byte(s)); got != want {
			t.Errorf("unquote(%q) = %q, want %q", s, got, want)
		}
	}
}

func TestBadRequest(t *testing.T) {
	for _, tc := range []struct{ body, detail string }{
		{``, "The request body is empty."},
		{" \n\t", "The request body is empty."},
		{`nope`, "The request body is not valid JSON: invalid character 'o' in literal null (expecting 'u') (at byte 2)."},
		{`{"tipo":"json","body":[`, "The request body is not valid JSON: unexpected end of JSON input (at byte 23)."},
		{`{"tipo":"json",}`, "The request body is not valid JSON: invalid character '}' looking for beginning of object key string (at byte 16)."},
		{`{'tipo':'json'}`, "The request body is not valid JSON: invalid character '\\'' looking for beginning of object key string (at byte 2)."},
		{"{\"tipo\":\"js\x01on\"}", "The request body is not valid JSON: invalid character '\\x01' in string literal (at byte 12)."},
		{`{"tipo":"json","body":[]} x`, "The request body must hold a single JSON object, but more data follows it at byte 26."},
		{`{}{}`, "The request body must hold a single JSON object, but more data follows it at byte 2."},
		{`[]`, "The request body must be a JSON object, not an array."},
		{` [{"tipo":"json"}]`, "The request body must be a JSON object, not an array."},
		{`"json"`, "The request body must be a JSON object, not a string."},
		{`null`, "The request body must be a JSON object, not null."},
		{`true`, "The request body must be a JSON object, not a boolean."},
		{`42`, "The request body must be a JSON object, not a number."},
		{`42 x`, "The request body must hold a single JSON object, but more data follows it at byte 3."},
		{`{"a":1}]`, "The request body must hold a single JSON object, but more data follows it at byte 7."},
	} {
		t.Run(tc.body, func(t *testing.T) {
			got, err := Normalize([]byte(tc.body), Options{})
			var be *BadRequestError
			if !errors.As(err, &be) || got != nil {
				t.Fatalf("got %v, %v; want a *BadRequestError", got, err)
			}
			if be.Detail != tc.detail {
				t.Errorf("detail = %q, want %q", be.Detail, tc.detail)
			}
		})
	}
}

func TestEnvelope(t *testing.T) {
	g := guide()
	for _, tc := range []struct {
		name, body string
		opts       Options
		want       []Problem
	}{
		{"tipo missing", `{"body":[` + g + `]}`, Options{}, []Problem{p("/tipo", "El campo tipo es obligatorio")}},
		{"tipo null", `{"tipo":null,"body":[` + g + `]}`, Options{}, []Problem{p("/tipo", "El campo tipo es obligatorio")}},
		{"tipo empty", `{"tipo":"","body":[` + g + `]}`, Options{}, []Problem{p("/tipo", "El campo tipo es obligatorio")}},
		{"tipo xml", `{"tipo":"xml","body":[` + g + `]}`, Options{}, []Problem{p("/tipo", "El campo tipo debe ser json")}},
		{"tipo JSON", `{"tipo":"JSON","body":[` + g + `]}`, Options{}, []Problem{p("/tipo", "El campo tipo debe ser json")}},
		{"tipo number", `{"tipo":1,"body":[` + g + `]}`, Options{}, []Problem{p("/tipo", "El campo tipo debe ser json")}},
		{"tipo object", `{"tipo":{"json":true},"body":[` + g + `]}`, Options{}, []Problem{p("/tipo", "El campo tipo debe ser json")}},
		{"Tipo", `{"Tipo":"json","body":[` + g + `]}`, Options{}, []Problem{p("/tipo", "El campo tipo es obligatorio")}},
		{"body missing", `{"tipo":"json"}`, Options{}, []Problem{p("/body", "El campo body es obligatorio")}},
		{"body null", `{"tipo":"json","body":null}`, Options{}, []Problem{p("/body", "El campo body es obligatorio")}},
		{"body object", `{"tipo":"json","body":` + g + `}`, Options{}, []Problem{p("/body", "El campo body debe ser un arreglo")}},
		{"body string", `{"tipo":"json","body":"[]"}`, Options{}, []Problem{p("/body", "El campo body debe ser un arreglo")}},
		{"body empty", `{"tipo":"json","body":[ ]}`, Options{}, []Problem{p("/body", "El campo body debe tener al menos un elemento")}},
		{"too many", request(g, g, g), Options{MaxEvents: 2}, []Problem{p("/body", "El campo body no puede tener más de 2 elementos")}},
		{"too many invalid guides are not examined", request("1", "2", "3"), Options{MaxEvents: 2},
			[]Problem{p("/body", "El campo body no puede tener más de 2 elementos")}},
		{"empty object", `{}`, Options{}, []Problem{
			p("/tipo", "El campo tipo es obligatorio"),
			p("/body", "El campo body es obligatorio"),
		}},
		{"tipo reported before body", `{"body":{},"tipo":"xml"}`, Options{}, []Problem{
			p("/tipo", "El campo tipo debe ser json"),
			p("/body", "El campo body debe ser un arreglo"),
		}},
		{"elements not objects", request(g, "null", `"x"`, "7", "[]", g, "true"), Options{}, []Problem{
			p("/body/1", "El elemento body/1 debe ser un objeto"),
			p("/body/2", "El elemento body/2 debe ser un objeto"),
			p("/body/3", "El elemento body/3 debe ser un objeto"),
			p("/body/4", "El elemento body/4 debe ser un objeto"),
			p("/body/6", "El elemento body/6 debe ser un objeto"),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := problemsOf(t, tc.body, tc.opts)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMaxEventsDefault(t *testing.T) {
	guides := make([]string, DefaultMaxEvents+1)
	for i := range guides {
		guides[i] = guide(kv{"id_envio", fmt.Sprintf(`"g%d"`, i)})
	}
	got := mustNormalize(t, request(guides[:DefaultMaxEvents]...), Options{})
	if len(got) != DefaultMaxEvents || got[999].ShipmentID != "g999" {
		t.Fatalf("got %d trackings", len(got))
	}
	for _, max := range []int{0, -1} {
		problems := problemsOf(t, request(guides...), Options{MaxEvents: max})
		if want := []Problem{p("/body", "El campo body no puede tener más de 1000 elementos")}; !reflect.DeepEqual(problems, want) {
			t.Errorf("MaxEvents %d: got %v, want %v", max, problems, want)
		}
	}
}

func TestAllProblemsCollected(t *testing.T) {
	// Keys in a scrambled order: problems still come in the field order.
	bad := `{"observaciones":true,"base64_entrega_digitalizada":{"base64":"%%%","mime_type":"text/plain"},` +
		`"ruta_digitalizada":"laruta","tipo_guia_reeemplazo":"X","guia_reeemplazo":[],"estado_novedad":{},` +
		`"fecha_novedad":"2022-02-30 10:00:00","nombre_novedad":false,"cod_novedad":null,` +
		`"fecha_estado":"11/12/2022","nombre_estado":" ","cod_estado":{},"desconocido":1}`
	body := `{"body":[` + guide() + `,` + bad + `,` + guide(kv{"cod_estado", drop}) + `,"x"],"tipo":"xml"}`
	got := problemsOf(t, body, Options{})
	want := []Problem{
		p("/tipo", "El campo tipo debe ser json"),
		p("/body/1/id_envio", "El campo id_envio es obligatorio"),
		p("/body/1/cod_estado", "El campo cod_estado debe ser una cadena de texto"),
		p("/body/1/nombre_estado", "El campo nombre_estado es obligatorio"),
		p("/body/1/fecha_estado", "El campo fecha_estado debe tener el formato AAAA-MM-DD HH:MM:ss"),
		p("/body/1/nombre_novedad", "El campo nombre_novedad debe ser una cadena de texto"),
		p("/body/1/fecha_novedad", "El campo fecha_novedad no es una fecha válida"),
		p("/body/1/estado_novedad", "El campo estado_novedad debe ser una cadena de texto"),
		p("/body/1/guia_reeemplazo", "El campo guia_reeemplazo debe ser una cadena de texto"),
		p("/body/1/tipo_guia_reeemplazo", "El campo tipo_guia_reeemplazo debe ser DEV, REEMP o CONT"),
		p("/body/1/ruta_digitalizada", "El campo ruta_digitalizada debe ser una URL válida"),
		p("/body/1/base64_entrega_digitalizada/base64", "El campo base64_entrega_digitalizada.base64 no es un base64 válido"),
		p("/body/1/base64_entrega_digitalizada/mime_type", "El campo base64_entrega_digitalizada.mime_type debe ser image/jpeg, image/png o application/pdf"),
		p("/body/1/observaciones", "El campo observaciones debe ser una cadena de texto"),
		p("/body/2/cod_estado", "El campo cod_estado es obligatorio"),
		p("/body/3", "El elemento body/3 debe ser un objeto"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", fmtProblems(got), fmtProblems(want))
	}
}

func fmtProblems(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "  %s  %s\n", p.Pointer, p.Detail)
	}
	return b.String()
}

func TestManyGuides(t *testing.T) {
	body := request(
		guide(kv{"id_envio", `"A1"`}),
		fullGuideObject(),
		guide(kv{"id_envio", `"A3"`}, kv{"cod_estado", `"5"`}, kv{"nombre_estado", `"ENTREGADO"`}),
	)
	got := mustNormalize(t, body, Options{})
	if len(got) != 3 || got[0].ShipmentID != "A1" || !reflect.DeepEqual(got[1], fullTracking()) ||
		got[2].ShipmentID != "A3" || got[2].Status.Name != "ENTREGADO" || got[2].Incident != nil {
		t.Errorf("got %+v", got)
	}
}

// fullGuideObject returns the guide object of fullGuide.
func fullGuideObject() string {
	var env struct{ Body []json.RawMessage }
	if err := json.Unmarshal([]byte(fullGuide), &env); err != nil {
		panic(err)
	}
	return string(env.Body[0])
}

func TestEventID(t *testing.T) {
	received := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	id := func(body string) string {
		t.Helper()
		tr := mustNormalize(t, body, Options{})
		if len(tr) != 1 {
			t.Fatalf("got %d trackings", len(tr))
		}
		ev, err := tr[0].Event("shipments/tracking", received)
		if err != nil {
			t.Fatal(err)
		}
		if ev.ID != tr[0].EventID() {
			t.Errorf("Event id %s, EventID %s", ev.ID, tr[0].EventID())
		}
		// The id is derived from the source and the whole data.
		if want, err := event.IDFromData(Source, ev.Data); err != nil || ev.ID != want {
			t.Errorf("id %s, IDFromData of the data %s (%v)", ev.ID, want, err)
		}
		return ev.ID
	}
	base := id(request(guide()))
	if !event.ValidID(base) {
		t.Fatalf("invalid id %q", base)
	}
	// Pinned: changing the derivation would defeat dedupe across an upgrade.
	if base != "evt_2h7at2q24kcnkjmtmxmgybt6sl" {
		t.Errorf("id of the base guide = %s, changed", base)
	}
	withIncident := guide(kv{"cod_novedad", `"NOVEDAD"`}, kv{"nombre_novedad", `"DIRECCION ERRONEA"`},
		kv{"fecha_novedad", `"2022-12-11 11:31:00"`}, kv{"estado_novedad", `"EJECUTADA"`})
	incident := id(request(withIncident))
	for _, tc := range []struct {
		name string
		body string
		want string // the id it must have
	}{
		{"same guide again", request(guide()), base},
		{"key order and spacing", `{ "body" : [ {"fecha_estado":"2022-12-11 11:04:43", "nombre_estado":"EN ENTREGA","cod_estado":4,"id_envio":"consecutivo123"} ], "tipo":"json" }`, base},
		{"cod_estado 4", request(guide(kv{"cod_estado", `4`})), base},
		{"cod_estado 4.0", request(guide(kv{"cod_estado", `4.0`})), base},
		{"cod_estado 4e0", request(guide(kv{"cod_estado", `4e0`})), base},
		{"cod_estado 40E-1", request(guide(kv{"cod_estado", `40E-1`})), base},
		{"escapes", request(guide(kv{"id_envio", `"consecutivo\u0031\u00323"`})), base},
		{"absent optional fields", request(guide(kv{"cod_novedad", `""`}, kv{"observaciones", `null`},
			kv{"guia_reeemplazo", `0`}, kv{"base64_entrega_digitalizada", `[]`}, kv{"campo_nuevo", `"x"`})), base},
		{"same guide and incident again", request(withIncident), incident},
		{"incident fields reordered", request(guide(kv{"estado_novedad", `"EJECUTADA"`}, kv{"fecha_novedad", `"2022-12-11 11:31:00"`},
			kv{"nombre_novedad", `"DIRECCION ERRONEA"`}, kv{"cod_novedad", `"NOVEDAD"`})), incident},
	} {
		if got := id(tc.body); got != tc.want {
			t.Errorf("%s: id %s, want %s", tc.name, got, tc.want)
		}
	}

	// Anything that changes the data is a new event.
	onePNG := pod(pngB64, "image/png")
	distinct := map[string]string{base: "base", incident: "incident"}
	for _, tc := range []struct{ name, body string }{
		{"new incident under the same status", request(guide(kv{"cod_novedad", `"N2"`}, kv{"fecha_novedad", `"2022-12-11 12:00:00"`}))},
		{"incident date changed", request(guide(kv{"cod_novedad", `"NOVEDAD"`}, kv{"nombre_novedad", `"DIRECCION ERRONEA"`},
			kv{"fecha_novedad", `"2022-12-11 11:32:00"`}, kv{"estado_novedad", `"EJECUTADA"`}))},
		{"incident state changed", request(guide(kv{"cod_novedad", `"NOVEDAD"`}, kv{"nombre_novedad", `"DIRECCION ERRONEA"`},
			kv{"fecha_novedad", `"2022-12-11 11:31:00"`}, kv{"estado_novedad", `"PENDIENTE"`}))},
		{"proof added", request(guide(kv{"base64_entrega_digitalizada", onePNG}))},
		{"second proof added", request(guide(kv{"base64_entrega_digitalizada", "[" + onePNG + "," + pod(pdfB64, "application/pdf") + "]"}))},
		{"note added", request(guide(kv{"observaciones", `"x"`}))},
		{"document added", request(guide(kv{"ruta_digitalizada", `"https://laruta.com/docs/1.pdf"`}))},
		{"replacement added", request(guide(kv{"guia_reeemplazo", `"123"`}))},
		{"other name, same code", request(guide(kv{"nombre_estado", `"EN REPARTO"`}))},
		{"other status.at", request(guide(kv{"fecha_estado", `"2022-12-11 11:04:44"`}))},
		{"other status.code", request(guide(kv{"cod_estado", `"5"`}))},
		{"cod_estado the string 4.0", request(guide(kv{"cod_estado", `"4.0"`}))},
		{"other shipment", request(guide(kv{"id_envio", `"consecutivo124"`}))},
	} {
		got := id(tc.body)
		if prev, dup := distinct[got]; dup {
			t.Errorf("%s: id %s, the same as %s", tc.name, got, prev)
		}
		distinct[got] = tc.name
	}

	// A proof sent as an object or as an array of one is the same data.
	if a, b := id(request(guide(kv{"base64_entrega_digitalizada", onePNG}))),
		id(request(guide(kv{"base64_entrega_digitalizada", "[{}," + onePNG + ",null]"}))); a != b {
		t.Errorf("one proof as an object %s, in an array %s", a, b)
	}

	// received_at and the topic are not part of the id.
	tr := mustNormalize(t, request(guide()), Options{})[0]
	a, err := tr.Event("shipments/tracking", received)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.Event("other/topic", received.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID || a.ID != base {
		t.Errorf("ids %s and %s at another time and topic, want %s", a.ID, b.ID, base)
	}
}

func TestEventJSON(t *testing.T) {
	tr := mustNormalize(t, fullGuide, Options{})[0]
	received := time.Date(2026, 11, 22, 4, 0, 0, 0, bogota)
	ev, err := tr.Event("shipments/tracking", received)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != tr.EventID() || ev.Topic != "shipments/tracking" || ev.Source != Source ||
		ev.ReceivedAt.Location() != time.UTC || !ev.ReceivedAt.Equal(received) {
		t.Errorf("event = %+v", ev)
	}
	wantData := `{"shipment_id":"consecutivo123",` +
		`"status":{"code":"4","name":"EN ENTREGA","at":"2022-12-11T11:04:43-05:00"},` +
		`"incident":{"code":"NOVEDAD","name":"DIRECCION ERRONEA","at":"2022-12-11T11:31:00-05:00","state":"EJECUTADA"},` +
		`"replacement":{"tracking_number":"123-444-222","kind":"return"},` +
		`"document_url":"https://laruta.com/docs/....",` +
		`"proof_of_delivery":{"mime_type":"image/png","base64":"` + pngB64 + `","bytes":71},` +
		`"notes":"no se encuentra la dirección"}`
	if string(ev.Data) != wantData {
		t.Errorf("data:\n got %s\nwant %s", ev.Data, wantData)
	}
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	wantEvent := `{"id":"` + ev.ID + `","topic":"shipments/tracking","source":"aveonline","received_at":"2026-11-22T09:00:00Z","data":` + wantData + `}`
	if string(out) != wantEvent {
		t.Errorf("event:\n got %s\nwant %s", out, wantEvent)
	}

	// Without optional groups, and with characters HTML would escape.
	min := mustNormalize(t, request(guide(kv{"nombre_estado", `"<EN & ENTREGA>"`})), Options{})[0]
	ev, err = min.Event("t", received)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"shipment_id":"consecutivo123","status":{"code":"4","name":"<EN & ENTREGA>","at":"2022-12-11T11:04:43-05:00"}}`
	if string(ev.Data) != want {
		t.Errorf("data:\n got %s\nwant %s", ev.Data, want)
	}

	if _, err := tr.Event("", received); err == nil {
		t.Error("an empty topic was accepted")
	}
	if _, err := (&Tracking{}).Event("t", received); err == nil {
		t.Error("an empty tracking was accepted")
	}
}

func TestSample(t *testing.T) {
	s := Sample()
	if s.Incident == nil || s.Replacement == nil || s.ProofOfDelivery == nil || s.DocumentURL == "" || s.Notes == "" {
		t.Fatalf("Sample lacks an optional group: %+v", s)
	}
	// Every field of every group is set.
	for _, v := range []any{s, *s.Incident, *s.Replacement, *s.ProofOfDelivery, s.Status, s.ProofsOfDelivery[1]} {
		rv := reflect.ValueOf(v)
		for i := 0; i < rv.NumField(); i++ {
			if rv.Field(i).IsZero() {
				t.Errorf("%T.%s is empty", v, rv.Type().Field(i).Name)
			}
		}
	}
	content, err := base64.StdEncoding.DecodeString(s.ProofOfDelivery.Base64)
	if err != nil || len(content) != s.ProofOfDelivery.Bytes {
		t.Fatalf("sample content: %d bytes, %v", len(content), err)
	}
	if _, err := png.DecodeConfig(bytes.NewReader(content)); err != nil {
		t.Errorf("sample content is not a PNG: %v", err)
	}
	for _, pr := range s.ProofsOfDelivery {
		if content, err := base64.StdEncoding.DecodeString(pr.Base64); err != nil || len(content) != pr.Bytes {
			t.Errorf("sample proof %s: %d bytes, %v", pr.MimeType, len(content), err)
		}
	}
	if len(s.ProofsOfDelivery) < 2 || s.ProofOfDelivery != &s.ProofsOfDelivery[0] {
		t.Fatalf("Sample has %d proofs of delivery, want several, the first one its proof_of_delivery", len(s.ProofsOfDelivery))
	}
	// It is what its own source payload normalizes to.
	body := strings.Replace(fullGuide, `"https://laruta.com/docs/...."`, `"`+s.DocumentURL+`"`, 1)
	proofs := make([]string, len(s.ProofsOfDelivery))
	for i, pr := range s.ProofsOfDelivery {
		proofs[i] = pod(pr.Base64, pr.MimeType)
	}
	single := "{\n\"base64\":\"" + pngB64 + "\",\n\"mime_type\":\"image/png\"\n}"
	if !strings.Contains(body, single) {
		t.Fatal("the proof of fullGuide is not where expected")
	}
	body = strings.Replace(body, single, "["+strings.Join(proofs, ",")+"]", 1)
	if got := mustNormalize(t, body, Options{}); !reflect.DeepEqual(got[0], s) {
		t.Errorf("got %+v, want %+v", got[0], s)
	}
	if _, err := s.Event("shipments/tracking", time.Now()); err != nil {
		t.Error(err)
	}
	// Fresh each call.
	s.Incident.Code = "changed"
	s.ProofsOfDelivery[1].Bytes = -1
	if fresh := Sample(); fresh.Incident.Code == "changed" || fresh.ProofsOfDelivery[1].Bytes == -1 {
		t.Error("Sample shares its groups between calls")
	}
}

func TestErrorStrings(t *testing.T) {
	if got := (&BadRequestError{Detail: "The request body is empty."}).Error(); got != "ave: The request body is empty." {
		t.Errorf("got %q", got)
	}
	one := &ValidationError{Problems: []Problem{p("/tipo", "El campo tipo es obligatorio")}}
	if got := one.Error(); got != "ave: invalid tracking webhook: /tipo: El campo tipo es obligatorio" {
		t.Errorf("got %q", got)
	}
	many := &ValidationError{}
	for i := range 7 {
		many.Problems = append(many.Problems, p(fmt.Sprintf("/body/%d", i), "x"))
	}
	if got, want := many.Error(), "ave: invalid tracking webhook: /body/0: x; /body/1: x; /body/2: x; /body/3: x; /body/4: x; and 2 more"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestNoAliasing(t *testing.T) {
	// The caller may reuse its buffer: trackings must not point into it.
	body := []byte(fullGuide)
	got := mustNormalize(t, string(body), Options{})
	tr, err := Normalize(body, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 'x'
	}
	if !reflect.DeepEqual(tr, got) {
		t.Errorf("trackings changed with the input buffer: %+v", tr)
	}
}
