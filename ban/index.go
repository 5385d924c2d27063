package ban

import (
	"iter"
	"math"
	"net/netip"
	"time"

	"github.com/bansd/bansd/store"
)

// index is the Manager's in-memory copy of the store's live bans, kept
// small: bansd holds one entry per ban for as long as it runs (10,000 bans
// took 2.3 MB as a map[netip.Prefix]store.Ban). Keys and values hold no
// pointer, so the collector never scans the map; jail, reason and flags are
// shared through attrs. A ban read back has no Evidence: the store keeps
// it (store.DB.WithEvidence). The Manager's mu guards it.
type index struct {
	bans  map[indexKey]indexEntry
	attrs attrTable
	// lengths counts the targets per family (0: IPv4) and prefix length,
	// so that the search for covering bans tries only the lengths that
	// are banned.
	lengths [2][129]int32
}

// indexKey is a target: its address in 16-byte form, its prefix length and
// its family. A netip.Prefix is 32 bytes and holds a pointer.
type indexKey [18]byte

const (
	keyBits   = 16
	keyFamily = 17 // 4 or 6: an IPv4-mapped IPv6 target stays distinct from its IPv4 form
)

// indexEntry is a ban without its target and evidence. Times are unix
// nanoseconds with 0 for the zero time, as the store encodes them, so a ban
// reads back from the index as it would from the store (store.Forever
// included).
type indexEntry struct {
	since, until int64
	attrs        uint32 // an id of the index's attrTable
	level        uint32
}

// banAttrs is what many bans share: a jail's bans all carry the same few
// reasons, a blocklist's one.
type banAttrs struct {
	jail, reason   string
	manual, pulled bool
}

// attrTable interns banAttrs. Entries are counted and freed with their
// last ban: operators choose a reason per manual ban (bansctl ban
// --reason), and the table must not keep every one they ever gave.
type attrTable struct {
	ids  map[banAttrs]uint32
	byID []attrSlot
	free []uint32
}

type attrSlot struct {
	attrs banAttrs
	refs  int32
}

func newIndex() *index {
	return &index{bans: map[indexKey]indexEntry{}, attrs: attrTable{ids: map[banAttrs]uint32{}}}
}

func indexKeyOf(t netip.Prefix) indexKey {
	var k indexKey
	a16 := t.Addr().As16()
	copy(k[:keyBits], a16[:])
	k[keyBits] = byte(t.Bits())
	k[keyFamily] = 6
	if t.Addr().Is4() {
		k[keyFamily] = 4
	}
	return k
}

func (k indexKey) target() netip.Prefix {
	a := netip.AddrFrom16([16]byte(k[:keyBits]))
	if k[keyFamily] == 4 {
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, int(k[keyBits]))
}

func family(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// ban is e as a store.Ban of target t.
func (x *index) ban(t netip.Prefix, e indexEntry) store.Ban {
	a := x.attrs.byID[e.attrs].attrs
	return store.Ban{Target: t, Jail: a.jail, Reason: a.reason, Since: fromUnixNano(e.since), Until: fromUnixNano(e.until),
		Level: int(e.level), Manual: a.manual, Pulled: a.pulled}
}

// get returns the ban of target t, live or not.
func (x *index) get(t netip.Prefix) (store.Ban, bool) {
	e, ok := x.bans[indexKeyOf(t)]
	if !ok {
		return store.Ban{}, false
	}
	return x.ban(t, e), true
}

// put makes b the ban of its (normalized) target, without its Evidence.
// Level is kept as the store keeps it: at least 0 (and here at most
// MaxUint32, far beyond any escalation).
func (x *index) put(b store.Ban) {
	k := indexKeyOf(b.Target)
	e := indexEntry{since: unixNano(b.Since), until: unixNano(b.Until), level: uint32(min(max(b.Level, 0), math.MaxUint32)),
		attrs: x.attrs.ref(banAttrs{jail: b.Jail, reason: b.Reason, manual: b.Manual, pulled: b.Pulled})}
	if old, ok := x.bans[k]; ok {
		// After the ref: equal attrs keep their entry.
		x.attrs.unref(old.attrs)
	} else {
		x.lengths[family(b.Target.Addr())][b.Target.Bits()]++
	}
	x.bans[k] = e
}

// delete takes t's ban out, if there is one.
func (x *index) delete(t netip.Prefix) {
	k := indexKeyOf(t)
	if e, ok := x.bans[k]; ok {
		x.attrs.unref(e.attrs)
		x.lengths[family(t.Addr())][t.Bits()]--
		delete(x.bans, k)
	}
}

func (x *index) len() int { return len(x.bans) }

// all yields every ban, live or not, in no order. The loop may delete the
// ban it is given.
func (x *index) all() iter.Seq[store.Ban] {
	return func(yield func(store.Ban) bool) {
		for k, e := range x.bans {
			if !yield(x.ban(k.target(), e)) {
				return
			}
		}
	}
}

// hasLength says whether any target of a's family is a prefix of length
// bits.
func (x *index) hasLength(a netip.Addr, bits int) bool {
	return x.lengths[family(a)][bits] > 0
}

// ref returns a's id, counting one more ban that holds it.
func (t *attrTable) ref(a banAttrs) uint32 {
	if id, ok := t.ids[a]; ok {
		t.byID[id].refs++
		return id
	}
	var id uint32
	if n := len(t.free); n > 0 {
		id, t.free = t.free[n-1], t.free[:n-1]
		t.byID[id] = attrSlot{attrs: a, refs: 1}
	} else {
		id = uint32(len(t.byID))
		t.byID = append(t.byID, attrSlot{attrs: a, refs: 1})
	}
	t.ids[a] = id
	return id
}

// unref counts one ban fewer that holds id and frees id with the last.
func (t *attrTable) unref(id uint32) {
	s := &t.byID[id]
	if s.refs--; s.refs > 0 {
		return
	}
	delete(t.ids, s.attrs)
	*s = attrSlot{}
	t.free = append(t.free, id)
}
