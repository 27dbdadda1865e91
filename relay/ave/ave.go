package ave

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // America/Bogota without system zoneinfo
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/internal/jsonenc"
	"github.com/hookrelay/hookrelay/internal/jsonscan"
	"github.com/hookrelay/hookrelay/relay/event"
)

// Source is the source of every event this package produces: the "source"
// of the normalized event and the first part of its id.
const Source = "aveonline"

// DefaultMaxEvents is the number of guides a request may hold when
// Options.MaxEvents is not set.
const DefaultMaxEvents = 1000

// The replacement kinds, normalized from tipo_guia_reeemplazo.
const (
	KindReturn       = "return"       // DEV: the shipment is being returned
	KindReplacement  = "replacement"  // REEMP: the guide replaces an earlier one
	KindContinuation = "continuation" // CONT: the shipment continues under a new guide
)

// Options tunes Normalize. The zero value is ready to use.
type Options struct {
	// Location is the time zone in which the hub's local dates
	// (fecha_estado, fecha_novedad) are read. Default: America/Bogota.
	Location *time.Location

	// MaxEvents is the largest number of guides one request may hold; a
	// request with more is refused. Zero or less means DefaultMaxEvents.
	MaxEvents int
}

// bogota is the default zone. The embedded tzdata makes LoadLocation
// succeed everywhere; the fixed zone is a fallback that cannot panic
// (Colombia has kept UTC-5 without daylight saving time since 1993).
var bogota = func() *time.Location {
	loc, err := time.LoadLocation("America/Bogota")
	if err != nil {
		return time.FixedZone("-05", -5*60*60)
	}
	return loc
}()

// Tracking is one normalized guide event: the "data" of the normalized
// event. Optional groups are nil, and optional strings empty, when the
// carrier did not send them; they are then left out of the JSON.
type Tracking struct {
	// ShipmentID is the carrier's shipment number (id_envio).
	ShipmentID string `json:"shipment_id"`
	// Status is the new status of the guide.
	Status Status `json:"status"`
	// Incident is the incident (novedad) reported with the status, if any.
	Incident *Incident `json:"incident,omitempty"`
	// Replacement is the guide that replaces this one, if any.
	Replacement *Replacement `json:"replacement,omitempty"`
	// DocumentURL is where the guide document can be downloaded
	// (ruta_digitalizada), an absolute http(s) URL.
	DocumentURL string `json:"document_url,omitempty"`
	// ProofOfDelivery is the digitized proof of delivery, if any
	// (base64_entrega_digitalizada): the first one when several came.
	ProofOfDelivery *ProofOfDelivery `json:"proof_of_delivery,omitempty"`
	// ProofsOfDelivery lists every proof of delivery, in the order sent,
	// when more than one came (base64_entrega_digitalizada as an array);
	// it is nil otherwise. ProofOfDelivery then points to its first element.
	ProofsOfDelivery []ProofOfDelivery `json:"proofs_of_delivery,omitempty"`
	// Notes are the carrier's remarks on the shipment (observaciones).
	Notes string `json:"notes,omitempty"`
}

// Status is the status of a guide. All of its fields are always set.
type Status struct {
	// Code is the carrier's status code (cod_estado).
	Code string `json:"code"`
	// Name is the carrier's status name (nombre_estado).
	Name string `json:"name"`
	// At is when the status was reached (fecha_estado), in RFC 3339.
	At string `json:"at"`
}

// Incident is an incident (novedad) on a guide. Only the fields the carrier
// sent are set.
type Incident struct {
	// Code is the carrier's incident code (cod_novedad).
	Code string `json:"code,omitempty"`
	// Name is the carrier's incident name (nombre_novedad).
	Name string `json:"name,omitempty"`
	// At is when the incident happened (fecha_novedad), in RFC 3339.
	At string `json:"at,omitempty"`
	// State is where the handling of the incident stands (estado_novedad).
	State string `json:"state,omitempty"`
}

// Replacement is a guide that takes over from this one. Only the fields the
// carrier sent are set.
type Replacement struct {
	// TrackingNumber is the new guide's number (guia_reeemplazo).
	TrackingNumber string `json:"tracking_number,omitempty"`
	// Kind is KindReturn, KindReplacement or KindContinuation
	// (tipo_guia_reeemplazo DEV, REEMP or CONT).
	Kind string `json:"kind,omitempty"`
}

