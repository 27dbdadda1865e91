package registry

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay/call"
	"github.com/hookrelay/hookrelay/relay/transform"
)

// FuzzMergeOrder: any order, rendered order and field paths. MergeOrder
// never panics; the merged order differs from the original only at the
// listed paths (fields relative to the order, custom fields to its
// custom_fields) and on the way to them; and when it succeeds, every
// listed path the rendered order holds reads the rendered value.
//
//	go test -run '^$' -fuzz '^FuzzMergeOrder$' -fuzztime 60s ./registry/
func FuzzMergeOrder(f *testing.F) {
	for _, c := range []struct{ order, rendered, fields, custom string }{
		{`{"order_id":"A1","total":"10.10","custom_fields":{}}`, `{"order_id":"u","total":"11.30","custom_fields":{"tip":"1.20"}}`, "total", "tip"},
		{`{"total":"1"}`, `{"custom_fields":{"tip":"1"}}`, "", "tip"},
		{`{"custom_fields":null}`, `{"custom_fields":{"a":{"b":1}}}`, "", "a.b"},
		{`{"custom_fields":"x"}`, `{"custom_fields":{"tip":"1"}}`, "", "tip"},
		{`{"shipping":{"address":{"city":"Q"}}}`, `{"shipping":{"address":{"city":"G","zip":"1"}}}`, "shipping.address.city", ""},
		{`{"shipping":"none"}`, `{"shipping":{"city":"G"}}`, "shipping.city", ""},
		{`{"a":{"b":1}}`, `{"a":{"b":2,"c":3}}`, "a,a.b", ""},
		{`{"a":1}`, `{"a":{"b":2}}`, "a.b,a", ""},
		{`{"custom_fields":{"x":1}}`, `{"custom_fields":{"x":2}}`, "custom_fields.x,custom_fields", "x"},
		{`{"items":[1,2]}`, `{"items":[3]}`, "items.0", ""},
		{`{}`, `{"":{"":1}}`, ".", ""},
		{`{"n":12345678901234567890}`, `{"n":1e400}`, "n", ""},
	} {
		f.Add([]byte(c.order), []byte(c.rendered), c.fields, c.custom)
	}
	f.Fuzz(func(t *testing.T, orderJSON, renderedJSON []byte, fields, custom string) {
		orig, ok1 := fuzzObject(orderJSON)
		order, _ := fuzzObject(orderJSON)
		rendered, ok2 := fuzzObject(renderedJSON)
		if !ok1 || !ok2 {
			return
		}
		renderedCopy, _ := fuzzObject(renderedJSON)
		update := FieldSet{Fields: splitPaths(fields), CustomFields: splitPaths(custom)}
		var err error
		done := make(chan struct{})
		go func() {
			defer close(done)
			err = MergeOrder(order, rendered, update)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("MergeOrder(%s, %s, %v) did not end within 10s", orderJSON, renderedJSON, update)
		}
		var listed [][]string
		for _, p := range update.Fields {
			listed = append(listed, strings.Split(p, "."))
		}
		for _, p := range update.CustomFields {
			listed = append(listed, append([]string{"custom_fields"}, strings.Split(p, ".")...))
		}
		if path, ok := onlyListedChanged(orig, order, nil, listed); !ok {
			got, _ := json.Marshal(order)
			t.Fatalf("the merge of %v changed %q, which is not listed: %s became %s (err %v)", update, path, orderJSON, got, err)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(rendered, renderedCopy) {
			t.Fatalf("the merge changed the rendered order %s", renderedJSON)
		}
		check := func(p string, from, in map[string]any, prefix string) {
			want, ok := getPath(from, p)
			if !ok {
				return
			}
			got, ok := getPath(in, prefix+p)
			if !ok || !reflect.DeepEqual(got, want) {
				merged, _ := json.Marshal(order)
				t.Fatalf("listed path %q: the merged order %s holds %v, the rendered order %v", prefix+p, merged, got, want)
			}
		}
		for _, p := range update.Fields {
			check(p, rendered, order, "")
		}
		if rcf, ok := rendered["custom_fields"].(map[string]any); ok {
			for _, p := range update.CustomFields {
				check(p, rcf, order, "custom_fields.")
			}
		}
	})
}

// fuzzObject decodes b as the relay does; false when it is not an object.
func fuzzObject(b []byte) (map[string]any, bool) {
	v, err := transform.DecodeJSON(b)
	if err != nil {
		return nil, false
	}
	m, ok := v.(map[string]any)
	return m, ok
}

// splitPaths splits a comma-separated list; "" is no path. The paths are
// not checked: MergeOrder must cope with any.
func splitPaths(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// absent stands for a member that is not there.
var absent = new(struct{})

// onlyListedChanged reports whether merged differs from orig only at or
// below a listed path, or on the way to one (where an object may have
// been made, or a member added); otherwise the path where it differs.
func onlyListedChanged(orig, merged any, path []string, listed [][]string) (string, bool) {
	onWay := false
	for _, l := range listed {
		if len(path) >= len(l) && slices.Equal(path[:len(l)], l) {
			return "", true // at or below a listed path: anything goes
		}
		if len(path) < len(l) && slices.Equal(l[:len(path)], path) {
			onWay = true
		}
	}
	if !onWay {
		if reflect.DeepEqual(orig, merged) {
			return "", true
		}
		return strings.Join(path, "."), false
	}
	mm, ok := merged.(map[string]any)
	if !ok {
		// Nothing was set below: unchanged.
		if reflect.DeepEqual(orig, merged) {
			return "", true
		}
		return strings.Join(path, "."), false
	}
	om, ok := orig.(map[string]any)
	if !ok {
		if orig != nil && orig != absent {
			// A scalar on the way is never replaced by an object.
			return strings.Join(path, "."), false
		}
		om = map[string]any{}
	}
	for k, mv := range mm {
		ov, ok := om[k]
		if !ok {
			ov = absent
		}
		if p, ok := onlyListedChanged(ov, mv, append(slices.Clip(path), k), listed); !ok {
			return p, false
		}
	}
	for k, ov := range om {
		if _, ok := mm[k]; !ok {
			if p, ok := onlyListedChanged(ov, absent, append(slices.Clip(path), k), listed); !ok {
				return p, false
			}
		}
	}
	return "", true
}

// FuzzReduceOrder: any order and response_body paths. ReduceOrder never
// panics, and answers what transform.Select (the selection of hook_call's
// fields, and ReduceOrder's own for paths through arrays) keeps of
// {"order": <the order>} at the paths, under order and
// order.custom_fields.
//
//	go test -run '^$' -fuzz '^FuzzReduceOrder$' -fuzztime 60s ./registry/
func FuzzReduceOrder(f *testing.F) {
	for _, c := range []struct{ order, fields, custom string }{
		{`{"order_id":"A1","total":"11.30","custom_fields":{"tip":"1.20","note":"n"}}`, "order_id,total", "tip"},
		{`{"shipping":{"city":"Q","cost":"2"}}`, "shipping.city,shipping.zip", ""},
		{`{"shipping":{"city":"Q"}}`, "shipping,shipping.city", ""},
		{`{"shipping":{"city":"Q"}}`, "shipping.city,shipping", ""},
		{`{"items":[{"sku":"A"},{"sku":"B"}]}`, "items.1.sku", ""},
		{`{"custom_fields":{"loyalty":{}}}`, "", "loyalty.points"},
		{`{"custom_fields":null}`, "custom_fields", "tip"},
		{`{"custom_fields":{"a":1}}`, "custom_fields.a", "b"},
		{`{"a":null}`, "a.b", ""},
		{`{}`, "", ""},
	} {
		f.Add([]byte(c.order), c.fields, c.custom)
	}
	f.Fuzz(func(t *testing.T, orderJSON []byte, fields, custom string) {
		order, ok := fuzzObject(orderJSON)
		if !ok {
			return
		}
		respond := FieldSet{Fields: splitPaths(fields), CustomFields: splitPaths(custom)}
		for _, p := range append(slices.Clone(respond.Fields), respond.CustomFields...) {
			if checkFieldPath(p) != nil {
				return // refused at registration
			}
		}
		got, err := ReduceOrder(order, respond)
		if err != nil {
			return
		}
		whole, err := json.Marshal(map[string]any{"order": order})
		if err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, p := range respond.Fields {
			paths = append(paths, "order."+p)
		}
		for _, p := range respond.CustomFields {
			paths = append(paths, "order.custom_fields."+p)
		}
		want, err := transform.Select(whole, paths)
		if err != nil {
			t.Fatalf("Select: %v", err)
		}
		if string(want) == "{}" {
			want = []byte(`{"order":{}}`)
		}
		g, _ := transform.DecodeJSON(got)
		w, _ := transform.DecodeJSON(want)
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("ReduceOrder(%s, %v) = %s, Select keeps %s", orderJSON, respond, got, want)
		}
	})
}

// FuzzDynamicCheck: any response template, error template, response_data
// and request_data through a registration's check. It never panics,
// returns within seconds, and either accepts (with the templates parsed,
// and a response template that renders over the samples to a DEUNA
// order) or refuses with a *ValidationError whose every entry has a
// known pointer and a one-line message.
//
//	go test -run '^$' -fuzz '^FuzzDynamicCheck$' -fuzztime 60s ./registry/
func FuzzDynamicCheck(f *testing.F) {
	for _, c := range []struct{ tmpl, errTmpl, resp, req string }{
		{tipTemplate, "", tipReply, tipOrder},
		{tipTemplate, `{"order":{"error":"{{ .error }}"}}`, tipReply, ""},
		{`{"order":{"total":"{{ .request.order.total }}"}}`, "", `{}`, tipOrder},
		{`{"order":{"total":{{ json (index . "request.order.total") }}}}`, "", `"{\"a\":1}"`, ""},
		{"{\n\"order\": {{ .result.x }\n}", "", `{"x":1}`, ""},
		{`{"order":{}}`, "{{ .result.code }}", `{}`, ""},
		{`{"x":1}`, "", `{}`, `{"order":1}`},
		{"", "", `{"order":{}}`, ""},
		{"", "", `{"uuid":"u"}`, `[]`},
		{`{{ define "a" }}{{ template "a" }}{{ end }}{{ template "a" }}`, "", `{}`, ""},
		{`{"order":{"x":"{{ range 1000 }}ab{{ end }}"}}`, "", `{}`, ""},
		{`{"order":{"d":"{{ date "2006" "Mars/Olympus" .result.t }}"}}`, "", `{"t":"2026-01-01T00:00:00Z"}`, ""},
		{`{"order":{{ json .result }}}`, "", `{"a":[1,{"b":null}]}`, ""},
		{`{{ printf "%v" .result }}`, "", `null`, ""},
		{"\xff", "\x00", "\xff", "\xff"},
	} {
		f.Add(c.tmpl, c.errTmpl, []byte(c.resp), []byte(c.req))
	}
	s := testSettings(f, newSealKey(f)).withDefaults()
	pointers := []string{"/response_template", "/error_response_template", "/response_data", "/request_data"}
	f.Fuzz(func(t *testing.T, tmpl, errTmpl string, resp, req []byte) {
		in := DynamicInput{EventName: "tip", URL: "https://merchant.example.com/tip",
			ResponseTemplate: tmpl, ErrorResponseTemplate: errTmpl}
		if len(resp) > 0 {
			in.ResponseData = resp
		}
		if len(req) > 0 {
			in.RequestData = req
		}
		type result struct {
			ct *compiledTemplates
			ve *ValidationError
		}
		done := make(chan result, 1)
		go func() {
			ct, ve := s.checkDynamic(&in)
			done <- result{ct, ve}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("checking %q over %q did not end within 10s", tmpl, resp)
		}
		if r.ve != nil {
			if r.ct != nil || len(r.ve.Fields) == 0 {
				t.Fatalf("refused with %d fields and templates %v", len(r.ve.Fields), r.ct)
			}
			for _, fe := range r.ve.Fields {
				if !slices.Contains(pointers, fe.Pointer) {
					t.Fatalf("pointer %q: %s", fe.Pointer, fe.Message)
				}
				if fe.Message == "" {
					t.Fatalf("%s: an empty message", fe.Pointer)
				}
			}
			return
		}
		if r.ct == nil {
			t.Fatal("accepted without templates")
		}
		if (r.ct.response != nil) != (tmpl != "") || (r.ct.errors != nil) != (errTmpl != "") {
			t.Fatalf("accepted with templates %+v for %q and %q", r.ct, tmpl, errTmpl)
		}
		if r.ct.response == nil {
			return
		}
		// What was accepted renders over the samples to an order.
		sample, err := transform.DecodeJSON(resp)
		if err != nil {
			t.Fatalf("accepted response_data %q that is not JSON", resp)
		}
		var request any = map[string]any{}
		if len(req) > 0 {
			request, _ = transform.DecodeJSON(req)
		}
		out, err := r.ct.response.Render(call.ReplyData(request, 200, sample, ""))
		if err != nil {
			t.Fatalf("accepted a template that does not render over its sample: %v", err)
		}
		v, _ := transform.DecodeJSON(out)
		if _, ok := orderOf(v); !ok {
			t.Fatalf("accepted a template that renders %s", out)
		}
	})
}
