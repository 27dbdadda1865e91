package transform

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"text/template"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits bound one render of a template.
type Limits struct {
	// Time is the longest a render may run. A render that takes longer
	// stops with a *RenderError. 0 means DefaultLimits.Time.
	Time time.Duration
	// Output is the largest output, in bytes, and the largest text or JSON
	// one function call may build; the values the functions build in one
	// render may add up to 4 times Output. 0 means DefaultLimits.Output.
	Output int
}

// DefaultLimits are the limits Parse uses, and those that ParseLimited
// uses for a zero field.
var DefaultLimits = Limits{Time: time.Second, Output: MaxOutput}

// budgetFactor is how many times the output limit the functions may build
// in one render, garbage included.
const budgetFactor = 4

// checkEvery is how many ticks pass between two looks at the clock.
const checkEvery = 64

func (l Limits) withDefaults() Limits {
	if l.Time <= 0 {
		l.Time = DefaultLimits.Time
	}
	if l.Output <= 0 {
		l.Output = DefaultLimits.Output
	}
	return l
}

// renderState is what the bounded functions of one pooled clone of a
// template share during one render (see Template.RenderContext). A nil
// *renderState is the unbound set that Parse and Funcs use: MaxOutput per
// call, no budget, no clock.
type renderState struct {
	limits   Limits
	budget   int // limits.Output * budgetFactor
	deadline time.Time
	ctx      context.Context
	done     <-chan struct{}
	ticks    uint
	built    int // bytes the functions built so far
}

func newRenderState(l Limits) *renderState {
	return &renderState{limits: l, budget: l.Output * budgetFactor}
}

func (s *renderState) start(ctx context.Context) {
	s.ctx, s.done = ctx, ctx.Done()
	s.deadline = time.Now().Add(s.limits.Time)
	s.ticks, s.built = 0, 0
}

// end drops the references of the finished render.
func (s *renderState) end() { s.ctx, s.done = nil, nil }

// limitError stops a render that ran out of time or whose context ended.
// Render reports its reason as it is, without the function-call noise.
type limitError struct {
	reason string
	ctxErr error // the context's error, or nil for the time limit
}

func (e *limitError) Error() string { return e.reason }

func stoppedError(err error) *limitError {
	return &limitError{reason: fmt.Sprintf("rendering stopped: %v", err), ctxErr: err}
}

// tick is called at the start of every range body and every {{define}}d
// template (see rewrite.go): it stops a render whose context ended or that
// ran past its time limit. It looks at the clock every checkEvery ticks.
//
// It runs once per range iteration, so it is made cheap to call through
// reflection: it returns a zero-size value, which reflect does not
// allocate, and reports a limit by panicking with the *limitError, which
// text/template turns into the call's error.
func (s *renderState) tick() struct{} {
	if s == nil {
		return struct{}{}
	}
	s.ticks++
	if s.done != nil {
		select {
		case <-s.done:
			panic(stoppedError(s.ctx.Err()))
		default:
		}
	}
	if s.ticks%checkEvery == 0 && time.Now().After(s.deadline) {
		panic(s.timeUp())
	}
	return struct{}{}
}

func (s *renderState) timeUp() error {
	return &limitError{reason: fmt.Sprintf(
		"rendering took longer than %v; stopped (a range that loops too long, or too many {{template}} calls?)", s.limits.Time)}
}

// check stops a render whose context ended or whose time is up.
func (s *renderState) check() error {
	if s.done != nil {
		select {
		case <-s.done:
			return stoppedError(s.ctx.Err())
		default:
		}
	}
	if time.Now().After(s.deadline) {
		return s.timeUp()
	}
	return nil
}

// output is the largest text or JSON one function call may build.
func (s *renderState) output() int {
	if s == nil {
		return MaxOutput
	}
	return s.limits.Output
}

// charge counts n bytes built by a function against the render's budget.
// A large n is also a moment to look at the clock.
func (s *renderState) charge(n int) error {
	if s == nil {
		return nil
	}
	s.built += n
	if s.built > s.budget {
		return fmt.Errorf("the values built while rendering passed %d bytes (%d times the output limit); stopped (a range that accumulates values?)",
			s.budget, budgetFactor)
	}
	if n >= 4<<10 {
		return s.check()
	}
	return nil
}

// tooLargeResult is the error of a function whose result would pass the
// output limit.
func tooLargeResult(limit int) error {
	return fmt.Errorf("the result would be larger than %d bytes, the output limit", limit)
}

