package jail

import (
	"strings"
)

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