// ProofOfDelivery is a digitized proof of delivery. All of its fields are
// always set.
type ProofOfDelivery struct {
	// MimeType is image/jpeg, image/png or application/pdf, and matches the
	// content.
	MimeType string `json:"mime_type"`
	// Base64 is the content in standard base64, as sent (JSON escapes
	// such as \/ resolved, padding kept or left out as it was).
	Base64 string `json:"base64"`
	// Bytes is the length of the decoded content.
	Bytes int `json:"bytes"`
}

// EventID returns the stable id of the tracking's event: the id that
// event.IDFromData derives from Source and the tracking's JSON data. An
// identical resend gets the same id; a tracking that differs in anything (a
// new incident under the same status, a proof of delivery, a note) gets
// another. It returns "" only when the tracking cannot be encoded, which
// does not happen to one that Normalize returned.
func (t *Tracking) EventID() string {
	data, err := t.data()
	if err != nil {
		return ""
	}
	id, err := event.IDFromData(Source, data)
	if err != nil {
		return ""
	}
	return id
}

// data returns the tracking as JSON, HTML characters not escaped.
func (t *Tracking) data() ([]byte, error) {
	return t.appendJSON(make([]byte, 0, t.encodedLen())), nil
}

// appendJSON appends the tracking as JSON to b: what a json.Encoder with
// SetEscapeHTML(false) writes, without its newline (TestTrackingJSON and
// FuzzTrackingJSON compare the two).
func (t *Tracking) appendJSON(b []byte) []byte {
	b = append(b, `{"shipment_id":`...)
	b = jsonenc.AppendString(b, t.ShipmentID, false)
	b = append(b, `,"status":{"code":`...)
	b = jsonenc.AppendString(b, t.Status.Code, false)
	b = append(b, `,"name":`...)
	b = jsonenc.AppendString(b, t.Status.Name, false)
	b = append(b, `,"at":`...)
	b = jsonenc.AppendString(b, t.Status.At, false)
	b = append(b, '}')
	if inc := t.Incident; inc != nil {
		b = append(b, `,"incident":`...)
		b = appendMembers(b, "code", inc.Code, "name", inc.Name, "at", inc.At, "state", inc.State)
	}
	if rep := t.Replacement; rep != nil {
		b = append(b, `,"replacement":`...)
		b = appendMembers(b, "tracking_number", rep.TrackingNumber, "kind", rep.Kind)
	}
	if t.DocumentURL != "" {
		b = append(b, `,"document_url":`...)
		b = jsonenc.AppendString(b, t.DocumentURL, false)
	}
	if t.ProofOfDelivery != nil {
		b = append(b, `,"proof_of_delivery":`...)
		b = t.ProofOfDelivery.appendJSON(b)
	}
	if len(t.ProofsOfDelivery) > 0 {
		b = append(b, `,"proofs_of_delivery":[`...)
		for i := range t.ProofsOfDelivery {
			if i > 0 {
				b = append(b, ',')
			}
			b = t.ProofsOfDelivery[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	if t.Notes != "" {
		b = append(b, `,"notes":`...)
		b = jsonenc.AppendString(b, t.Notes, false)
	}
	return append(b, '}')
}

// appendMembers appends an object of the members, names and values in
// pairs, that have a value: the omitempty strings of Incident and
// Replacement.
func appendMembers(b []byte, kv ...string) []byte {
	b = append(b, '{')
	first := true
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, kv[i]...)
		b = append(b, `":`...)
		b = jsonenc.AppendString(b, kv[i+1], false)
	}
	return append(b, '}')
}

// appendJSON appends the proof as JSON to b.
func (p *ProofOfDelivery) appendJSON(b []byte) []byte {
	b = append(b, `{"mime_type":`...)
	b = jsonenc.AppendString(b, p.MimeType, false)
	b = append(b, `,"base64":`...)
	b = jsonenc.AppendString(b, p.Base64, false)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, int64(p.Bytes), 10)
	return append(b, '}')
}

