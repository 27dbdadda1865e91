package transform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"unicode/utf8"
)

// MaxOutput is the default output limit (DefaultLimits.Output), in bytes:
// a render that writes more stops with a *RenderError instead of growing
// without bound.
const MaxOutput = 10 << 20

// Template is a parsed body template. It is safe for concurrent use.
type Template struct {
	name   string
	tmpl   *template.Template
	limits Limits
	// clones holds copies of tmpl whose functions are bound to their own
	// renderState, one per concurrent render (see RenderContext).
	clones sync.Pool
}

// Parse parses a template named name (the file name or the config key; it
// appears in every error) with the function set described in the package
// documentation and missingkey=error, to render within DefaultLimits. A
// syntax error or an unknown function is a *ParseError naming the template
// and the line.
func Parse(name, text string) (*Template, error) {
	return ParseLimited(name, text, DefaultLimits)
}

// ParseLimited is Parse with the limits every render of the template keeps
// to; a zero field of l takes its value from DefaultLimits.
func ParseLimited(name, text string, l Limits) (*Template, error) {
	tmpl, err := template.New(name).Option("missingkey=error").Funcs(funcMap).Parse(text)
	if err != nil {
		line, reason := splitLocation(err.Error(), name)
		return nil, &ParseError{Template: name, Line: line, Reason: reason}
	}
	if err := checkRecursion(tmpl); err != nil {
		return nil, err
	}
	rewrite(tmpl)
	t := &Template{name: name, tmpl: tmpl, limits: l.withDefaults()}
	t.clones.New = func() any { return t.newClone() }
	return t, nil
}

// clone is a copy of a Template's text/template whose bounded functions
// share st, with the buffer its render writes to.
type clone struct {
	tmpl *template.Template
	st   *renderState
	buf  bytes.Buffer
	w    limitWriter
}

func (t *Template) newClone() any {
	tmpl, err := t.tmpl.Clone()
	if err != nil { // text/template's Clone does not fail
		panic(err)
	}
	c := &clone{tmpl: tmpl, st: newRenderState(t.limits)}
	tmpl.Funcs(allFuncs(c.st))
	c.w = limitWriter{buf: &c.buf, limit: t.limits.Output}
	return c
}

// Name returns the name the template was parsed with.
func (t *Template) Name() string { return t.name }

// Render is RenderContext without a context: it stops only at the
// template's limits.
func (t *Template) Render(data any) ([]byte, error) {
	return t.RenderContext(context.Background(), data)
}

// RenderContext executes the template over data (usually what DecodeJSON
// returned) and returns its output compacted, after checking that it is one
// valid JSON value in UTF-8 within the output limit. Every failure is a
// *RenderError; a panic inside the template machinery is recovered into one.
//
// A render stops with a *RenderError when it runs past the time limit, when
// ctx is done (the error then wraps ctx.Err()), or when its functions build
// too much (see Limits): a template cannot loop or grow without bound.
func (t *Template) RenderContext(ctx context.Context, data any) (out []byte, err error) {
	if err := ctx.Err(); err != nil {
		le := stoppedError(err)
		return nil, &RenderError{Template: t.name, Reason: le.reason, err: err}
	}
	c := t.clones.Get().(*clone)
	c.st.start(ctx)
	c.buf.Reset()
	defer func() {
		c.st.end()
		if r := recover(); r != nil {
			out, err = nil, &RenderError{Template: t.name, Reason: fmt.Sprintf("render panicked: %v", r)}
			return // the clone is dropped
		}
		if c.buf.Cap() > maxPooled {
			c.buf = bytes.Buffer{}
		}
		t.clones.Put(c)
	}()
	if err := c.tmpl.Execute(&c.w, data); err != nil {
		return nil, t.execError(err)
	}
	return compact(t.name, c.buf.Bytes())
}

// Check renders the template over sample (for a response_template, the
// response_data decoded with DecodeJSON and placed where the live data will
// be) and reports why the output would not be usable. The error is the
// *RenderError, whose text reads `template "erp.tmpl" line 3: <what>`; nil
// means the template renders valid JSON for that sample.
func (t *Template) Check(sample any) error {
	if _, err := t.Render(sample); err != nil {
		return err
	}
	return nil
}

// RenderError is why a render failed. For the relay it is a permanent
// failure of that message.
type RenderError struct {
	// Template is the name the template was parsed with.
	Template string
	// Line is the template line where execution failed, 0 when the failure
	// is not tied to a line (the output is not valid JSON, or too large).
	Line int
	// Reason says what was wrong, e.g.
	// `at <.data.incident.code>: map has no entry for key "incident"`.
	Reason string

	err error // ctx.Err() when the render's context ended
}

// Error returns `template "<name>" line <n>: <reason>`, without the line
// part when Line is 0.
func (e *RenderError) Error() string { return formatError(e.Template, e.Line, e.Reason) }

// Unwrap returns the context's error when the render stopped because its
// context ended (context.Canceled or context.DeadlineExceeded): that is no
// fault of the template or the message. Otherwise nil.
func (e *RenderError) Unwrap() error { return e.err }

// ParseError is why Parse refused a template.
type ParseError struct {
	// Template is the name passed to Parse.
	Template string
	// Line is the template line of the error, 0 when unknown.
	Line int
	// Reason says what was wrong, e.g. `function "uper" not defined`.
	Reason string
}

