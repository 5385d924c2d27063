package jail

import "math/rand/v2"

// keyIndex maps window keys to slab slots: open addressing with linear
// probing and backward-shift deletion. Go's map degrades under the steady
// insert-and-evict churn of a flood of distinct addresses (tombstones
// lengthen every probe); this table has none. The hash is seeded per
// engine, so an attacker choosing addresses cannot aim at one bucket.
type keyIndex struct {
	// tab holds tag<<32 | slot+1; 0 is empty. tag is the hash's low 32
	// bits, which also give the home position, so moving an entry never
	// needs the key.
	tab    []uint64
	mask   uint32
	n      int
	s0, s1 uint64
}

func newKeyIndex() *keyIndex {
	ix := &keyIndex{s0: rand.Uint64(), s1: rand.Uint64()}
	ix.tab = make([]uint64, 1024)
	ix.mask = 1023
	return ix
}

func fmix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

func (ix *keyIndex) hash(k wkey) uint32 {
	meta := uint64(k.jail)<<16 | uint64(k.bits)<<8
	if k.v6 {
		meta |= 1
	}
	return uint32(fmix64(fmix64(k.hi^ix.s0)+k.lo) ^ fmix64(meta^ix.s1))
}

// find returns the slot of k.
func (ix *keyIndex) find(k wkey, t *tracker) (int32, bool) {
	h := ix.hash(k)
	for i := h & ix.mask; ; i = (i + 1) & ix.mask {
		e := ix.tab[i]
		if e == 0 {
			return 0, false
		}
		if uint32(e>>32) == h && t.at(int32(uint32(e)-1)).key == k {
			return int32(uint32(e) - 1), true
		}
	}
}

// insert adds k (not present) at slot.
func (ix *keyIndex) insert(k wkey, slot int32) {
	if (ix.n+1)*2 > len(ix.tab) {
		ix.grow()
	}
	ix.put(uint64(ix.hash(k))<<32 | uint64(slot+1))
	ix.n++
}

func (ix *keyIndex) put(e uint64) {
	i := uint32(e>>32) & ix.mask
	for ix.tab[i] != 0 {
		i = (i + 1) & ix.mask
	}
	ix.tab[i] = e
}

func (ix *keyIndex) grow() {
	old := ix.tab
	ix.tab = make([]uint64, 2*len(old))
	ix.mask = uint32(len(ix.tab) - 1)
	for _, e := range old {
		if e != 0 {
			ix.put(e)
		}
	}
}

// remove deletes k, shifting back the entries that probed past it.
func (ix *keyIndex) remove(k wkey, t *tracker) {
	h := ix.hash(k)
	i := h & ix.mask
	for {
		e := ix.tab[i]
		if e == 0 {
			return
		}
		if uint32(e>>32) == h && t.at(int32(uint32(e)-1)).key == k {
			break
		}
		i = (i + 1) & ix.mask
	}
	ix.tab[i] = 0
	ix.n--
	for j := (i + 1) & ix.mask; ix.tab[j] != 0; j = (j + 1) & ix.mask {
		home := uint32(ix.tab[j]>>32) & ix.mask
		// The entry at j may move to the hole at i unless its home lies
		// cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			ix.tab[i], ix.tab[j] = ix.tab[j], 0
			i = j
		}
	}
}

// reset empties the index, keeping its size.
func (ix *keyIndex) reset() {
	clear(ix.tab)
	ix.n = 0
}
