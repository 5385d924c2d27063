package prefix

import (
	"net/netip"
)

// Exclude returns the CIDRs that cover outer except hole, in address
// order: one sibling per bit between the two lengths (at most 32 for IPv4,
// 128 for IPv6). Both must be normalized and of one family. When hole does
// not lie inside outer it returns outer; when hole covers outer, nothing.
func Exclude(outer, hole netip.Prefix) []netip.Prefix {
	if hole.Bits() <= outer.Bits() {
		if hole.Contains(outer.Addr()) {
			return nil
		}
		return []netip.Prefix{outer}
	}
	if !outer.Contains(hole.Addr()) {
		return []netip.Prefix{outer}
	}
	b := hole.Addr().As16()
	off := 0
	if hole.Addr().Is4() {
		off = 96
	}
	var low, high []netip.Prefix
	for n := outer.Bits() + 1; n <= hole.Bits(); n++ {
		// The sibling at length n: hole's first n bits with bit n-1 flipped.
		s := b
		i := off + n - 1
		s[i/8] ^= 0x80 >> (i % 8)
		a := netip.AddrFrom16(s)
		if off == 96 {
			a = a.Unmap()
		}
		p := netip.PrefixFrom(a, n).Masked()
		// Siblings below the hole come wider first; those above, narrower first.
		if b[i/8]&(0x80>>(i%8)) != 0 {
			low = append(low, p)
		} else {
			high = append(high, p)
		}
	}
	out := low
	for i := len(high) - 1; i >= 0; i-- {
		out = append(out, high[i])
	}
	return out
}
