package parse

import (
	"net/netip"
	"strings"

	"github.com/bansd/bansd/sources"
)

// nginxHeader is the fixed start of an nginx error-log line:
// "YYYY/MM/DD HH:MM:SS [level] PID#TID: *CONNID ". The timestamp is missing
// from some copies of Mailu 2.0 lines.
type nginxHeader struct {
	ts     lineTime
	level  string
	worker uint64
	connid uint64
	msg    string
}

// parseNginxHeader parses the header of an nginx mail line that carries a
// connection number.
func parseNginxHeader(s string) (nginxHeader, bool) {
	var h nginxHeader
	if len(s) > 0 && s[0] >= '0' && s[0] <= '9' {
		if len(s) < 21 || s[4] != '/' || s[19] != ' ' {
			return h, false
		}
		t, ok := parseDateTime(s[:19], '/')
		if !ok {
			return h, false
		}
		h.ts = lineTime{t, true}
		s = s[20:]
	}
	if len(s) < 2 || s[0] != '[' {
		return h, false
	}
	end := strings.IndexByte(s[:min(len(s), 10)], ']')
	if end < 2 || end+1 >= len(s) || s[end+1] != ' ' {
		return h, false
	}
	h.level = s[1:end]
	s = s[end+2:]
	n := digits(s)
	pid, ok := atoiBounded(s[:n], 1<<32-1)
	if !ok || n >= len(s) || s[n] != '#' {
		return h, false
	}
	s = s[n+1:]
	n = digits(s)
	tid, ok := atoiBounded(s[:n], 1<<32-1)
	if !ok || !strings.HasPrefix(s[n:], ": *") {
		return h, false
	}
	h.worker = pid<<32 | tid
	s = s[n+3:]
	n = digits(s)
	id, ok := atoiBounded(s[:n], 1<<63)
	if !ok || n >= len(s) || s[n] != ' ' {
		return h, false
	}
	h.connid = id
	h.msg = s[n+1:]
	return h, true
}

// parseConnected parses "client IP:PORT connected to ADDR:PORT" (IPv6
// bracketed).
func parseConnected(msg string) (netip.Addr, uint16, bool) {
	const pre, mid = "client ", " connected to "
	if !strings.HasPrefix(msg, pre) {
		return netip.Addr{}, 0, false
	}
	msg = msg[len(pre):]
	i := strings.Index(msg, mid)
	if i < 0 {
		return netip.Addr{}, 0, false
	}
	hp := msg[:i]
	var host string
	if len(hp) > 0 && hp[0] == '[' {
		j := strings.IndexByte(hp, ']')
		if j < 0 || j+1 >= len(hp) || hp[j+1] != ':' {
			return netip.Addr{}, 0, false
		}
		host = hp[1:j]
		hp = hp[j+2:]
	} else {
		j := strings.LastIndexByte(hp, ':')
		if j < 0 {
			return netip.Addr{}, 0, false
		}
		host = hp[:j]
		hp = hp[j+1:]
	}
	port, ok := atoiBounded(hp, 65535)
	if !ok || port == 0 {
		return netip.Addr{}, 0, false
	}
	a, ok := parseAddr(host)
	return a, uint16(port), ok
}

// nginxFailure is a parsed "client login failed" line.
type nginxFailure struct {
	kind Kind
	addr netip.Addr
	port int
	user string
}

// parseNginxFailure parses
//
//	client login failed: "REASON" while in http auth state, client: IP[ using starttls], server: ADDR:PORT[, login: "USER["]]
//
// The client is the first "client: " from the left: everything after
// login: is attacker text.
func parseNginxFailure(msg string) (nginxFailure, bool) {
	const pre = `client login failed: "`
	var f nginxFailure
	if !strings.HasPrefix(msg, pre) {
		return f, false
	}
	msg = msg[len(pre):]
	q := strings.IndexByte(msg, '"')
	if q < 0 {
		return f, false
	}
	switch msg[:q] {
	case "AUTH not supported":
		f.kind = KindPort25Auth
	case "Authentication credentials invalid":
		f.kind = KindAuthFailure
	case "Temporary authentication failure (rate-limit)", "Authentication rate limit from one source exceeded":
		f.kind = KindRateLimited
	default:
		// "Must issue a STARTTLS command first" and anything else admin
		// may answer is not an attempt.
		return f, false
	}
	msg = msg[q+1:]
	const state = " while in http auth state, client: "
	if !strings.HasPrefix(msg, state) {
		return f, false
	}
	msg = msg[len(state):]
	n := addrEnd(msg)
	addr, ok := parseAddr(msg[:n])
	if !ok {
		return f, false
	}
	f.addr = addr
	msg = msg[n:]
	msg = strings.TrimPrefix(msg, " using starttls")
	const server = ", server: "
	if !strings.HasPrefix(msg, server) {
		return f, false
	}
	msg = msg[len(server):]
	end := strings.IndexByte(msg, ',')
	if end < 0 {
		end = len(msg)
	}
	f.port = portOf(msg[:end])
	msg = msg[end:]
	const login = `, login: "`
	if strings.HasPrefix(msg, login) {
		// No closing quote required: a CR or LF in the username cuts it.
		f.user = strings.TrimSuffix(msg[len(login):], `"`)
	}
	return f, true
}

