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
	piece, guard := p.front.check(l.Time)
	text := l.Text
	if h, ok := parseNginxHeader(text); ok {
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
		return Event{}, lineTime{}, false
	}
	if isDovecotLogin(text) {
		ev, ts, ok := parseDovecot(text, p.yearRef(l))
		if !ok {
			return ev, ts, false
		}
		if r, forged := guard.judge(piece, ev.Addr); forged {
			p.reject(r)
			return Event{}, ts, false
		}
		return ev, ts, ok
	}
	if guard.active && !looksFresh(text) {
		// The rest of a split line, spread out: it keeps the window
		// open. Lines of other programs (HTTP access log) do not, or a
		// busy web server would keep it open for its whole second.
		p.front.extend(l.Time)
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
// nginx timestamp, or an HTTP access-log client address.
func looksFresh(s string) bool {
	switch {
	case len(s) >= 16 && s[3] == ' ' && s[6] == ' ' && s[9] == ':' && s[12] == ':' && s[15] == ' ':
		return true
	case len(s) >= 20 && s[4] == '/' && s[7] == '/' && s[13] == ':':
		return true
	}
	n := addrEnd(s)
	return n > 0 && strings.HasPrefix(s[n:], " - ")
}

// Bounds of the front guard.
const (
	// pieceGap: lines of one write() reach Docker microseconds apart;
	// separate writes of the next connection at least a network round
	// trip plus nginx's work apart (1.8 ms and more seen with a 0.1 ms
	// RTT). A client on the same host might come closer than 1 ms,
	// hence half of it.
	pieceGap = 500 * time.Microsecond
	// maxPieces bounds a chain of pieces from its login line: nginx
	// cuts an error-log line at 2 KB (NGX_MAX_ERROR_STR), so it splits
	// into fewer pieces than that, however slowly a pipe copies them;
	// without a bound, a flood of HTTP access lines less than pieceGap
	// apart would keep every line a piece.
	maxPieces = 2048
	// foreignWindow: after a login line (or a piece, or a continuation
	// line), Dovecot failures naming another client do not count, in case
	// a loaded Docker or Python pipe stalled between the pieces of one
	// write; another client's connection opened in it needs a failure at
	// least this much later (a forged pair comes closer). Lines about the
	// login line's client count: a bot's own next connection is never
	// swallowed. Longer catches longer stalls but loses more of other
	// clients' real Dovecot failures that happen to follow an nginx
	// failure (twice the 5 ms that guarded a closed login before).
	foreignWindow = 10 * time.Millisecond
	// guardMax bounds a guard from its first login line, however often
	// it is renewed.
	guardMax = time.Second
	// Without Docker time the window is counted in lines: a whole nginx
	// line's pieces.
	guardLines    = maxPieces
	guardMaxLines = 4096
)

// frontGuard follows the lines after an nginx line carrying a login (or
// another quoted field the attacker fills), which a line feed in it may have
// split into lines the attacker writes.
//
// With Docker time, it detects the pieces of that write (pieceGap): they
// never count, and a "connected" line among them opens nothing. For
// foreignWindow after the last of them it sets aside Dovecot failures naming
// any other client, and marks connections of other clients opened then as
// suspect (nginxForged). nginx lines have further, independent checks: the
// connection table, minAuthDelay, connOrder.
//
// Without Docker time (files replayed without `docker logs -t`) nothing
// tells a piece from the next real line. The guard then only sets aside
// lines about other clients, for guardLines lines after a login line (a
// whole nginx line's worth of pieces): a bot's back-to-back attempts all
// count, whatever its usernames, and its forged lines about anyone else do
// not. It cannot tell the bot's forged lines about itself from real ones
// (they add to its own count), nor count a third party's real failures
// that fall in that span, and minAuthDelay and the CONNID order cannot
// reject anything.
type frontGuard struct {
	// addr is the client the guard's login line was about, when its
	// connection corroborates it; invalid otherwise (then every line in
	// the window is foreign).
	addr netip.Addr
	// Docker-time mode, Unix ns (0: none).
	start  int64 // first login line of the guard
	last   int64 // last line of the current chain of pieces
	pieces int   // pieces in that chain
	until  int64 // end of the foreign window
	// Line-counted mode.
	lines lineSpan
}

// guardState is what frontGuard.check found about one line.
type guardState struct {
	active bool
	addr   netip.Addr
}

// judge decides whether an event about addr, on a line that is a piece or
// not, is forged.
func (g guardState) judge(piece bool, addr netip.Addr) (forgeReason, bool) {
	switch {
	case piece && addr == g.addr && g.addr.IsValid():
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
// chain of pieces going. It must be called once per front line.
func (g *frontGuard) check(t time.Time) (piece bool, s guardState) {
	if t.IsZero() {
		if !g.lines.take() {
			return false, s
		}
		return false, guardState{true, g.addr}
	}
	if g.until == 0 {
		return false, s
	}
	n := t.UnixNano()
	if g.last != 0 && n-g.last <= int64(pieceGap) && g.pieces < maxPieces {
		g.last = n
		g.pieces++
		g.renew(n)
		piece = true
	}
	if n > g.until {
		return piece, s
	}
	return piece, guardState{true, g.addr}
}

func (g *frontGuard) renew(n int64) {
	g.until = max(g.until, min(n+int64(foreignWindow), g.start+int64(guardMax)))
}

// login starts a chain of pieces at a login line at t that is not itself a
// piece, about addr (invalid when its connection does not corroborate it).
func (g *frontGuard) login(t time.Time, addr netip.Addr) {
	if t.IsZero() {
		if !g.lines.active() {
			g.addr = addr
		}
		g.lines.open(guardLines, guardMaxLines)
		return
	}
	n := t.UnixNano()
	if g.until == 0 || n > g.until {
		// A new guard: the old one (and its client) is over. An active
		// guard keeps its client, or a line naming another (forged,
		// spread out by a stall) would make that one's lines count.
		g.start = n
		g.until = 0
		g.addr = addr
	}
	g.last, g.pieces = n, 0
	g.renew(n)
}

// extend renews the foreign window after a continuation line at t.
func (g *frontGuard) extend(t time.Time) {
	if t.IsZero() {
		g.lines.extend(guardLines)
		return
	}
	g.renew(t.UnixNano())
}
