package transform

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"
)

// Funcs returns the functions templates can call besides text/template's
// builtins: json, default, upper, lower, date, dict, list and index (which
// replaces the builtin), and the decimal arithmetic add, sub, mul, div,
// round, cmp, min and max. The package documentation describes each one.
// The map is a fresh copy; its functions are not bound to a render's limits
// (json builds at most MaxOutput bytes).
func Funcs() template.FuncMap { return documented(nil) }

// documented returns the documented functions, bound to s.
func documented(s *renderState) template.FuncMap {
	return template.FuncMap{
		"json":    s.json,
		"default": defaultFunc,
		"upper":   s.upper,
		"lower":   s.lower,
		"date":    s.date,
		"dict":    s.dict,
		"list":    s.list,
		"index":   indexFunc,
		"add":     s.add,
		"sub":     s.sub,
		"mul":     s.mul,
		"div":     s.div,
		"round":   s.round,
		"cmp":     cmpFunc,
		"min":     s.min,
		"max":     s.max,
	}
}

// Names of the functions Parse inserts into the parse tree; see rewrite.go.
// They are not part of the documented set.
const (
	emitFunc = "hookrelay_emit"
	optFunc  = "hookrelay_opt"
	tickFunc = "hookrelay_tick"
)

// allFuncs is what a template runs with: the documented set, the hidden
// helpers, and bounded replacements of the builtins that build text or
// print values (see limits.go and compare.go), all bound to s.
func allFuncs(s *renderState) template.FuncMap {
	m := documented(s)
	m[emitFunc] = emit
	m[optFunc] = optional
	m[tickFunc] = s.tick
	m["print"] = s.print
	m["printf"] = s.printf
	m["println"] = s.println
	m["html"] = s.html
	m["js"] = s.js
	m["urlquery"] = s.urlquery
	m["eq"] = eqFunc
	m["ne"] = neFunc
	return m
}

// funcMap is what Parse installs; each render runs on a clone whose
// functions are bound to its state (Template.RenderContext).
var funcMap = allFuncs(nil)

// defaultFunc returns def when v is empty (see isEmpty), else v. The value
// comes last so that it can be piped: {{ .x | default "y" }}.
func defaultFunc(def, v any) any {
	if isEmpty(v) {
		return def
	}
	return v
}

// isEmpty reports whether v is nil, an empty string, or an empty array,
// slice or map. false and zero numbers are not empty: in a JSON payload they
// are values.
func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case map[string]any:
		return len(v) == 0
	case []any:
		return len(v) == 0
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String, reflect.Map, reflect.Slice, reflect.Array:
		return rv.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// text turns a scalar into its text. null, objects and arrays are errors.
func text(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return string(v), nil
	case nil:
		return "", errors.New("value is null")
	case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return fmt.Sprint(v), nil
	case fmt.Stringer:
		return v.String(), nil
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.String {
		return rv.String(), nil
	}
	return "", fmt.Errorf("%s is not text", describe(v))
}

// zones caches loaded locations by name: time.LoadLocation reads the zone
// database on every call. Only names that loaded are kept, so the cache is
// bounded by the zone database.
var zones sync.Map // string -> *time.Location

func loadZone(name string) (*time.Location, error) {
	if name == "" || name == "UTC" {
		return time.UTC, nil
	}
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q", name)
	}
	zones.Store(name, loc)
	return loc, nil
}

// dateFunc formats v (an RFC 3339 string or a time.Time) with layout in zone.
func dateFunc(layout, zone string, v any) (string, error) {
	loc, err := loadZone(zone)
	if err != nil {
		return "", err
	}
	var t time.Time
	switch v := v.(type) {
	case time.Time:
		t = v
	case *time.Time:
		if v == nil {
			return "", errors.New("time is null")
		}
		t = *v
	case string:
		if t, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return "", fmt.Errorf("%q is not an RFC 3339 time", v)
		}
	case nil:
		return "", errors.New("time is null")
	default:
		return "", fmt.Errorf("%s is not a time", describe(v))
	}
	return t.In(loc).Format(layout), nil
}