// encodedLen is a close upper bound of the length of the tracking's JSON
// when its strings need no escaping, to size its buffer.
func (t *Tracking) encodedLen() int {
	n := len(`{"shipment_id":"","status":{"code":"","name":"","at":""},"document_url":"","notes":""}`) +
		len(t.ShipmentID) + len(t.Status.Code) + len(t.Status.Name) + len(t.Status.At) + len(t.DocumentURL) + len(t.Notes)
	if inc := t.Incident; inc != nil {
		n += len(`,"incident":{"code":"","name":"","at":"","state":""}`) + len(inc.Code) + len(inc.Name) + len(inc.At) + len(inc.State)
	}
	if rep := t.Replacement; rep != nil {
		n += len(`,"replacement":{"tracking_number":"","kind":""}`) + len(rep.TrackingNumber) + len(rep.Kind)
	}
	const proof = len(`,{"mime_type":"","base64":"","bytes":-9223372036854775808}`)
	if p := t.ProofOfDelivery; p != nil {
		n += len(`,"proof_of_delivery":`) + proof + len(p.MimeType) + len(p.Base64)
	}
	if len(t.ProofsOfDelivery) > 0 {
		n += len(`,"proofs_of_delivery":[]`)
		for i := range t.ProofsOfDelivery {
			n += proof + len(t.ProofsOfDelivery[i].MimeType) + len(t.ProofsOfDelivery[i].Base64)
		}
	}
	return n
}

// Event returns the normalized event of the tracking: the given topic,
// Source, receivedAt in UTC, the tracking as JSON data (HTML characters are
// not escaped), and the id derived from Source and that data (see EventID;
// neither the topic nor receivedAt is part of it). It fails when topic is
// empty or the tracking lacks its required fields.
func (t *Tracking) Event(topic string, receivedAt time.Time) (event.Event, error) {
	if topic == "" {
		return event.Event{}, errors.New("ave: event topic is empty")
	}
	if t.ShipmentID == "" || t.Status.Code == "" || t.Status.Name == "" || t.Status.At == "" {
		return event.Event{}, errors.New("ave: tracking lacks shipment_id or status")
	}
	data, err := t.data()
	if err != nil {
		return event.Event{}, err
	}
	id, err := event.IDFromData(Source, data)
	if err != nil {
		return event.Event{}, fmt.Errorf("ave: event id: %w", err)
	}
	return event.Event{
		ID:         id,
		Topic:      topic,
		Source:     Source,
		ReceivedAt: receivedAt.UTC(),
		Data:       data,
	}, nil
}

// samplePNG is a 1x1 white PNG, 71 bytes once decoded.
const samplePNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAADklEQVR4nGL6DwgAAP//AQUBAlrdOc0AAAAASUVORK5CYII="

// samplePDF is the smallest PDF header and trailer, 15 bytes once decoded.
const samplePDF = "JVBERi0xLjQKJSVFT0YK"

// Sample returns a complete normalized tracking, with every optional group
// and field present, shaped like the example of the published contract,
// with two proofs of delivery (a PNG and a PDF), so that proofs_of_delivery
// is present too. It serves to check user templates when a configuration
// is loaded. Each call returns a fresh value.
func Sample() Tracking {
	t := Tracking{
		ShipmentID: "consecutivo123",
		Status:     Status{Code: "4", Name: "EN ENTREGA", At: "2022-12-11T11:04:43-05:00"},
		Incident: &Incident{
			Code:  "NOVEDAD",
			Name:  "DIRECCION ERRONEA",
			At:    "2022-12-11T11:31:00-05:00",
			State: "EJECUTADA",
		},
		Replacement: &Replacement{TrackingNumber: "123-444-222", Kind: KindReturn},
		DocumentURL: "https://laruta.com/docs/consecutivo123.pdf",
		Notes:       "no se encuentra la dirección",
	}
	t.ProofsOfDelivery = []ProofOfDelivery{
		{MimeType: "image/png", Base64: samplePNG, Bytes: 71},
		{MimeType: "application/pdf", Base64: samplePDF, Bytes: 15},
	}
	t.ProofOfDelivery = &t.ProofsOfDelivery[0]
	return t
}

// Problem is one validation problem: an entry of a 422 response.
type Problem struct {
	// Detail says what is wrong, in Spanish (see the package documentation
	// for the list).
	Detail string
	// Pointer is the JSON pointer (RFC 6901) of the offending value in the
	// request, such as "/body/0/id_envio".
	Pointer string
}

