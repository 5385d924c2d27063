package parse

import (
	"net/netip"
	"strings"
	"time"

	"github.com/bansd/bansd/sources"
)

// A 2024.06 front stream interleaves nginx (port 25) and Dovecot (every other
// mail port) lines, plus nginx's HTTP access log. A line feed (or, through
// Mailu's Python pipe, a CR) in an nginx username lets the attacker write
// whole lines of either format (nginx_test.go, TestNginxForgedLines, shows how). nginx lines are
// corroborated by their connection; Dovecot lines have no connection number,
// so frontGuard is all that guards them.
//
// What tells the attacker's pieces from real lines is how they reach Docker.
// The pieces of one split line are one write() of nginx: Docker stamps them
// microseconds apart (same read), and Mailu 2024.06's Python pipe, which
// copies line by line, adds tens of microseconds. The next real line of the
// same client's next connection needs network round trips (nginx closes
// after a failed AUTH, the client opens a new TCP connection): real nginx
// logged it 1.8-3.2 ms later on a 0.1 ms veth. So a line within pieceGap of
// the login line (or of a piece) is a piece; one further away is not, and
// only lines about the login line's own client count for a short while
// after it, in case a loaded Docker spread the pieces further.

// parseFront handles one line of the front service.
func (p *Parser) parseFront(l sources.Line) (Event, lineTime, bool) {
	if l.Container != p.frontContainer {
		// A recreated front container runs a new nginx whose CONNIDs
		// start again at 1.
		if p.frontContainer != "" {
			p.conns.reset()
			p.front = frontGuard{}
			p.connMax = connOrder{}
		}
		p.frontContainer = l.Container
	}
	if l.Time.IsZero() {
		p.cnt().untimedFront++
	}
	text := l.Text
	h, nginx := parseNginxHeader(text)
	if !nginx && isHTTPAccess(text) {
		p.ignore(ignoreHTTPAccess)
		// nginx's access log goes to stdout, never into a write of its
		// error log: not a piece, and it carries no chain on. Without
		// Docker time it is still a line of the span.
		if l.Time.IsZero() {
			p.front.lines.take()
		}
		return Event{}, lineTime{}, false
	}
	piece, guard := p.front.check(l.Time, nginx || looksFresh(text))
	if nginx {
		p.ignoreNginx(h)
		return p.nginxLine(l, h, piece, guard)
	}
	if !piece && isNginxStart(text) {
		// nginx started again inside the same container (docker
		// restart, a restart policy after dockerd died): its CONNIDs
		// start again at 1. A forged start line (it would have to be
		// spread out from its split line) can only make bansd forget
		// the connections open at that moment: undercount, never a
		// third party counted.
		p.conns.reset()
		p.connMax = connOrder{}
		p.ignore(ignoreNginxStart)
		return Event{}, lineTime{}, false
	}
	if isDovecotLogin(text) {
		p.ignore(ignoreDovecotOther)
		ev, ts, ok := parseDovecot(text, p.yearRef(l))
		if !ok {
			return ev, ts, false
		}
		if l.Time.IsZero() {
			// Without Docker time nothing tells a piece of an nginx
			// write from Dovecot's own line, and setting aside every
			// other client's failures after each login line would hide
			// real attackers wholesale: Dovecot's lines count.
			p.cnt().unguardedDovecot++
			return ev, ts, ok
		}
		if r, forged := guard.judge(piece, ev.Addr); forged {
			p.reject(r)
			return Event{}, ts, false
		}
		return ev, ts, ok
	}
	if guard.active && !looksFresh(text) && l.Time.IsZero() {
		// Without Docker time, the rest of a split line keeps the span
		// of lines open.
		p.front.extend()
	}
	return Event{}, lineTime{}, false
}

// isNginxStart reports whether s is nginx's "[notice] PID#TID: start
// worker processes", which its master logs once at every start.
func isNginxStart(s string) bool {
	const msg = ": start worker processes"
	if !strings.HasSuffix(s, msg) {
		return false
	}
	i := strings.Index(s, "[notice] ")
	if i < 0 {
		return false
	}
	rest := s[i+len("[notice] ") : len(s)-len(msg)]
	n := digits(rest)
	if n == 0 || n >= len(rest) || rest[n] != '#' {
		return false
	}
	return n+1 < len(rest) && digits(rest[n+1:]) == len(rest)-n-1
}

// looksFresh reports whether a front line starts like a line of one of
// front's programs rather than the middle of a split one: a syslog-style or
// nginx timestamp, or an HTTP access-log client address (parseFront has
// set HTTP lines aside before it asks).
func looksFresh(s string) bool {
	switch {
	case len(s) >= 16 && s[3] == ' ' && s[6] == ' ' && s[9] == ':' && s[12] == ':' && s[15] == ' ':
		return true
	case len(s) >= 20 && s[4] == '/' && s[7] == '/' && s[13] == ':':
		return true
	}
	return isHTTPAccess(s)
}

// isHTTPAccess reports whether s starts like an nginx access-log line: a
// client address and " - ".
func isHTTPAccess(s string) bool {
	n := addrEnd(s)
	return n > 0 && strings.HasPrefix(s[n:], " - ")
}