// Bounded versions of the functions that build values. Each refuses a
// result larger than the output limit and charges what it built.

func (s *renderState) json(v any) (string, error) {
	out, err := encodeJSON(v, s.output())
	if err != nil {
		return "", err
	}
	return out, s.charge(len(out))
}

func (s *renderState) upper(v any) (string, error) {
	t, err := text(v)
	if err != nil {
		return "", err
	}
	t = strings.ToUpper(t)
	return t, s.charge(len(t))
}

func (s *renderState) lower(v any) (string, error) {
	t, err := text(v)
	if err != nil {
		return "", err
	}
	t = strings.ToLower(t)
	return t, s.charge(len(t))
}

func (s *renderState) date(layout, zone string, v any) (string, error) {
	t, err := dateFunc(layout, zone, v)
	if err != nil {
		return "", err
	}
	return t, s.charge(len(t))
}

func (s *renderState) list(v ...any) ([]any, error) {
	if v == nil {
		v = []any{}
	}
	return v, s.charge(24 + 16*len(v))
}

func (s *renderState) dict(kv ...any) (map[string]any, error) {
	m, err := dictFunc(kv...)
	if err != nil {
		return nil, err
	}
	return m, s.charge(48 + 48*len(m))
}

// numberCost is what a Number is charged: its digits are bounded.
const numberCost = 64

func (s *renderState) number(n Number, err error) (Number, error) {
	if err != nil {
		return Number{}, err
	}
	return n, s.charge(numberCost)
}

func (s *renderState) add(a, b any, rest ...any) (Number, error) {
	return s.number(addFunc(a, b, rest...))
}
func (s *renderState) sub(a, b any) (Number, error) { return s.number(subFunc(a, b)) }
func (s *renderState) mul(a, b any, rest ...any) (Number, error) {
	return s.number(mulFunc(a, b, rest...))
}
func (s *renderState) div(a, b any) (Number, error)        { return s.number(divFunc(a, b)) }
func (s *renderState) round(x, places any) (Number, error) { return s.number(roundFunc(x, places)) }
func (s *renderState) min(a any, rest ...any) (Number, error) {
	return s.number(minFunc(a, rest...))
}
func (s *renderState) max(a any, rest ...any) (Number, error) {
	return s.number(maxFunc(a, rest...))
}

// print, printf and println replace text/template's builtins (fmt.Sprint
// and friends): they measure what they would build before building it.
// The measure is a bounded walk, so that a list that nests itself 60 times
// is refused at once instead of printed.

func (s *renderState) print(args ...any) (string, error) {
	return s.sprint(args, false)
}

func (s *renderState) println(args ...any) (string, error) {
	return s.sprint(args, true)
}

func (s *renderState) sprint(args []any, ln bool) (string, error) {
	limit := s.output()
	if err := checkPrintSize(args, limit); err != nil {
		return "", err
	}
	var out string
	if ln {
		out = fmt.Sprintln(args...)
	} else {
		out = fmt.Sprint(args...)
	}
	if len(out) > limit {
		return "", tooLargeResult(limit)
	}
	return out, s.charge(len(out))
}

// checkPrintSize refuses args whose text with %v could pass limit.
func checkPrintSize(args []any, limit int) error {
	z := sizer{limit: limit - len(args) - 1, mul: 1, intLen: 20, floatLen: 24}
	for _, a := range args {
		if !z.walk(a, 0) {
			return z.err(limit)
		}
	}
	return nil
}

func (s *renderState) printf(format string, args ...any) (string, error) {
	limit := s.output()
	if n, deep := printfBound(format, args, limit); deep {
		return "", errTooDeep
	} else if n > limit {
		return "", tooLargeResult(limit)
	}
	out := fmt.Sprintf(format, args...)
	if len(out) > limit {
		return "", tooLargeResult(limit)
	}
	return out, s.charge(len(out))
}

// html, js and urlquery replace text/template's builtins, which escape the
// text of their arguments and so can make it up to 6 times longer.

func (s *renderState) html(args ...any) (string, error) {
	return s.escape(args, htmlLen, template.HTMLEscapeString)
}

func (s *renderState) js(args ...any) (string, error) {
	return s.escape(args, jsLen, template.JSEscapeString)
}

func (s *renderState) urlquery(args ...any) (string, error) {
	return s.escape(args, urlqueryLen, url.QueryEscape)
}

