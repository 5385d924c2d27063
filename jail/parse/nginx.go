package parse

import (
	"net/netip"
	"strings"
	"time"

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
func parseConnected(msg string) (netip.Addr, bool) {
	const pre, mid = "client ", " connected to "
	if !strings.HasPrefix(msg, pre) {
		return netip.Addr{}, false
	}
	msg = msg[len(pre):]
	i := strings.Index(msg, mid)
	if i < 0 {
		return netip.Addr{}, false
	}
	hp := msg[:i]
	var host string
	if len(hp) > 0 && hp[0] == '[' {
		j := strings.IndexByte(hp, ']')
		if j < 0 || j+1 >= len(hp) || hp[j+1] != ':' {
			return netip.Addr{}, false
		}
		host = hp[1:j]
		hp = hp[j+2:]
	} else {
		j := strings.LastIndexByte(hp, ':')
		if j < 0 {
			return netip.Addr{}, false
		}
		host = hp[:j]
		hp = hp[j+1:]
	}
	if _, ok := atoiBounded(hp, 65535); !ok {
		return netip.Addr{}, false
	}
	return parseAddr(host)
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

// minAuthDelay: a real failure comes after an SMTP/IMAP dialogue (at least a
// round trip with the client, a DNS lookup on port 25) and admin's auth_http
// round trip; a forged "connected" line and failure written together reach
// Docker microseconds apart.
const minAuthDelay = time.Millisecond

// nginxLine handles one nginx-format line of the front stream.
func (p *Parser) nginxLine(l sources.Line, h nginxHeader, piece bool, g guardState) (Event, lineTime, bool) {
	if h.level == "info" {
		if addr, ok := parseConnected(h.msg); ok {
			// A "connected" line holds no attacker text: it starts no
			// chain of pieces.
			p.nginxConnected(l, h, addr, piece, g)
			return Event{}, h.ts, false
		}
	}
	ev, ok := p.nginxFailure(l, h, piece, g)
	if !piece {
		p.nginxLogin(l, h)
	}
	return ev, h.ts, ok
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
	if r, forged := g.judge(piece, addr); forged {
		if r != forgeForeign {
			p.reject(r)
			return
		}
		// Another client connecting just after a login line is most
		// likely real (a busy port 25 has many bots at once): it opens
		// its connection, but the failure on it must come as late as a
		// real one (nginxForged).
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
	if p.connMax.stale(h.connid, flags&connSuspect == 0) && !l.Time.IsZero() {
		p.reject(forgeStale)
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
	case e.flags&connDockerTime != 0 && !l.Time.IsZero() && l.Time.UnixNano()-e.opened < int64(minAuthDelay):
		return forgeFast, true
	case e.flags&connSuspect != 0 && !l.Time.IsZero() && (e.flags&connDockerTime == 0 || l.Time.UnixNano()-e.opened < int64(foreignWindow)):
		// Opened in another client's window: a forged pair spread out
		// by a stall comes closer together than a real dialogue over
		// the Internet. Without Docker time, a failure outside any
		// window is real: the pieces of one write all fall in it.
		return forgeForeign, true
	}
	e.flags |= connCounted
	return 0, false
}

// nginxLogin starts a chain of pieces after an nginx line that carries
// attacker text which a line feed could have split: a login field, or an
// unclosed quote.
func (p *Parser) nginxLogin(l sources.Line, h nginxHeader) {
	msg := h.msg
	if !strings.Contains(msg, `, login: "`) && strings.Count(msg, `"`)%2 == 0 {
		return
	}
	p.front.login(l.Time, p.nginxClient(h))
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
