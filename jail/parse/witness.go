package parse

import (
	"hash/maphash"
	"net/netip"
	"time"

	"github.com/bansd/bansd/sources"
)

// Kernel mode. Live, bansd runs where Docker's NAT for Mailu's published
// ports is, and the kernel keeps a record of every client that completed a
// TCP handshake with one of them (address and source port; see package
// seen). In this mode a line counts against an address only if that record
// holds the address and port the line is about. An attacker can write whole
// log lines through a username, and choose when nginx writes them, but he
// cannot make the kernel record a handshake he did not complete from that
// address and port: a spoofed SYN never gets past conntrack's ASSURED state.
// So no text rule and no timing is trusted here; what is left to forge is a
// line about a connection that really exists right now, and the bounds below
// let each such connection count no more than it could really have made.
//
// Without a Witness (replay, or a remote proxy the kernel cannot see past)
// the text rules of parse_front.go apply instead.

// Witness is the kernel's record of who connected. Saw reports whether a
// completed TCP handshake from addr and port (0: any port of addr) to a port
// Mailu publishes was recorded recently. An error means the record could not
// be read: the line is not counted (fail closed).
type Witness interface {
	Saw(addr netip.Addr, port uint16) (bool, error)
}

// Reasons a line is not counted in kernel mode (keys of
// ParserStats.Uncorroborated).
const (
	// UnseenConnection: the kernel has no handshake from that address and
	// port (forged, or older than the record keeps).
	UnseenConnection = "unseen"
	// UnseenAlias: a second "connected" line for a client address and port
	// that already has an open nginx connection: one kernel connection is
	// one nginx connection.
	UnseenAlias = "alias"
	// UnseenSpent: the kernel connection already counted all the attempts
	// it can really have made (one nginx failure, one Dovecot line of at
	// most 5 attempts, 5 admin attempts).
	UnseenSpent = "spent"
	// UnseenUnopened: an nginx failure on a *CONNID that no corroborated
	// "connected" line opened for that client address and worker.
	UnseenUnopened = "unopened"
	// UnseenError: the kernel record could not be read.
	UnseenError = "witness-error"
)

type unseenReason uint8

const (
	unseenConnection unseenReason = iota
	unseenAlias
	unseenSpent
	unseenUnopened
	unseenError
	unseenReasonCount
)

var unseenNames = [unseenReasonCount]string{
	unseenConnection: UnseenConnection,
	unseenAlias:      UnseenAlias,
	unseenSpent:      UnseenSpent,
	unseenUnopened:   UnseenUnopened,
	unseenError:      UnseenError,
}

// Bounds of kernel mode.
const (
	// tupleReuse: within this much log time, a client address and port
	// name one kernel connection (unless an nginx failure closed it).
	tupleReuse = 10 * time.Minute
	// connCandidates: "connected" lines kept per *CONNID. nginx writes one;
	// forged ones the kernel corroborates (the forger's own other
	// connections) may add some. A failure counts if it matches any of
	// them, so forged lines cannot push the real one out.
	connCandidates = 4
	// Attempts one kernel connection can really carry, by origin: nginx
	// closes a connection after a failed AUTH (a rate-limited one may wait
	// and retry); Dovecot writes one line per connection and allows a
	// handful of attempts in it; admin logs each of those attempts.
	maxNginxFailures   = 1
	maxNginxRateLimits = 5
	maxDovecotLines    = 1
	maxDovecotAttempts = 5
	maxAdminAttempts   = 5
)

// tupleTable remembers what each kernel connection (address, port, origin)
// already counted. It is direct-mapped on a keyed hash and allocated whole
// at its first take: no input makes it grow, and a collision only forgets
// the older entry.
type tupleTable struct {
	seed  maphash.Seed
	n     int
	slots []tupleEntry // nil, or n entries
}

type tupleEntry struct {
	addr   netip.Addr
	port   uint16
	origin Origin
	used   uint8
	at     int64 // log time of its first line, Unix ns
}

func newTupleTable(n int) tupleTable {
	return tupleTable{seed: maphash.MakeSeed(), n: n}
}