// BadRequestError reports a request body that cannot be read as an
// Aveonline webhook at all: it is empty, is not JSON, has data after the
// JSON value, or is not a JSON object. It maps to HTTP 400.
type BadRequestError struct {
	// Detail says what is wrong, in English, for the response body.
	Detail string
}

// Error returns the detail, prefixed with the package name.
func (e *BadRequestError) Error() string { return "ave: " + e.Detail }

// ValidationError reports a well-formed request that breaks the contract.
// It maps to HTTP 422, one error entry per problem.
type ValidationError struct {
	// Problems lists every problem found, at least one, in the order
	// described in the package documentation.
	Problems []Problem
}

// maxErrorProblems is how many problems ValidationError.Error spells out.
const maxErrorProblems = 5

// Error summarizes the problems on one line: the first few, with their
// pointers, and how many more there are.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("ave: invalid tracking webhook")
	for i, p := range e.Problems {
		if i == maxErrorProblems {
			fmt.Fprintf(&b, "; and %d more", len(e.Problems)-i)
			break
		}
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(p.Pointer)
		b.WriteString(": ")
		b.WriteString(p.Detail)
	}
	return b.String()
}

// Normalize decodes and validates an Aveonline tracking webhook body and
// returns one Tracking per guide, in the order sent. On failure it returns
// no trackings and either a *BadRequestError or a *ValidationError listing
// every problem. It never panics, whatever the input.
func Normalize(body []byte, opts Options) ([]Tracking, error) {
	loc := opts.Location
	if loc == nil {
		loc = bogota
	}
	maxEvents := opts.MaxEvents
	if maxEvents <= 0 {
		maxEvents = DefaultMaxEvents
	}

	start := jsonscan.SkipWS(body, 0)
	if start == len(body) {
		return nil, &BadRequestError{Detail: "The request body is empty."}
	}
	if !event.Valid(body) {
		return nil, badJSON(body)
	}
	if body[start] != '{' {
		return nil, &BadRequestError{Detail: "The request body must be a JSON object, not " + jsonKind(body[start]) + "."}
	}

	d := decoder{b: body, s: string(body), loc: loc}
	var tipo, list span
	for it := newIter(body, start); it.next(); {
		switch d.key(it.key) {
		case "tipo":
			tipo = it.val
		case "body":
			list = it.val
		}
	}

	switch {
	case !tipo.present() || body[tipo.start] == 'n':
		d.add("/tipo", "El campo tipo es obligatorio")
	case body[tipo.start] == '"':
		if v := d.str(tipo); isBlank(v) {
			d.add("/tipo", "El campo tipo es obligatorio")
		} else if v != "json" {
			d.add("/tipo", "El campo tipo debe ser json")
		}
	default:
		d.add("/tipo", "El campo tipo debe ser json")
	}

	n := 0 // guides to examine: none when body itself is wrong
	switch {
	case !list.present() || body[list.start] == 'n':
		d.add("/body", "El campo body es obligatorio")
	case body[list.start] != '[':
		d.add("/body", "El campo body debe ser un arreglo")
	default:
		for it := newIter(body, list.start); n <= maxEvents && it.next(); {
			n++
		}
		if n == 0 {
			d.add("/body", "El campo body debe tener al menos un elemento")
		} else if n > maxEvents {
			d.add("/body", "El campo body no puede tener más de "+strconv.Itoa(maxEvents)+" elementos")
			n = 0
		}
	}
	if n == 0 {
		return nil, &ValidationError{Problems: d.problems}
	}

	out := make([]Tracking, n)
	groups := make([]guideGroups, n)
	i := 0
	for it := newIter(body, list.start); it.next(); i++ {
		d.guide(i, it.val, &out[i], &groups[i])
	}
	if len(d.problems) > 0 {
		return nil, &ValidationError{Problems: d.problems}
	}
	return out, nil
}

// guideGroups holds the optional groups of one guide, so that a request
// allocates them once for all its guides.
type guideGroups struct {
	incident    Incident
	replacement Replacement
	proof       ProofOfDelivery
}

