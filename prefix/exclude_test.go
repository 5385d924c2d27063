package prefix

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestExclude(t *testing.T) {
	for _, c := range []struct {
		outer, hole string
		want        string // space-separated, "" for none
	}{
		{"203.0.113.0/24", "203.0.113.7/32",
			"203.0.113.0/30 203.0.113.4/31 203.0.113.6/32 203.0.113.8/29 203.0.113.16/28 203.0.113.32/27 203.0.113.64/26 203.0.113.128/25"},
		{"203.0.113.0/24", "203.0.113.0/32",
			"203.0.113.1/32 203.0.113.2/31 203.0.113.4/30 203.0.113.8/29 203.0.113.16/28 203.0.113.32/27 203.0.113.64/26 203.0.113.128/25"},
		{"203.0.113.0/24", "203.0.113.255/32",
			"203.0.113.0/25 203.0.113.128/26 203.0.113.192/27 203.0.113.224/28 203.0.113.240/29 203.0.113.248/30 203.0.113.252/31 203.0.113.254/32"},
		{"203.0.113.0/24", "203.0.113.128/25", "203.0.113.0/25"},
		{"198.51.100.0/22", "198.51.101.0/24", "198.51.100.0/24 198.51.102.0/23"},
		{"203.0.113.0/24", "203.0.113.0/24", ""},
		{"203.0.113.8/29", "203.0.113.0/24", ""},
		{"203.0.113.0/24", "198.51.100.7/32", "203.0.113.0/24"},
		{"2001:db8::/64", "2001:db8::1/128", ""}, // filled below: 64 siblings
		{"2001:db8::/48", "2001:db8:0:1::/64",
			"2001:db8::/64 2001:db8:0:2::/63 2001:db8:0:4::/62 2001:db8:0:8::/61 2001:db8:0:10::/60 2001:db8:0:20::/59 2001:db8:0:40::/58 2001:db8:0:80::/57 2001:db8:0:100::/56 2001:db8:0:200::/55 2001:db8:0:400::/54 2001:db8:0:800::/53 2001:db8:0:1000::/52 2001:db8:0:2000::/51 2001:db8:0:4000::/50 2001:db8:0:8000::/49"},
		{"2001:db8::/32", "2001:db8::/32", ""},
		{"2001:db8::/64", "2001:db8:1::/64", "2001:db8::/64"},
	} {
		outer, hole := netip.MustParsePrefix(c.outer), netip.MustParsePrefix(c.hole)
		got := Exclude(outer, hole)
		if c.outer == "2001:db8::/64" && c.hole == "2001:db8::1/128" {
			if len(got) != 64 || got[0] != netip.MustParsePrefix("2001:db8::/128") || got[63] != netip.MustParsePrefix("2001:db8::8000:0:0:0/65") {
				t.Errorf("Exclude(%s, %s) = %d prefixes %v...", outer, hole, len(got), got[:min(len(got), 3)])
			}
		} else if s := join(got); s != c.want {
			t.Errorf("Exclude(%s, %s)\n got %s\nwant %s", outer, hole, s, c.want)
		}
		checkCover(t, outer, hole, got)
	}
}

// checkCover: the pieces are disjoint, sorted, inside outer, outside the
// hole, and with the hole they cover outer exactly (sizes add up).
func checkCover(t *testing.T, outer, hole netip.Prefix, got []netip.Prefix) {
	t.Helper()
	if !slices.IsSortedFunc(got, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) }) {
		t.Errorf("Exclude(%s, %s) not in address order: %v", outer, hole, got)
	}
	for i, p := range got {
		if !outer.Contains(p.Addr()) || p.Bits() < outer.Bits() || p.Overlaps(hole) {
			t.Errorf("Exclude(%s, %s): piece %s outside outer or overlapping the hole", outer, hole, p)
		}
		for _, q := range got[i+1:] {
			if p.Overlaps(q) {
				t.Errorf("Exclude(%s, %s): pieces %s and %s overlap", outer, hole, p, q)
			}
		}
	}
	// Sizes relative to outer, as fractions 2^-(bits-outer): they and the
	// hole's share sum to 1 when the hole is inside outer.
	if hole.Bits() > outer.Bits() && outer.Contains(hole.Addr()) {
		sum := 0.0
		for _, p := range append([]netip.Prefix{hole}, got...) {
			sum += 1 / float64(uint64(1)<<min(p.Bits()-outer.Bits(), 63))
		}
		if hole.Bits()-outer.Bits() < 53 && sum != 1 {
			t.Errorf("Exclude(%s, %s): pieces and hole cover %v of outer, want 1", outer, hole, sum)
		}
	}
}

func join(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}

// FuzzExclude: for any pair of one family, the pieces never overlap the
// hole, stay inside outer, and never overlap each other.
func FuzzExclude(f *testing.F) {
	f.Add([]byte{203, 0, 113, 0}, uint8(24), []byte{203, 0, 113, 7}, uint8(32))
	f.Add(make([]byte, 16), uint8(32), append(make([]byte, 15), 1), uint8(128))
	f.Fuzz(func(t *testing.T, oa []byte, ob uint8, ha []byte, hb uint8) {
		a, ok1 := netip.AddrFromSlice(oa)
		h, ok2 := netip.AddrFromSlice(ha)
		if !ok1 || !ok2 || a.Is4() != h.Is4() {
			return
		}
		outer, hole := netip.PrefixFrom(a, int(ob)%(a.BitLen()+1)).Masked(), netip.PrefixFrom(h, int(hb)%(h.BitLen()+1)).Masked()
		checkCover(t, outer, hole, Exclude(outer, hole))
	})
}
