package registry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// ErrInvalidFilter is wrapped by every error of CompileFilter.
var ErrInvalidFilter = errors.New("invalid filter")

// FilterError is the error of CompileFilter: it wraps ErrInvalidFilter and
// says what is wrong on one line, as CEL reports it (line:column: reason,
// issues separated by "; "), so that the API can show it to the tenant.
type FilterError struct {
	Msg string
}

func (e *FilterError) Error() string { return "invalid filter: " + e.Msg }

// Unwrap returns ErrInvalidFilter.
func (e *FilterError) Unwrap() error { return ErrInvalidFilter }

// The bounds of a filter. A filter runs once per event and webhook, for
// events sent by others, so whatever a tenant writes must stay cheap.
const (
	// filterMaxLen is the longest filter, in bytes.
	filterMaxLen = 1024
	// filterMaxDepth is the deepest nesting the parser accepts.
	filterMaxDepth = 32
	// filterMaxNodes is the most nodes an expression may have, counting
	// those that macros such as all() and exists() expand into.
	filterMaxNodes = 1000
	// filterCostLimit is the most an evaluation may cost, in CEL's cost
	// units (about one per operation, more for strings and lists in
	// proportion to their size): beyond it, Match stops with an error.
	filterCostLimit = 100_000
	// filterInterruptEvery is the number of comprehension iterations
	// between two checks of MatchContext's context.
	filterInterruptEvery = 100
)

// Filter is a compiled filter: a CEL expression over the event a webhook
// would receive, which selects the events delivered to it. It is safe for
// concurrent use.
//
// The expression sees four variables: event, the whole event as a JSON
// object (id, topic, source, received_at, tenant, data); data, the same as
// event.data, any JSON value; and the strings topic and tenant, "" when
// the event has none. JSON numbers are doubles, and compare with integers
// by value ("data.total > 100"). Beside CEL's standard functions and
// macros (has, all, exists, exists_one, map, filter, matches, startsWith,
// contains, size, ...), the strings extension is there (lowerAscii,
// upperAscii, trim, split, replace, indexOf, substring, join, format, ...).
type Filter struct {
	src string
	prg cel.Program
}

// filterEnv is the CEL environment of every filter, built once.
var filterEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("event", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("data", cel.DynType),
		cel.Variable("topic", cel.StringType),
		cel.Variable("tenant", cel.StringType),
		ext.Strings(),
		cel.CrossTypeNumericComparisons(true),
		cel.ParserRecursionLimit(filterMaxDepth),
		cel.ExpressionNodeLimit(filterMaxNodes),
	)
})

// CompileFilter parses and type-checks expr, a CEL expression whose result
// is a bool (see Filter), and returns it ready to run. What is wrong with
// expr is told by a *FilterError; an empty expr is one: a webhook without a
// filter has no Filter. A result of type dyn (data.flag, say) is accepted
// here and checked by Match.
func CompileFilter(expr string) (*Filter, error) {
	if expr == "" {
		return nil, &FilterError{Msg: "empty expression"}
	}
	if len(expr) > filterMaxLen {
		return nil, &FilterError{Msg: fmt.Sprintf("%d bytes, the limit is %d", len(expr), filterMaxLen)}
	}
	env, err := filterEnv()
	if err != nil {
		return nil, fmt.Errorf("filter environment: %w", err)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, &FilterError{Msg: filterIssues(iss)}
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return nil, &FilterError{Msg: fmt.Sprintf("the result is %s, it must be bool", t)}
	}
	prg, err := env.Program(ast,
		cel.CostLimit(filterCostLimit),
		cel.InterruptCheckFrequency(filterInterruptEvery),
		cel.OptimizeRegex(interpreter.MatchesRegexOptimization),
	)
	if err != nil {
		return nil, &FilterError{Msg: filterOneLine(err.Error())}
	}
	return &Filter{src: expr, prg: prg}, nil
}

// filterIssues writes CEL's issues on one line: "line:column: reason" for
// each (the reason alone for those with no place, such as the nesting
// limit), without the source snippet that CEL's own Issues.String draws
// below each.
func filterIssues(iss *cel.Issues) string {
	var b strings.Builder
	for i, e := range iss.Errors() {
		if i > 0 {
			b.WriteString("; ")
		}
		if line := e.Location.Line(); line > 0 {
			fmt.Fprintf(&b, "%d:%d: ", line, e.Location.Column()+1)
		}
		b.WriteString(filterOneLine(e.Message))
	}
	return b.String()
}

// filterOneLine escapes the control characters of a CEL message, which
// may quote the expression (a line break in a string literal, say), so that
// it stays on one line.
func filterOneLine(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// String returns the expression f was compiled from.
func (f *Filter) String() string { return f.src }

// Match runs f over ev, an event decoded from JSON, and reports whether it
// selects the event. An error (a key the event lacks, a result that is not
// a bool, the cost limit reached) comes with false: the event is not
// delivered to the webhook.
func (f *Filter) Match(ev map[string]any) (bool, error) {
	out, _, err := f.prg.Eval(filterVars{ev})
	return filterResult(out, err)
}

// MatchContext is Match that also stops, with an error, once ctx is done.
func (f *Filter) MatchContext(ctx context.Context, ev map[string]any) (bool, error) {
	out, _, err := f.prg.ContextEval(ctx, filterVars{ev})
	return filterResult(out, err)
}

func filterResult(out ref.Val, err error) (bool, error) {
	if err != nil {
		return false, fmt.Errorf("filter: %w", err)
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("filter: the result is %s, not bool", out.Type().TypeName())
	}
	return bool(b), nil
}

// filterVars gives a filter its variables, taken from the event on demand
// (one pointer wide, so passing it as an interface does not allocate).
type filterVars struct {
	ev map[string]any
}

func (v filterVars) ResolveName(name string) (any, bool) {
	switch name {
	case "event":
		return v.ev, true
	case "data":
		d, ok := v.ev["data"]
		return d, ok
	case "topic", "tenant":
		s, _ := v.ev[name].(string)
		return s, true
	}
	return nil, false
}

func (filterVars) Parent() cel.Activation { return nil }
