package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/hookrelay/hookrelay/destination"
	"github.com/hookrelay/hookrelay/registry"
)

// The decoders of the webhook API's bodies. A body is read in two steps:
// the whole of it as JSON (a syntax error is a 400 that says where), then
// each member on its own, so that every member of the wrong type is a 422
// entry with its own JSON pointer, however deep it is, and a custom
// decoder's error (registry.Pairs, destination.Duration) names its member
// too. Nothing here can fail with a status the envelope does not know.

// apiFailure is an answer other than a success: its status and problems.
type apiFailure struct {
	status   int
	problems []problem
}

func (f *apiFailure) Error() string {
	parts := make([]string, len(f.problems))
	for i, p := range f.problems {
		parts[i] = p.detail
	}
	return fmt.Sprintf("%d: %s", f.status, strings.Join(parts, "; "))
}

func failure(status int, detail string) *apiFailure {
	return &apiFailure{status: status, problems: []problem{{detail: detail}}}
}

// jsonObject is a JSON object whose members are decoded one at a time.
type jsonObject struct {
	ptr     string // its JSON pointer in the body
	members map[string]json.RawMessage
	read    map[string]bool // the members asked for
}

// get returns the member name.
func (o *jsonObject) get(name string) (json.RawMessage, bool) {
	raw, ok := o.members[name]
	if ok {
		o.read[name] = true
	}
	return raw, ok
}

