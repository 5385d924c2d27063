package jail

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// wkey names one window: a jail and the network (or address) it counts.
// Addresses are kept as two integers so the map hashes plain memory.
type wkey struct {
	hi, lo uint64
	jail   uint16
	bits   uint8
	v6     bool
}

func (k wkey) prefix() netip.Prefix {
	if !k.v6 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(k.lo))
		return netip.PrefixFrom(netip.AddrFrom4(b), int(k.bits))
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k.hi)
	binary.BigEndian.PutUint64(b[8:], k.lo)
	return netip.PrefixFrom(netip.AddrFrom16(b), int(k.bits))
}

// addrBits is an address as integers: IPv4 in the low 32 bits of lo.
type addrBits struct {
	hi, lo uint64
	v6     bool
}

func toBits(a netip.Addr) addrBits {
	if a.Is4() {
		b := a.As4()
		return addrBits{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	hi, lo := split6(a)
	return addrBits{hi: hi, lo: lo, v6: true}
}

// key masks the address to bits; ok is false when the jail ignores the family.
func (a addrBits) key(jail uint16, p4, p6 int) (wkey, bool) {
	if !a.v6 {
		if p4 == 0 {
			return wkey{}, false
		}
		m := uint64(^uint32(0) << (32 - p4))
		return wkey{lo: a.lo & m, jail: jail, bits: uint8(p4)}, true
	}
	if p6 == 0 {
		return wkey{}, false
	}
	mhi, mlo := mask6(p6)
	return wkey{hi: a.hi & mhi, lo: a.lo & mlo, jail: jail, bits: uint8(p6), v6: true}, true
}

// hash is a 64-bit digest of the address, for counting distinct addresses
// of a network. A collision can only make a network look smaller.
func (a addrBits) hash() uint64 {
	if !a.v6 {
		return a.lo | 1<<63
	}
	return a.lo ^ bits.RotateLeft64(a.hi*0x9e3779b97f4a7c15, 31)
}