// Error returns `template "<name>" line <n>: <reason>`, without the line
// part when Line is 0.
func (e *ParseError) Error() string { return formatError(e.Template, e.Line, e.Reason) }

func formatError(name string, line int, reason string) string {
	if line > 0 {
		return fmt.Sprintf("template %q line %d: %s", name, line, reason)
	}
	return fmt.Sprintf("template %q: %s", name, reason)
}

// DecodeJSON decodes one JSON value into map[string]any, []any, string,
// json.Number, bool or nil. Numbers stay json.Number, so that integers
// beyond 2^53 reach templates, json and Select unchanged. Anything but
// whitespace after the value is an error.
func DecodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the JSON value at offset %d", dec.InputOffset())
	}
	return v, nil
}

// outputTooLarge stops a render that writes more than its output limit.
type outputTooLarge struct{ limit int }

func (e *outputTooLarge) Error() string {
	return fmt.Sprintf("output is larger than %d bytes", e.limit)
}

type limitWriter struct {
	buf   *bytes.Buffer
	limit int
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.limit {
		return 0, &outputTooLarge{w.limit}
	}
	return w.buf.Write(p)
}

// maxPooled is the largest buffer kept for reuse.
const maxPooled = 64 << 10

// maxReason is the longest Reason kept from text/template, whose messages
// can quote a value.
const maxReason = 1 << 10

// execError turns an error from Execute into a *RenderError.
func (t *Template) execError(err error) *RenderError {
	var tl *outputTooLarge
	if errors.As(err, &tl) {
		return &RenderError{Template: t.name, Reason: tl.Error()}
	}
	line, reason := splitLocation(err.Error(), t.name)
	var ee *emitError
	if errors.As(err, &ee) {
		return &RenderError{Template: t.name, Line: line, Reason: ee.Error()}
	}
	var le *limitError
	if errors.As(err, &le) {
		return &RenderError{Template: t.name, Line: line, Reason: le.reason, err: le.ctxErr}
	}
	// Drop `executing "name" `: the template is already named.
	if rest, ok := strings.CutPrefix(reason, "executing "); ok {
		if q, qerr := strconv.QuotedPrefix(rest); qerr == nil {
			reason = strings.TrimPrefix(rest[len(q):], " ")
		}
	}
	if len(reason) > maxReason {
		cut := maxReason
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut] + "…"
	}
	return &RenderError{Template: t.name, Line: line, Reason: reason}
}

// splitLocation takes text/template's `template: name:line[:col]: reason`
// apart. A message of another shape is returned whole, with line 0.
func splitLocation(msg, name string) (int, string) {
	s, ok := strings.CutPrefix(msg, "template: ")
	if !ok {
		return 0, msg
	}
	if s, ok = strings.CutPrefix(s, name+":"); !ok {
		return 0, s
	}
	n := digits(s)
	if n == 0 {
		return 0, strings.TrimPrefix(s, " ")
	}
	line, err := strconv.Atoi(s[:n])
	if err != nil {
		return 0, s
	}
	s = s[n:]
	if strings.HasPrefix(s, ":") { // column
		if c := digits(s[1:]); c > 0 {
			s = s[1+c:]
		}
	}
	s = strings.TrimPrefix(s, ":")
	return line, strings.TrimPrefix(s, " ")
}

func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// compact validates raw as one JSON value in UTF-8 and returns it compacted.
func compact(name string, raw []byte) ([]byte, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, &RenderError{Template: name, Reason: "output is empty, not JSON"}
	}
	out := bytes.NewBuffer(make([]byte, 0, len(raw)))
	if err := json.Compact(out, raw); err != nil {
		// Compact does not count bytes; Unmarshal's validation does.
		off := len(raw)
		var se *json.SyntaxError
		if verr := json.Unmarshal(raw, new(json.RawMessage)); errors.As(verr, &se) {
			err, off = se, int(se.Offset)
			if strings.HasPrefix(se.Error(), "invalid character") {
				off-- // Offset counts the bad byte; point at it
			}
		}
		return nil, &RenderError{Template: name, Reason: fmt.Sprintf(
			"output is not valid JSON: %v (offset %d, near %s)", err, off, excerpt(raw, off))}
	}
	if !utf8.Valid(out.Bytes()) {
		off := validUTF8Prefix(raw)
		return nil, &RenderError{Template: name, Reason: fmt.Sprintf(
			"output is not valid UTF-8 (offset %d, near %s)", off, excerpt(raw, off))}
	}
	return out.Bytes(), nil
}

// excerpt quotes up to 32 bytes before off and 16 from off.
func excerpt(b []byte, off int) string {
	off = min(max(off, 0), len(b))
	start, end := max(off-32, 0), min(off+16, len(b))
	s := strconv.Quote(string(b[start:end]))
	if start > 0 {
		s = "…" + s
	}
	if end < len(b) {
		s += "…"
	}
	return s
}

func validUTF8Prefix(b []byte) int {
	n := 0
	for n < len(b) {
		r, size := utf8.DecodeRune(b[n:])
		if r == utf8.RuneError && size == 1 {
			return n
		}
		n += size
	}
	return n
}
