package parse

import (
	"net/netip"
	"time"
)

// connTable remembers, for the last N nginx connections, which client each
// *CONNID was opened for. It is direct-mapped on CONNID: nginx draws CONNIDs
// from one counter shared by all workers, so the slot a new connection takes
// holds the connection opened N CONNIDs earlier, i.e. the oldest. Its size
// is fixed at creation: no line can make it grow. The slots are allocated
// at the first "connected" line: a daemon that follows no nginx (or has not
// heard from it yet) does not keep megabytes of zeroes resident.
type connTable struct {
	n     int
	slots []connEntry // nil, or n entries
}

type connEntry struct {
	id     uint64
	worker uint64 // PID<<32 | TID
	addr   netip.Addr
	opened int64 // log time of the connected line, Unix ns (0 if unknown)
	flags  uint8
}

const (
	connUsed uint8 = 1 << iota
	connPoisoned
	connCounted
	connHasTS
	// connDockerTime: opened is Docker's time for the connected line
	// (otherwise nginx's own, to the second).
	connDockerTime
	// connSuspect: the connected line came in another client's
	// foreignWindow (frontGuard).
	connSuspect
)

// connReuseAfter: a "connected" line for a CONNID already in the table
// poisons it, unless the first one is older than this. Only a restarted
// nginx (its counter starts again at 1) reuses a CONNID, and then long after.
const connReuseAfter = 10 * time.Minute

func newConnTable(n int) connTable { return connTable{n: n} }

func (t *connTable) slot(id uint64) *connEntry {
	return &t.slots[id%uint64(len(t.slots))]
}

// open records a "connected" line. It returns false when the CONNID was
// already open (the connection is then poisoned).
func (t *connTable) open(id, worker uint64, addr netip.Addr, flags uint8, opened int64) bool {
	if t.slots == nil {
		t.slots = make([]connEntry, t.n)
	}
	e := t.slot(id)
	if e.flags&connUsed != 0 && e.id == id {
		if opened == 0 || e.opened == 0 || opened-e.opened < int64(connReuseAfter) {
			e.flags |= connPoisoned
			return false
		}
	}
	*e = connEntry{id: id, worker: worker, addr: addr, opened: opened, flags: connUsed | flags&(connHasTS|connDockerTime|connSuspect)}
	return true
}

// lookup returns the entry for id, or nil if it was never opened or was
// evicted.
func (t *connTable) lookup(id uint64) *connEntry {
	if t.slots == nil {
		return nil
	}
	e := t.slot(id)
	if e.flags&connUsed == 0 || e.id != id {
		return nil
	}
	return e
}

// reset forgets every connection (a new nginx container).
func (t *connTable) reset() {
	clear(t.slots)
}

// connOrder follows nginx's connection counter, shared by all workers: it
// only grows, so a "connected" line far below the highest CONNID seen was
// not written by nginx. Workers log out of order by a little (one takes a
// number, another logs first), hence connSlack.
type connOrder struct {
	max      uint64
	staleRun int
}

const (
	connSlack = 1024
	// staleReset: after this many stale "connected" lines in a row, the
	// highest CONNID is taken to be wrong (nginx restarted inside the same
	// container, or a forged far-future CONNID got through) and the order
	// starts again from the current line, so no mistake blinds the parser
	// for long.
	staleReset = 16
)

// Results of connOrder.check.
const (
	connInOrder = iota
	connStale
	connAhead
)

// check judges a "connected" line for id: stale (far below the highest
// seen), ahead (far above it: nginx's counter moves one by one with the
// lines it writes, so only a forged line jumps) or in order, which it
// records when trusted. The first line seen sets the order.
func (o *connOrder) check(id uint64, trusted bool) int {
	if o.max != 0 && id > o.max+connSlack {
		return connAhead
	}
	if o.max > connSlack && id < o.max-connSlack {
		o.staleRun++
		if o.staleRun < staleReset {
			return connStale
		}
		if !trusted {
			return connInOrder
		}
		o.max = id
	}
	if trusted {
		o.staleRun = 0
		o.max = max(o.max, id)
	}
	return connInOrder
}
