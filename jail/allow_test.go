package jail

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/bansd/bansd/configs"
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
		rule, forceable, ok := e.NeverBan(pfx(tc.target), tc.force)
		if ok != (tc.rule != "") || rule != tc.rule || (ok && !forceable) {
			t.Errorf("NeverBan(%s, force=%v) = %q, forceable %v, %v; want %q, forceable", tc.target, tc.force, rule, forceable, ok, tc.rule)
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

// BenchmarkEngineProcessAllowed is BenchmarkEngineProcess with an empty
// and a full run-time allow-list (store.MaxAllows IPv4 entries, none
// covering the mix): every IPv4 event is matched against the whole list,
// the cost of the list's bound.
func BenchmarkEngineProcessAllowed(b *testing.B) {
	lines := engineBenchMix(b, 200000)
	cfg, err := configs.Default()
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{0, 1000} {
		list := make([]Allowed, n)
		for i := range list {
			// 10.255.0.0/16 is in none of the mix's lines (and nothing
			// here reaches a network).
			list[i].Target = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 255, byte(i >> 8), byte(i)}), 32)
		}
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			for b.Loop() {
				e, err := NewEngine(cfg, Options{})
				if err != nil {
					b.Fatal(err)
				}
				e.SetAllowed(list)
				for _, l := range lines {
					e.Process(l)
				}
			}
			b.ReportMetric(float64(len(lines))*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// TestAllowedLookup: the allow entries are found by prefix per length in
// use, the narrowest entry naming an address, IPv4 and IPv6 apart, and
// after every configured rule.
func TestAllowedLookup(t *testing.T) {
	e, _ := newTestEngine(t, "[engine]\nignoreip = [\"198.51.100.128/25\"]\n")
	e.SetAllowed([]Allowed{
		{Target: pfx("198.51.100.0/24")}, {Target: pfx("198.51.100.7/32")},
		{Target: pfx("2001:db8:1::/48")}, {Target: pfx("2001:db8:1:2::9/128")},
		{Target: pfx("::ffff:203.0.113.0/120")}, // normalized to 203.0.113.0/24
	})
	for _, tc := range []struct{ addr, rule string }{
		{"198.51.100.7", "allow-list 198.51.100.7/32"},
		{"198.51.100.8", "allow-list 198.51.100.0/24"},
		{"198.51.100.200", "ignoreip 198.51.100.128/25"},
		{"2001:db8:1:2::9", "allow-list 2001:db8:1:2::9/128"},
		{"2001:db8:1:3::9", "allow-list 2001:db8:1::/48"},
		{"203.0.113.50", "allow-list 203.0.113.0/24"},
		{"::ffff:203.0.113.50", "allow-list 203.0.113.0/24"},
		{"2001:db8:2::1", ""},
		{"192.0.2.1", ""},
	} {
		rule, ok := e.IsProtected(addr(tc.addr))
		if ok != (tc.rule != "") || rule != tc.rule {
			t.Errorf("IsProtected(%s) = %q, %v; want %q", tc.addr, rule, ok, tc.rule)
		}
	}
}
