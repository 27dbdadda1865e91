// Package transform reshapes JSON bodies for the apps behind the relay.
//
// A destination can carry a Go text/template that turns the normalized event
// into the body that app wants, and a synchronous webhook can
// carry a response_template over {"result": <merchant reply>, "request":
// <original request>}. Templates run over JSON decoded with DecodeJSON
// (objects are map[string]any, arrays []any, numbers json.Number so that big
// integers survive), and their output must be one valid JSON value: Render
// validates it and returns it compacted. Select then keeps only the listed
// dotted paths of a body (the fields / custom_fields options).
//
// The package uses the standard library and github.com/shopspring/decimal
// only, and knows nothing of Caddy.
//
// # Functions
//
// Besides text/template's builtins (and, or, not, eq, ne, lt, le, gt, ge,
// len, print, printf, slice, ...), templates have these functions; Funcs
// returns them. The examples run over a normalized ave_tracking event.
//
// json marshals a value as JSON: the safe way to emit a string (quotes,
// backslashes and newlines are escaped) and the way to emit an object, an
// array, a number or null. HTML characters are not escaped.
//
//	"notes": {{ json .data.notes }}            → "notes": "dice \"urgente\"\n"
//	"status": {{ json .data.status }}          → "status": {"at":"...","code":"4","name":"EN ENTREGA"}
//
// default returns its first argument when the second is nil, an empty
// string, or an empty array or object; otherwise the second. false and 0 are
// values, not empty. A field path in its arguments may be missing (see below).
//
//	"code": {{ json (default "none" .data.incident.code) }}   → "code": "none" when there is no incident
//	{{ .data.notes | default "sin notas" }}
//
// upper and lower change the case of a string (or of a number's or a bool's
// text). A null is an error.
//
//	"estado": "{{ upper .data.status.name }}"  → "estado": "EN ENTREGA"
//	"origen": "{{ lower .source }}"           → "origen": "aveonline"
//
// date formats a time with a Go layout in an IANA time zone ("" and "UTC"
// mean UTC). The time is an RFC 3339 string (with or without fractional
// seconds) or a time.Time.
//
//	"dia": "{{ date "2006-01-02" "America/Bogota" .received_at }}"  → "dia": "2026-11-22"
//
// dict builds an object from key/value pairs (keys are strings); list builds
// an array. Both are meant to be passed to json.
//
//	{{ json (dict "guia" .data.shipment_id "estado" .data.status.code) }}  → {"estado":"4","guia":"consecutivo123"}
//	{{ json (list .data.status.code "x") }}                               → ["4","x"]
//
// index looks a value up by keys. Each string key is a dotted path whose
// segments are object keys or, on arrays, decimal indexes without a leading
// zero; an integer key indexes an array. A missing path (absent key, index
// out of range, or a step into a scalar or null) gives nil instead of an
// error, so index is the way to read optional fields. This replaces
// text/template's builtin index.
//
//	{{ json (index . "data.incident.code") }}  → null when there is no incident
//	{{ index . "items.0.sku" }}, {{ index .items 0 "sku" }}
//
// # Arithmetic
//
// add, sub, mul, div, round, cmp, min and max compute in decimal, never in
// binary floating point, so that money adds up: add 0.1 0.2 is 0.3. Their
// operands are numbers (json.Number), strings that hold a number in JSON's
// grammar (DEUNA orders carry totals as "10.10"; no "+", spaces, hex, NaN
// or Infinity), template literals (2, 0.03), and their own results. null,
// a bool, an object, an array or any other string is an error that names
// the function, the argument and what it got:
// `error calling add: argument 2 is "abc", not a number`, or `... is null,
// not a number` for an optional field read with index. Results keep a scale
// (a number of decimals), as SQL decimals and Python's decimal do.
//
// add sums two or more operands; sub subtracts the second from the first.
// The result has the most decimals of the operands.
//
//	"total": "{{ add .request.order.total .result.tip }}"  → "total": "11.30" for "10.10" and "1.20"
//	"rest": "{{ sub .request.order.total "0.10" }}"          → "rest": "10.00"
//
// mul multiplies two or more operands; the decimals add up.
//
//	"tax": "{{ mul .request.order.total 0.03 }}"  → "tax": "0.3030" for "10.10"
//
// div divides the first operand by the second. A quotient that is exact
// keeps the decimals of the first operand minus those of the second (at
// least none); one that is not is rounded half away from zero to 34
// decimals, without trailing zeros. Division by zero is an error.
//
//	{{ div "10.00" 2 }}  → 5.00
//	{{ div 10 4 }}       → 2.5
//	{{ div 1 3 }}        → 0.3333333333333333333333333333333333
//
// round rounds half away from zero to a number of decimals, an integer from
// -32 to 32, and writes exactly that many (none for 0 or less).
//
//	{{ round "11.3" 2 }}    → 11.30
//	{{ round "2.345" 2 }}   → 2.35, and -2.35 for "-2.345"
//	{{ round 1250 -2 }}     → 1300
//
// cmp compares two operands as decimals and returns -1, 0 or 1; it is the
// way to test them, since eq and lt compare text.
//
//	{{ if gt (cmp .result.tip "0") 0 }}...{{ end }}
//	{{ if eq (cmp .request.order.total .result.paid) 0 }}paid{{ else }}due{{ end }}
//
// min and max return the smallest and the largest of one or more operands
// (the first of equal ones), as it is: min "1.50" 2 is 1.50.
//
//	"points_amount": "{{ min (mul .result.points_available .result.point_value) .request.order.total }}"
//	"total": "{{ max "0.00" (sub .request.order.total .result.discount) }}"  → never below zero
//
// The results are Numbers: they print as a plain decimal with their
// decimals ("11.30", "1000" for "1e3", never an exponent, no sign on a
// zero), as a JSON number through json ({{ json (add .a .b) }} → 11.30),
// and as text to upper, print or printf "%s". They are values for default,
// dict and list, but not for eq and ne (an error: compare them with cmp)
// nor for if, where every Number is true.
//
// Operands and results are bounded, so that a template cannot make
// arithmetic slow or huge: an operand's text has at most 256 bytes and its
// exponent stays within ±256 ("1e999999999" is an error at once); a result
// has at most 512 digits and 256 decimals, or it is the error `result is
// too large`. (A result whose text is longer than 256 bytes is still an
// operand as a value, but not once printed and read back as a string.)
//
// Three response_templates of DEUNA merchants, rendered over {"result":
// <merchant answer>, "request": {"order": {...}}} (testdata/ has them
// whole):
//
//	KFC Web adds the tip the merchant answers to the total:
//	  "total": "{{ add .request.order.total .result.tip }}",
//	  "custom_fields": {"tip": {{ json .result.tip }}}
//
//	KFC Venezuela adds a 3% tax to orders paid in cash (other orders keep
//	their total, and tax "0.00"):
//	  {{ $tax := "0.00" }}{{ $total := .request.order.total }}
//	  {{ if eq .request.order.payment_method "CASH" }}
//	    {{ $tax = round (mul $total 0.03) 2 }}{{ $total = add $total $tax }}
//	  {{ end }}
//	  "total": "{{ $total }}", "custom_fields": {"tax": "{{ $tax }}"}
//
//	Wow+ pays what it can of the total with the customer's points:
//	  {{ $amount := round (min (mul .result.points_available .result.point_value) .request.order.total) 2 }}
//	  "total": "{{ sub .request.order.total $amount }}",
//	  "custom_fields": {"points_used": {{ json (round (div $amount .result.point_value) 0) }},
//	                    "points_amount": "{{ $amount }}"}
//
// # Missing keys, nulls and objects
//
// Templates are parsed with missingkey=error: a field path such as
// {{ .data.incident.code }} that runs into a missing key fails the render with
// an error naming the key, rather than printing "<no value>" into the body.
// Likewise an action that would print null, an object or an array is an
// error (text/template would print "<no value>" or Go's map syntax); pass
// such values through json.
//
// Optional fields are read in these places, where a field path that runs
// into a missing key or a null yields nil instead of failing:
//   - the arguments of default, and, or and not, and a field path piped into
//     one of them ({{ .data.notes | default "" }});
//   - a condition of if, with and range that is a single field path
//     ({{ with .data.incident }}...{{ end }}, {{ if .data.replacement }});
//   - index, anywhere.
//
// Field paths elsewhere (printed, or passed to json, upper, date, eq, ...)
// are required.
//
// Numbers are json.Number, whose kind is string: print them as they are
// ({{ .data.proof_of_delivery.bytes }}), and compare them as text
// ({{ if eq .result.code "200" }}) or, as numbers, with cmp. Object keys
// that contain a dot cannot be reached by a dotted path.
//
// # Failures
//
// Parse refuses a template that does not parse, or that calls itself
// through {{ template }} (text/template would only stop it 100000 calls
// deep), with a *ParseError naming the template and the line. Render returns a *RenderError for anything that
// goes wrong while rendering: a missing required key, a function error, an
// output that is not valid JSON (the reason gives the byte offset and a short
// excerpt of the output), a limit passed (below), or a panic. For the relay
// these are permanent failures of that one message, except a render
// stopped by its context (RenderContext), whose error wraps the context's.
// Check renders over a sample at load, so that a broken template refuses
// the config. Values interpolated inside a JSON string literal without json
// ("{{ .x }}") break the output when they contain a quote or a newline; the
// render then fails with an invalid-JSON reason.
//
// # Limits
//
// Templates may come from tenants (a merchant's response_template), so every
// render is bounded in time and memory by its Limits (ParseLimited; Parse
// uses DefaultLimits: 1s and MaxOutput, 10 MB):
//
//   - Time: a render that runs longer stops with `rendering took longer
//     than 1s; stopped (a range that loops too long, or too many
//     {{template}} calls?)` and the line of the range or template. The
//     clock is read at the start of every range iteration and every
//     {{define}}d template, so a range over 100000000000 without output,
//     nested ranges over big lists and a chain of templates that call the
//     next twice 40 levels deep all stop. RenderContext also stops when its
//     context is done.
//   - Output: the output is at most Output bytes (`output is larger than
//     10485760 bytes`), and so is what one call of json, print, printf,
//     println, html, js or urlquery builds: they measure first and refuse
//     with `the result would be larger than ... bytes, the output limit`
//     (print, printf, println, html, js, urlquery) or stop encoding (json:
//     `the value's JSON is larger than ...`). A string doubled 60 times in a
//     range ({{ $s = print $s $s }}) or a list nested in itself 60 times
//     ({{ $l = list $l $l }}, small in memory but exponential as text) is
//     refused at once. Values nested more than 20000 levels deep are refused
//     too.
//   - Built values: the functions that build values (those above, upper,
//     lower, date, list, dict and the arithmetic) may build 4 times Output
//     in all in one render: a range that piles values up in a list stops
//     with `the values built while rendering passed ... bytes`.
//
// eq and ne name the types of arrays and objects they cannot compare
// instead of printing them, which for a self-nested list would be
// exponential.
//
// A Template is safe for concurrent use.
package transform
