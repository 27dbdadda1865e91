package transform

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// Number is the result of the arithmetic functions (add, sub, mul, div,
// round, min, max): a decimal that keeps its scale, so that "10.10" plus
// "1.20" prints 11.30. It prints as a plain decimal, never with an
// exponent, both as text ({{ add .a .b }}) and through json, where it is a
// JSON number.
//
// A Number has no other methods: templates can call the exported methods of
// a value, and arithmetic on tenants' values must stay bounded.
type Number struct {
	d decimal.Decimal
	// A Number is not comparable with ==: eq would compare pointers. The
	// template functions compare with cmp.
	_ [0]func()
}

// String returns the decimal with exactly its scale of decimals: "11.30",
// "1000", "-0.5". A zero prints without a sign.
func (n Number) String() string {
	if n.d.Exponent() >= 0 {
		return n.d.String() // an integer; String writes no exponent
	}
	return n.d.StringFixed(-n.d.Exponent())
}

// MarshalJSON returns the text of String, unquoted: a JSON number.
func (n Number) MarshalJSON() ([]byte, error) {
	return []byte(n.String()), nil
}

// Bounds of the arithmetic. A tenant's template must not be able to make
// arithmetic slow or large: operands are refused beyond these, and so are
// results.
const (
	maxNumberText   = 256 // bytes of an operand's text
	maxNumberExp    = 256 // |exponent| of an operand
	maxResultDigits = 512 // digits of a result, its integer zeros included
	maxResultScale  = 256 // decimals of a result
	maxRoundPlaces  = 32  // |places| of round
	divPlaces       = 34  // decimals of an inexact quotient
)

var (
	errTooLargeResult = errors.New("result is too large (more than 512 digits)")
	errTooManyPlaces  = errors.New("result is too large (more than 256 decimal places)")
	errDivByZero      = errors.New("division by zero")
	bigTen            = big.NewInt(10)
)

// operand converts the argument at position pos (1-based) to a decimal.
func operand(pos int, v any) (decimal.Decimal, error) {
	switch v := v.(type) {
	case Number:
		return v.d, nil
	case json.Number:
		return parseOperand(pos, string(v))
	case string:
		return parseOperand(pos, v)
	case int:
		return decimal.NewFromInt(int64(v)), nil
	case int64:
		return decimal.NewFromInt(v), nil
	case float64:
		return floatOperand(pos, v, 64)
	case nil:
		return decimal.Decimal{}, fmt.Errorf("argument %d is null, not a number", pos)
	}
	rv := reflect.ValueOf(v)
	switch {
	case rv.CanInt():
		return decimal.NewFromInt(rv.Int()), nil
	case rv.CanUint():
		return decimal.NewFromUint64(rv.Uint()), nil
	case rv.CanFloat():
		return floatOperand(pos, rv.Float(), rv.Type().Bits())
	case rv.Kind() == reflect.String:
		return parseOperand(pos, rv.String())
	}
	return decimal.Decimal{}, fmt.Errorf("argument %d is %s, not a number", pos, describe(v))
}

func floatOperand(pos int, f float64, bits int) (decimal.Decimal, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return decimal.Decimal{}, fmt.Errorf("argument %d is %v, not a number", pos, f)
	}
	var d decimal.Decimal
	if bits == 32 {
		d = decimal.NewFromFloat32(float32(f))
	} else {
		d = decimal.NewFromFloat(f)
	}
	if e := d.Exponent(); e < -maxNumberExp || e > maxNumberExp {
		return decimal.Decimal{}, fmt.Errorf("argument %d is %v, out of range (exponent beyond ±%d)", pos, f, maxNumberExp)
	}
	return normalize(d), nil
}

