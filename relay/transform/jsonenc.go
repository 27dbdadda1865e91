package transform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/internal/jsonenc"
)

// maxDepth is how deep json and the print functions follow nested arrays
// and objects. DecodeJSON accepts 10000 levels; a template can wrap them in
// a few more. It bounds the stack, and makes a cyclic Go value an error
// instead of a loop.
const maxDepth = 20000

// jsonWriter encodes the values templates handle (decoded JSON, list and
// dict results, Number, time.Time) as encoding/json would, without HTML
// escaping, and stops as soon as the output passes limit: a small DAG built
// with list can stand for an exponential text, which encoding/json would
// build whole before anything could check its size. Other types go through
// encoding/json.
type jsonWriter struct {
	buf   []byte
	limit int
}

var jsonWriters = sync.Pool{New: func() any { return new(jsonWriter) }}

// jsonTooLarge is the error when the encoding passes the limit.
type jsonTooLarge struct{ limit int }

func (e *jsonTooLarge) Error() string {
	return fmt.Sprintf("the value's JSON is larger than %d bytes, the output limit", e.limit)
}

// encodeJSON returns v's JSON as a string, or an error once it passes limit.
func encodeJSON(v any, limit int) (string, error) {
	w := jsonWriters.Get().(*jsonWriter)
	w.buf, w.limit = w.buf[:0], limit
	err := w.value(v, 0)
	var s string
	if err == nil {
		s = string(w.buf)
	}
	if cap(w.buf) <= maxPooled {
		jsonWriters.Put(w)
	}
	return s, err
}

func (w *jsonWriter) full() error {
	if len(w.buf) > w.limit {
		return &jsonTooLarge{w.limit}
	}
	return nil
}

func (w *jsonWriter) value(v any, depth int) error {
	switch v := v.(type) {
	case nil:
		w.buf = append(w.buf, "null"...)
	case string:
		if len(w.buf)+len(v)+2 > w.limit {
			return &jsonTooLarge{w.limit}
		}
		w.buf = jsonenc.AppendString(w.buf, v, false)
	case json.Number:
		if v == "" {
			v = "0"
		}
		if !validNumber(string(v)) {
			return fmt.Errorf("json: invalid number literal %q", string(v))
		}
		w.buf = append(w.buf, v...)
	case bool:
		w.buf = strconv.AppendBool(w.buf, v)
	case Number:
		w.buf = append(w.buf, v.String()...)
	case int:
		w.buf = strconv.AppendInt(w.buf, int64(v), 10)
	case int64:
		w.buf = strconv.AppendInt(w.buf, v, 10)
	case map[string]any:
		if v == nil {
			w.buf = append(w.buf, "null"...)
			break
		}
		if depth >= maxDepth {
			return errTooDeep
		}
		var arr [16]string
		keys := arr[:0]
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		w.buf = append(w.buf, '{')
		for i, k := range keys {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			if err := w.value(k, depth+1); err != nil {
				return err
			}
			w.buf = append(w.buf, ':')
			if err := w.value(v[k], depth+1); err != nil {
				return err
			}
		}
		w.buf = append(w.buf, '}')
	case []any:
		if v == nil {
			w.buf = append(w.buf, "null"...)
			break
		}
		if depth >= maxDepth {
			return errTooDeep
		}
		w.buf = append(w.buf, '[')
		for i, e := range v {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			if err := w.value(e, depth+1); err != nil {
				return err
			}
		}
		w.buf = append(w.buf, ']')
	case time.Time:
		b, err := v.MarshalJSON()
		if err != nil {
			return w.fallback(v) // encoding/json's error text
		}
		w.buf = append(w.buf, b...)
	default:
		return w.fallback(v)
	}
	return w.full()
}

// fallback appends what encoding/json makes of v.
func (w *jsonWriter) fallback(v any) error {
	e := encoders.Get().(*encoder)
	defer func() {
		if e.buf.Cap() <= maxPooled {
			encoders.Put(e)
		}
	}()
	e.buf.Reset()
	if err := e.enc.Encode(v); err != nil {
		return err
	}
	w.buf = append(w.buf, bytes.TrimSuffix(e.buf.Bytes(), []byte{'\n'})...)
	return w.full()
}

// encoder is a reusable JSON encoder without HTML escaping.
type encoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := new(encoder)
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

var errTooDeep = fmt.Errorf("the value is nested more than %d levels deep", maxDepth)