func (s *renderState) escape(args []any, size func(string) int, esc func(string) string) (string, error) {
	limit := s.output()
	text, err := evalArgs(args, limit)
	if err != nil {
		return "", err
	}
	if size(text) > limit {
		return "", tooLargeResult(limit)
	}
	out := esc(text)
	if len(out) > limit {
		return "", tooLargeResult(limit)
	}
	return out, s.charge(len(out))
}

// evalArgs is text/template's: the one string argument as it is, else
// fmt.Sprint of the arguments made printable; bounded here.
func evalArgs(args []any, limit int) (string, error) {
	if len(args) == 1 {
		if s, ok := args[0].(string); ok {
			return s, nil
		}
	}
	for i, arg := range args {
		if a, ok := printableValue(reflect.ValueOf(arg)); ok {
			args[i] = a
		}
	}
	if err := checkPrintSize(args, limit); err != nil {
		return "", err
	}
	return fmt.Sprint(args...), nil
}

var (
	errorType       = reflect.TypeFor[error]()
	fmtStringerType = reflect.TypeFor[fmt.Stringer]()
)

// printableValue is text/template's.
func printableValue(v reflect.Value) (any, bool) {
	if v.Kind() == reflect.Pointer {
		for ; v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface; v = v.Elem() {
			if v.IsNil() {
				break
			}
		}
	}
	if !v.IsValid() {
		return "<no value>", true
	}
	if !v.Type().Implements(errorType) && !v.Type().Implements(fmtStringerType) {
		if v.CanAddr() && (reflect.PointerTo(v.Type()).Implements(errorType) || reflect.PointerTo(v.Type()).Implements(fmtStringerType)) {
			v = v.Addr()
		} else {
			switch v.Kind() {
			case reflect.Chan, reflect.Func:
				return nil, false
			}
		}
	}
	return v.Interface(), true
}

// htmlLen is len(template.HTMLEscapeString(s)).
func htmlLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 0:
			n += 2 // \uFFFD
		case '"', '\'', '&':
			n += 4 // &#34; &#39; &amp;
		case '<', '>':
			n += 3
		}
	}
	return n
}

// jsLen is an upper bound of len(template.JSEscapeString(s)).
func jsLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\\' || c == '\'' || c == '"':
				n += 2
			case c == '<' || c == '>' || c == '&' || c == '=' || c < ' ':
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if unicode.IsPrint(r) {
			n += size
		} else {
			n += 10
		}
		i += size
	}
	return n
}

// urlqueryLen is an upper bound of len(url.QueryEscape(s)).
func urlqueryLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' || c == ' ' {
			n++
		} else {
			n += 3
		}
	}
	return n
}

// sizer measures an upper bound of the text fmt makes of values, and stops
// as soon as it passes limit. Each value counts mul bytes per byte of its
// %v text plus extra.
type sizer struct {
	limit    int
	n        int
	mul      int
	extra    int
	intLen   int
	floatLen int
	tooDeep  bool
}

func (z *sizer) add(text int) bool {
	z.n += z.mul*text + z.extra
	return z.n <= z.limit
}

func (z *sizer) err(limit int) error {
	if z.tooDeep {
		return errTooDeep
	}
	return tooLargeResult(limit)
}

func (z *sizer) walk(v any, depth int) bool {
	switch v := v.(type) {
	case nil:
		return z.add(10) // <nil>, or text/template's <no value>
	case string:
		return z.add(len(v))
	case json.Number:
		return z.add(len(v))
	case bool:
		return z.add(5)
	case Number:
		// A verb other than v, s, x, X and q prints the struct: two
		// fields (a pointer and an exponent), each padded to the width.
		return z.add(numberTextLen(v)) && z.add(0) && z.add(0) && z.add(0)
	case int, int64:
		return z.add(z.intLen)
	case float64:
		return z.add(z.floatLen)
	case time.Time:
		return z.add(100) && z.add(20) && z.add(z.intLen) && z.add(z.intLen) && z.add(20)
	case map[string]any:
		if depth >= maxDepth {
			z.tooDeep = true
			return false
		}
		if !z.add(5) {
			return false
		}
		for k, e := range v {
			if !z.add(len(k)+2) || !z.walk(e, depth+1) {
				return false
			}
		}
		return true
	case []any:
		if depth >= maxDepth {
			z.tooDeep = true
			return false
		}
		if !z.add(2) {
			return false
		}
		for _, e := range v {
			if !z.add(1) || !z.walk(e, depth+1) {
				return false
			}
		}
		return true
	}
	return z.walkValue(reflect.ValueOf(v), depth)
}