// parseOperand parses s, which must follow the JSON number grammar, within
// the bounds.
func parseOperand(pos int, s string) (decimal.Decimal, error) {
	if len(s) > maxNumberText {
		return decimal.Decimal{}, fmt.Errorf("argument %d is a string of %d bytes, too long for a number (at most %d)", pos, len(s), maxNumberText)
	}
	p, ok := scanNumber(s)
	if !ok {
		return decimal.Decimal{}, fmt.Errorf("argument %d is %s, not a number", pos, quoteShort(s))
	}
	if p.exp < -maxNumberExp || p.exp > maxNumberExp {
		return decimal.Decimal{}, fmt.Errorf("argument %d is %s, out of range (exponent beyond ±%d)", pos, quoteShort(s), maxNumberExp)
	}
	var coef *big.Int
	if len(p.intPart)+len(p.frac) <= 18 {
		var n int64
		for _, part := range [2]string{p.intPart, p.frac} {
			for i := 0; i < len(part); i++ {
				n = n*10 + int64(part[i]-'0')
			}
		}
		coef = big.NewInt(n)
	} else {
		coef = new(big.Int)
		coef.SetString(p.intPart+p.frac, 10) // digits only: cannot fail
	}
	if p.neg {
		coef.Neg(coef)
	}
	return normalize(decimal.NewFromBigInt(coef, int32(p.exp))), nil
}

// number is a number's text taken apart.
type number struct {
	neg     bool
	intPart string // digits
	frac    string // digits after the point
	exp     int    // of the last digit: value = ±intPart.frac × 10^exp' with exp = exp' - len(frac)
}

// scanNumber checks that s is a JSON number and takes it apart. The
// exponent saturates far beyond the bounds instead of overflowing.
func scanNumber(s string) (number, bool) {
	var p number
	i := 0
	if i < len(s) && s[i] == '-' {
		p.neg = true
		i++
	}
	start := i
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return p, false
	}
	p.intPart = s[start:i]
	if i < len(s) && s[i] == '.' {
		i++
		start = i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return p, false
		}
		p.frac = s[start:i]
	}
	e := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		sign := 1
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			if s[i] == '-' {
				sign = -1
			}
			i++
		}
		start = i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if e < 1<<20 {
				e = e*10 + int(s[i]-'0')
			}
			i++
		}
		if i == start {
			return p, false
		}
		e *= sign
	}
	if i != len(s) {
		return p, false
	}
	p.exp = e - len(p.frac)
	return p, true
}

// validNumber reports whether s is a JSON number.
func validNumber(s string) bool {
	_, ok := scanNumber(s)
	return ok
}

// quoteShort quotes s, cut to 32 bytes.
func quoteShort(s string) string {
	if len(s) <= 32 {
		return strconv.Quote(s)
	}
	cut := 32
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}

// normalize writes a positive exponent into the coefficient, so that every
// Number has an exponent of 0 or less (its scale) and prints as a plain
// decimal. The callers have bounded the exponent.
func normalize(d decimal.Decimal) decimal.Decimal {
	if e := d.Exponent(); e > 0 {
		c := d.Coefficient()
		c.Mul(c, new(big.Int).Exp(bigTen, big.NewInt(int64(e)), nil))
		return decimal.NewFromBigInt(c, 0)
	}
	return d
}

// result checks the bounds of a result and makes it a Number.
func result(d decimal.Decimal) (Number, error) {
	e := d.Exponent()
	if e < -maxResultScale {
		return Number{}, errTooManyPlaces
	}
	digits := d.NumDigits()
	if e > 0 {
		digits += int(e)
	}
	if digits > maxResultDigits {
		return Number{}, errTooLargeResult
	}
	return Number{d: normalize(d)}, nil
}

// fold combines a, b and rest left to right with op, checking the bounds
// of every partial result so that a long chain cannot grow unbounded.
func fold(op func(x, y decimal.Decimal) decimal.Decimal, a, b any, rest []any) (Number, error) {
	x, err := operand(1, a)
	if err != nil {
		return Number{}, err
	}
	for i, v := range append([]any{b}, rest...) {
		y, err := operand(i+2, v)
		if err != nil {
			return Number{}, err
		}
		n, err := result(op(x, y))
		if err != nil {
			return Number{}, err
		}
		x = n.d
	}
	return Number{d: x}, nil
}

// addFunc sums its arguments; the scale is the largest operand scale.
func addFunc(a, b any, rest ...any) (Number, error) {
	return fold(decimal.Decimal.Add, a, b, rest)
}