// nginxLine handles one nginx-format line of the front stream.
func (p *Parser) nginxLine(l sources.Line, h nginxHeader, piece bool, g guardState) (Event, lineTime, bool) {
	if h.level == "info" {
		if addr, _, ok := parseConnected(h.msg); ok {
			// A "connected" line holds no attacker text: it starts no
			// chain of pieces.
			p.ignore(ignoreNginxConnected)
			p.nginxConnected(l, h, addr, piece, g)
			return Event{}, h.ts, false
		}
	}
	if h.level == "info" && !piece {
		if s, ok := parseNginxLoggedIn(h.msg); ok {
			// A success holds admin's answer, not client text; it
			// counts only on the client's own connection.
			e := p.conns.lookup(h.connid)
			if e == nil || e.flags&(connPoisoned|connSuspect) != 0 || e.addr != s.addr || e.worker != h.worker {
				p.ignore(ignoreNginxSuccess)
				return Event{}, h.ts, false
			}
			return Event{Kind: KindAuthSuccess, Origin: OriginNginx, Addr: s.addr, User: s.user, Port: s.port, Count: 1}, h.ts, true
		}
	}
	ev, ok := p.nginxFailure(l, h, piece, g)
	if !piece {
		p.nginxLogin(l, h, ok)
	}
	return ev, h.ts, ok
}

// nginxSuccess is a parsed "client logged in" line.
type nginxSuccess struct {
	addr netip.Addr
	port int
	user string
}

// parseNginxLoggedIn parses
//
//	client logged in, client: IP[ using starttls], server: ADDR:PORT, login: "USER"
//
// which nginx writes when it starts proxying after admin accepted the
// login. On Mailu 2.0, for every port but 25, login: holds the account admin
// answered (Auth-User), not what the client typed: the success exempts that
// (address, user) pair. Port 25 has no login (no AUTH there).
func parseNginxLoggedIn(msg string) (nginxSuccess, bool) {
	const pre = "client logged in, client: "
	var s nginxSuccess
	if !strings.HasPrefix(msg, pre) {
		return s, false
	}
	msg = msg[len(pre):]
	n := addrEnd(msg)
	addr, ok := parseAddr(msg[:n])
	if !ok {
		return s, false
	}
	msg = strings.TrimPrefix(msg[n:], " using starttls")
	const server = ", server: "
	if !strings.HasPrefix(msg, server) {
		return s, false
	}
	msg = msg[len(server):]
	end := strings.IndexByte(msg, ',')
	if end < 0 {
		return s, false
	}
	s.port = portOf(msg[:end])
	msg = msg[end:]
	const login = `, login: "`
	if !strings.HasPrefix(msg, login) || s.port == 25 {
		return s, false
	}
	msg = msg[len(login):]
	// nginx adds the upstream once it proxies: `", upstream: IP:PORT`.
	if i := lastIndex(msg, `", upstream: `); i >= 0 && !strings.ContainsAny(msg[i+2:], `"`) {
		msg = msg[:i+1]
	}
	if !strings.HasSuffix(msg, `"`) {
		return s, false
	}
	s.addr, s.user = addr, msg[:len(msg)-1]
	return s, s.user != ""
}

func (p *Parser) nginxFailure(l sources.Line, h nginxHeader, piece bool, g guardState) (Event, bool) {
	if h.level != "info" {
		return Event{}, false
	}
	f, ok := parseNginxFailure(h.msg)
	if !ok {
		return Event{}, false
	}
	if r, forged := p.nginxForged(l, h, f.addr, piece, g); forged {
		p.reject(r)
		return Event{}, false
	}
	return Event{Kind: f.kind, Origin: OriginNginx, Addr: f.addr, User: f.user, Port: f.port, Count: 1}, true
}

