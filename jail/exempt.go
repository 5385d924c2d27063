package jail

import (
	"hash/maphash"
	"strings"
	"time"
)

// exemptions are the (address, user) pairs that logged in successfully:
// that user's stale passwords retried from that address (several devices,
// a phone changing networks) do not count, as Mailu's own limiter does. It
// exempts the pair, not the address: one login an attacker owns, or a real
// user behind the same NAT, must not hide guesses for other users. Each
// address also counts the attempts its pairs set aside: past exemptCeiling
// the exemption stops, so no account makes an address free to guess for
// ever. Bounded: when full, the earliest added address goes first.
//
// One map entry per address, its users inline and changed in place: a
// login or an attempt is one map read, which keeps successes (the most
// common line of a busy server) cheap.
type exemptions struct {
	seed maphash.Seed
	m    map[exemptKey]*exemptAddr
	fifo []exemptRef
	head int
	seq  uint64
	max  int
}

// exemptCeiling is how many attempts the exempt pairs of one address may
// set aside while their exemption lasts: far above any set of stale
// devices (each retry of the same password counts once anyway).
const exemptCeiling = 100

// exemptUsers is how many users one address holds exempt at once (a
// household or a small office behind one NAT); a further login replaces
// the one whose exemption ends first, so the newest logins are kept.
const exemptUsers = 4

type exemptAddr struct {
	seq   uint64
	used  uint32 // attempts set aside, against exemptCeiling
	users [exemptUsers]exemptUser
}

// exemptUser is one pair's exemption; user 0 is an empty slot.
type exemptUser struct {
	user         uint64
	since, until int64
}

type exemptRef struct {
	a   exemptKey
	seq uint64
}

// exemptKey is an address as two words (IPv4 in its IPv4-mapped form), a
// plain-memory key that hashes fast.
type exemptKey [2]uint64

func toExemptKey(ab addrBits) exemptKey {
	if !ab.v6 {
		return exemptKey{0, 0xffff<<32 | ab.lo}
	}
	return exemptKey{ab.hi, ab.lo}
}

// userHash is never 0, the empty slot; Mailu's user names are
// case-insensitive.
func (x *exemptions) userHash(user string) uint64 {
	// ASCII names (Mailu's are addresses) fold into a stack buffer, with
	// no allocation; the rest go through strings.ToLower.
	var buf [64]byte
	if len(user) <= len(buf) {
		ascii := true
		for i := 0; i < len(user) && ascii; i++ {
			c := user[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf[i] = c
			ascii = c < 0x80
		}
		if ascii {
			return maphash.Bytes(x.seed, buf[:len(user)]) | 1
		}
	}
	return maphash.String(x.seed, strings.ToLower(user)) | 1
}

func newExemptions(max int) *exemptions {
	return &exemptions{seed: maphash.MakeSeed(), m: map[exemptKey]*exemptAddr{}, max: max}
}

// add exempts the pair (ab, user) from since to until. A login without a
// user name exempts nothing.
func (x *exemptions) add(ab addrBits, user string, since, until int64) {
	if user == "" {
		return
	}
	k := toExemptKey(ab)
	ex, ok := x.m[k]
	if !ok {
		x.evict()
		x.seq++
		ex = &exemptAddr{seq: x.seq}
		x.m[k] = ex
		x.fifo = append(x.fifo, exemptRef{a: k, seq: x.seq})
	}
	ex.put(x.userHash(user), since, until)
}

// evict makes room for one more address.
func (x *exemptions) evict() {
	for len(x.m) >= x.max && x.head < len(x.fifo) {
		r := x.fifo[x.head]
		x.head++
		if ex, ok := x.m[r.a]; ok && ex.seq == r.seq {
			delete(x.m, r.a)
		}
	}
	if x.head > len(x.fifo)/2 {
		x.fifo = append(x.fifo[:0], x.fifo[x.head:]...)
		x.head = 0
	}
}

func (ex *exemptAddr) put(user uint64, since, until int64) {
	slot := 0
	for i := range ex.users {
		u := &ex.users[i]
		if u.user == user {
			u.since = min(u.since, since)
			u.until = max(u.until, until)
			return
		}
		if u.user == 0 || (ex.users[slot].user != 0 && u.until < ex.users[slot].until) {
			slot = i
		}
	}
	ex.users[slot] = exemptUser{user: user, since: since, until: until}
}

// until is when the address's last exemption ends.
func (ex *exemptAddr) until() int64 {
	var t int64
	for _, u := range ex.users {
		t = max(t, u.until)
	}
	return t
}

// has reports whether an attempt for user from ab at tn is set aside, and
// counts it against the address's ceiling.
func (x *exemptions) has(ab addrBits, user string, tn int64) bool {
	if len(x.m) == 0 || user == "" {
		return false
	}
	k := toExemptKey(ab)
	ex, ok := x.m[k]
	if !ok {
		return false
	}
	if tn-ex.until() > int64(time.Hour) {
		// Long past: forget it (a later out-of-order line is rare).
		delete(x.m, k)
		return false
	}
	h := x.userHash(user)
	for _, u := range ex.users {
		if u.user != h {
			continue
		}
		if tn < u.since || tn >= u.until || ex.used >= exemptCeiling {
			return false
		}
		ex.used++
		return true
	}
	return false
}

// exemptUntil is when ab's exemptions end, zero if it has none.
func (x *exemptions) exemptUntil(ab addrBits) int64 {
	ex, ok := x.m[toExemptKey(ab)]
	if !ok {
		return 0
	}
	return ex.until()
}