// badJSON explains why json.Valid refused body.
func badJSON(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	var first json.RawMessage
	if err := dec.Decode(&first); err == nil {
		return &BadRequestError{Detail: fmt.Sprintf(
			"The request body must hold a single JSON object, but more data follows it at byte %d.",
			jsonscan.SkipWS(body, int(dec.InputOffset())))}
	}
	var se *json.SyntaxError
	if err := json.Unmarshal(body, &first); errors.As(err, &se) {
		return &BadRequestError{Detail: fmt.Sprintf("The request body is not valid JSON: %s (at byte %d).", se.Error(), se.Offset)}
	}
	return &BadRequestError{Detail: "The request body is not valid JSON."}
}

// jsonKind names the kind of the JSON value that starts with c.
func jsonKind(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// decoder carries one call of Normalize.
type decoder struct {
	b        []byte // the request body, valid JSON
	s        string // the same bytes as a string, to slice values from
	loc      *time.Location
	problems []Problem
}

// add records a problem.
func (d *decoder) add(pointer, detail string) {
	d.problems = append(d.problems, Problem{Detail: detail, Pointer: pointer})
}

// key returns the name of an object member.
func (d *decoder) key(k span) string { return d.str(k) }

// str returns the decoded value of the JSON string at sp. A string without
// escapes and with valid UTF-8, the common case, is sliced from d.s without
// allocating.
func (d *decoder) str(sp span) string {
	raw := d.b[sp.start+1 : sp.end-1]
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return d.s[sp.start+1 : sp.end-1]
	}
	return unquote(raw)
}

// state is what a field turned out to be.
type state uint8

const (
	absent  state = iota // missing, null, blank, or 0 / "0" where optional
	present              // a usable string
	badType              // a boolean, object or array
)

// text reads a field that holds a string. Numbers are taken as their text.
func (d *decoder) text(sp span, optional bool) (string, state) {
	if !sp.present() {
		return "", absent
	}
	var v string
	switch d.b[sp.start] {
	case '"':
		v = d.str(sp)
		if isBlank(v) {
			return "", absent
		}
	case 'n':
		return "", absent
	case 't', 'f', '{', '[':
		return "", badType
	default:
		// A number, valid JSON: its canonical decimal string, which is the
		// text as sent for the usual integers.
		v, _ = event.CanonicalNumber(d.s[sp.start:sp.end])
	}
	if optional && v == "0" {
		return "", absent
	}
	return v, present
}

// isBlank reports whether s is empty or only whitespace.
func isBlank(s string) bool { return strings.TrimSpace(s) == "" }

// field indexes the fields of a guide, in the order of the published table,
// which is also the order in which problems are reported.
type field int

const (
	fIDEnvio field = iota
	fCodEstado
	fNombreEstado
	fFechaEstado
	fCodNovedad
	fNombreNovedad
	fFechaNovedad
	fEstadoNovedad
	fGuiaReemplazo
	fTipoGuiaReemplazo
	fRutaDigitalizada
	fBase64Entrega
	fObservaciones
	numFields
)

// fieldNames are the published names of the fields.
var fieldNames = [numFields]string{
	fIDEnvio:           "id_envio",
	fCodEstado:         "cod_estado",
	fNombreEstado:      "nombre_estado",
	fFechaEstado:       "fecha_estado",
	fCodNovedad:        "cod_novedad",
	fNombreNovedad:     "nombre_novedad",
	fFechaNovedad:      "fecha_novedad",
	fEstadoNovedad:     "estado_novedad",
	fGuiaReemplazo:     "guia_reeemplazo",
	fTipoGuiaReemplazo: "tipo_guia_reeemplazo",
	fRutaDigitalizada:  "ruta_digitalizada",
	fBase64Entrega:     "base64_entrega_digitalizada",
	fObservaciones:     "observaciones",
}

// fieldOf returns the field a member name stands for.
func fieldOf(name string) (field, bool) {
	switch name {
	case "id_envio":
		return fIDEnvio, true
	case "cod_estado":
		return fCodEstado, true
	case "nombre_estado":
		return fNombreEstado, true
	case "fecha_estado":
		return fFechaEstado, true
	case "cod_novedad":
		return fCodNovedad, true
	case "nombre_novedad":
		return fNombreNovedad, true
	case "fecha_novedad":
		return fFechaNovedad, true
	case "estado_novedad":
		return fEstadoNovedad, true
	case "guia_reeemplazo":
		return fGuiaReemplazo, true
	case "tipo_guia_reeemplazo":
		return fTipoGuiaReemplazo, true
	case "ruta_digitalizada":
		return fRutaDigitalizada, true
	case "base64_entrega_digitalizada":
		return fBase64Entrega, true
	case "observaciones":
		return fObservaciones, true
	}
	return 0, false
}