// subFunc returns a - b; the scale is the larger operand scale.
func subFunc(a, b any) (Number, error) {
	return fold(decimal.Decimal.Sub, a, b, nil)
}

// mulFunc multiplies its arguments; the scale is the sum of the scales.
func mulFunc(a, b any, rest ...any) (Number, error) {
	return fold(decimal.Decimal.Mul, a, b, rest)
}

// divFunc returns a / b: exact when it divides at the ideal scale
// max(0, scale(a) - scale(b)) or within 34 decimals, else rounded half away
// from zero to 34 decimals; trailing zeros beyond the ideal scale are
// dropped.
func divFunc(a, b any) (Number, error) {
	x, err := operand(1, a)
	if err != nil {
		return Number{}, err
	}
	y, err := operand(2, b)
	if err != nil {
		return Number{}, err
	}
	if y.IsZero() {
		return Number{}, errDivByZero
	}
	ideal := max(0, -x.Exponent()+y.Exponent())
	q := x.DivRound(y, max(divPlaces, ideal))
	return result(trimZeros(q, ideal))
}

// trimZeros drops trailing zero decimals of d down to minScale decimals.
func trimZeros(d decimal.Decimal, minScale int32) decimal.Decimal {
	e := d.Exponent()
	if e >= -minScale {
		return d
	}
	c := d.Coefficient()
	if c.Sign() == 0 {
		return decimal.New(0, -minScale)
	}
	var q, r big.Int
	for e < -minScale {
		q.QuoRem(c, bigTen, &r)
		if r.Sign() != 0 {
			break
		}
		c.Set(&q)
		e++
	}
	return decimal.NewFromBigInt(c, e)
}

// roundFunc rounds x half away from zero to places decimals (an integer in
// [-32, 32]); with places ≥ 0 the result has exactly that many decimals.
func roundFunc(x, places any) (Number, error) {
	d, err := operand(1, x)
	if err != nil {
		return Number{}, err
	}
	p, err := roundPlaces(places)
	if err != nil {
		return Number{}, err
	}
	return result(d.Round(p))
}

func roundPlaces(v any) (int32, error) {
	d, err := operand(2, v)
	if err != nil || !d.IsInteger() || d.Abs().Cmp(decimal.NewFromInt(maxRoundPlaces)) > 0 {
		return 0, fmt.Errorf("places is %s, not an integer from %d to %d", show(v), -maxRoundPlaces, maxRoundPlaces)
	}
	return int32(d.IntPart()), nil
}

// show names v for an error message: a string quoted, a number as its
// text, both cut short; anything else by its kind.
func show(v any) string {
	switch v := v.(type) {
	case string:
		return quoteShort(v)
	case json.Number:
		return cutShort(string(v))
	case Number:
		return cutShort(v.String())
	}
	if rv := reflect.ValueOf(v); rv.CanInt() || rv.CanUint() || rv.CanFloat() {
		return cutShort(fmt.Sprint(v))
	}
	return describe(v)
}

func cutShort(s string) string {
	if len(s) <= 40 {
		return s
	}
	return s[:40] + "…"
}

// cmpFunc compares a and b as decimals: -1, 0 or 1.
func cmpFunc(a, b any) (int, error) {
	x, err := operand(1, a)
	if err != nil {
		return 0, err
	}
	y, err := operand(2, b)
	if err != nil {
		return 0, err
	}
	return x.Cmp(y), nil
}

// pick returns the first argument that want(cmp(arg, best)) prefers.
func pick(want int, a any, rest []any) (Number, error) {
	best, err := operand(1, a)
	if err != nil {
		return Number{}, err
	}
	for i, v := range rest {
		d, err := operand(i+2, v)
		if err != nil {
			return Number{}, err
		}
		if d.Cmp(best) == want {
			best = d
		}
	}
	return Number{d: best}, nil
}

// minFunc returns the smallest argument (the first of equal ones).
func minFunc(a any, rest ...any) (Number, error) { return pick(-1, a, rest) }

// maxFunc returns the largest argument (the first of equal ones).
func maxFunc(a any, rest ...any) (Number, error) { return pick(1, a, rest) }
