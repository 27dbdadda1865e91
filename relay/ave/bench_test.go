package ave

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// benchGuide returns a realistic guide, as a PHP sender encodes it (escaped
// slashes and non-ASCII letters). Every guide has a document URL and notes;
// every third an incident, every tenth a replacement and an 8 KiB JPEG proof
// of delivery.
func benchGuide(i int, pod8k string) string {
	members := []kv{
		{"id_envio", fmt.Sprintf(`"%012d"`, 900100200300+i)},
		{"cod_estado", `"4"`},
		{"nombre_estado", `"EN ENTREGA"`},
		{"fecha_estado", fmt.Sprintf(`"2022-12-11 %02d:%02d:43"`, i%24, i%60)},
		{"ruta_digitalizada", fmt.Sprintf(`"https:\/\/laruta.com\/docs\/guias\/%012d.pdf"`, 900100200300+i)},
		{"observaciones", `"Entregar en porter\u00eda, no se encuentra la direcci\u00f3n"`},
	}
	if i%3 == 0 {
		members = append(members,
			kv{"cod_novedad", `"NOVEDAD"`}, kv{"nombre_novedad", `"DIRECCION ERRONEA"`},
			kv{"fecha_novedad", `"2022-12-11 11:31:00"`}, kv{"estado_novedad", `"EJECUTADA"`})
	} else {
		members = append(members, kv{"cod_novedad", `""`}, kv{"nombre_novedad", `null`}, kv{"fecha_novedad", `0`})
	}
	if i%10 == 0 {
		members = append(members,
			kv{"guia_reeemplazo", `"123-444-222"`}, kv{"tipo_guia_reeemplazo", `"DEV"`},
			kv{"base64_entrega_digitalizada", `{"base64":"` + pod8k + `","mime_type":"image\/jpeg"}`})
	} else {
		members = append(members, kv{"base64_entrega_digitalizada", `{"base64":"","mime_type":""}`})
	}
	var b strings.Builder
	b.WriteByte('{')
	for j, m := range members {
		if j > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%s", m[0], m[1])
	}
	b.WriteByte('}')
	return b.String()
}

func benchBody(n int) []byte {
	content := make([]byte, 8<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range content {
		content[i] = byte(r.Uint32())
	}
	copy(content, "\xff\xd8\xff\xe0")
	pod := strings.ReplaceAll(base64.StdEncoding.EncodeToString(content), "/", `\/`)
	guides := make([]string, n)
	for i := range guides {
		guides[i] = benchGuide(i, pod)
	}
	return []byte(request(guides...))
}

func benchmarkNormalize(b *testing.B, n int) {
	body := benchBody(n)
	if got, err := Normalize(body, Options{}); err != nil || len(got) != n {
		b.Fatalf("%d guides, %v", len(got), err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Normalize(body, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNormalize1 normalizes one guide with every group present.
func BenchmarkNormalize1(b *testing.B) { benchmarkNormalize(b, 1) }

// BenchmarkNormalize100 normalizes 100 mixed guides.
func BenchmarkNormalize100(b *testing.B) { benchmarkNormalize(b, 100) }

// BenchmarkEvents100 turns 100 normalized mixed guides into events: their
// JSON data and their ids.
func BenchmarkEvents100(b *testing.B) {
	body := benchBody(100)
	trackings, err := Normalize(body, Options{})
	if err != nil {
		b.Fatal(err)
	}
	received := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		for i := range trackings {
			if _, err := trackings[i].Event("shipments/tracking", received); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkGuide normalizes a one-guide request of about 600 bytes, every
// group but a proof of delivery present, and makes its event: the usual
// request of the durable ingress path.
func BenchmarkGuide(b *testing.B) {
	body := []byte(testutil.AvePayload("guia-1"))
	received := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		trackings, err := Normalize(body, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := trackings[0].Event("shipments/tracking", received); err != nil {
			b.Fatal(err)
		}
	}
}
