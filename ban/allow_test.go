package ban

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/netnstest"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/prefix"
	"github.com/bansd/bansd/store"
)

// TestAllowLifts: an allow entry lifts the live bans inside it and splits
// the wider ones around it (IPv4 and IPv6), in the store, the index and
// the kernel, and leaves other bans alone; the pieces keep the wide ban's
// jail, level and end and count no offence.
func TestAllowLifts(t *testing.T) {
	requireRoot(t)
	ns := netnstest.New(t)
	cfg := testConfig(t)
	fw := ensuredNFT(t, ns, cfg)
	db := openStore(t, "")
	m := startManager(t, withConfig(t, Options{Firewall: fw, Store: db}, cfg))
	ctx := context.Background()
	for _, b := range []string{"192.0.2.16/28", "192.0.2.33/32", "192.0.2.40/30", "198.51.100.0/24", "2001:db8:1::/48", "203.0.113.9/32"} {
		if _, err := m.Ban(ctx, Request{Target: pfx(b), Jail: "auth", Reason: "test " + b, Duration: time.Hour, Manual: true}); err != nil {
			t.Fatal(err)
		}
	}
	wide, _ := m.Lookup(pfx("198.51.100.0/24"))
	// Nested wide bans around one hole: the longer gives the shared pieces.
	for _, b := range []struct {
		target string
		d      time.Duration
	}{{"192.0.2.64/26", 2 * time.Hour}, {"192.0.2.64/28", time.Hour}} {
		if _, err := m.Ban(ctx, Request{Target: pfx(b.target), Jail: "auth", Duration: b.d, Manual: true}); err != nil {
			t.Fatal(err)
		}
	}
	outer, _ := m.Lookup(pfx("192.0.2.64/26"))

	for _, tc := range []struct {
		allow string
		// lifted (no pieces) and split (ban → pieces) as prefix.Exclude
		// gives them.
		lifted []string
		split  map[string]string
	}{
		{allow: "192.0.2.16/28", lifted: []string{"192.0.2.16/28"}},
		{allow: "192.0.2.32/27", lifted: []string{"192.0.2.33/32", "192.0.2.40/30"}},
		{allow: "198.51.100.7/32", split: map[string]string{"198.51.100.0/24": "198.51.100.7/32"}},
		{allow: "2001:db8:1:2::/64", split: map[string]string{"2001:db8:1::/48": "2001:db8:1:2::/64"}},
		{allow: "192.0.2.200/32"}, // nothing banned there
		{allow: "192.0.2.70/32", split: map[string]string{"192.0.2.64/26": "192.0.2.70/32", "192.0.2.64/28": "192.0.2.70/32"}},
	} {
		lifts, err := m.Allow(ctx, store.Allow{Target: pfx(tc.allow), Reason: "trusted"})
		if err != nil {
			t.Fatalf("Allow(%s): %v", tc.allow, err)
		}
		var lifted []string
		split := map[string]string{}
		for _, l := range lifts {
			if len(l.Split) == 0 {
				lifted = append(lifted, l.Ban.Target.String())
				continue
			}
			split[l.Ban.Target.String()] = tc.allow
			if want := prefix.Exclude(l.Ban.Target, pfx(tc.allow)); !slices.Equal(l.Split, want) {
				t.Errorf("Allow(%s): %s split into %v, want %v", tc.allow, l.Ban.Target, l.Split, want)
			}
		}
		if !slices.Equal(lifted, tc.lifted) || len(split) != len(tc.split) {
			t.Errorf("Allow(%s): lifted %v split %v; want lifted %v split %v", tc.allow, lifted, split, tc.lifted, tc.split)
		}
	}

	k := kernel(t, fw)
	stored, err := db.Bans()
	if err != nil {
		t.Fatal(err)
	}
	inStore := map[netip.Prefix]store.Ban{}
	for _, b := range stored {
		inStore[b.Target] = b
	}
	want := map[netip.Prefix]bool{pfx("203.0.113.9/32"): true}
	for _, p := range prefix.Exclude(pfx("198.51.100.0/24"), pfx("198.51.100.7/32")) {
		want[p] = true
	}
	for _, p := range prefix.Exclude(pfx("2001:db8:1::/48"), pfx("2001:db8:1:2::/64")) {
		want[p] = true
	}
	for _, p := range prefix.Exclude(pfx("192.0.2.64/26"), pfx("192.0.2.70/32")) {
		want[p] = true
	}
	for p := range want {
		if _, ok := k[p]; !ok {
			t.Errorf("%s not in the kernel", p)
		}
		if _, ok := inStore[p]; !ok {
			t.Errorf("%s not in the store", p)
		}
	}
	for p := range k {
		if !want[p] {
			t.Errorf("kernel holds %s, which should be lifted", p)
		}
	}
	if len(inStore) != len(want) || len(m.Bans()) != len(want) {
		t.Errorf("store holds %d bans, index %d; want %d", len(inStore), len(m.Bans()), len(want))
	}
	piece := inStore[pfx("198.51.100.0/30")]
	if piece.Jail != "auth" || piece.Reason != wide.Reason || !piece.Until.Equal(wide.Until) || !piece.Manual {
		t.Errorf("piece %+v does not keep the wide ban's jail, reason, end (%+v)", piece, wide)
	}
	if d := k[pfx("198.51.100.0/30")]; d < 59*time.Minute || d > time.Hour {
		t.Errorf("piece's kernel timeout %s, want the wide ban's remaining hour", d)
	}
	if h, _ := db.History(pfx("198.51.100.0/30")); h.Offences != 0 {
		t.Errorf("a split piece counted %d offences", h.Offences)
	}
	if shared := inStore[pfx("192.0.2.71/32")]; !shared.Until.Equal(outer.Until) {
		t.Errorf("a piece of two nested bans ends %s, want the longer ban's %s", shared.Until, outer.Until)
	}
	if d := k[pfx("192.0.2.71/32")]; d < 119*time.Minute {
		t.Errorf("a piece of two nested bans has kernel timeout %s, want the longer ban's 2h", d)
	}
	allows, _ := db.Allows()
	if len(allows) != 6 {
		t.Errorf("store holds %d allow entries, want 6", len(allows))
	}
	evs, _ := db.Events(store.EventFilter{Kinds: []string{store.EventAllow, store.EventUnban}})
	if len(evs) != 6+3+4 {
		t.Errorf("%d allow-list and unban events, want 13 (6 entries, 3 lifts, 4 splits): %+v", len(evs), evs)
	}
}