// guideCtx is the guide being read.
type guideCtx struct {
	d      *decoder
	index  int
	fields [numFields]span
}

// pointer returns the JSON pointer of a path inside the guide.
func (g *guideCtx) pointer(path string) string {
	return "/body/" + strconv.Itoa(g.index) + "/" + path
}

// add records a problem on a field of the guide.
func (g *guideCtx) add(f field, detail string) {
	g.d.add(g.pointer(fieldNames[f]), detail)
}

// text reads a string field and reports a missing required field or a value
// of the wrong type.
func (g *guideCtx) text(f field, required bool) (string, bool) {
	v, st := g.d.text(g.fields[f], !required)
	switch {
	case st == badType:
		g.add(f, "El campo "+fieldNames[f]+" debe ser una cadena de texto")
	case st == absent && required:
		g.add(f, "El campo "+fieldNames[f]+" es obligatorio")
	}
	return v, st == present
}

// date reads a date field and returns it in RFC 3339.
func (g *guideCtx) date(f field, required bool) (string, bool) {
	v, ok := g.text(f, required)
	if !ok {
		return "", false
	}
	t, err := parseDate(v, g.d.loc)
	switch err {
	case nil:
		return t.Format(time.RFC3339), true
	case errDateFormat:
		g.add(f, "El campo "+fieldNames[f]+" debe tener el formato AAAA-MM-DD HH:MM:ss")
	default:
		g.add(f, "El campo "+fieldNames[f]+" no es una fecha válida")
	}
	return "", false
}

// guide validates the guide at sp, the index-th of body, into t. The groups
// t may point to are taken from gr.
func (d *decoder) guide(index int, sp span, t *Tracking, gr *guideGroups) {
	g := guideCtx{d: d, index: index}
	if d.b[sp.start] != '{' {
		n := strconv.Itoa(index)
		d.add("/body/"+n, "El elemento body/"+n+" debe ser un objeto")
		return
	}
	for it := newIter(d.b, sp.start); it.next(); {
		if f, ok := fieldOf(d.key(it.key)); ok {
			g.fields[f] = it.val
		}
	}

	t.ShipmentID, _ = g.text(fIDEnvio, true)
	t.Status.Code, _ = g.text(fCodEstado, true)
	t.Status.Name, _ = g.text(fNombreEstado, true)
	t.Status.At, _ = g.date(fFechaEstado, true)

	inc := &gr.incident
	var ok [4]bool
	inc.Code, ok[0] = g.text(fCodNovedad, false)
	inc.Name, ok[1] = g.text(fNombreNovedad, false)
	inc.At, ok[2] = g.date(fFechaNovedad, false)
	inc.State, ok[3] = g.text(fEstadoNovedad, false)
	if ok[0] || ok[1] || ok[2] || ok[3] {
		t.Incident = inc
	}

	rep := &gr.replacement
	rep.TrackingNumber, ok[0] = g.text(fGuiaReemplazo, false)
	if kind, has := g.text(fTipoGuiaReemplazo, false); has {
		switch kind {
		case "DEV":
			rep.Kind = KindReturn
		case "REEMP":
			rep.Kind = KindReplacement
		case "CONT":
			rep.Kind = KindContinuation
		default:
			g.add(fTipoGuiaReemplazo, "El campo tipo_guia_reeemplazo debe ser DEV, REEMP o CONT")
		}
	}
	if ok[0] || rep.Kind != "" {
		t.Replacement = rep
	}

	if u, has := g.text(fRutaDigitalizada, false); has {
		if validURL(u) {
			t.DocumentURL = u
		} else {
			g.add(fRutaDigitalizada, "El campo ruta_digitalizada debe ser una URL válida")
		}
	}

	g.proofs(t, &gr.proof)

	t.Notes, _ = g.text(fObservaciones, false)
}

// proofName is the name of base64_entrega_digitalizada, for details.
const proofName = "base64_entrega_digitalizada"

