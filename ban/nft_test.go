package ban

import (
	"errors"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/bansd/bansd/internal/netnstest"
)

func TestEnsureIdempotentKeepsElements(t *testing.T) {
	ns := netnstest.New(t)
	cfg := testConfig(t)
	fw := newNFT(t, ns, cfg)
	// A counter that already counted: ensure must not reset it.
	ns.Run(t, "nft", "add", "table", "inet", "bansd")
	ns.Run(t, "nft", "add", "counter", "inet", "bansd", "drop_v4_32", "{ packets 5 bytes 300 }")
	if err := fw.Ensure(DefaultClasses()); err != nil {
		t.Fatal(err)
	}
	els := []Element{{Target: pfx("192.0.2.1/32"), Timeout: time.Hour}, {Target: pfx("198.51.100.0/24"), Timeout: time.Hour}, {Target: pfx("2001:db8::1/128"), Timeout: time.Hour}, {Target: pfx("2001:db8:1:2::/64"), Timeout: time.Hour}, {Target: pfx("2001:db8:3::/48"), Timeout: time.Hour}}
	if err := fw.Add(els); err != nil {
		t.Fatal(err)
	}
	before := ns.Run(t, "nft", "list", "table", "inet", "bansd")
	t.Logf("after the first ensure:\n%s", before)
	for range 2 {
		// A fresh NFT (another run of bansd) and the same one again.
		for _, f := range []*NFT{fw, newNFT(t, ns, cfg)} {
			if err := f.Ensure(DefaultClasses()); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := kernel(t, fw)
	for _, e := range els {
		if _, ok := got[e.Target]; !ok {
			t.Errorf("%s lost by a second ensure", e.Target)
		}
	}
	h, err := fw.Check()
	if err != nil || !h.OK {
		t.Fatalf("Check = %+v, %v", h, err)
	}
	st, err := fw.Status()
	if err != nil {
		t.Fatal(err)
	}
	if c := st.Counters["v4_32"]; c.Packets != 5 || c.Bytes != 300 {
		t.Errorf("counter drop_v4_32 = %+v after ensures, want 5 packets, 300 bytes", c)
	}
	if !st.Present || st.Hook != "prerouting" || st.Priority != -310 || st.Policy != "accept" || st.Rules != len(DefaultClasses()) {
		t.Errorf("status = %+v, want prerouting -310 accept with %d rules", st, len(DefaultClasses()))
	}
	after := ns.Run(t, "nft", "list", "table", "inet", "bansd")
	if expires.ReplaceAllString(after, "") != expires.ReplaceAllString(before, "") {
		t.Errorf("ruleset changed by a repeated ensure:\n%s\nwant\n%s", after, before)
	}
	for _, want := range []string{
		"type filter hook prerouting priority raw - 10; policy accept;",
		`ip saddr & 255.255.255.0 == @v4_24 counter name "drop_v4_24" drop`,
		`ip6 saddr & ffff:ffff:ffff:ffff:: == @v6_64 counter name "drop_v6_64" drop`,
		`ip saddr @v4_32 counter name "drop_v4_32" drop`,
		"flags timeout",
		"counter drop_v6_48 {",
	} {
		if !strings.Contains(after, want) {
			t.Errorf("ruleset lacks %q", want)
		}
	}
}

// expires is the part of `nft list` output that changes as time passes.
var expires = regexp.MustCompile(`expires [0-9hmsd]+`)

func TestAddListAllClasses(t *testing.T) {
	ns := netnstest.New(t)
	fw := ensuredNFT(t, ns, testConfig(t))
	els := []Element{
		{Target: pfx("192.0.2.7/32"), Timeout: time.Hour},
		{Target: pfx("198.51.100.0/24"), Timeout: 2 * time.Hour},
		{Target: pfx("2001:db8::7/128"), Timeout: time.Hour},
		{Target: pfx("2001:db8:a:b::/64"), Timeout: time.Hour},
		{Target: pfx("2001:db8:c::/48"), Timeout: time.Hour},
		// A class no jail uses by default: its set, counter and rule are
		// created in the same transaction.
		{Target: pfx("203.0.113.0/25"), Timeout: time.Hour},
		{Target: pfx("2001:db8:ff00::/40"), Timeout: time.Hour},
	}
	if err := fw.Add(els); err != nil {
		t.Fatal(err)
	}
	got := kernel(t, fw)
	if len(got) != len(els) {
		t.Errorf("kernel holds %d elements, want %d: %v", len(got), len(els), got)
	}
	for _, e := range els {
		rem, ok := got[e.Target]
		if !ok {
			t.Errorf("%s missing", e.Target)
			continue
		}
		if rem > e.Timeout || rem < e.Timeout-5*time.Second {
			t.Errorf("%s: %s left, want about %s", e.Target, rem, e.Timeout)
		}
	}
	if h, err := fw.Check(); err != nil || !h.OK {
		t.Errorf("Check after a new class = %+v, %v", h, err)
	}
	out := ns.Run(t, "nft", "list", "chain", "inet", "bansd", "prerouting")
	if !strings.Contains(out, `ip saddr & 255.255.255.128 == @v4_25 counter name "drop_v4_25" drop`) {
		t.Errorf("no masked rule for the new class:\n%s", out)
	}
}

func TestElementExpires(t *testing.T) {
	ns := netnstest.New(t)
	fw := ensuredNFT(t, ns, testConfig(t))
	short, long := pfx("192.0.2.2/32"), pfx("2001:db8::2/128")
	// 1 ms is clamped to the 1 s minimum: never 0, which would be permanent.
	if err := fw.Add([]Element{{Target: short, Timeout: 2 * time.Second}, {Target: long, Timeout: time.Hour}, {Target: pfx("192.0.2.3/32"), Timeout: time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := kernel(t, fw)[short]; !ok {
		t.Fatal("2 s ban not in the kernel")
	}
	waitFor(t, 5*time.Second, "the 2 s and 1 ms bans to expire", func() bool {
		got := kernel(t, fw)
		_, a := got[short]
		_, b := got[pfx("192.0.2.3/32")]
		return !a && !b
	})
	if _, ok := kernel(t, fw)[long]; !ok {
		t.Error("the 1 h ban expired too")
	}
}

func TestRefreshTimeout(t *testing.T) {
	for _, mode := range []struct {
		name    string
		deleted bool
	}{{"re-add", false}, {"delete+add", true}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			ns := netnstest.New(t)
			fw := ensuredNFT(t, ns, testConfig(t), WithDeleteRefresh(mode.deleted))
			a, n := pfx("192.0.2.9/32"), pfx("2001:db8:9::/64")
			if err := fw.Add([]Element{{Target: a, Timeout: 3 * time.Second}, {Target: n, Timeout: 3 * time.Second}}); err != nil {
				t.Fatal(err)
			}
			// Extend, with a new element in the same transaction.
			if err := fw.Add([]Element{{Target: a, Timeout: time.Hour}, {Target: n, Timeout: time.Hour}, {Target: pfx("192.0.2.10/32"), Timeout: time.Hour}}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(4 * time.Second)
			got := kernel(t, fw)
			for _, p := range []string{"192.0.2.9/32", "2001:db8:9::/64", "192.0.2.10/32"} {
				if rem := got[pfx(p)]; rem < 50*time.Minute {
					t.Errorf("%s: %s left after the refresh to 1 h", p, rem)
				}
			}
		})
	}
}

func TestRemoveIsIdempotent(t *testing.T) {
	ns := netnstest.New(t)
	fw := ensuredNFT(t, ns, testConfig(t))
	keep, gone := pfx("192.0.2.20/32"), pfx("192.0.2.21/32")
	if err := fw.Add([]Element{{Target: keep, Timeout: time.Hour}, {Target: gone, Timeout: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	// A missing element (and one of a class with no set) next to a present
	// one: a plain delete would abort the transaction with ENOENT.
	if err := fw.Remove([]netip.Prefix{gone, pfx("192.0.2.22/32"), pfx("2001:db8::/56")}); err != nil {
		t.Fatal(err)
	}
	if err := fw.Remove([]netip.Prefix{gone}); err != nil {
		t.Fatal("second unban:", err)
	}
	got := kernel(t, fw)
	if _, ok := got[gone]; ok {
		t.Error("unbanned element still there")
	}
	if _, ok := got[keep]; !ok {
		t.Error("unrelated element removed")
	}
}

// TestDefaultSocketBuffer emulates a distribution's default wmem_max: one
// transaction of 20,000 elements is too big for it, the chunked add is not.
func TestDefaultSocketBuffer(t *testing.T) {
	ns := netnstest.New(t)
	cfg := testConfig(t)
	small := WithSockOptions(func(c *netlink.Conn) error { return c.SetWriteBuffer(212992) })
	fw := ensuredNFT(t, ns, cfg, small)
	els := make([]Element, 20_000)
	for i := range els {
		els[i] = Element{Target: v4(i), Timeout: time.Hour}
	}
	err := fw.Add(els)
	if err == nil || !errors.Is(err, unix.EMSGSIZE) {
		t.Fatalf("one 20,000-element transaction with a 212992-byte buffer: %v; the emulation is not effective", err)
	}

	cfg.Firewall.Batch = 8192 // above the 5000 cap on purpose
	m := startManager(t, withConfig(t, Options{Firewall: fw, Store: openStore(t, "")}, cfg))
	rs := make([]Request, len(els))
	for i := range rs {
		rs[i] = Request{Target: v4(i), Jail: "bulk", Duration: time.Hour, Manual: true}
	}
	n, err := m.BanMany(t.Context(), rs)
	if err != nil || n != len(rs) {
		t.Fatalf("BanMany = %d, %v", n, err)
	}
	if got := len(kernel(t, fw)); got != len(rs) {
		t.Errorf("kernel holds %d elements, want %d", got, len(rs))
	}
}

// TestPriorityChange: a chain left with another priority (the operator
// changed firewall.priority) is replaced, and the elements stay.
func TestPriorityChange(t *testing.T) {
	ns := netnstest.New(t)
	cfg := testConfig(t)
	old := ensuredNFT(t, ns, cfg)
	if err := old.Add([]Element{{Target: pfx("192.0.2.60/32"), Timeout: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	cfg.Firewall.Priority = -300
	fw := newNFT(t, ns, cfg)
	if h, err := fw.Check(); err != nil || h.OK {
		t.Fatalf("Check with another priority = %+v, %v; want a problem", h, err)
	}
	if err := fw.Ensure(DefaultClasses()); err != nil {
		t.Fatal(err)
	}
	st, err := fw.Status()
	if err != nil || st.Priority != -300 || st.Rules != len(DefaultClasses()) {
		t.Fatalf("status %+v, %v", st, err)
	}
	if _, ok := kernel(t, fw)[pfx("192.0.2.60/32")]; !ok {
		t.Error("element lost when the chain was replaced")
	}
}

// TestLookup: exact lookups find what is in the kernel, with its time
// left, and pass over what is not: an address never added, one removed,
// one whose class has no set.
func TestLookup(t *testing.T) {
	ns := netnstest.New(t)
	fw := ensuredNFT(t, ns, testConfig(t))
	if err := fw.Add([]Element{
		{Target: pfx("192.0.2.7/32"), Timeout: time.Hour},
		{Target: pfx("192.0.2.8/32"), Timeout: time.Hour},
		{Target: pfx("2001:db8:a:b::/64"), Timeout: 2 * time.Hour},
		{Target: pfx("198.51.100.0/24"), Permanent: true},
	}); err != nil {
		t.Fatal(err)
	}
	if err := fw.Remove([]netip.Prefix{pfx("192.0.2.8/32")}); err != nil {
		t.Fatal(err)
	}
	got, err := fw.Lookup([]netip.Prefix{
		pfx("192.0.2.7/32"), pfx("192.0.2.8/32"), pfx("192.0.2.9/32"),
		pfx("2001:db8:a:b::/64"), pfx("198.51.100.0/24"), pfx("203.0.113.0/25"),
	})
	if err != nil {
		t.Fatal(err)
	}
	found := map[netip.Prefix]Element{}
	for _, e := range got {
		found[e.Target] = e
	}
	if len(got) != 3 || len(found) != 3 {
		t.Fatalf("Lookup = %+v, want 192.0.2.7/32, 2001:db8:a:b::/64 and 198.51.100.0/24", got)
	}
	for p, want := range map[string]time.Duration{"192.0.2.7/32": time.Hour, "2001:db8:a:b::/64": 2 * time.Hour} {
		e, ok := found[pfx(p)]
		if !ok || e.Permanent || e.Timeout > want || e.Timeout < want-5*time.Second {
			t.Errorf("%s: %+v, want about %s left", p, e, want)
		}
	}
	if e := found[pfx("198.51.100.0/24")]; !e.Permanent {
		t.Errorf("198.51.100.0/24: %+v, want permanent", e)
	}
}