// TestAllowSplitDataPlane: a /24 ban split around a /32 by an allow entry,
// real TCP from four addresses of the /24: the allowed one connects, its
// neighbours and the far end of the /24 stay dropped, before and after.
func TestAllowSplitDataPlane(t *testing.T) {
	requireRoot(t)
	host, client := netnstest.New(t), netnstest.New(t)
	host.Run(t, "ip", "link", "add", "hX", "address", "02:00:00:00:0d:01", "type", "veth", "peer", "name", "eth0", "address", "02:00:00:00:0d:02", "netns", client.Name)
	host.Run(t, "ip", "link", "set", "hX", "up")
	host.Run(t, "ip", "addr", "add", "198.51.100.1/24", "dev", "hX")
	host.Run(t, "ip", "route", "add", "203.0.113.0/24", "dev", "hX")
	host.Run(t, "ip", "neigh", "replace", "198.51.100.2", "lladdr", "02:00:00:00:0d:02", "dev", "hX", "nud", "permanent")
	client.Run(t, "ip", "link", "set", "eth0", "up")
	client.Run(t, "ip", "addr", "add", "198.51.100.2/24", "dev", "eth0")
	client.Run(t, "ip", "neigh", "replace", "198.51.100.1", "lladdr", "02:00:00:00:0d:01", "dev", "eth0", "nud", "permanent")
	sources := []string{"203.0.113.6", "203.0.113.7", "203.0.113.8", "203.0.113.200"}
	for _, a := range sources {
		client.Run(t, "ip", "addr", "add", a+"/32", "dev", "eth0")
	}
	// Replies to 203.0.113.x leave by the link; the host resolves them
	// to the client's MAC.
	for _, a := range sources {
		host.Run(t, "ip", "neigh", "replace", a, "lladdr", "02:00:00:00:0d:02", "dev", "hX", "nud", "permanent")
	}
	serveEcho(t, host, ":2222")
	reach := func() map[string]bool {
		out := map[string]bool{}
		for _, a := range sources {
			var c net.Conn
			err := client.Do(func() (err error) {
				d := net.Dialer{Timeout: dialTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(a)}}
				c, err = d.Dial("tcp", "198.51.100.1:2222")
				return err
			})
			if err == nil {
				err = echo(c, "ping")
				c.Close()
			}
			out[a] = err == nil
		}
		return out
	}
	if r := reach(); !r["203.0.113.6"] || !r["203.0.113.7"] || !r["203.0.113.8"] || !r["203.0.113.200"] {
		t.Fatalf("before any ban: %v, want every source through", r)
	}

	cfg := testConfig(t)
	fw := ensuredNFT(t, host, cfg)
	m := startManager(t, withConfig(t, Options{Firewall: fw, Store: openStore(t, "")}, cfg))
	ctx := context.Background()
	if _, err := m.Ban(ctx, Request{Target: pfx("203.0.113.0/24"), Jail: "network", Reason: "test", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if r := reach(); r["203.0.113.6"] || r["203.0.113.7"] || r["203.0.113.8"] || r["203.0.113.200"] {
		t.Fatalf("with 203.0.113.0/24 banned: %v, want every source dropped", r)
	}
	lifts, err := m.Allow(ctx, store.Allow{Target: pfx("203.0.113.7/32")})
	if err != nil {
		t.Fatal(err)
	}
	if len(lifts) != 1 || len(lifts[0].Split) != 8 {
		t.Fatalf("lifts = %+v, want the /24 split in 8", lifts)
	}
	r := reach()
	if !r["203.0.113.7"] {
		t.Error("the allowed 203.0.113.7 is still dropped")
	}
	for _, a := range []string{"203.0.113.6", "203.0.113.8", "203.0.113.200"} {
		if r[a] {
			t.Errorf("%s, a neighbour of the allowed address, got through the split ban", a)
		}
	}
}

// TestAllowRecheck: a decision checked against the never-ban rules before
// an allow entry, and queued until after it, is dropped instead of landing
// inside the entry; a forced manual ban there still goes through. (The
// interleaving is made by hand: prepare, allow, then submit.)
func TestAllowRecheck(t *testing.T) {
	requireRoot(t)
	ns := netnstest.New(t)
	cfg := testConfig(t)
	fw := ensuredNFT(t, ns, cfg)
	e, err := jail.NewEngine(cfg, jail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := withConfig(t, Options{Firewall: fw, Store: openStore(t, "")}, cfg)
	o.NeverBan = e.NeverBan
	m := startManager(t, o)
	ctx := context.Background()

	gen := m.allowGen.Load()
	ps, err := m.prepare([]Request{
		{Target: pfx("203.0.113.7/32"), Jail: "auth", Duration: time.Hour},
		{Target: pfx("203.0.113.8/32"), Jail: "manual", Duration: time.Hour, Manual: true, Force: true},
		{Target: pfx("198.51.100.7/32"), Jail: "auth", Duration: time.Hour},
	})
	if err != nil || ps[0].err != nil || ps[1].err != nil || ps[2].err != nil {
		t.Fatalf("prepare: %+v, %v", ps, err)
	}
	entry := pfx("203.0.113.0/28")
	e.SetAllowed([]jail.Allowed{{Target: entry}})
	if _, err := m.Allow(ctx, store.Allow{Target: entry}); err != nil {
		t.Fatal(err)
	}
	res, err := m.submit(ctx, banJob(ps[:3], store.NoUID, gen))
	if err != nil || res.err != nil {
		t.Fatalf("submit: %v, %v", err, res.err)
	}
	k := kernel(t, fw)
	if _, ok := m.Lookup(pfx("203.0.113.7/32")); ok {
		t.Error("a decision queued across the allow entry was applied inside it")
	}
	if _, ok := k[pfx("203.0.113.7/32")]; ok {
		t.Error("the kernel holds 203.0.113.7, allowed while its ban waited")
	}
	for _, p := range []string{"203.0.113.8/32", "198.51.100.7/32"} {
		if _, ok := m.Lookup(pfx(p)); !ok {
			t.Errorf("%s (forced, or outside the entry) was dropped", p)
		}
		if _, ok := k[pfx(p)]; !ok {
			t.Errorf("%s not in the kernel", p)
		}
	}
	// Alone, the dropped ban is an ErrRefused for its caller.
	gen = m.allowGen.Load()
	ps, _ = m.prepare([]Request{{Target: pfx("192.0.2.77/32"), Jail: "auth", Duration: time.Hour}})
	e.SetAllowed([]jail.Allowed{{Target: entry}, {Target: pfx("192.0.2.77/32")}})
	if _, err := m.Allow(ctx, store.Allow{Target: pfx("192.0.2.77/32")}); err != nil {
		t.Fatal(err)
	}
	res, err = m.submit(ctx, &job{bans: []store.Ban{ps[0].ban}, gen: gen})
	if err != nil || !errors.Is(res.err, ErrRefused) {
		t.Errorf("a lone dropped ban: %v, %v; want ErrRefused", err, res.err)
	}
}
