package jail

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"strings"
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

// attempt is one counted attempt (or several, for Dovecot's "N attempts").
type attempt struct {
	t  int64 // log time, unix ns
	n  int32
	fp uint64 // dedup fingerprint; 0 = never deduplicated
}

// addrSeen is one distinct address of a network window.
type addrSeen struct {
	h uint64
	t int64
}

// window is the state of one key. Entries are few: a window is reset when
// it reaches maxretry, so it holds fewer than maxretry entries (capped at
// maxEntries for huge maxretry values).
type window struct {
	key        wkey
	prev, next int32
	newest     int64
	ent        []attempt
	addrs      []addrSeen
	ev         []string
	evNext     int32
	kinds      uint32
	port       uint16
}

const maxEntries = 256

// tracker holds every window of every jail, bounded by max, evicting the
// least recently updated.
type tracker struct {
	ix *keyIndex
	// chunks hold the windows; fixed-size chunks never move, so growing
	// to max_tracked copies nothing.
	chunks     []*[chunkSize]window
	nslots     int32
	free       []int32
	head, tail int32 // most / least recently used; -1 when empty
	max        int
	evicted    uint64
}

const chunkSize = 1024

func (t *tracker) at(i int32) *window { return &t.chunks[i/chunkSize][i%chunkSize] }

func newTracker(max int) *tracker {
	return &tracker{ix: newKeyIndex(), head: -1, tail: -1, max: max}
}

func (t *tracker) len() int { return t.ix.n }

// get returns the window of k, creating it (and evicting the oldest) when
// needed, and marks it most recently used.
func (t *tracker) get(k wkey) *window {
	if i, ok := t.ix.find(k, t); ok {
		t.touch(i)
		return t.at(i)
	}
	if t.ix.n >= t.max && t.tail >= 0 {
		t.remove(t.tail)
		t.evicted++
	}
	var i int32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		if t.nslots%chunkSize == 0 {
			t.chunks = append(t.chunks, new([chunkSize]window))
		}
		i = t.nslots
		t.nslots++
	}
	w := t.at(i)
	w.key = k
	t.ix.insert(k, i)
	t.pushFront(i)
	return w
}

func (t *tracker) lookup(k wkey) *window {
	if i, ok := t.ix.find(k, t); ok {
		return t.at(i)
	}
	return nil
}

// remove drops the window. Small slices are kept for the slot's next
// window; larger ones are released, or every slot would end up holding the
// largest window it ever had.
func (t *tracker) remove(i int32) {
	w := t.at(i)
	t.ix.remove(w.key, t)
	t.unlink(i)
	clear(w.ev) // evidence strings must not outlive the window
	*w = window{ent: keepSmall(w.ent), addrs: keepSmall(w.addrs), ev: keepSmall(w.ev)}
	t.free = append(t.free, i)
}

func keepSmall[S ~[]E, E any](s S) S {
	if cap(s) > 2 {
		return nil
	}
	return s[:0]
}

func (t *tracker) removeKey(k wkey) {
	if i, ok := t.ix.find(k, t); ok {
		t.remove(i)
	}
}

// each calls fn for every window, most recently used first. fn may not
// add or remove windows.
func (t *tracker) each(fn func(i int32, w *window)) {
	for i := t.head; i >= 0; i = t.at(i).next {
		fn(i, t.at(i))
	}
}

// rekey changes every window's key (or drops it when keep says so) and
// rebuilds the index.
func (t *tracker) rekey(fn func(k wkey) (wkey, bool)) {
	var drop []int32
	t.each(func(i int32, w *window) {
		if nk, ok := fn(w.key); ok {
			w.key = nk
		} else {
			drop = append(drop, i)
		}
	})
	for _, i := range drop {
		t.unlink(i)
		clear(t.at(i).ev)
		*t.at(i) = window{}
		t.free = append(t.free, i)
	}
	t.ix.reset()
	t.each(func(i int32, w *window) { t.ix.insert(w.key, i) })
}

func (t *tracker) touch(i int32) {
	if t.head == i {
		return
	}
	t.unlink(i)
	t.pushFront(i)
}

func (t *tracker) pushFront(i int32) {
	w := t.at(i)
	w.prev, w.next = -1, t.head
	if t.head >= 0 {
		t.at(t.head).prev = i
	}
	t.head = i
	if t.tail < 0 {
		t.tail = i
	}
}

func (t *tracker) unlink(i int32) {
	w := t.at(i)
	if w.prev >= 0 {
		t.at(w.prev).next = w.next
	} else if t.head == i {
		t.head = w.next
	}
	if w.next >= 0 {
		t.at(w.next).prev = w.prev
	} else if t.tail == i {
		t.tail = w.prev
	}
	w.prev, w.next = -1, -1
}

