package event

import (
	"strings"
	"testing"
)

func TestNewID(t *testing.T) {
	a := NewID("aveonline", "guide-1", "4", "2022-12-11T11:04:43-05:00")
	if a != NewID("aveonline", "guide-1", "4", "2022-12-11T11:04:43-05:00") {
		t.Error("the same parts gave different ids")
	}
	if !ValidID(a) || !strings.HasPrefix(a, "evt_") || len(a) != 4+IDLen {
		t.Errorf("id %q does not have the documented shape", a)
	}
	distinct := map[string][]string{}
	for _, parts := range [][]string{
		{"ab", "c"}, {"a", "bc"}, {"abc"}, {"abc", ""}, {""},
		{"aveonline", "guide-1", "4", "2022-12-11T11:04:43-05:00"},
		{"aveonline", "guide-1", "5", "2022-12-11T11:04:43-05:00"},
	} {
		id := NewID(parts...)
		if prev, dup := distinct[id]; dup {
			t.Errorf("%q and %q gave the same id %s", prev, parts, id)
		}
		distinct[id] = parts
	}
}

func TestValidID(t *testing.T) {
	for _, s := range []string{"", "evt_", "evt_abc", "EVT_" + strings.Repeat("a", IDLen),
		"evt_" + strings.Repeat("a", IDLen-1) + "1", "evt_" + strings.Repeat("a", IDLen+1)} {
		if ValidID(s) {
			t.Errorf("ValidID(%q) = true", s)
		}
	}
}