// nginxConnected records a "connected" line.
func (p *Parser) nginxConnected(l sources.Line, h nginxHeader, addr netip.Addr, piece bool, g guardState) {
	var flags uint8
	ownPiece := false
	if piece {
		// A "connected" line holds no attacker text, so one inside a
		// chain of pieces about anyone but the chain's own client was
		// written by the attacker: it opens nothing and moves no order.
		// About the chain's own client (a bot's next connection right
		// after its previous line) it may open a connection, at worst
		// adding to that client's own count, and it moves no order.
		if !g.chainAddr.IsValid() || addr != g.chainAddr {
			p.reject(forgeBurst)
			return
		}
		ownPiece = true
	}
	if _, forged := g.judge(false, addr); forged {
		// Another client connecting just after a counted attempt is most
		// likely real (a busy port 25 has many bots at once), but it may
		// be a piece a stall spread out: the connection opens, and no
		// failure on it counts (nginxForged).
		flags = connSuspect
	}
	if h.ts.ok && !l.Time.IsZero() && !timeAgrees(h.ts.t, l.Time) {
		p.reject(forgeTime)
		return
	}
	// A line naming another client in the window does not move the
	// order, or a forged far-future CONNID would make real ones look
	// stale. Without Docker time a forged line naming the attacker
	// himself is not told from a real one (frontGuard): the order is
	// recorded (nginxClient needs it) but rejects nothing.
	switch p.connMax.check(h.connid, flags&connSuspect == 0 && !ownPiece) {
	case connStale:
		if !l.Time.IsZero() {
			p.reject(forgeStale)
			return
		}
	case connAhead:
		// nginx's counter moves one by one with the connected lines it
		// writes: a CONNID far above the highest seen is forged, and
		// moves nothing.
		p.reject(forgeAhead)
		return
	}
	var opened int64
	switch {
	case !l.Time.IsZero():
		opened = l.Time.UnixNano()
		flags |= connDockerTime
	case h.ts.ok:
		opened = h.ts.t.UnixNano()
	}
	if h.ts.ok {
		flags |= connHasTS
	}
	if !p.conns.open(h.connid, h.worker, addr, flags, opened) {
		p.reject(forgePoisoned)
	}
}

// nginxForged decides whether a line was forged: an nginx failure counts only on
// a connection nginx itself opened for that client, once, and not as a piece
// of a split line.
func (p *Parser) nginxForged(l sources.Line, h nginxHeader, addr netip.Addr, piece bool, g guardState) (forgeReason, bool) {
	if r, forged := g.judge(piece, addr); forged {
		return r, true
	}
	if h.ts.ok && !l.Time.IsZero() && !timeAgrees(h.ts.t, l.Time) {
		return forgeTime, true
	}
	e := p.conns.lookup(h.connid)
	switch {
	case e == nil:
		return forgeUnopened, true
	case e.flags&connPoisoned != 0:
		return forgePoisoned, true
	case e.addr != addr:
		return forgeOtherAddress, true
	case e.worker != h.worker:
		return forgeWorker, true
	case (e.flags&connHasTS != 0) != h.ts.ok:
		return forgeFormat, true
	case e.flags&connCounted != 0:
		return forgeRepeat, true
	case e.flags&connSuspect != 0:
		// Opened in another client's window: it may be a forged line
		// spread out by a stall. Never counted; the window only follows
		// counted attempts, so nobody can hold it open for free.
		return forgeForeign, true
	}
	e.flags |= connCounted
	return 0, false
}

// nginxLogin starts a chain of pieces after an nginx line that carries
// attacker text which a line feed could have split: a login field, or an
// unclosed quote.
func (p *Parser) nginxLogin(l sources.Line, h nginxHeader, attempt bool) {
	msg := h.msg
	if !strings.Contains(msg, `, login: "`) && strings.Count(msg, `"`)%2 == 0 {
		return
	}
	p.front.login(l.Time, p.nginxClient(h), attempt)
}

// nginxClient returns the client a login-bearing line is about, taken from
// its first "client: " (attacker text only comes later, after "login:"),
// when the connection table backs it: the CONNID was opened for that client
// by the same worker, outside another client's window. Before the parser
// has seen any "connected" line (it started reading mid-stream) nothing can
// back it, and the line is believed: a bot met mid-stream must not be taken
// for a third party to its own next connections. Otherwise an invalid
// address.
func (p *Parser) nginxClient(h nginxHeader) netip.Addr {
	const pre = "client: "
	i := strings.Index(h.msg, pre)
	if i < 0 {
		return netip.Addr{}
	}
	s := h.msg[i+len(pre):]
	addr, ok := parseAddr(s[:addrEnd(s)])
	if !ok {
		return netip.Addr{}
	}
	e := p.conns.lookup(h.connid)
	switch {
	case e == nil:
		if p.connMax.max != 0 {
			return netip.Addr{}
		}
	case e.flags&(connPoisoned|connSuspect) != 0, e.addr != addr, e.worker != h.worker:
		return netip.Addr{}
	}
	return addr
}

// ignoreNginx is the verdict of an nginx line until a rule says more.
func (p *Parser) ignoreNginx(h nginxHeader) {
	if h.level != "info" {
		p.ignore(ignoreNginxNotInfo)
	} else {
		p.ignore(ignoreNginxOther)
	}
}