// addResult is what one attempt did to a window.
type addResult uint8

const (
	added addResult = iota
	deduped
	tooOld
	reached // count >= maxretry (and enough addresses): decide
)

// add counts n attempts at log time tn into w. find is the jail's findtime
// in ns; minAddr > 1 makes it a network window.
func (w *window) add(tn int64, n int32, fp, ah uint64, find int64, maxRetry, minAddr int) (addResult, int) {
	if w.newest == 0 || tn > w.newest {
		w.newest = tn
	}
	cutoff := w.newest - find
	if tn <= cutoff {
		// Older than the window that already ends later: it can no longer
		// take part in any count.
		return tooOld, 0
	}
	// One pass: expire, find a duplicate, sum.
	sum := 0
	dup := false
	kept := w.ent[:0]
	for _, e := range w.ent {
		if e.t <= cutoff {
			continue
		}
		if fp != 0 && e.fp == fp {
			dup = true
			if tn > e.t {
				e.t = tn
			}
		}
		sum += int(e.n)
		kept = append(kept, e)
	}
	w.ent = kept
	if dup {
		return deduped, sum
	}
	w.ent = append(w.ent, attempt{t: tn, n: n, fp: fp})
	sum += int(n)
	if minAddr > 1 {
		w.see(ah, tn, minAddr)
	}
	if sum >= maxRetry {
		if minAddr <= 1 || w.distinct(cutoff) >= minAddr {
			return reached, sum
		}
		// Enough attempts but too few addresses: the oldest entries can go
		// while the rest still reach maxretry, since they expire first.
		w.sortByTime()
		drop := 0
		for drop < len(w.ent)-1 && sum-int(w.ent[drop].n) >= maxRetry {
			sum -= int(w.ent[drop].n)
			drop++
		}
		w.ent = append(w.ent[:0], w.ent[drop:]...)
	}
	if len(w.ent) > maxEntries {
		// Only for maxretry > maxEntries: merge the two oldest, dating the
		// sum at the newer one (a little longer in the window, never less).
		w.sortByTime()
		w.ent[1].n += w.ent[0].n
		w.ent[1].fp = 0
		w.ent = append(w.ent[:0], w.ent[1:]...)
	}
	return added, sum
}

// see records that address h took part at tn. Only the minAddr most
// recently seen addresses matter to "at least minAddr within the window",
// so the set never holds more.
func (w *window) see(h uint64, tn int64, minAddr int) {
	oldest := -1
	for i := range w.addrs {
		if w.addrs[i].h == h {
			if tn > w.addrs[i].t {
				w.addrs[i].t = tn
			}
			return
		}
		if oldest < 0 || w.addrs[i].t < w.addrs[oldest].t {
			oldest = i
		}
	}
	if len(w.addrs) < minAddr {
		w.addrs = append(w.addrs, addrSeen{h: h, t: tn})
		return
	}
	if tn > w.addrs[oldest].t {
		w.addrs[oldest] = addrSeen{h: h, t: tn}
	}
}

func (w *window) distinct(cutoff int64) int {
	n := 0
	for _, a := range w.addrs {
		if a.t > cutoff {
			n++
		}
	}
	return n
}

// count is the live count and first time as of the window's newest event.
func (w *window) count(find int64) (sum int, first int64) {
	cutoff := w.newest - find
	for _, e := range w.ent {
		if e.t > cutoff {
			sum += int(e.n)
			if first == 0 || e.t < first {
				first = e.t
			}
		}
	}
	return sum, first
}

// sortByTime is an insertion sort: entries are few and nearly in order.
func (w *window) sortByTime() {
	e := w.ent
	for i := 1; i < len(e); i++ {
		for j := i; j > 0 && e[j].t < e[j-1].t; j-- {
			e[j], e[j-1] = e[j-1], e[j]
		}
	}
}

// maxEvidenceBytes bounds each kept evidence line: the attacker writes
// most of it.
const maxEvidenceBytes = 512

// evidenceCopy makes a line safe to keep: bounded, and not sharing memory
// with whatever buffer it came from.
func evidenceCopy(s string) string {
	if len(s) > maxEvidenceBytes {
		s = s[:maxEvidenceBytes]
	}
	return strings.Clone(s)
}

func (w *window) remember(line string, keep int) {
	if keep <= 0 {
		return
	}
	if len(w.ev) < keep {
		w.ev = append(w.ev, line)
		return
	}
	w.ev[w.evNext] = line
	w.evNext = (w.evNext + 1) % int32(len(w.ev))
}

// evidence returns the kept lines, oldest first.
func (w *window) evidence() []string {
	out := make([]string, 0, len(w.ev))
	out = append(out, w.ev[w.evNext:]...)
	return append(out, w.ev[:w.evNext]...)
}
