package ban

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/netnstest"
	"github.com/bansd/bansd/store"
)

func listRequests(jail string, d time.Duration, ts ...string) []Request {
	rs := make([]Request, len(ts))
	for i, s := range ts {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			p = netip.PrefixFrom(netip.MustParseAddr(s), netip.MustParseAddr(s).BitLen())
		}
		rs[i] = Request{Target: p, Jail: jail, Reason: "list " + jail, Duration: d, Manual: true}
	}
	return rs
}

func TestReplaceJail(t *testing.T) {
	for _, c := range []struct {
		name  string
		batch int // 2: the change is split, additions first
	}{{"one transaction", 5000}, {"split in batches", 2}} {
		t.Run(c.name, func(t *testing.T) {
			ns := netnstest.New(t)
			cfg := testConfig(t)
			cfg.Firewall.Batch = c.batch
			fw := newNFT(t, ns, cfg)
			db := openStore(t, "")
			m := startManager(t, withConfig(t, Options{Firewall: fw, Store: db}, cfg))
			ctx := t.Context()
			const jail = "blocklist:drop"
			// A local ban on D (longer than the list's), a manual one on F and
			// a jail's on G, shorter than the list's.
			if _, err := m.BanMany(ctx, []Request{
				{Target: pfx("198.51.100.4/32"), Jail: "dovecot", Duration: 48 * time.Hour},
				{Target: pfx("198.51.100.6/32"), Jail: "manual", Duration: time.Hour, Manual: true},
				{Target: pfx("198.51.100.8/32"), Jail: "auth", Duration: time.Hour},
			}); err != nil {
				t.Fatal(err)
			}
			v1 := listRequests(jail, 24*time.Hour, "198.51.100.1", "198.51.100.2", "203.0.113.0/24", "2001:db8:1::/48")
			errs, lifted, err := m.ReplaceJail(ctx, jail, v1, nil, nil)
			if err != nil || lifted != 0 || errors.Join(errs...) != nil {
				t.Fatalf("v1: %v, %d, %v", errs, lifted, err)
			}
			v2 := listRequests(jail, 24*time.Hour, "198.51.100.2", "203.0.113.0/24", "198.51.100.4", "198.51.100.5", "198.51.100.8", "127.0.0.1", "0.0.0.0/4")
			old := []netip.Prefix{pfx("198.51.100.1/32"), pfx("198.51.100.2/32"), pfx("203.0.113.0/24"), pfx("2001:db8:1::/48"), pfx("198.51.100.6/32")}
			errs, lifted, err = m.ReplaceJail(ctx, jail, v2, old, nil)
			if err != nil {
				t.Fatal(err)
			}
			if lifted != 2 {
				t.Errorf("lifted %d, want 2 (198.51.100.1 and 2001:db8:1::/48; 198.51.100.6 is manual's)", lifted)
			}
			for i, e := range errs {
				refused := i >= 5
				if refused != errors.Is(e, ErrRefused) {
					t.Errorf("%s: %v, want refused %v", v2[i].Target, e, refused)
				}
			}
			k := kernel(t, fw)
			for _, c := range []struct {
				target string
				jail   string // "": not banned
			}{
				{"198.51.100.1/32", ""},
				{"2001:db8:1::/48", ""},
				{"198.51.100.2/32", jail},
				{"203.0.113.0/24", jail},
				{"198.51.100.5/32", jail},
				{"198.51.100.4/32", "dovecot"}, // its own ban is longer
				{"198.51.100.6/32", "manual"},
				{"198.51.100.8/32", "auth"}, // its own, made as long as the list's
				{"127.0.0.1/32", ""},
			} {
				p := pfx(c.target)
				_, inKernel := k[p]
				b, inStore, _ := db.GetBan(p)
				cur, inIndex := m.Lookup(p)
				want := c.jail != ""
				if inKernel != want || inStore != want || inIndex != want {
					t.Errorf("%s: kernel %v, store %v, index %v; want %v", p, inKernel, inStore, inIndex, want)
					continue
				}
				if want && (b.Jail != c.jail || cur.Jail != c.jail) {
					t.Errorf("%s: jail %q (store) %q (index), want %q", p, b.Jail, cur.Jail, c.jail)
				}
			}
			if g, _ := m.Lookup(pfx("198.51.100.8/32")); g.Until.Sub(g.Since) < 23*time.Hour || g.Reason != "" {
				t.Errorf("the auth ban on a listed target: %+v, want its own, lasting the list's 24h", g)
			}
			if h, _ := db.History(pfx("198.51.100.5/32")); h.Offences != 0 {
				t.Errorf("a list entry counted as an offence: %+v", h)
			}
			// The same version again extends the bans without an event.
			count := func() int {
				evs, err := db.Events(store.EventFilter{Jail: jail})
				if err != nil {
					t.Fatal(err)
				}
				return len(evs)
			}
			n := count()
			before, _ := m.Lookup(pfx("198.51.100.5/32"))
			time.Sleep(10 * time.Millisecond)
			var prev []netip.Prefix
			for _, r := range v2 {
				prev = append(prev, r.Target)
			}
			if _, lifted, err := m.ReplaceJail(ctx, jail, listRequests(jail, 24*time.Hour, "198.51.100.2", "203.0.113.0/24", "198.51.100.5"), prev, nil); err != nil || lifted != 0 {
				t.Fatalf("third version: lifted %d, %v; want 0 (198.51.100.4 and .8 are other jails')", lifted, err)
			}
			after, _ := m.Lookup(pfx("198.51.100.5/32"))
			if !after.Until.After(before.Until) {
				t.Errorf("the ban was not extended: %s then %s", before.Until, after.Until)
			}
			// 198.51.100.8 left the list with that version: the auth ban
			// stays until its (extended) end.
			if g, ok := m.Lookup(pfx("198.51.100.8/32")); !ok || g.Jail != "auth" || kernel(t, fw)[pfx("198.51.100.8/32")] < 23*time.Hour {
				t.Errorf("dropping a listed target lifted another jail's ban: %+v, %v", g, ok)
			}
			// Another list takes over this list's ban when takeOver says so,
			// never a jail's.
			const other = "blocklist:other"
			isList := func(j string) bool { return j == jail || j == other }
			if _, _, err := m.ReplaceJail(ctx, other, listRequests(other, 48*time.Hour, "198.51.100.2", "198.51.100.8"), nil, isList); err != nil {
				t.Fatal(err)
			}
			if b, _ := m.Lookup(pfx("198.51.100.2/32")); b.Jail != other {
				t.Errorf("198.51.100.2 held by %q, want taken over by %s", b.Jail, other)
			}
			if b, _ := m.Lookup(pfx("198.51.100.8/32")); b.Jail != "auth" || time.Until(b.Until) < 47*time.Hour {
				t.Errorf("198.51.100.8: %+v, want auth's, lasting 48h", b)
			}
			if got := count(); got != n {
				t.Errorf("extending the same version wrote %d events", got-n)
			}
		})
	}
}