// walkValue measures other types, which come from the caller's data.
func (z *sizer) walkValue(v reflect.Value, depth int) bool {
	if depth >= maxDepth {
		z.tooDeep = true
		return false
	}
	if !v.IsValid() {
		return z.add(10)
	}
	// fmt prints an error or a Stringer with its method for some verbs and
	// as the value for the others: count both.
	if v.CanInterface() && (v.Type().Implements(errorType) || v.Type().Implements(fmtStringerType)) {
		if !z.add(methodTextLen(v.Interface())) {
			return false
		}
	}
	switch v.Kind() {
	case reflect.String:
		return z.add(v.Len())
	case reflect.Bool:
		return z.add(5)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return z.add(z.intLen)
	case reflect.Float32, reflect.Float64:
		return z.add(z.floatLen)
	case reflect.Complex64, reflect.Complex128:
		return z.add(2*z.floatLen + 3)
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return z.add(10)
		}
		return z.add(20) && z.walkValue(v.Elem(), depth+1)
	case reflect.Slice, reflect.Array:
		if !z.add(2) {
			return false
		}
		for i := range v.Len() {
			if !z.add(1) || !z.walkValue(v.Index(i), depth+1) {
				return false
			}
		}
		return true
	case reflect.Map:
		if !z.add(5) {
			return false
		}
		for it := v.MapRange(); it.Next(); {
			if !z.add(2) || !z.walkValue(it.Key(), depth+1) || !z.walkValue(it.Value(), depth+1) {
				return false
			}
		}
		return true
	case reflect.Struct:
		if !z.add(2) {
			return false
		}
		for i := range v.NumField() {
			if !z.add(len(v.Type().Field(i).Name)+2) || !z.walkValue(v.Field(i), depth+1) {
				return false
			}
		}
		return true
	}
	return z.add(20) // chan, func, unsafe pointer: an address
}

// methodTextLen is the length of what fmt prints for an error or a
// Stringer; a method that panics counts as fmt's %!v(PANIC=...) would,
// roughly.
func methodTextLen(v any) (n int) {
	defer func() {
		if recover() != nil {
			n = 256
		}
	}()
	switch v := v.(type) {
	case error:
		return len(v.Error())
	case fmt.Stringer:
		return len(v.String())
	}
	return 0
}

// printfBound returns an upper bound of len(fmt.Sprintf(format, args...)),
// or a number above limit as soon as it passes it. It follows fmt's reading
// of the format (flags, argument indexes, * widths), because fmt applies a
// width or a precision (up to 10^7 bytes each) to every element of an
// array, and a format can use one argument many times.
func printfBound(format string, a []any, limit int) (n int, tooDeep bool) {
	end := len(format)
	argNum := 0
	afterIndex := false
	reordered := false
	cost := func(arg any, verb rune, sharp bool, wid, prec int) bool {
		z := sizer{limit: limit - n, mul: 1, extra: 64 + wid + prec, intLen: 70, floatLen: 340}
		if sharp || verb == 'q' || verb == 'x' || verb == 'X' {
			z.mul, z.extra = 6, z.extra+64
		}
		ok := z.walk(arg, 0)
		n += z.n
		tooDeep = z.tooDeep
		return ok
	}
	for i := 0; i < end; {
		goodArgNum := true
		lasti := i
		for i < end && format[i] != '%' {
			i++
		}
		n += i - lasti
		if i >= end {
			break
		}
		i++
		sharp := false
	flags:
		for ; i < end; i++ {
			switch format[i] {
			case '#':
				sharp = true
			case '0', '+', '-', ' ':
			default:
				break flags
			}
		}
		argNum, i, afterIndex = argNumber(argNum, format, i, len(a), &reordered, &goodArgNum)
		wid, prec := 0, 0
		if i < end && format[i] == '*' {
			i++
			var ok bool
			wid, ok, argNum = intFromArg(a, argNum)
			if !ok {
				n += len("%!(BADWIDTH)")
			}
			wid = max(wid, -wid)
			afterIndex = false
		} else {
			var isNum bool
			wid, isNum, i = parsenum(format, i, end)
			if afterIndex && isNum {
				goodArgNum = false
			}
		}
		if i+1 < end && format[i] == '.' {
			i++
			if afterIndex {
				goodArgNum = false
			}
			argNum, i, afterIndex = argNumber(argNum, format, i, len(a), &reordered, &goodArgNum)
			if i < end && format[i] == '*' {
				i++
				var ok bool
				prec, ok, argNum = intFromArg(a, argNum)
				if prec < 0 || !ok {
					prec = 0
					n += len("%!(BADPREC)")
				}
				afterIndex = false
			} else {
				prec, _, i = parsenum(format, i, end)
			}
		}
		if !afterIndex {
			argNum, i, afterIndex = argNumber(argNum, format, i, len(a), &reordered, &goodArgNum)
		}
		if i >= end {
			n += len("%!(NOVERB)")
			break
		}
		verb, size := utf8.DecodeRuneInString(format[i:])
		i += size
		switch {
		case verb == '%':
			n++
		case !goodArgNum || argNum >= len(a):
			n += 2 + utf8.UTFMax + len("(BADINDEX)") // an invalid verb is written as U+FFFD
		default:
			if !cost(a[argNum], verb, sharp, wid, prec) {
				return n, tooDeep
			}
			argNum++
		}
		if n > limit {
			return n, false
		}
	}
	if !reordered && argNum < len(a) {
		n += len("%!(EXTRA )")
		for _, arg := range a[argNum:] {
			n += 2 + 1
			if arg != nil {
				n += len(reflect.TypeOf(arg).String())
			}
			if !cost(arg, 'v', false, 0, 0) {
				return n, tooDeep
			}
		}
	}
	return n, false
}

