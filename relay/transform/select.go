package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Select keeps only the listed dotted paths of a JSON body (the fields
// and custom_fields) and returns the result compacted.
//
// A path's segments are object keys or, on arrays, decimal indexes without a
// leading zero ("order.items.0.sku"; "01" is no index). The kept values sit
// at the same paths as in the source, inside objects and arrays of the same
// shape: reading a kept path in the result gives what it gave in the body.
// So an array keeps its indexes, and elements before a kept index that were
// not selected become null ("items.2" keeps [null,null,<third>]). A path
// that is not in the body is skipped; a path that is present with the value
// null keeps the null.
// When one path is a prefix of another, the shorter one (the whole subtree)
// wins. Keys are written in sorted order; numbers are kept as written.
//
// With no paths the body is returned compacted, unchanged. An empty path,
// a body that is not JSON, or one whose top level is neither an object nor an
// array, is an error. A key that contains a dot cannot be addressed.
func Select(body []byte, paths []string) ([]byte, error) {
	if len(paths) == 0 {
		var out bytes.Buffer
		if err := json.Compact(&out, body); err != nil {
			return nil, fmt.Errorf("select: body is not JSON: %w", err)
		}
		return out.Bytes(), nil
	}
	src, err := DecodeJSON(body)
	if err != nil {
		return nil, fmt.Errorf("select: body is not JSON: %w", err)
	}
	var out any
	switch src.(type) {
	case map[string]any:
		out = map[string]any{}
	case []any:
		out = []any{}
	default:
		return nil, fmt.Errorf("select: body is %s, not an object or an array", describe(src))
	}
	for _, p := range paths {
		if p == "" {
			return nil, errors.New("select: empty path")
		}
		keys := strings.Split(p, ".")
		if !has(src, keys) {
			continue
		}
		out = put(out, src, keys)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// has reports whether the path exists in v (a null at its end counts).
func has(v any, keys []string) bool {
	for _, k := range keys {
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[k]; !ok {
				return false
			}
		case []any:
			i, ok := arrayIndex(k)
			if !ok || i >= len(c) {
				return false
			}
			v = c[i]
		default:
			return false
		}
	}
	return true
}

// put copies the value at keys in src into dst, creating the containers on
// the way with the kinds they have in src, and returns the new dst. The path
// must exist in src (see has).
//
// dst may share a subtree with src: when a shorter path was kept whole
// before. put then only writes into that subtree the values it already
// holds, so src is never changed in effect.
func put(dst, src any, keys []string) any {
	if len(keys) == 0 {
		return src
	}
	switch s := src.(type) {
	case map[string]any:
		d, ok := dst.(map[string]any)
		if !ok {
			d = map[string]any{}
		}
		k := keys[0]
		d[k] = put(d[k], s[k], keys[1:])
		return d
	case []any:
		i, _ := arrayIndex(keys[0])
		d, ok := dst.([]any)
		if !ok {
			d = []any{}
		}
		for len(d) <= i {
			d = append(d, nil)
		}
		d[i] = put(d[i], s[i], keys[1:])
		return d
	}
	return src
}