// proofs reads base64_entrega_digitalizada, an object or an array of
// objects, into t. A single proof goes into one, so that the common case
// allocates nothing.
func (g *guideCtx) proofs(t *Tracking, one *ProofOfDelivery) {
	d := g.d
	sp := g.fields[fBase64Entrega]
	if !sp.present() {
		return
	}
	switch d.b[sp.start] {
	case '{':
		if g.proof(sp, -1, one) == proofValid {
			t.ProofOfDelivery = one
		}
		return
	case '[':
	default:
		// null, "", "0" and 0 mean absent, like any optional field.
		if _, st := d.text(sp, true); st != absent {
			g.add(fBase64Entrega, "El campo "+proofName+" debe ser un objeto o un arreglo de objetos")
		}
		return
	}

	// Every element is checked, so that every problem is reported; when
	// there is one, the request is refused and what was kept is dropped.
	var list []ProofOfDelivery // all the valid proofs, from the second on
	n, j := 0, 0
	for it := newIter(d.b, sp.start); it.next(); j++ {
		el := it.val
		if d.b[el.start] != '{' {
			// An empty element (null, "", blank, 0, "0") is skipped, like {}.
			if _, st := d.text(el, true); st != absent {
				path := proofName + "/" + strconv.Itoa(j)
				d.add(g.pointer(path), "El elemento "+path+" debe ser un objeto")
			}
			continue
		}
		var p ProofOfDelivery
		if g.proof(el, j, &p) != proofValid {
			continue
		}
		switch n++; n {
		case 1:
			*one = p
		case 2:
			list = append(make([]ProofOfDelivery, 0, 4), *one, p)
		default:
			list = append(list, p)
		}
	}
	switch {
	case n == 1:
		t.ProofOfDelivery = one
	case n > 1:
		t.ProofOfDelivery = &list[0]
		t.ProofsOfDelivery = list
	}
}

// proofResult is what one proof of delivery turned out to be.
type proofResult uint8

const (
	proofAbsent  proofResult = iota // base64 and mime_type both absent
	proofValid                      // read into p
	proofInvalid                    // problems recorded
)

// proof reads the object at sp, a proof of delivery, into p. index is its
// index in the array of proofs, or -1 when base64_entrega_digitalizada is
// the object itself; it goes into the pointers of the problems.
func (g *guideCtx) proof(sp span, index int, p *ProofOfDelivery) proofResult {
	const name = proofName
	d := g.d
	var b64Span, mimeSpan span
	for it := newIter(d.b, sp.start); it.next(); {
		switch d.key(it.key) {
		case "base64":
			b64Span = it.val
		case "mime_type":
			mimeSpan = it.val
		}
	}
	b64, b64State := d.text(b64Span, true)
	mime, mimeState := d.text(mimeSpan, true)
	if b64State == absent && mimeState == absent {
		return proofAbsent
	}

	valid := true
	problem := func(member, detail string) {
		path := name + "/" + member
		if index >= 0 {
			path = name + "/" + strconv.Itoa(index) + "/" + member
		}
		d.add(g.pointer(path), detail)
		valid = false
	}
	var n int
	var magic [4]byte
	switch b64State {
	case absent:
		problem("base64", "El campo "+name+".base64 es obligatorio")
	case badType:
		problem("base64", "El campo "+name+".base64 debe ser una cadena de texto")
	default:
		var ok bool
		if n, magic, ok = checkBase64(b64); !ok {
			problem("base64", "El campo "+name+".base64 no es un base64 válido")
		}
	}
	switch mimeState {
	case absent:
		problem("mime_type", "El campo "+name+".mime_type es obligatorio")
	case badType:
		problem("mime_type", "El campo "+name+".mime_type debe ser una cadena de texto")
	default:
		if m, ok := canonicalMime(mime); ok {
			p.MimeType = m
		} else {
			problem("mime_type", "El campo "+name+".mime_type debe ser image/jpeg, image/png o application/pdf")
		}
	}
	// The content is compared with the type only when both are good.
	if valid && !matchesMagic(p.MimeType, magic[:min(n, len(magic))]) {
		problem("base64", "El contenido de "+name+" no corresponde al tipo "+p.MimeType)
	}
	if !valid {
		return proofInvalid
	}
	p.Base64 = b64
	p.Bytes = n
	return proofValid
}
