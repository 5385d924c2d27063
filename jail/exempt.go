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
// user behind the same NAT, must not hide guesses for other users. The
// address itself has an entry (user "") that counts the attempts its pairs
// had set aside: past exemptCeiling the exemption stops, so no account
// makes an address free to guess for ever. Bounded: when full, the earliest
// added goes first.
type exemptions struct {
	seed maphash.Seed
	m    map[exemptKey]exemption
	fifo []exemptRef
	head int
	seq  uint64
	max  int
}

// exemptCeiling is how many attempts the exempt pairs of one address may
// set aside while their exemption lasts: far above any set of stale
// devices (each retry of the same password counts once anyway).
const exemptCeiling = 100

type exemption struct {
	since, until int64
	seq          uint64
	used         uint32 // on the address's own entry: attempts set aside
}

type exemptRef struct {
	a   exemptKey
	seq uint64
}

// exemptKey is an address as two words (IPv4 in its IPv4-mapped form) and
// a hash of the user (0 for the address's own entry), a plain-memory key
// that hashes fast.
type exemptKey [3]uint64

func (x *exemptions) key(ab addrBits, user string) exemptKey {
	k := exemptKey{ab.hi, ab.lo}
	if !ab.v6 {
		k = exemptKey{0, 0xffff<<32 | ab.lo}
	}
	if user != "" {
		// Mailu's user names are case-insensitive; 0 is the address.
		k[2] = maphash.String(x.seed, strings.ToLower(user)) | 1
	}
	return k
}

func newExemptions(max int) *exemptions {
	return &exemptions{seed: maphash.MakeSeed(), m: map[exemptKey]exemption{}, max: max}
}

// add exempts the pair (ab, user) from since to until. A login without a
// user name exempts nothing.
func (x *exemptions) add(ab addrBits, user string, since, until int64) {
	if user == "" {
		return
	}
	x.put(x.key(ab, user), since, until)
	x.put(x.key(ab, ""), since, until)
}

func (x *exemptions) put(a exemptKey, since, until int64) {
	if ex, ok := x.m[a]; ok {
		ex.since = min(ex.since, since)
		ex.until = max(ex.until, until)
		x.m[a] = ex
		return
	}
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
	x.seq++
	x.m[a] = exemption{since: since, until: until, seq: x.seq}
	x.fifo = append(x.fifo, exemptRef{a: a, seq: x.seq})
}

// has reports whether an attempt for user from ab at tn is set aside, and
// counts it against the address's ceiling.
func (x *exemptions) has(ab addrBits, user string, tn int64) bool {
	if len(x.m) == 0 || user == "" {
		return false
	}
	a := x.key(ab, user)
	ex, ok := x.m[a]
	if !ok {
		return false
	}
	if tn >= ex.until {
		if tn-ex.until > int64(time.Hour) {
			// Long past: forget it (a later out-of-order line is rare).
			delete(x.m, a)
		}
		return false
	}
	if tn < ex.since {
		return false
	}
	ak := x.key(ab, "")
	own, ok := x.m[ak]
	if !ok || own.used >= exemptCeiling {
		return false
	}
	own.used++
	x.m[ak] = own
	return true
}