// tooLargeWidth is fmt's.
func tooLargeWidth(x int) bool {
	const max int = 1e6
	return x > max || x < -max
}

// parsenum is fmt's.
func parsenum(s string, start, end int) (num int, isnum bool, newi int) {
	if start >= end {
		return 0, false, end
	}
	for newi = start; newi < end && '0' <= s[newi] && s[newi] <= '9'; newi++ {
		if tooLargeWidth(num) {
			return 0, false, end
		}
		num = num*10 + int(s[newi]-'0')
		isnum = true
	}
	return
}

// intFromArg is fmt's.
func intFromArg(a []any, argNum int) (num int, isInt bool, newArgNum int) {
	newArgNum = argNum
	if argNum < len(a) {
		num, isInt = a[argNum].(int)
		if !isInt {
			switch v := reflect.ValueOf(a[argNum]); v.Kind() {
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				n := v.Int()
				if int64(int(n)) == n {
					num = int(n)
					isInt = true
				}
			case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
				n := v.Uint()
				if int64(n) >= 0 && uint64(int(n)) == n {
					num = int(n)
					isInt = true
				}
			}
		}
		newArgNum = argNum + 1
		if tooLargeWidth(num) {
			num = 0
			isInt = false
		}
	}
	return
}

// argNumber is fmt's (with its parseArgNumber).
func argNumber(argNum int, format string, i int, numArgs int, reordered, goodArgNum *bool) (newArgNum, newi int, found bool) {
	if len(format) <= i || format[i] != '[' {
		return argNum, i, false
	}
	*reordered = true
	index, wid, ok := parseArgNumber(format[i:])
	if ok && 0 <= index && index < numArgs {
		return index, i + wid, true
	}
	*goodArgNum = false
	return argNum, i + wid, ok
}

func parseArgNumber(format string) (index int, wid int, ok bool) {
	if len(format) < 3 {
		return 0, 1, false
	}
	for i := 1; i < len(format); i++ {
		if format[i] == ']' {
			width, ok, newi := parsenum(format, 1, i)
			if !ok || newi != i {
				return 0, i + 1, false
			}
			return width - 1, i + 1, true
		}
	}
	return 0, 1, false
}

// numberTextLen is len(n.String()), computed without building it.
func numberTextLen(n Number) int {
	digits := n.d.NumDigits()
	l := digits
	if n.d.Sign() < 0 {
		l++
	}
	if scale := int(-n.d.Exponent()); scale > 0 {
		l = max(digits, scale+1) + 1 // "0.00x": a leading zero and the point
		if n.d.Sign() < 0 {
			l++
		}
	} else if e := int(n.d.Exponent()); e > 0 && !n.d.IsZero() {
		l += e
	}
	return l
}
