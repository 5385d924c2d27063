package ban

import (
	"fmt"
	"net/netip"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/bansd/bansd/prefix"
	"github.com/bansd/bansd/store"
)

// TestIndexRoundTrip: a ban put in the index reads back as the store would
// give it back, without its evidence, and compares the same way in every
// check the manager makes.
func TestIndexRoundTrip(t *testing.T) {
	now := time.Now() // with a monotonic reading, as the manager's clock
	past := time.Date(2026, 11, 20, 8, 30, 0, 123456789, time.UTC)
	cases := []struct {
		name string
		ban  store.Ban
	}{
		{"IPv4 address", store.Ban{Target: pfx("192.0.2.1/32"), Jail: "auth", Reason: "10 failures", Since: now, Until: now.Add(time.Hour), Level: 3, Evidence: []string{"a line"}}},
		{"IPv4 network", store.Ban{Target: pfx("198.51.100.0/24"), Jail: "auth-net", Since: past, Until: past.Add(24 * time.Hour)}},
		{"IPv6 address", store.Ban{Target: pfx("2001:db8::1/128"), Jail: "auth6", Since: now, Until: now.Add(time.Minute), Level: 1 << 16}},
		{"IPv6 network", store.Ban{Target: pfx("2001:db8:a:b::/64"), Jail: "crowdsec", Reason: "ssh-bf", Since: past, Until: past.Add(time.Hour), Pulled: true}},
		{"permanent", store.Ban{Target: pfx("203.0.113.0/24"), Jail: "manual", Reason: "operator", Since: now, Until: store.Forever, Manual: true}},
		{"zero times", store.Ban{Target: pfx("2001:db8:c::/48"), Jail: "import", Manual: true}},
		{"negative level", store.Ban{Target: pfx("192.0.2.9/32"), Jail: "auth", Since: past, Until: past.Add(time.Hour), Level: -1}},
	}
	later := store.Ban{Since: now.Add(30 * time.Minute), Until: now.Add(2 * time.Hour)}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := newIndex()
			x.put(c.ban)
			got, ok := x.get(c.ban.Target)
			if !ok {
				t.Fatalf("get(%s): not found", c.ban.Target)
			}
			want := c.ban
			want.Evidence = nil
			want.Level = max(want.Level, 0) // as the store keeps it
			if got.Target != want.Target || got.Jail != want.Jail || got.Reason != want.Reason || got.Level != want.Level ||
				got.Manual != want.Manual || got.Pulled != want.Pulled || got.Evidence != nil {
				t.Errorf("get = %+v, want %+v", got, want)
			}
			if !got.Since.Equal(want.Since) || !got.Until.Equal(want.Until) || got.Since.IsZero() != want.Since.IsZero() || got.Until.IsZero() != want.Until.IsZero() {
				t.Errorf("times %v..%v, want %v..%v", got.Since, got.Until, want.Since, want.Until)
			}
			for _, at := range []time.Time{now, past, now.Add(time.Hour), store.Forever, {}} {
				if got.Until.After(at) != want.Until.After(at) || got.Until.Before(at) != want.Until.Before(at) {
					t.Errorf("Until %v compares to %v unlike %v", got.Until, at, want.Until)
				}
			}
			if got.Permanent() != want.Permanent() || got.Term() != want.Term() {
				t.Errorf("Permanent, Term = %v, %v; want %v, %v", got.Permanent(), got.Term(), want.Permanent(), want.Term())
			}
			if store.SameEpisode(got, later) != store.SameEpisode(want, later) {
				t.Errorf("SameEpisode differs after the round trip")
			}
			n := 0
			for b := range x.all() {
				n++
				if !reflect.DeepEqual(b, got) {
					t.Errorf("all yields %+v, get %+v", b, got)
				}
			}
			if n != 1 || x.len() != 1 {
				t.Errorf("all yields %d bans, len %d; want 1", n, x.len())
			}
			x.delete(c.ban.Target)
			if _, ok := x.get(c.ban.Target); ok || x.len() != 0 || len(x.attrs.ids) != 0 {
				t.Errorf("after delete: found %v, len %d, %d attrs kept", ok, x.len(), len(x.attrs.ids))
			}
		})
	}
}

