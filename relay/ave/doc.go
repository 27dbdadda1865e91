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
// A JSON number sent where a string is expected is accepted and kept as its
// text exactly as sent (4 becomes "4", 12345678901234567890 stays
// 12345678901234567890). A boolean, object or array where a string is
// expected is a problem. Strings are otherwise kept as sent, without
// trimming. Fields that are not in the contract are ignored, and so is the
// case of a name that differs from the published one (only the exact names
// are read). When a name appears twice in one object, the last one counts,
// as with encoding/json.
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
// base64_entrega_digitalizada is absent when it is null, "", 0, "0", or an
// object whose base64 and mime_type are both absent. Otherwise it must be an
// object with both: mime_type is image/jpeg, image/png or application/pdf
// (compared without regard to case, written in lower case) and base64 is
// standard base64 (alphabet A-Z a-z 0-9 + /, padding optional, no whitespace
// or line breaks) whose decoded bytes start with the signature of the type:
// FF D8 FF for JPEG, 89 50 4E 47 for PNG, "%PDF" for PDF. The base64 text is
// kept as sent (JSON escapes such as \/ resolved); bytes is the decoded length.
// The content is validated in fixed-size chunks, never decoded whole into
// memory.
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
//	/body/<i>/base64_entrega_digitalizada   El campo base64_entrega_digitalizada debe ser un objeto
//	/body/<i>/base64_entrega_digitalizada/base64      El campo base64_entrega_digitalizada.base64 es obligatorio
//	/body/<i>/base64_entrega_digitalizada/base64      El campo base64_entrega_digitalizada.base64 debe ser una cadena de texto
//	/body/<i>/base64_entrega_digitalizada/base64      El campo base64_entrega_digitalizada.base64 no es un base64 válido
//	/body/<i>/base64_entrega_digitalizada/base64      El contenido de base64_entrega_digitalizada no corresponde al tipo <tipo>
//	/body/<i>/base64_entrega_digitalizada/mime_type   El campo base64_entrega_digitalizada.mime_type es obligatorio
//	/body/<i>/base64_entrega_digitalizada/mime_type   El campo base64_entrega_digitalizada.mime_type debe ser una cadena de texto
//	/body/<i>/base64_entrega_digitalizada/mime_type   El campo base64_entrega_digitalizada.mime_type debe ser image/jpeg, image/png o application/pdf
//
// "es obligatorio" is used for the required guide fields and for a member of
// base64_entrega_digitalizada left empty while the other one is given.
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
//	  "notes": "no se encuentra la dirección"
//	}
//
// Its event id is derived from (source, shipment_id, status.code, status.at),
// so a guide event sent twice yields the same id.
//
// The strings of the Trackings that Normalize returns share one copy of the
// request body, made once per call; keeping any of them keeps that copy.
package ave
