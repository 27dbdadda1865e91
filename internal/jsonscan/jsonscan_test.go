package jsonscan

import "testing"

func TestSkipString(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{`"" x`, 2},
		{`"ab" x`, 4},
		{`"a\"b" x`, 6},
		{`"a\\" x`, 5},
		{`"a\\\"" x`, 7},
		{`"\u0022" x`, 8},
	} {
		if got := SkipString([]byte(c.in), 0); got != c.want {
			t.Errorf("SkipString(%s) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestSkipWS(t *testing.T) {
	for _, c := range []struct {
		in   string
		at   int
		want int
	}{
		{"", 0, 0}, {"x", 0, 0}, {" \t\r\nx", 0, 4}, {"  ", 0, 2}, {"a  b", 1, 3},
	} {
		if got := SkipWS([]byte(c.in), c.at); got != c.want {
			t.Errorf("SkipWS(%q, %d) = %d, want %d", c.in, c.at, got, c.want)
		}
	}
}

func TestSkipValue(t *testing.T) {
	for _, c := range []struct {
		in   string
		at   int
		want int
	}{
		{`"ab",1`, 0, 4},
		{`{"a":[1,"]}"],"b":{}} x`, 0, 21},
		{`[1,[2,[3]]],`, 0, 11},
		{`12.5e3}`, 0, 6},
		{`true `, 0, 4},
		{`[1,null]`, 3, 7},
		// Not JSON: it ends, inside b and past i.
		{`{"a":"b`, 0, 7},
		{`[[[`, 0, 3},
		{`"abc`, 0, 4},
		{`,x`, 0, 1},
		{``, 0, 0},
		{`x`, 5, 1},
	} {
		if got := SkipValue([]byte(c.in), c.at); got != c.want {
			t.Errorf("SkipValue(%q, %d) = %d, want %d", c.in, c.at, got, c.want)
		}
	}
}
