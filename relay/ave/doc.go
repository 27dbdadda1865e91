// Package ave decodes, validates and normalizes the shipping tracking
// webhooks that Aveonline hubs send ("Eventos de Webhook con el Payload
// Sugerido por Ave"):
//
//	{"tipo": "json", "body": [ {guide event}, ... ]}
//
// [Normalize] turns a request body into one [Tracking] per guide event, in
// the order they were sent, or rejects the whole request: either with a
// [*BadRequestError] (HTTP 400: the body is empty, is not JSON, has data
// after the JSON value, or is not a JSON object) or with a [*ValidationError]
// (HTTP 422) that lists every problem found, each with a Spanish detail and
// a JSON pointer into the request. Nothing is accepted unless every guide is
// valid.
//
// The package depends on the standard library and on package event only; it
// knows nothing about HTTP, signatures or Caddy.
//
// # Fields
//
// Required in every guide: id_envio, cod_estado, nombre_estado and
// fecha_estado. A required field that is missing, null, "" or only
// whitespace is reported as missing. The values 0 and "0" are accepted in a
// required field (a carrier may well number a status 0).
//
// Optional: cod_novedad, nombre_novedad, fecha_novedad, estado_novedad,
// guia_reeemplazo (three e's, as published), tipo_guia_reeemplazo,
// ruta_digitalizada, base64_entrega_digitalizada and observaciones. An
// optional field that is missing, null, "", only whitespace, the number 0
// or the string "0" is absent. A group of the normalized data (incident,
// replacement, proof_of_delivery) is omitted when none of its fields is
// present; a partly present group carries only the fields that were sent.
//
// A JSON number sent where a string is expected is accepted and becomes its
// canonical decimal string, [event.CanonicalNumber]: exact (never rounded
// through a float), without exponent, leading zeros or trailing fractional
// zeros, so that the same value gives the same text however it is spelled:
// 4, 4.0 and 4e0 become "4", 4.50 becomes "4.5", 1e3 becomes "1000",
// 12345678901234567890 stays 12345678901234567890, and -0 and 0.0 become "0"
// (so they are absent in an optional field). Only a value that would need
// more than 21 zeros of padding is written with an exponent (1e22 stays
// "1e22"). A string is never read as a number: "4.0" stays "4.0". A boolean,
// object or array where a string is expected is a problem. Strings are
// otherwise kept as sent, without trimming. Fields that are not in the
// contract are ignored, and so is the case of a name that differs from the
// published one (only the exact names are read). When a name appears twice
// in one object, the last one counts, as with encoding/json.
//
// Dates (fecha_estado, fecha_novedad) must be exactly "AAAA-MM-DD HH:MM:ss"
// (Go layout "2006-01-02 15:04:05"), a real calendar date and time (no
// February 30th, no 24:00:00, no leap second), and are read in
// [Options.Location] (America/Bogota by default). They are written in RFC 3339
// with that zone's offset at that instant, e.g. "2022-12-11T11:04:43-05:00".
//
// tipo_guia_reeemplazo is DEV, REEMP or CONT (upper case), normalized as
// "return", "replacement" and "continuation".
//
// ruta_digitalizada must be an absolute http or https URL with a host and no
// whitespace or control characters; it is kept as sent.
//
// base64_entrega_digitalizada is an object, one proof of delivery, or an
// array of such objects (the seed types it "Object -> [{}]", as it types
// body). It is absent when it is null, "", 0, "0", an empty array, or when
// each of its proofs is empty. A proof is empty when it is an object whose
// base64 and mime_type are both absent (as in {}); in an array, an element
// that is absent in the sense above (null, "", only whitespace, 0 or "0") is
// empty too, and empty elements are skipped. Every other proof must be an
// object with both: mime_type is image/jpeg, image/png or application/pdf
// (compared without regard to case, written in lower case) and base64 is
// standard base64 (alphabet A-Z a-z 0-9 + /, padding optional, no whitespace
// or line breaks) whose decoded bytes start with the signature of the type:
// FF D8 FF for JPEG, 89 50 4E 47 for PNG, "%PDF" for PDF. The base64 text is
// kept as sent (JSON escapes such as \/ resolved); bytes is the decoded
// length. The content is validated in fixed-size chunks, never decoded whole
// into memory. Each element of an array is validated on its own, and its
// problems point into it (/body/0/base64_entrega_digitalizada/1/base64).
//
// # Problems
//
// A [ValidationError] holds every problem found, one [Problem] each, in a
// fixed order: tipo, then body, then the guides in array order and, inside
// each guide, the fields in the order of the published table (id_envio,
// cod_estado, nombre_estado, fecha_estado, cod_novedad, nombre_novedad,
// fecha_novedad, estado_novedad, guia_reeemplazo, tipo_guia_reeemplazo,
// ruta_digitalizada, base64_entrega_digitalizada, observaciones), whatever
// the order of the keys in the request. When body holds more guides than
// [Options.MaxEvents] allows, the guides are not examined.
//
// The details, with their pointers (<i> is the index of the guide, <campo> a
// field name, <fecha> fecha_estado or fecha_novedad, <N> the limit, <tipo>
// the declared mime_type):
//
//	/tipo       El campo tipo es obligatorio
//	/tipo       El campo tipo debe ser json
//	/body       El campo body es obligatorio
//	/body       El campo body debe ser un arreglo
//	/body       El campo body debe tener al menos un elemento
//	/body       El campo body no puede tener más de <N> elementos
//	/body/<i>   El elemento body/<i> debe ser un objeto
//	/body/<i>/<campo>   El campo <campo> es obligatorio
//	/body/<i>/<campo>   El campo <campo> debe ser una cadena de texto
//	/body/<i>/<fecha>   El campo <fecha> debe tener el formato AAAA-MM-DD HH:MM:ss
//	/body/<i>/<fecha>   El campo <fecha> no es una fecha válida
//	/body/<i>/tipo_guia_reeemplazo          El campo tipo_guia_reeemplazo debe ser DEV, REEMP o CONT
//	/body/<i>/ruta_digitalizada             El campo ruta_digitalizada debe ser una URL válida
//	/body/<i>/base64_entrega_digitalizada   El campo base64_entrega_digitalizada debe ser un objeto o un arreglo de objetos
//	/body/<i>/base64_entrega_digitalizada/<j>   El elemento base64_entrega_digitalizada/<j> debe ser un objeto
//	<p>/base64      El campo base64_entrega_digitalizada.base64 es obligatorio
//	<p>/base64      El campo base64_entrega_digitalizada.base64 debe ser una cadena de texto
//	<p>/base64      El campo base64_entrega_digitalizada.base64 no es un base64 válido
//	<p>/base64      El contenido de base64_entrega_digitalizada no corresponde al tipo <tipo>
//	<p>/mime_type   El campo base64_entrega_digitalizada.mime_type es obligatorio
//	<p>/mime_type   El campo base64_entrega_digitalizada.mime_type debe ser una cadena de texto
//	<p>/mime_type   El campo base64_entrega_digitalizada.mime_type debe ser image/jpeg, image/png o application/pdf
//
// where <p> is /body/<i>/base64_entrega_digitalizada for a single object,
// and /body/<i>/base64_entrega_digitalizada/<j> for the element <j> of an
// array (counting the skipped empty elements).
//
// "es obligatorio" is used for the required guide fields and for a member of
// a proof of delivery left empty while the other one is given.
// A value of tipo that is not the string "json" (a number, a boolean, "JSON")
// gets "debe ser json". The content of base64 is only compared with the
// mime_type when both are valid.
//
// # Normalized data
//
// A [Tracking] marshals to the "data" of the normalized event (CONTRACT.md,
// section 2), with the fields in this order:
//
//	{
//	  "shipment_id": "consecutivo123",
//	  "status": {"code": "4", "name": "EN ENTREGA", "at": "2022-12-11T11:04:43-05:00"},
//	  "incident": {"code": "NOVEDAD", "name": "DIRECCION ERRONEA", "at": "2022-12-11T11:31:00-05:00", "state": "EJECUTADA"},
//	  "replacement": {"tracking_number": "123-444-222", "kind": "return"},
//	  "document_url": "https://laruta.com/docs/consecutivo123.pdf",
//	  "proof_of_delivery": {"mime_type": "image/png", "base64": "iVBORw0KGgo...", "bytes": 71},
//	  "proofs_of_delivery": [
//	    {"mime_type": "image/png", "base64": "iVBORw0KGgo...", "bytes": 71},
//	    {"mime_type": "application/pdf", "base64": "JVBERi0x...", "bytes": 15}
//	  ],
//	  "notes": "no se encuentra la dirección"
//	}
//
// proof_of_delivery is the first proof of delivery sent; proofs_of_delivery
// lists all of them, in the order sent, and is there only when more than one
// came (a single proof, as an object or as an array of one, gives
// proof_of_delivery alone).
//
// # Event id
//
// The id of a tracking's event is derived from Source and the whole
// normalized data, in its canonical form ([event.IDFromData]: keys sorted,
// numbers as their canonical decimal strings, escapes resolved). A guide
// event sent again, identical, yields the same id, and the relay does not
// deliver it twice within its dedupe window, however the resend spells its
// JSON (key order, whitespace, \u escapes, cod_estado 4, 4.0 or "4"). A
// follow-up that adds or changes anything (a new incident under the same
// status, a proof of delivery, a note, another status name) is another
// event, with another id, and is delivered. The time the event was received
// and its topic are not part of the data, and do not change the id.
//
// The strings of the Trackings that Normalize returns share one copy of the
// request body, made once per call; keeping any of them keeps that copy.
package ave
