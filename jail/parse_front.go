package jail

import (
	"strings"
	"time"

	"github.com/bansd/bansd/sources"
)

// A 2024.06 front stream interleaves nginx (port 25) and Dovecot (every other
// mail port) lines, plus nginx's HTTP access log. A line feed (or, through
// Mailu's Python pipe, a CR) in an nginx username lets the attacker write
// whole lines of either format (mailu-logs.md §7). nginx lines are
// corroborated by their connection; Dovecot lines have no connection number,
// so the burst rule is all that guards them.

// parseFront handles one line of the front service.
func (p *Parser) parseFront(l sources.Line) (Event, lineTime, bool) {
	if l.Container != p.frontContainer {
		// A recreated front container runs a new nginx whose CONNIDs
		// start again at 1.
		if p.frontContainer != "" {
			p.conns.reset()
			p.frontBurst = burst{}
		}
		p.frontContainer = l.Container
	}
	inBurst := p.frontBurst.in(l.Time)
	text := l.Text
	if h, ok := parseNginxHeader(text); ok {
		return p.nginxLine(l, h, inBurst)
	}
	if isDovecotLogin(text) {
		ev, ts, ok := parseDovecot(text, p.yearRef(l))
		if ok && inBurst {
			p.reject(forgeBurst)
			return Event{}, ts, false
		}
		return ev, ts, ok
	}
	if inBurst && !looksFresh(text) {
		// The rest of a split line: it keeps the burst going. Lines of
		// other programs (HTTP access log) do not, or a busy web server
		// would keep every burst open for its whole second.
		p.frontBurst.extend(l.Time)
	}
	return Event{}, lineTime{}, false
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

// burst is the short span after a line whose attacker-controlled field may
// have been split by a line feed: lines in it may be the attacker's own. It
// is measured in Docker time, or in lines when the stream has no Docker
// timestamps (files replayed without them).
type burst struct {
	start, until time.Time
	window       time.Duration
	// Line-counted mode.
	left, budget int
}

// Bounds of a burst.
const (
	burstMax = time.Second // from its first line, however it is extended
	// burstLines: without Docker time nothing tells how long the
	// attacker's write was; a username holds a few dozen lines at most
	// (nginx's smtp_client_buffer).
	burstLines    = 64
	burstMaxLines = 4096
)

// open starts a burst at t, or extends a running one.
func (b *burst) open(t time.Time, window time.Duration) {
	if t.IsZero() {
		if b.left <= 0 {
			b.budget = burstMaxLines
		}
		b.left = max(b.left, min(burstLines, b.budget))
		return
	}
	if b.until.IsZero() || t.After(b.until) {
		b.start = t
		b.until = time.Time{}
	}
	b.window = window
	b.push(t)
}

func (b *burst) push(t time.Time) {
	u := t.Add(b.window)
	if lim := b.start.Add(burstMax); u.After(lim) {
		u = lim
	}
	if u.After(b.until) {
		b.until = u
	}
}

// in reports whether a line at t falls in the burst (consuming one line in
// line-counted mode).
func (b *burst) in(t time.Time) bool {
	if t.IsZero() {
		if b.left <= 0 {
			return false
		}
		b.left--
		b.budget--
		return true
	}
	return !b.until.IsZero() && !t.After(b.until)
}

// extend renews the burst after a continuation line.
func (b *burst) extend(t time.Time) {
	if t.IsZero() {
		b.left = max(b.left, min(burstLines, b.budget))
		return
	}
	b.push(t)
}