// unread returns the names of the members not asked for, in byte order.
func (o *jsonObject) unread() []string {
	var out []string
	for k := range o.members {
		if !o.read[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// pointerToken escapes a member name for a JSON pointer (RFC 6901).
func pointerToken(name string) string {
	return strings.ReplaceAll(strings.ReplaceAll(name, "~", "~0"), "/", "~1")
}

// jsonKind is the first byte of a JSON value: '"', '{', '[', 't', 'f',
// 'n', or a digit or '-' for a number.
func jsonKind(raw json.RawMessage) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

// decodeBody reads body as one JSON object (after lenientJSON when
// lenient): a 400 when it is not JSON or not an object.
func decodeBody(body []byte, lenient bool) (map[string]json.RawMessage, *apiFailure) {
	if lenient {
		stripped, err := lenientJSON(body)
		if err != nil {
			var le *lenientError
			if errors.As(err, &le) {
				line, col := lineColumn(body, le.Offset)
				return nil, failure(http.StatusBadRequest, fmt.Sprintf(
					"The request body is not valid JSON: a /* comment at line %d, column %d is not closed.", line, col))
			}
			return nil, failure(http.StatusBadRequest, "The request body is not valid JSON.")
		}
		body = stripped
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, failure(http.StatusBadRequest, "The request body is empty; a JSON object is expected.")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, failure(http.StatusBadRequest, syntaxDetail(body, se))
		case errors.As(err, &te):
			return nil, failure(http.StatusBadRequest, "The request body must be a JSON object.")
		}
		return nil, failure(http.StatusBadRequest, "The request body is not valid JSON.")
	}
	if members == nil {
		return nil, failure(http.StatusBadRequest, "The request body must be a JSON object.")
	}
	return members, nil
}

// syntaxDetail says where body stops being JSON, without quoting it: the
// message of a json.SyntaxError quotes the offending character.
func syntaxDetail(body []byte, se *json.SyntaxError) string {
	if se.Offset >= int64(len(body)) && strings.Contains(se.Error(), "unexpected end") {
		return "The request body is not valid JSON: it ends before the JSON value is complete."
	}
	at := se.Offset - 1 // Offset counts the bytes read, the bad one included
	if at < 0 {
		at = 0
	}
	line, col := lineColumn(body, at)
	return fmt.Sprintf("The request body is not valid JSON: syntax error at line %d, column %d (byte %d).", line, col, at+1)
}

// lineColumn returns the 1-based line and column (in bytes) of offset.
func lineColumn(body []byte, offset int64) (line, col int) {
	if offset > int64(len(body)) {
		offset = int64(len(body))
	}
	before := body[:offset]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// fieldDecoder decodes a webhook's members and collects the problems of
// their types, each with its JSON pointer.
type fieldDecoder struct {
	// ventiapp: unknown members are ignored, as Ventiapp's API ignores
	// them. Otherwise (the native API) an unknown member is a problem.
	ventiapp bool
	problems []problem
	// syntax is the 400 of a body that is not a JSON object.
	syntax *apiFailure
}

func (d *fieldDecoder) bad(ptr, msg string) {
	d.problems = append(d.problems, problem{detail: fieldDetail(ptr, msg), pointer: ptr})
}

// fieldDetail is a problem's English detail: the field, as a dotted path,
// then what is wrong with it.
func fieldDetail(ptr, msg string) string {
	field := strings.TrimPrefix(ptr, "/")
	if field == "" {
		field = "The body"
	} else {
		field = strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(field, "/", "."), "~1", "/"), "~0", "~")
	}
	for _, verb := range []string{"is ", "must ", "has ", "cannot "} {
		if strings.HasPrefix(msg, verb) {
			return field + " " + msg + "."
		}
	}
	return field + ": " + msg + "."
}

// object returns the object at ptr, or nil after noting a problem.
func (d *fieldDecoder) object(raw json.RawMessage, ptr string) *jsonObject {
	var members map[string]json.RawMessage
	if jsonKind(raw) != '{' || json.Unmarshal(raw, &members) != nil {
		d.bad(ptr, "must be an object")
		return nil
	}
	return &jsonObject{ptr: ptr, members: members, read: map[string]bool{}}
}

// unknown notes, for the native API, each member of o that is not one.
func (d *fieldDecoder) unknown(o *jsonObject, readOnly ...string) {
	if d.ventiapp {
		return
	}
	for _, k := range o.unread() {
		if slices.Contains(readOnly, k) {
			d.bad(o.ptr+"/"+pointerToken(k), "is read-only")
		} else {
			d.bad(o.ptr+"/"+pointerToken(k), "is not a member of this object")
		}
	}
}

// member says whether a member is present and whether it is null.
type member struct {
	present, null bool
}

// str decodes a string member; null leaves dst as it is.
func (d *fieldDecoder) str(o *jsonObject, name string, dst *string) member {
	raw, ok := o.get(name)
	if !ok {
		return member{}
	}
	switch jsonKind(raw) {
	case 'n':
		return member{present: true, null: true}
	case '"':
		if json.Unmarshal(raw, dst) == nil {
			return member{present: true}
		}
	}
	d.bad(o.ptr+"/"+pointerToken(name), "must be a string")
	return member{present: true}
}

// pairs decodes a registry.Pairs member, each entry checked on its own.
func (d *fieldDecoder) pairs(o *jsonObject, name string, dst *registry.Pairs) member {
	raw, ok := o.get(name)
	if !ok {
		return member{}
	}
	ptr := o.ptr + "/" + pointerToken(name)
	var elems []json.RawMessage
	switch jsonKind(raw) {
	case 'n':
		*dst = nil
		return member{present: true, null: true}
	case '[':
		if json.Unmarshal(raw, &elems) == nil {
			break
		}
		fallthrough
	default:
		d.bad(ptr, `must be an array of one-key objects such as [{"name":"value"}]`)
		return member{present: true}
	}
	out := make(registry.Pairs, 0, len(elems))
	for i, e := range elems {
		var one registry.Pairs
		wrapped := append(append([]byte{'['}, e...), ']')
		if jsonKind(e) != '{' || json.Unmarshal(wrapped, &one) != nil || len(one) != 1 {
			d.bad(fmt.Sprintf("%s/%d", ptr, i), `must be an object of one member whose value is a string, a number or a boolean, such as {"name":"value"}`)
			continue
		}
		out = append(out, one[0])
	}
	*dst = out
	return member{present: true}
}

// duration decodes a destination.Duration: a string such as "1m", or an
// integer of nanoseconds.
func (d *fieldDecoder) duration(raw json.RawMessage, ptr string, dst *destination.Duration) {
	k := jsonKind(raw)
	isNumber := k == '-' || k >= '0' && k <= '9'
	if k != '"' && !isNumber || json.Unmarshal(raw, dst) != nil {
		d.bad(ptr, `must be a duration such as "1m" or "24h"`)
	}
}

// webhookMembers are the members of a webhook a create or an update sets.
var webhookMembers = []string{"topic", "address", "filter", "order_by", "authorization", "headers", "params", "secret", "retry"}

// webhookFields is a decoded webhook object: the input, and which of its
// members were present and which were null.
type webhookFields struct {
	in     registry.Input
	member map[string]member
}

// webhook decodes the members of a webhook object.
func (d *fieldDecoder) webhook(o *jsonObject) webhookFields {
	f := webhookFields{member: map[string]member{}}
	f.member["topic"] = d.str(o, "topic", &f.in.Topic)
	f.member["address"] = d.str(o, "address", &f.in.Address)
	f.member["filter"] = d.str(o, "filter", &f.in.Filter)
	f.member["order_by"] = d.str(o, "order_by", &f.in.OrderBy)
	f.member["secret"] = d.str(o, "secret", &f.in.Secret)
	f.member["headers"] = d.pairs(o, "headers", &f.in.Headers)
	f.member["params"] = d.pairs(o, "params", &f.in.Params)
	f.member["authorization"] = d.authorization(o, &f.in.Authorization)
	f.member["retry"] = d.retry(o, &f.in.Retry)
	return f
}

// authorization decodes Ventiapp's authorization object.
func (d *fieldDecoder) authorization(o *jsonObject, dst **registry.Authorization) member {
	raw, ok := o.get("authorization")
	if !ok {
		return member{}
	}
	if jsonKind(raw) == 'n' {
		*dst = nil
		return member{present: true, null: true}
	}
	ao := d.object(raw, o.ptr+"/authorization")
	if ao == nil {
		return member{present: true}
	}
	a := &registry.Authorization{}
	d.str(ao, "authType", &a.AuthType)
	d.pairs(ao, "headers", &a.Headers)
	d.pairs(ao, "params", &a.Params)
	d.str(ao, "addressLogin", &a.AddressLogin)
	d.str(ao, "tokenKey", &a.TokenKey)
	d.str(ao, "expiresKey", &a.ExpiresKey)
	d.str(ao, "tokenType", &a.TokenType)
	if body, ok := ao.get("body"); ok && jsonKind(body) != 'n' {
		// Kept compact; the registry checks that it is an object.
		var b bytes.Buffer
		if json.Compact(&b, body) == nil {
			a.Body = b.Bytes()
		}
	}
	d.unknown(ao)
	*dst = a
	return member{present: true}
}

// retry decodes a webhook's retry schedule.
func (d *fieldDecoder) retry(o *jsonObject, dst **destination.RetryConfig) member {
	raw, ok := o.get("retry")
	if !ok {
		return member{}
	}
	if jsonKind(raw) == 'n' {
		*dst = nil
		return member{present: true, null: true}
	}
	ro := d.object(raw, o.ptr+"/retry")
	if ro == nil {
		return member{present: true}
	}
	rc := &destination.RetryConfig{}
	if s, ok := ro.get("schedule"); ok && jsonKind(s) != 'n' {
		var elems []json.RawMessage
		if jsonKind(s) != '[' || json.Unmarshal(s, &elems) != nil {
			d.bad(ro.ptr+"/schedule", `must be an array of durations such as ["1m","5m"]`)
		} else {
			rc.Schedule = make([]destination.Duration, len(elems))
			for i, e := range elems {
				d.duration(e, fmt.Sprintf("%s/schedule/%d", ro.ptr, i), &rc.Schedule[i])
			}
		}
	}
	if m, ok := ro.get("max_age"); ok && jsonKind(m) != 'n' {
		d.duration(m, ro.ptr+"/max_age", &rc.MaxAge)
	}
	d.str(ro, "on_4xx", &rc.On4xx)
	d.unknown(ro)
	*dst = rc
	return member{present: true}
}

// failed returns the 400 of a body that is not a JSON object, else the
// 422 of the problems noted, or nil.
func (d *fieldDecoder) failed() *apiFailure {
	if d.syntax != nil {
		return d.syntax
	}
	if len(d.problems) == 0 {
		return nil
	}
	return &apiFailure{status: http.StatusUnprocessableEntity, problems: d.problems}
}

// decodeVentiappCreate reads Ventiapp's create body,
// {"webhook":{"topic","address","authorization":{...}}}, with our
// optional members beside them (headers, params, secret, filter, retry).
func decodeVentiappCreate(body []byte) (registry.Input, *apiFailure) {
	d := &fieldDecoder{ventiapp: true}
	o := d.ventiappWebhook(body)
	if o == nil {
		return registry.Input{}, d.failed()
	}
	f := d.webhook(o)
	return f.in, d.failed()
}

// decodeVentiappDelete reads Ventiapp's delete body, {"webhook":{"id":N}}.
func decodeVentiappDelete(body []byte) (uint64, *apiFailure) {
	d := &fieldDecoder{ventiapp: true}
	o := d.ventiappWebhook(body)
	if o == nil {
		return 0, d.failed()
	}
	raw, ok := o.get("id")
	if !ok || jsonKind(raw) == 'n' {
		d.bad("/webhook/id", "is required")
		return 0, d.failed()
	}
	id, err := strconv.ParseUint(string(bytes.TrimSpace(raw)), 10, 64)
	if err != nil || id == 0 {
		d.bad("/webhook/id", "must be a webhook id, a positive integer")
		return 0, d.failed()
	}
	return id, nil
}

// ventiappWebhook reads a Ventiapp body and returns its "webhook" object;
// nil when the body or that member is not usable (see failed).
func (d *fieldDecoder) ventiappWebhook(body []byte) *jsonObject {
	members, f := decodeBody(body, true)
	if f != nil {
		d.syntax = f
		return nil
	}
	top := &jsonObject{ptr: "", members: members, read: map[string]bool{}}
	raw, ok := top.get("webhook")
	if !ok || jsonKind(raw) == 'n' {
		d.bad("/webhook", "is required")
		return nil
	}
	return d.object(raw, "/webhook")
}

// decodeNativeCreate reads the native API's create body: a webhook object.
func decodeNativeCreate(body []byte) (registry.Input, *apiFailure) {
	d := &fieldDecoder{}
	o := d.nativeWebhook(body)
	if o == nil {
		return registry.Input{}, d.failed()
	}
	f := d.webhook(o)
	d.unknown(o, readOnlyMembers...)
	return f.in, d.failed()
}

// readOnlyMembers are the members of the native representation that a
// client cannot set.
var readOnlyMembers = []string{"id", "header_names", "param_names", "created_at", "updated_at", "api_version"}

// decodeNativePatch reads a JSON merge patch (RFC 7396) of a webhook and
// returns the change it makes: a member present replaces the webhook's
// (authorization, headers, params and retry as a whole), a member null
// removes an optional one. topic and address cannot be removed, nor can
// the signing secret (rotate replaces it).
func decodeNativePatch(body []byte) (func(in *registry.Input), *apiFailure) {
	d := &fieldDecoder{}
	o := d.nativeWebhook(body)
	if o == nil {
		return nil, d.failed()
	}
	f := d.webhook(o)
	d.unknown(o, readOnlyMembers...)
	for _, name := range []string{"topic", "address"} {
		if f.member[name].null {
			d.bad("/"+name, "cannot be removed")
		}
	}
	if f.member["secret"].null {
		d.bad("/secret", "cannot be removed: POST /v1/webhooks/{id}/rotate replaces it")
	}
	if fail := d.failed(); fail != nil {
		return nil, fail
	}
	return func(in *registry.Input) {
		for _, name := range webhookMembers {
			m := f.member[name]
			if !m.present {
				continue
			}
			switch name {
			case "topic":
				in.Topic = f.in.Topic
			case "address":
				in.Address = f.in.Address
			case "filter":
				in.Filter = f.in.Filter // "" when null
			case "order_by":
				in.OrderBy = f.in.OrderBy // "" when null
			case "secret":
				in.Secret = f.in.Secret
			case "authorization":
				in.Authorization = f.in.Authorization
			case "headers":
				in.Headers = f.in.Headers
			case "params":
				in.Params = f.in.Params
			case "retry":
				in.Retry = f.in.Retry
			}
		}
	}, nil
}

// nativeWebhook reads a native body, strict JSON, as a webhook object.
func (d *fieldDecoder) nativeWebhook(body []byte) *jsonObject {
	members, f := decodeBody(body, false)
	if f != nil {
		d.syntax = f
		return nil
	}
	return &jsonObject{ptr: "", members: members, read: map[string]bool{}}
}