func (t *tupleTable) slot(a netip.Addr, port uint16, o Origin) *tupleEntry {
	var h maphash.Hash
	h.SetSeed(t.seed)
	b := a.As16()
	h.Write(b[:])
	h.WriteByte(byte(port >> 8))
	h.WriteByte(byte(port))
	h.WriteByte(byte(o))
	return &t.slots[h.Sum64()%uint64(len(t.slots))]
}

// take grants up to n of the limit units the connection (a, port) may
// count at log time at, and returns how many it granted.
func (t *tupleTable) take(a netip.Addr, port uint16, o Origin, at int64, n, limit int) int {
	if t.slots == nil {
		t.slots = make([]tupleEntry, t.n)
	}
	e := t.slot(a, port, o)
	if e.addr != a || e.port != port || e.origin != o || at-e.at >= int64(tupleReuse) || e.at-at >= int64(tupleReuse) {
		*e = tupleEntry{addr: a, port: port, origin: o, at: at}
	}
	grant := min(n, limit-int(e.used))
	if grant <= 0 {
		return 0
	}
	e.used += uint8(grant)
	return grant
}

// release forgets the connection (a, port): it was closed, and the same
// port may open a new one at once.
func (t *tupleTable) release(a netip.Addr, port uint16, o Origin) {
	if t.slots == nil {
		return
	}
	if e := t.slot(a, port, o); e.addr == a && e.port == port && e.origin == o {
		*e = tupleEntry{}
	}
}

// kconnTable maps nginx *CONNIDs to the corroborated "connected" lines that
// opened them. Direct-mapped on CONNID (nginx's counter only grows, so a
// slot's previous owner is the oldest connection) and allocated whole at
// its first "connected" line.
type kconnTable struct {
	n     int
	slots []kconn // nil, or n entries
}

type kconn struct {
	id   uint64
	n    uint8
	cand [connCandidates]kcand
}

type kcand struct {
	worker uint64
	addr   netip.Addr
	port   uint16
	used   uint8 // failures counted on it
	at     int64 // log time of its "connected" line
}

func newKconnTable(n int) kconnTable { return kconnTable{n: n} }

// open adds a corroborated "connected" line. Candidates older than
// tupleReuse (a CONNID reused by a restarted nginx) make room.
func (t *kconnTable) open(id, worker uint64, a netip.Addr, port uint16, at int64) {
	if t.slots == nil {
		t.slots = make([]kconn, t.n)
	}
	s := &t.slots[id%uint64(len(t.slots))]
	if s.id != id {
		*s = kconn{id: id}
	}
	c := kcand{worker: worker, addr: a, port: port, at: at}
	for i := range s.n {
		if at-s.cand[i].at >= int64(tupleReuse) {
			s.cand[i] = c
			return
		}
	}
	if int(s.n) < connCandidates {
		s.cand[s.n] = c
		s.n++
	}
}

// find returns the candidate of CONNID id for that worker and address.
func (t *kconnTable) find(id, worker uint64, a netip.Addr) *kcand {
	if t.slots == nil {
		return nil
	}
	s := &t.slots[id%uint64(len(t.slots))]
	if s.id != id {
		return nil
	}
	for i := range s.n {
		if c := &s.cand[i]; c.worker == worker && c.addr == a {
			return c
		}
	}
	return nil
}

func (t *kconnTable) reset() { clear(t.slots) }

// saw asks the witness, counting failures as reasons.
func (p *Parser) saw(a netip.Addr, port uint16) bool {
	ok, err := p.witness.Saw(a, port)
	switch {
	case err != nil:
		p.notSeen(unseenError)
		return false
	case !ok:
		p.notSeen(unseenConnection)
		return false
	}
	return true
}

// logNanos is the log time of a line that makes no event (a "connected"
// line), as Parse chooses it for events, without the clock fallback.
func logNanos(l sources.Line, own lineTime) int64 {
	switch {
	case !l.Time.IsZero():
		return l.Time.UnixNano()
	case own.ok:
		return own.t.UnixNano()
	}
	return 0
}