// dictFunc builds an object from key/value pairs.
func dictFunc(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, fmt.Errorf("odd number of arguments (%d): want key/value pairs", len(kv))
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("key %d is %s, not a string", i/2+1, describe(kv[i]))
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

// indexFunc looks v up by keys: a string key is a dotted path, an integer
// key an array index. A missing path gives nil.
func indexFunc(v any, keys ...any) (any, error) {
	for _, k := range keys {
		if v == nil {
			return nil, nil
		}
		switch k := k.(type) {
		case string:
			v = walkPath(v, k)
		case int:
			v = elem(v, k)
		case json.Number:
			v = walkPath(v, string(k))
		case Number:
			v = walkPath(v, k.String())
		default:
			rk := reflect.ValueOf(k)
			switch {
			case rk.CanInt():
				v = elem(v, int(min(max(rk.Int(), -1), int64(maxInt))))
			case rk.CanUint():
				v = elem(v, int(min(rk.Uint(), uint64(maxInt))))
			case rk.Kind() == reflect.String:
				v = walkPath(v, rk.String())
			default:
				return nil, fmt.Errorf("key is %s; want a dotted path or an integer index", describe(k))
			}
		}
	}
	return v, nil
}

const maxInt = int(^uint(0) >> 1)

// optional walks a field path that is allowed to be missing: the rewritten
// form of .a.b.c where a missing key must not fail (see rewrite.go).
func optional(v any, fields ...string) any {
	for _, f := range fields {
		if v == nil {
			return nil
		}
		v = step(v, f)
	}
	return v
}

// walkPath follows a dotted path.
func walkPath(v any, path string) any {
	for v != nil {
		seg, rest, more := strings.Cut(path, ".")
		v = step(v, seg)
		if !more {
			return v
		}
		path = rest
	}
	return nil
}

// step goes one key down: an object key, or on an array a decimal index.
// Anything that is not there gives nil.
func step(v any, key string) any {
	switch v := v.(type) {
	case map[string]any:
		return v[key]
	case []any:
		i, ok := arrayIndex(key)
		if !ok || i >= len(v) {
			return nil
		}
		return v[i]
	case nil:
		return nil
	}
	rv := indirect(reflect.ValueOf(v))
	switch rv.Kind() {
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return nil
		}
		e := rv.MapIndex(reflect.ValueOf(key).Convert(rv.Type().Key()))
		return value(e)
	case reflect.Slice, reflect.Array:
		i, ok := arrayIndex(key)
		if !ok || i >= rv.Len() {
			return nil
		}
		return value(rv.Index(i))
	case reflect.Struct:
		f, ok := rv.Type().FieldByName(key)
		if !ok || !f.IsExported() {
			return nil
		}
		e, err := rv.FieldByIndexErr(f.Index)
		if err != nil {
			return nil
		}
		return value(e)
	}
	return nil
}

// elem indexes an array; anything else, or out of range, gives nil.
func elem(v any, i int) any {
	if a, ok := v.([]any); ok {
		if i < 0 || i >= len(a) {
			return nil
		}
		return a[i]
	}
	rv := indirect(reflect.ValueOf(v))
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		if i < 0 || i >= rv.Len() {
			return nil
		}
		return value(rv.Index(i))
	case reflect.Map:
		// A map keyed by strings, as decoded JSON is, is indexed by the
		// number's text: index .obj 3 reads the key "3".
		return step(v, strconv.Itoa(i))
	}
	return nil
}

// arrayIndex parses a non-negative decimal index made of digits only,
// written canonically as JSON Pointer (RFC 6901) writes it: "0", or no
// leading zero, so that one element has one path.
func arrayIndex(s string) (int, bool) {
	if s == "" || len(s) > 18 || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// indirect goes through pointers and interfaces; nil ones give the zero
// Value.
func indirect(rv reflect.Value) reflect.Value {
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			return reflect.Value{}
		}
		rv = rv.Elem()
	}
	return rv
}

// value returns e's content, nil for an invalid Value or a nil pointer,
// interface, map or slice.
func value(e reflect.Value) any {
	if !e.IsValid() || !e.CanInterface() {
		return nil
	}
	switch e.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice:
		if e.IsNil() {
			return nil
		}
	}
	return e.Interface()
}

// describe names the JSON kind of v for error messages.
func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number, Number:
		return "a number"
	case bool:
		return "a bool"
	}
	switch rv := reflect.ValueOf(v); {
	case rv.CanInt(), rv.CanUint(), rv.CanFloat():
		return "a number"
	case rv.Kind() == reflect.Map, rv.Kind() == reflect.Struct:
		return fmt.Sprintf("an object (%T)", v)
	case rv.Kind() == reflect.Slice, rv.Kind() == reflect.Array:
		return fmt.Sprintf("an array (%T)", v)
	}
	return fmt.Sprintf("a value of type %T", v)
}

// emitError is returned by emit; Render turns it into the RenderError
// reason as it is.
type emitError struct {
	action string
	what   string
}

func (e *emitError) Error() string {
	return fmt.Sprintf("%s %s", e.action, e.what)
}

// emit is appended to every action that prints (see rewrite.go). It lets
// scalars through and refuses what text/template would print as garbage:
// null ("<no value>"), objects and arrays (Go's map[...] and [...] syntax).
// A time.Time is printed as RFC 3339.
func emit(action string, v any) (any, error) {
	switch v := v.(type) {
	case string, json.Number, bool:
		return v, nil
	case nil:
		return nil, &emitError{action, "is null; use json to print null, or default"}
	case map[string]any:
		return nil, &emitError{action, "is an object; print it with json"}
	case []any:
		return nil, &emitError{action, "is an array; print it with json"}
	case time.Time:
		return v.Format(time.RFC3339Nano), nil
	case fmt.Stringer:
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
			return nil, &emitError{action, "is null; use json to print null, or default"}
		}
		return v, nil
	}
	rv := indirect(reflect.ValueOf(v))
	switch rv.Kind() {
	case reflect.Invalid:
		return nil, &emitError{action, "is null; use json to print null, or default"}
	case reflect.Map, reflect.Struct:
		return nil, &emitError{action, "is an object; print it with json"}
	case reflect.Slice, reflect.Array:
		return nil, &emitError{action, "is an array; print it with json"}
	}
	return v, nil
}
