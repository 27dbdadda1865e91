package ordertest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// Stats tallies the attempts CheckOrder looked at.
type Stats struct {
	Attempts, Delivered, Duplicates, Hung, Failed, Cut, Abandoned int
	First, Last                                                   time.Time
}

func (s Stats) String() string {
	return fmt.Sprintf("%d attempts: %d answered 2xx (%d of them duplicates), %d answered an error, %d hung until the client gave up, %d cut, %d abandoned",
		s.Attempts, s.Delivered, s.Duplicates, s.Failed, s.Hung, s.Cut, s.Abandoned)
}

// settles reports whether an answer settles the event for the relay: a
// 2xx, or one that dead-letters it at once (a 4xx other than 408, 409,
// 410, 425 and 429).
func settles(answer int) bool {
	if answer >= 200 && answer < 300 {
		return true
	}
	switch answer {
	case 408, 409, 410, 425, 429:
		return false
	}
	return answer >= 400 && answer < 500
}

// CheckOrder checks every attempt against the ordering contract, key by
// key. acked holds, per key, how many of its statuses (0..n-1) were
// answered 201; a key not in acked is an error. It checks:
//
//   - in order, one at a time: an attempt of status k+1 never began before
//     status k was answered (2xx, or an answer that dead-letters it);
//   - the statuses answered 2xx, adjacent repeats (duplicates) collapsed,
//     are 0, 1, 2, ... in that order: a status delivered again after a
//     later one, or one skipped, is an error;
//   - no loss: every acknowledged status was answered 2xx;
//   - no overlap: two attempts of a key both answered (not hung, not
//     abandoned by the client) never overlapped at the receiver.
//
// Duplicates are counted and logged, not errors.
func CheckOrder(t *testing.T, atts []Attempt, acked map[string]int) Stats {
	t.Helper()
	var st Stats
	byKey := map[string][]Attempt{}
	var malformed []string
	for _, a := range atts {
		st.Attempts++
		if st.First.IsZero() || a.Start.Before(st.First) {
			st.First = a.Start
		}
		if a.End.After(st.Last) && a.OK() {
			st.Last = a.End
		}
		switch {
		case a.Cut:
			st.Cut++
			continue
		case a.Malformed:
			malformed = append(malformed, fmt.Sprintf("%.200s", a.Body))
			continue
		}
		switch {
		case a.Answer == 0:
			st.Hung++
		case a.OK():
			st.Delivered++
		default:
			st.Failed++
		}
		if a.Abandoned {
			st.Abandoned++
		}
		byKey[a.Key] = append(byKey[a.Key], a)
	}
	if len(malformed) > 0 {
		t.Errorf("%d attempts could not be decoded, first: %s", len(malformed), malformed[0])
	}

	const shown = 8
	var early, reordered, lost, overlaps, unknown, dups []string
	for key, as := range byKey {
		n, known := acked[key]
		if !known {
			unknown = append(unknown, key)
			continue
		}
		slices.SortFunc(as, func(a, b Attempt) int { return a.Start.Compare(b.Start) })
		early = append(early, EarlyAttempts(key, as)...)
		// The statuses answered 2xx, in the order they were received.
		var seq []int
		var prev Attempt
		for _, a := range as {
			if !a.OK() {
				continue
			}
			if len(seq) > 0 && seq[len(seq)-1] == a.Status {
				st.Duplicates++
				dups = append(dups, fmt.Sprintf("key %s: status %d answered 2xx at %s (node %q, config %q) and again at %s (node %q, config %q)",
					key, a.Status, prev.End.Format("15:04:05.000000"), prev.Node, prev.Config, a.Start.Format("15:04:05.000000"), a.Node, a.Config))
				continue
			}
			seq = append(seq, a.Status)
			prev = a
		}
		inOrder := true
		for i, s := range seq {
			if s != i {
				inOrder = false
			}
		}
		if !inOrder {
			reordered = append(reordered, fmt.Sprintf("key %s: statuses delivered (2xx) in the order %v", key, seq))
		} else if len(seq) < n {
			lost = append(lost, fmt.Sprintf("key %s: statuses 0..%d answered 201, only 0..%d delivered", key, n-1, len(seq)-1))
		}
		overlaps = append(overlaps, Overlapping(key, as)...)
	}
	// Keys never attempted at all.
	for key, n := range acked {
		if n > 0 && len(byKey[key]) == 0 {
			lost = append(lost, fmt.Sprintf("key %s: statuses 0..%d answered 201, none delivered", key, n-1))
		}
	}
	report := func(what string, list []string) {
		if len(list) == 0 {
			return
		}
		slices.Sort(list)
		t.Errorf("%s: %d, e.g.:\n\t%s", what, len(list), strings.Join(list[:min(shown, len(list))], "\n\t"))
	}
	report("attempts that began before the previous status of their key was answered", early)
	report("keys whose statuses were delivered out of order (or skipped)", reordered)
	report("keys with statuses answered 201 and never delivered (lost)", lost)
	report("attempts of one key that overlapped at the receiver", overlaps)
	report("attempts of keys never sent", unknown)
	if st.Duplicates > 0 {
		slices.Sort(dups)
		t.Logf("%d duplicate deliveries (a status answered 2xx again right after itself, allowed), e.g.:\n\t%s",
			st.Duplicates, strings.Join(dups[:min(shown, len(dups))], "\n\t"))
	}
	return st
}

// EarlyAttempts checks that the attempts of one key (sorted by start) come
// in order, one at a time: an attempt of status k+1 never began before
// status k was answered (2xx, or an answer that dead-letters it). It
// returns the attempts that began too early.
func EarlyAttempts(key string, as []Attempt) []string {
	answered := map[int]time.Time{} // when each status was first answered
	for _, a := range as {
		if settles(a.Answer) && !a.Abandoned {
			if at, ok := answered[a.Status]; !ok || a.End.Before(at) {
				answered[a.Status] = a.End
			}
		}
	}
	var out []string
	for _, a := range as {
		if a.Status == 0 {
			continue
		}
		prev, ok := answered[a.Status-1]
		if !ok || !prev.Before(a.Start) {
			when := "it never was"
			if ok {
				when = fmt.Sprintf("it was at %s, %v later", prev.Format("15:04:05.000000"), prev.Sub(a.Start))
			}
			out = append(out, fmt.Sprintf("key %s: an attempt of status %d (answered %d, webhook-id %s, node %q) began at %s, before status %d was answered (%s)",
				key, a.Status, a.Answer, a.EventID, a.Node, a.Start.Format("15:04:05.000000"), a.Status-1, when))
		}
	}
	return out
}

// Overlapping checks that no two attempts of one key (sorted by start)
// that were both answered (not hung, not abandoned by the client)
// overlapped at the receiver, and returns those that did.
func Overlapping(key string, as []Attempt) []string {
	var out []string
	var last Attempt
	for _, a := range as {
		if a.Answer == 0 || a.Abandoned {
			continue
		}
		if !last.End.IsZero() && a.Start.Before(last.End) {
			out = append(out, fmt.Sprintf("key %s: status %d (answered %d, %s-%s) overlaps status %d (answered %d, %s-%s)",
				key, a.Status, a.Answer, a.Start.Format("15:04:05.000000"), a.End.Format("15:04:05.000000"),
				last.Status, last.Answer, last.Start.Format("15:04:05.000000"), last.End.Format("15:04:05.000000")))
		}
		if a.End.After(last.End) {
			last = a
		}
	}
	return out
}
