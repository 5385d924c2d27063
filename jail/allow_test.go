package jail

import (
	"fmt"
	"testing"
	"time"
)

// TestAllowedNotCounted: a run-time allow entry is a never-ban rule like
// ignoreip: its address's attempts are not counted (what it did before is
// forgotten) and raise an alarm instead of a ban, a neighbour is banned as
// before, a manual ban is refused unless forced, and once the entry goes
// counting starts again from zero.
func TestAllowedNotCounted(t *testing.T) {
	e, r := newTestEngine(t, "")
	fail := func(a string, from, n int) {
		for i := range n {
			e.feed(adminFail(a, time.Duration(from+i)*time.Second, "alice@example.com", fmt.Sprintf("%s-%06x", a, from+i)))
		}
	}
	fail("203.0.113.7", 0, 9)
	entry := Allowed{Target: pfx("203.0.113.0/28"), Until: t0.Add(time.Hour), Reason: "office NAT"}
	e.SetAllowed([]Allowed{entry})
	e.Forget(entry.Target)
	// The network jails' /24 windows stay: a network ban that holds an
	// allowed address is refused anyway (decide).
	own := func() (n int) {
		for _, w := range e.Why(addr("203.0.113.7")) {
			if w.Key.Bits() == 32 {
				n += w.Count
			}
		}
		return n
	}
	if n := own(); n != 0 {
		t.Fatalf("the allowed address still has %d counted after Forget", n)
	}
	fail("203.0.113.7", 100, 30)
	fail("203.0.113.100", 100, 10)
	if got := targets(r.decs); len(got) != 1 || got[0] != "auth:203.0.113.100/32" {
		t.Fatalf("decisions = %v, want only the neighbour auth:203.0.113.100/32", got)
	}
	if n := own(); n != 0 {
		t.Errorf("an allowed address is being counted: %d", n)
	}
	if len(r.alarms) != 1 || r.alarms[0].Kind != AlarmAllowedClient || r.alarms[0].Addr != addr("203.0.113.7") || r.alarms[0].Count != 1 {
		t.Fatalf("alarms = %+v, want one %s for 203.0.113.7 (the rest held back a minute)", r.alarms, AlarmAllowedClient)
	}
	e.FlushAlarms()
	if len(r.alarms) != 2 || r.alarms[1].Count != 29 {
		t.Fatalf("flushed alarms = %+v, want the 29 held back", r.alarms)
	}
	wantRule := "allow-list 203.0.113.0/28 until 2026-11-20T01:00:00Z: office NAT"
	for _, tc := range []struct {
		target string
		force  bool
		rule   string
	}{
		{"203.0.113.7/32", false, wantRule},
		{"::ffff:203.0.113.7/128", false, wantRule},
		{"203.0.113.0/24", false, wantRule}, // covers the entry
		{"203.0.113.7/32", true, ""},
		{"203.0.113.16/28", false, ""},
	} {
		if rule, ok := e.NeverBan(pfx(tc.target), tc.force); ok != (tc.rule != "") || rule != tc.rule {
			t.Errorf("NeverBan(%s, force=%v) = %q, %v; want %q", tc.target, tc.force, rule, ok, tc.rule)
		}
	}
	if rule, ok := e.IsProtected(addr("203.0.113.9")); !ok || rule != wantRule {
		t.Errorf("IsProtected = %q, %v; want %q", rule, ok, wantRule)
	}
	// A reload keeps the run-time list.
	if err := e.Reload(testConfig(t, "")); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.IsProtected(addr("203.0.113.9")); !ok {
		t.Error("a reload dropped the run-time allow-list")
	}

	e.SetAllowed(nil)
	fail("203.0.113.7", 200, 9)
	if len(r.decs) != 1 {
		t.Fatalf("9 failures after the entry went banned: %v (the allowed ones must not count)", targets(r.decs))
	}
	fail("203.0.113.7", 300, 1)
	if got := targets(r.decs); len(got) != 2 || got[1] != "auth:203.0.113.7/32" {
		t.Fatalf("decisions = %v, want the 10th failure after the entry went to ban 203.0.113.7", got)
	}
}