// Bounds of the front guard.
const (
	// pieceGap: lines of one write() reach Docker microseconds apart;
	// separate writes of the next connection at least a network round
	// trip plus nginx's work apart (1.8 ms and more seen with a 0.1 ms
	// RTT). A client on the same host might come closer than 1 ms,
	// hence half of it. Only such a gap ends a chain of pieces: no count
	// of pieces and no time makes a later line of the chain trusted.
	pieceGap = 500 * time.Microsecond
	// foreignWindow: after an attempt that counted, Dovecot failures naming
	// another client do not count and connections other clients open are
	// suspect (they never count), in case a loaded Docker or Python pipe
	// stalled between the pieces of one write. Only counted attempts open
	// or renew it, so holding it open costs the holder his own ban.
	foreignWindow = 10 * time.Millisecond
	// Without Docker time the window is counted in lines: a whole nginx
	// line's pieces (nginx cuts an error-log line at 2 KB).
	guardLines    = 2048
	guardMaxLines = 4096
)

// frontGuard follows the lines after an nginx line carrying a login (or
// another quoted field the attacker fills), which a line feed in it may have
// split into lines the attacker writes. It is the text rule of front: kernel
// mode (witness.go) does without it.
//
// With Docker time, it detects the pieces of that write (pieceGap): they
// never count, and a "connected" line among them opens nothing. For
// foreignWindow after a counted attempt it sets aside Dovecot failures
// naming any other client, and marks connections of other clients opened
// then as suspect (nginxForged).
//
// Without Docker time (files replayed without `docker logs -t`) nothing
// tells a piece from the next real line. The guard then only sets aside
// nginx lines about other clients, for guardLines lines after a login line
// (a whole nginx line's worth of pieces): a bot's back-to-back attempts all
// count, whatever its usernames, and its forged nginx lines about anyone
// else do not. Dovecot's failures are not set aside at all (a busy port 25
// would hide every IMAP attacker); a forged Dovecot line in an nginx
// username then counts, which only replay of such a file can meet (the
// daemon always has Docker time) and its report says so. It cannot tell the bot's forged lines about itself from real ones
// (they add to its own count), nor count a third party's real failures
// that fall in that span, and the CONNID order cannot reject anything.
type frontGuard struct {
	// chainAddr is the client of the login line that began the current
	// chain of pieces, when its connection corroborates it; attempt: that
	// line was a counted attempt.
	chainAddr netip.Addr
	attempt   bool
	// last is the Docker time of the chain's last line, Unix ns (0: none).
	last int64
	// winAddr is the client whose line opened the foreign window, which
	// ends at until. freeAt is when a line that is not an attempt last
	// opened one.
	winAddr netip.Addr
	until   int64
	freeAt  int64
	// Line-counted mode.
	addr  netip.Addr
	lines lineSpan
}

// freeWindowEvery: a login line that is not a counted attempt (the
// attacker's forged lines can ride on one for free) opens a foreign window
// at most this often, so that a stream of them cannot hold it open for
// everyone else: at most a tenth of the time, and only while no attempt's
// window is open.
const freeWindowEvery = 10 * foreignWindow

// guardState is what frontGuard.check found about one line.
type guardState struct {
	active    bool       // in the foreign window (or line-counted span)
	addr      netip.Addr // the window's client
	chainAddr netip.Addr // the client of the chain the line is a piece of
}

// judge decides whether an event about addr, on a line that is a piece or
// not, is forged.
func (g guardState) judge(piece bool, addr netip.Addr) (forgeReason, bool) {
	switch {
	case piece && addr == g.chainAddr && g.chainAddr.IsValid():
		// About the login line's own client: at worst the attacker adds
		// to his own count. Real lines of a client's parallel sessions
		// reach Docker this close together, and must count; the
		// connection checks still apply.
		return 0, false
	case piece:
		return forgeBurst, true
	case g.active && addr != g.addr:
		return forgeForeign, true
	}
	return 0, false
}

// check classifies the line at Docker time t (zero: none) and keeps a
// chain of pieces going. fresh: the line starts like a line of one of
// front's programs; one that does not is the rest of a split line, a piece
// however late it comes. It must be called once per front line.
func (g *frontGuard) check(t time.Time, fresh bool) (piece bool, s guardState) {
	if t.IsZero() {
		if !g.lines.take() {
			return false, s
		}
		return false, guardState{active: true, addr: g.addr}
	}
	n := t.UnixNano()
	if g.last != 0 {
		if n-g.last <= int64(pieceGap) || !fresh {
			g.last = n
			piece = true
			s.chainAddr = g.chainAddr
			if g.attempt && g.chainAddr == g.winAddr && g.until != 0 {
				// The pieces of a counted attempt's line carry its
				// window on, however a stall spreads them.
				g.until = max(g.until, n+int64(foreignWindow))
			}
		} else {
			g.last = 0
		}
	}
	if g.until != 0 && n <= g.until {
		s.active, s.addr = true, g.winAddr
	}
	return piece, s
}

// login begins a chain of pieces at a login line at t that is not itself a
// piece, about addr (invalid when its connection does not corroborate it).
// attempt: the line was a counted attempt of addr, which opens (or renews)
// the foreign window.
func (g *frontGuard) login(t time.Time, addr netip.Addr, attempt bool) {
	if t.IsZero() {
		if !g.lines.active() {
			g.addr = addr
		}
		g.lines.open(guardLines, guardMaxLines)
		return
	}
	n := t.UnixNano()
	g.last, g.chainAddr, g.attempt = n, addr, attempt && addr.IsValid()
	open := g.until == 0 || n > g.until
	switch {
	case g.attempt && open:
		g.winAddr, g.until = addr, n+int64(foreignWindow)
	case g.attempt && addr == g.winAddr:
		g.until = n + int64(foreignWindow)
	case !g.attempt && open && (g.freeAt == 0 || n-g.freeAt >= int64(freeWindowEvery)):
		g.winAddr, g.until, g.freeAt = addr, n+int64(foreignWindow), n
	}
}

// extend renews the line-counted span after a continuation line.
func (g *frontGuard) extend() { g.lines.extend(guardLines) }
