// Package prefix is the one place that says what an address range means to
// bansd: IPv4-mapped IPv6 is the IPv4 range it maps, and host bits are
// dropped. Config, control API, engine, ban manager and sources all go
// through Normalize, so a range cannot pass one check in one spelling and
// be enforced in another.
package prefix

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrInvalid is wrapped by every error of Normalize and Parse.
var ErrInvalid = errors.New("invalid prefix")

// Normalize unmaps an IPv4-mapped IPv6 prefix (::ffff:a.b.c.d/n, n >= 96)
// to a.b.c.d/(n-96) and masks the host bits. Mapped prefixes shorter than
// /96 (which cover more than IPv4) are errors.
func Normalize(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("%w: %s", ErrInvalid, p)
	}
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() {
		if bits < 96 {
			return netip.Prefix{}, fmt.Errorf("%w: %s: IPv4-mapped with a prefix shorter than /96", ErrInvalid, p)
		}
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

// Parse accepts a CIDR or a bare address (taken as /32 or /128) and
// returns it normalized.
func Parse(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%w: bad CIDR %q", ErrInvalid, s)
		}
		return Normalize(p)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: bad address %q", ErrInvalid, s)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%w: %q: zones are not allowed", ErrInvalid, s)
	}
	return Normalize(netip.PrefixFrom(a, a.BitLen()))
}