// TestIndexEveryLength: targets of every prefix length of both families,
// as the manager normalizes them (IPv4-mapped forms become IPv4), each its
// own entry, and the lengths counters follow puts and deletes.
func TestIndexEveryLength(t *testing.T) {
	x := newIndex()
	now := time.Now()
	var targets []netip.Prefix
	for _, base := range []string{"203.0.113.77", "2001:db8:1234:5678:9abc:def0:1234:5678", "::ffff:10.1.2.3"} {
		a := netip.MustParseAddr(base)
		for bits := range a.BitLen() + 1 {
			p, err := prefix.Normalize(netip.PrefixFrom(a, bits))
			if err != nil {
				continue // a mapped form shorter than /96
			}
			targets = append(targets, p)
		}
	}
	for i, p := range targets {
		x.put(store.Ban{Target: p, Jail: "auth", Since: now, Until: now.Add(time.Duration(i+1) * time.Minute), Level: i})
	}
	// The mapped /96../128 are the IPv4 /0../32 of another address, the
	// same as the first's at /0 only.
	const distinct = 33 + 129 + 32
	if x.len() != distinct || len(targets) != distinct+1 {
		t.Fatalf("len %d of %d targets; want %d", x.len(), len(targets), distinct)
	}
	for i, p := range targets {
		if p.Bits() == 0 && p.Addr().Is4() && i < len(targets)-33 {
			continue // put again, by the mapped address
		}
		b, ok := x.get(p)
		if !ok || b.Target != p || b.Level != i || !b.Until.Equal(now.Add(time.Duration(i+1)*time.Minute)) {
			t.Errorf("get(%s) = %+v, %v", p, b, ok)
		}
	}
	for bits := range 129 {
		v4, v6 := 0, 1
		switch {
		case bits == 0:
			v4 = 1
		case bits <= 32:
			v4 = 2 // 203.0.113.77 and 10.1.2.3
		}
		if got := x.lengths[0][bits]; int(got) != v4 {
			t.Errorf("IPv4 /%d counted %d, want %d", bits, got, v4)
		}
		if got := x.lengths[1][bits]; int(got) != v6 {
			t.Errorf("IPv6 /%d counted %d, want %d", bits, got, v6)
		}
	}
	// A refresh is no new target; deleting what is not there is nothing.
	x.put(store.Ban{Target: targets[0], Jail: "auth", Since: now, Until: now.Add(time.Hour)})
	x.delete(pfx("192.0.2.0/24"))
	if x.lengths[0][0] != 1 || x.len() != distinct {
		t.Errorf("after a refresh and a missing delete: /0 counted %d, len %d", x.lengths[0][0], x.len())
	}
	for b := range x.all() {
		x.delete(b.Target)
	}
	if x.len() != 0 || x.lengths != ([2][129]int32{}) || len(x.attrs.ids) != 0 {
		t.Errorf("after deleting every target: len %d, lengths %v, %d attrs", x.len(), x.lengths, len(x.attrs.ids))
	}
	x.put(store.Ban{Target: pfx("192.0.2.1/32")})
	if !x.hasLength(netip.MustParseAddr("198.51.100.1"), 32) || x.hasLength(netip.MustParseAddr("2001:db8::1"), 32) || x.hasLength(netip.MustParseAddr("198.51.100.1"), 24) {
		t.Error("hasLength: the family or the length ignored")
	}
}

// TestIndexMappedKeyDistinct: an IPv4-mapped IPv6 prefix that reached the
// index unnormalized would not alias its IPv4 form.
func TestIndexMappedKeyDistinct(t *testing.T) {
	x := newIndex()
	v4, mapped := pfx("192.0.2.1/32"), netip.MustParsePrefix("::ffff:192.0.2.1/128")
	x.put(store.Ban{Target: v4, Jail: "a"})
	x.put(store.Ban{Target: mapped, Jail: "b"})
	a, _ := x.get(v4)
	b, _ := x.get(mapped)
	if x.len() != 2 || a.Jail != "a" || b.Jail != "b" || b.Target != mapped {
		t.Errorf("len %d, %+v, %+v", x.len(), a, b)
	}
}

// TestIndexAttrsFreed: the attrs of an operator's reasons go with their
// last ban, and are shared while several bans hold them.
func TestIndexAttrsFreed(t *testing.T) {
	x := newIndex()
	for i := range 1000 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)}), 32)
		x.put(store.Ban{Target: p, Jail: "manual", Reason: fmt.Sprint("ticket ", i%10), Manual: true})
	}
	if len(x.attrs.ids) != 10 {
		t.Fatalf("%d attrs for 10 reasons", len(x.attrs.ids))
	}
	for b := range x.all() {
		// A new reason for every ban: the old ones go.
		b.Reason = "reviewed " + b.Target.String()
		x.put(b)
	}
	if len(x.attrs.ids) != 1000 {
		t.Fatalf("%d attrs for 1000 reasons", len(x.attrs.ids))
	}
	for b := range x.all() {
		x.delete(b.Target)
	}
	if len(x.attrs.ids) != 0 || len(x.attrs.free) != len(x.attrs.byID) {
		t.Errorf("%d attrs kept, %d of %d ids free", len(x.attrs.ids), len(x.attrs.free), len(x.attrs.byID))
	}
	ids := len(x.attrs.byID)
	x.put(store.Ban{Target: pfx("192.0.2.1/32"), Jail: "auth"})
	if len(x.attrs.byID) != ids {
		t.Errorf("a freed id is not reused: %d ids, %d before", len(x.attrs.byID), ids)
	}
}

// BenchmarkIndex10k: the heap the index holds for 10,000 bans of a few
// jails (heap-B/ban), and the cost of a put and a get.
func BenchmarkIndex10k(b *testing.B) {
	const n = 10_000
	now := time.Now()
	bans := make([]store.Ban, n)
	for i := range bans {
		t := netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, byte(i >> 8), byte(i), 15: 1}), 128)
		bans[i] = store.Ban{Target: t, Jail: "auth", Reason: "10 failures", Since: now, Until: now.Add(time.Hour), Level: i % 4, Evidence: []string{"a log line"}}
	}
	var held float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		x := newIndex()
		for _, bn := range bans {
			x.put(bn)
		}
		for _, bn := range bans {
			if _, ok := x.get(bn.Target); !ok {
				b.Fatal("lost a ban")
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		held = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(x)
	}
	b.ReportMetric(held, "heap-B/ban")
}
