package ave

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay/event"
)

// fuzzSeeds are payloads of the tests: valid, invalid and malformed.
func fuzzSeeds() []string {
	seeds := []string{
		seedExample, fullGuide, request(guide()), request(fullGuideObject(), guide(), "null"),
		``, ` `, `nope`, `[]`, `"json"`, `null`, `42`, `{}`, `{}{}`, `{"tipo":"json","body":[`,
		`{"tipo":"json"}`, `{"tipo":"json","body":null}`, `{"tipo":"json","body":{}}`, `{"tipo":"json","body":[]}`,
		`{"tipo":"xml","body":[1,"x",[],{}]}`, `{"tipo":1,"body":[null]}`,
		request(`{"id\u005fenvio":"a","cod_estado":4,"nombre_estado":"X","fecha_estado":"2022-12-11 11:04:43"}`),
	}
	for _, f := range append(append([]string(nil), requiredFields...), optionalFields...) {
		for _, v := range []string{drop, `""`, `null`, `0`, `"0"`, `" "`, `true`, `{}`, `[]`, `12345678901234567890`, `"x\u00f3\/"`} {
			seeds = append(seeds, request(guide(kv{f, v})))
		}
	}
	for _, v := range []string{`"2024-02-29 00:00:00"`, `"2023-02-29 10:00:00"`, `"2022-12-11T11:04:43"`, `"2022-12-11 24:00:00"`} {
		seeds = append(seeds, request(guide(kv{"fecha_estado", v}, kv{"fecha_novedad", v})))
	}
	for _, v := range []string{`"DEV"`, `"REEMP"`, `"CONT"`, `"dev"`} {
		seeds = append(seeds, request(guide(kv{"tipo_guia_reeemplazo", v})))
	}
	for _, v := range []string{`"https://laruta.com/docs/...."`, `"laruta.com"`, `"https:\/\/x.co\/a"`} {
		seeds = append(seeds, request(guide(kv{"ruta_digitalizada", v})))
	}
	for _, v := range []string{
		pod(pngB64, "image/png"), pod(jpegB64, "image/jpeg"), pod(pdfB64, "application/pdf"),
		pod(pngB64, "image/jpeg"), pod(gifB64, "image/gif"), pod("Base64 was here", ""), pod("", "image/png"),
		pod("/9g=", "image/jpeg"), pod("iVBORw0KGgo\nAAAA", "image/png"), `{"base64":"iVBORw0KGgo=","mime_type":null}`,
	} {
		seeds = append(seeds, request(guide(kv{"base64_entrega_digitalizada", v})))
	}
	// Arrays of proofs: empty, with empty elements, several, with bad
	// elements, nested.
	podPNG, podPDF := pod(pngB64, "image/png"), pod(pdfB64, "application/pdf")
	for _, v := range []string{
		`[]`, `[{}]`, `[null,"",0,"0"]`, `[` + podPNG + `]`, `[` + podPNG + `,` + podPDF + `]`,
		`[{},` + podPDF + `,null,` + pod(jpegB64, "image/jpeg") + `]`, `[` + podPNG + `,` + pod(pngB64, "image/jpeg") + `]`,
		`[` + pod("Base64 was here", "") + `,true,"x",[],[` + podPNG + `]]`, `[{"base64":"iVBORw0KGgo=","mime_type":null},7]`,
	} {
		seeds = append(seeds, request(guide(kv{"base64_entrega_digitalizada", v})))
	}
	// Numbers in many spellings.
	for _, v := range []string{`4.0`, `4e0`, `40E-1`, `-0.0`, `1e999999999`, `12.50`, `0.5e-1`} {
		seeds = append(seeds, request(guide(kv{"cod_estado", v}, kv{"cod_novedad", v})))
	}
	return seeds
}

func FuzzNormalize(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	received := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		in := bytes.Clone(body)
		got, err := Normalize(body, Options{MaxEvents: 50})
		if !bytes.Equal(in, body) {
			t.Fatal("Normalize modified its input")
		}
		if err != nil {
			if got != nil {
				t.Fatalf("trackings returned with error %v", err)
			}
			var be *BadRequestError
			var ve *ValidationError
			switch {
			case errors.As(err, &be):
				if be.Detail == "" {
					t.Fatal("empty BadRequestError detail")
				}
			case errors.As(err, &ve):
				if len(ve.Problems) == 0 {
					t.Fatal("ValidationError without problems")
				}
				for _, p := range ve.Problems {
					if !strings.HasPrefix(p.Pointer, "/") || p.Detail == "" {
						t.Fatalf("bad problem %+v", p)
					}
				}
			default:
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		if len(got) == 0 {
			t.Fatal("no error and no trackings")
		}
		// A second opinion from encoding/json on what was read.
		// (Maps, not structs: encoding/json matches struct fields without
		// regard to case.)
		var ref map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&ref); err != nil || ref["tipo"] != "json" {
			t.Fatalf("encoding/json disagrees: %v, tipo %v", err, ref["tipo"])
		}
		guides, _ := ref["body"].([]any)
		if len(guides) != len(got) {
			t.Fatalf("encoding/json read %d guides, Normalize %d", len(guides), len(got))
		}
		for i, tr := range got {
			g, _ := guides[i].(map[string]any)
			for _, c := range []struct{ name, got string }{
				{"id_envio", tr.ShipmentID}, {"cod_estado", tr.Status.Code}, {"nombre_estado", tr.Status.Name},
			} {
				if want := refText(g[c.name]); want != c.got {
					t.Fatalf("guide %d %s: got %q, encoding/json read %q", i, c.name, c.got, want)
				}
			}
			// proof_of_delivery is the first of proofs_of_delivery, which
			// is there only when there are several.
			if ps := tr.ProofsOfDelivery; ps != nil && (len(ps) < 2 || tr.ProofOfDelivery == nil || *tr.ProofOfDelivery != ps[0]) {
				t.Fatalf("guide %d: proof %+v, proofs %+v", i, tr.ProofOfDelivery, ps)
			}
			ev, err := tr.Event("shipments/tracking", received)
			if err != nil {
				t.Fatal(err)
			}
			if !event.ValidID(ev.ID) || !json.Valid(ev.Data) {
				t.Fatalf("bad event %+v", ev)
			}
			if want := refData(t, &tr); !bytes.Equal(ev.Data, want) {
				t.Fatalf("data %s, encoding/json writes %s", ev.Data, want)
			}
			if id, err := event.IDFromData(Source, ev.Data); err != nil || id != ev.ID || tr.EventID() != ev.ID {
				t.Fatalf("id %s, IDFromData %s (%v), EventID %s", ev.ID, id, err, tr.EventID())
			}
			out, err := json.Marshal(ev)
			if err != nil || !json.Valid(out) {
				t.Fatalf("event does not marshal: %v", err)
			}
			var back Tracking
			if err := json.Unmarshal(ev.Data, &back); err != nil || back.ShipmentID != tr.ShipmentID {
				t.Fatalf("data does not round-trip: %v", err)
			}
		}
	})
}

// refText is the text of a string or number decoded by encoding/json: a
// number's canonical decimal string.
func refText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		if n, ok := event.CanonicalNumber(string(v)); ok {
			return n
		}
		return "<bad number " + string(v) + ">"
	}
	return "<other>"
}