// TestReplaceJailNeverUnenforced swaps two versions of a list sharing one
// target while a reader lists the kernel's sets: the shared target is in
// every listing, in one transaction and when the change is split.
func TestReplaceJailNeverUnenforced(t *testing.T) {
	for _, batch := range []int{5000, 3} {
		ns := netnstest.New(t)
		cfg := testConfig(t)
		cfg.Firewall.Batch = batch
		fw := newNFT(t, ns, cfg)
		m := startManager(t, withConfig(t, Options{Firewall: fw, Store: openStore(t, "")}, cfg))
		const jail = "blocklist:x"
		shared := pfx("203.0.113.50/32")
		a := listRequests(jail, time.Hour, "203.0.113.50", "198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4")
		b := listRequests(jail, time.Hour, "203.0.113.50", "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4")
		if _, _, err := m.ReplaceJail(t.Context(), jail, a, nil, nil); err != nil {
			t.Fatal(err)
		}
		var (
			stop    atomic.Bool
			wg      sync.WaitGroup
			listed  atomic.Int64
			missing atomic.Int64
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				els, err := fw.List()
				if err != nil {
					t.Error(err)
					return
				}
				found := false
				for _, e := range els {
					found = found || e.Target == shared
				}
				listed.Add(1)
				if !found {
					missing.Add(1)
				}
			}
		}()
		targets := func(rs []Request) []netip.Prefix {
			out := make([]netip.Prefix, len(rs))
			for i, r := range rs {
				out[i] = r.Target
			}
			return out
		}
		cur, next := a, b
		for range 40 {
			if _, _, err := m.ReplaceJail(t.Context(), jail, next, targets(cur), nil); err != nil {
				t.Fatal(err)
			}
			cur, next = next, cur
		}
		stop.Store(true)
		wg.Wait()
		t.Logf("batch %d: 40 swaps, %d listings of the kernel, %d without the shared target", batch, listed.Load(), missing.Load())
		if missing.Load() > 0 || listed.Load() == 0 {
			t.Errorf("batch %d: the shared target was missing from %d of %d listings", batch, missing.Load(), listed.Load())
		}
		k := kernel(t, fw)
		for _, r := range cur {
			if _, ok := k[r.Target]; !ok {
				t.Errorf("batch %d: %s of the last version not in the kernel", batch, r.Target)
			}
		}
		for _, r := range next[1:] {
			if _, ok := k[r.Target]; ok {
				t.Errorf("batch %d: %s of the previous version still in the kernel", batch, r.Target)
			}
		}
	}
}
