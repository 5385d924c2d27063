package jail

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

// Burst windows after an nginx line with an attacker-controlled field. A
// line feed in that field makes Docker start new lines at once, in the same
// read: within microseconds.
const (
	// burstOpen: the login (or another quoted field) is not closed at the
	// end of the line, so the line was split.
	burstOpen = 50 * time.Millisecond
	// burstClosed: the login is closed, but the attacker may have put the
	// quote before the line feed himself.
	burstClosed = 5 * time.Millisecond
)

// nginxLine handles one nginx-format line of the front stream.
func (p *Parser) nginxLine(l sources.Line, h nginxHeader, inBurst bool) (Event, lineTime, bool) {
	if h.level == "info" {
		if addr, ok := parseConnected(h.msg); ok {
			// A "connected" line holds no attacker text: it opens no
			// burst.
			p.nginxConnected(l, h, addr, inBurst)
			return Event{}, h.ts, false
		}
	}
	ev, ok := p.nginxFailure(l, h, inBurst)
	p.nginxBurst(l, h.msg)
	return ev, h.ts, ok
}

func (p *Parser) nginxFailure(l sources.Line, h nginxHeader, inBurst bool) (Event, bool) {
	if h.level != "info" {
		return Event{}, false
	}
	f, ok := parseNginxFailure(h.msg)
	if !ok {
		return Event{}, false
	}
	if r, forged := p.nginxForged(l, h, f.addr, inBurst); forged {
		p.reject(r)
		return Event{}, false
	}
	return Event{Kind: f.kind, Origin: OriginNginx, Addr: f.addr, User: f.user, Port: f.port, Count: 1}, true
}

// nginxConnected records a "connected" line.
func (p *Parser) nginxConnected(l sources.Line, h nginxHeader, addr netip.Addr, inBurst bool) {
	switch {
	case inBurst:
		p.reject(forgeBurst)
		return
	case h.ts.ok && !l.Time.IsZero() && !timeAgrees(h.ts.t, l.Time):
		p.reject(forgeTime)
		return
	}
	var opened int64
	switch {
	case !l.Time.IsZero():
		opened = l.Time.UnixNano()
	case h.ts.ok:
		opened = h.ts.t.UnixNano()
	}
	if !p.conns.open(h.connid, h.worker, addr, h.ts.ok, opened) {
		p.reject(forgePoisoned)
	}
}

// nginxForged applies DESIGN/mailu-logs §7: an nginx failure counts only on
// a connection nginx itself opened for that client, once.
func (p *Parser) nginxForged(l sources.Line, h nginxHeader, addr netip.Addr, inBurst bool) (forgeReason, bool) {
	if inBurst {
		return forgeBurst, true
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
	}
	e.flags |= connCounted
	return 0, false
}

// nginxBurst opens (or extends) the front burst after an nginx line that
// carries attacker text which a line feed could have split.
func (p *Parser) nginxBurst(l sources.Line, msg string) {
	const login = `, login: "`
	i := strings.Index(msg, login)
	unclosed := strings.Count(msg, `"`)%2 == 1
	if i < 0 && !unclosed {
		return
	}
	if i >= 0 {
		v := msg[i+len(login):]
		if len(v) == 0 || v[len(v)-1] != '"' {
			unclosed = true
		}
	}
	if unclosed {
		p.frontBurst.open(l.Time, burstOpen)
	} else {
		p.frontBurst.open(l.Time, burstClosed)
	}
}