// parseFrontKernel handles one front line in kernel mode.
func (p *Parser) parseFrontKernel(l sources.Line) (Event, lineTime, bool) {
	if l.Container != p.frontContainer {
		// A recreated front runs a new nginx whose CONNIDs start again.
		// (A restart inside the container needs no reset: stale
		// candidates make room by age, and a forged start line must
		// not make bansd forget anyone.)
		p.kconns.reset()
		p.frontContainer = l.Container
	}
	text := l.Text
	if isHTTPAccess(text) {
		p.ignore(ignoreHTTPAccess)
		return Event{}, lineTime{}, false
	}
	if h, ok := parseNginxHeader(text); ok {
		p.ignoreNginx(h)
		return p.nginxKernel(l, h)
	}
	if isDovecotLogin(text) {
		p.ignore(ignoreDovecotOther)
		// Parse corroborates it, as every event naming its client.
		return parseDovecot(text, p.yearRef(l))
	}
	return Event{}, lineTime{}, false
}

func (p *Parser) nginxKernel(l sources.Line, h nginxHeader) (Event, lineTime, bool) {
	if h.level != "info" {
		return Event{}, h.ts, false
	}
	at := logNanos(l, h.ts)
	if addr, port, ok := parseConnected(h.msg); ok {
		if !p.saw(addr, port) {
			return Event{}, h.ts, false
		}
		if p.tuples.take(addr, port, OriginNginx, at, 1, 1) == 0 {
			p.notSeen(unseenAlias)
			return Event{}, h.ts, false
		}
		p.kconns.open(h.connid, h.worker, addr, port, at)
		p.ignore(ignoreNginxConnected)
		return Event{}, h.ts, false
	}
	if s, ok := parseNginxLoggedIn(h.msg); ok {
		if c := p.kconns.find(h.connid, h.worker, s.addr); c != nil {
			return Event{Kind: KindAuthSuccess, Origin: OriginNginx, Addr: s.addr, User: s.user, Port: s.port,
				SrcPort: c.port, Count: 1, Witnessed: true}, h.ts, true
		}
		p.notSeen(unseenUnopened)
		return Event{}, h.ts, false
	}
	f, ok := parseNginxFailure(h.msg)
	if !ok {
		return Event{}, h.ts, false
	}
	c := p.kconns.find(h.connid, h.worker, f.addr)
	if c == nil {
		p.notSeen(unseenUnopened)
		return Event{}, h.ts, false
	}
	limit := maxNginxFailures
	if f.kind == KindRateLimited {
		limit = maxNginxRateLimits
	}
	if int(c.used) >= limit {
		p.notSeen(unseenSpent)
		return Event{}, h.ts, false
	}
	c.used++
	if f.kind != KindRateLimited {
		// nginx closes the connection after a failed AUTH: the client
		// may open the next one from the same port.
		p.tuples.release(c.addr, c.port, OriginNginx)
	}
	return Event{Kind: f.kind, Origin: OriginNginx, Addr: f.addr, User: f.user, Port: f.port,
		SrcPort: c.port, Count: 1, Witnessed: true}, h.ts, true
}

// witnessed corroborates an event of a line that names its client itself
// (Dovecot, admin, Postfix) and bounds what its connection may count.
func (p *Parser) witnessed(ev Event, at int64) (Event, bool) {
	if !p.saw(ev.Addr, ev.SrcPort) {
		return Event{}, false
	}
	if ev.SrcPort != 0 && countsAttempts(ev.Kind) {
		var grant int
		switch ev.Origin {
		case OriginDovecot:
			if p.tuples.take(ev.Addr, ev.SrcPort, OriginDovecot, at, 1, maxDovecotLines) == 1 {
				grant = min(ev.Count, maxDovecotAttempts)
			}
		default:
			grant = p.tuples.take(ev.Addr, ev.SrcPort, ev.Origin, at, max(ev.Count, 1), maxAdminAttempts)
		}
		if grant == 0 {
			p.notSeen(unseenSpent)
			return Event{}, false
		}
		ev.Count = grant
	}
	ev.Witnessed = true
	return ev, true
}

// countsAttempts reports whether events of kind k add to a window (and so
// use up what a connection may count).
func countsAttempts(k Kind) bool {
	switch k {
	case KindAuthSuccess, KindRelayClient, KindMisconfigured, KindNone:
		return false
	}
	return true
}
