package parse

import (
	"strings"

	"github.com/bansd/bansd/sources"
)

// Admin (Flask) lines: "[YYYY-MM-DD HH:MM:SS,mmm] LEVEL in MODULE: MESSAGE".
// Usernames sit in the middle of the message; the parts this parser trusts
// are anchored at the right end (or, when the username comes last, at the
// left).

// adminHeader splits an admin line into its timestamp, level, module and
// message.
func adminHeader(s string) (ts lineTime, level, module, msg string, ok bool) {
	if len(s) < 26 || s[0] != '[' || s[24] != ']' || s[25] != ' ' {
		return ts, "", "", "", false
	}
	t, ok := parseAdminTime(s[1:24])
	if !ok {
		return ts, "", "", "", false
	}
	ts = lineTime{t, true}
	s = s[26:]
	sp := strings.IndexByte(s[:min(len(s), 10)], ' ')
	if sp <= 0 || !strings.HasPrefix(s[sp:], " in ") {
		return ts, "", "", "", false
	}
	level = s[:sp]
	s = s[sp+len(" in "):]
	c := strings.IndexByte(s[:min(len(s), 40)], ':')
	if c <= 0 || c+1 >= len(s) || s[c+1] != ' ' {
		return ts, "", "", "", false
	}
	return ts, level, s[:c], s[c+2:], true
}

const limiterSuffix = " has been rate-limited."

// parseAdmin handles one line of the admin service.
func (p *Parser) parseAdmin(l sources.Line) (Event, lineTime, bool) {
	inBurst := p.adminBurst.in(l.Time)
	burstAddr := p.adminBurst.addr
	ts, level, module, msg, ok := adminHeader(l.Text)
	if !ok {
		if inBurst {
			p.adminBurst.extend(l.Time)
		}
		if isHTTPAccess(l.Text) {
			p.ignore(ignoreAdminAccess)
		}
		return Event{}, lineTime{}, false
	}
	p.ignore(ignoreAdminOther)
	ev, ok := adminMessage(level, module, msg)
	if module == "limiter" && strings.HasPrefix(msg, "Authentication attempt from ") && strings.Contains(msg, " for ") {
		// The limiter prints the username raw: a line feed in it cuts
		// this line, and what follows in the same burst may be the
		// attacker's. The attacker may also end his first part with the
		// usual suffix himself, hence the short burst even then.
		if strings.HasSuffix(msg, limiterSuffix) {
			p.adminBurst.open(l.Time, burstClosed, ev.Addr)
		} else {
			p.adminBurst.open(l.Time, burstOpen, ev.Addr)
		}
	}
	if !ok {
		return Event{}, ts, false
	}
	if inBurst && (!burstAddr.IsValid() || ev.Addr != burstAddr) {
		p.reject(forgeBurst)
		return Event{}, ts, false
	}
	ev.Origin = OriginAdmin
	ev.Count = 1
	return ev, ts, true
}

func adminMessage(level, module, msg string) (Event, bool) {
	switch {
	case level == "INFO" && (module == "nginx" || module == "base") && strings.HasPrefix(msg, "Login attempt for: "):
		return adminLoginAttempt(msg[len("Login attempt for: "):])
	case module == "limiter" && strings.HasPrefix(msg, "Authentication attempt from "):
		return adminLimiter(msg[len("Authentication attempt from "):])
	case strings.HasPrefix(msg, "Invalid API token provided by "):
		s := msg[len("Invalid API token provided by "):]
		if !strings.HasSuffix(s, ".") {
			return Event{}, false
		}
		a, ok := parseAddr(s[:len(s)-1])
		return Event{Kind: KindTokenInvalid, Addr: a}, ok
	case strings.HasPrefix(msg, "Login failed for "):
		// ≤2.0 SSO: "Login failed for USER from IP."
		return adminForFrom(KindAuthFailure, msg[len("Login failed for "):], ".")
	case strings.HasPrefix(msg, "Invalid credentials for "):
		// master: "Invalid credentials for EMAIL from IP."
		return adminForFrom(KindAuthFailure, msg[len("Invalid credentials for "):], ".")
	case strings.HasPrefix(msg, "Login succeeded for "):
		// ≤2.0 SSO: "Login succeeded for USER from IP pwned=X."
		s := msg[len("Login succeeded for "):]
		i := lastIndex(s, " pwned=")
		if i < 0 {
			return Event{}, false
		}
		return adminForFrom(KindAuthSuccess, s[:i], "")
	case strings.HasPrefix(msg, "Invalid user "):
		return adminInvalidUser(msg[len("Invalid user "):])
	}
	return Event{}, false
}

// adminForFrom parses "USER from IP<suffix>" from the right.
func adminForFrom(kind Kind, s, suffix string) (Event, bool) {
	if !strings.HasSuffix(s, suffix) {
		return Event{}, false
	}
	s = s[:len(s)-len(suffix)]
	i := lastIndex(s, " from ")
	if i < 0 {
		return Event{}, false
	}
	a, ok := parseAddr(s[i+len(" from "):])
	if !ok {
		return Event{}, false
	}
	return Event{Kind: kind, Addr: a, User: s[:i]}, true
}

// adminLimiter parses "IP has been rate-limited." and
// "IP for USER has been rate-limited.": the address comes first, before any
// attacker text.
func adminLimiter(s string) (Event, bool) {
	if !strings.HasSuffix(s, limiterSuffix) {
		return Event{}, false
	}
	n := addrEnd(s)
	a, ok := parseAddr(s[:n])
	if !ok {
		return Event{}, false
	}
	rest := s[n : len(s)-len(limiterSuffix)]
	ev := Event{Kind: KindRateLimited, Addr: a}
	switch {
	case rest == "":
	case strings.HasPrefix(rest, " for "):
		ev.User = rest[len(" for "):]
	default:
		return Event{}, false
	}
	return ev, true
}

// adminLoginAttempt parses what follows "Login attempt for: ":
//
//	USER/PROTO/PORT from: IP/SRC: failed: badauth: HEX6
//	USER/PROTO/PORT from: IP/SRC: failed: account disabled
//	USER/PROTO/PORT from: IP/SRC: failed: password ok, but a token is required
//	USER/PROTO/PORT from: IP/SRC: success: ...
//
// USER may contain " from: 8.8.8.8/1" and "/": failures are read from the
// right. On success USER is an authenticated account and the outcome may
// end in a token comment, so the first ": success: " ends the fixed part.
func adminLoginAttempt(s string) (Event, bool) {
	var (
		ev   Event
		head string
	)
	switch {
	case strings.HasSuffix(s, ": failed: account disabled"):
		ev.Kind = KindUnknownUser
		head = s[:len(s)-len(": failed: account disabled")]
	case strings.HasSuffix(s, ": failed: password ok, but a token is required"):
		ev.Kind = KindAuthFailure
		head = s[:len(s)-len(": failed: password ok, but a token is required")]
	case len(s) > len(": failed: badauth: 123456") && strings.HasSuffix(s[:len(s)-6], ": failed: badauth: ") && isHex(s[len(s)-6:]):
		ev.Kind = KindAuthFailure
		ev.PassHash = s[len(s)-6:]
		head = s[:len(s)-len(": failed: badauth: 123456")]
	default:
		i := strings.Index(s, ": success: ")
		if i < 0 {
			// badip and anything unknown.
			return Event{}, false
		}
		ev.Kind = KindAuthSuccess
		head = s[:i]
	}
	i := lastIndex(head, " from: ")
	if i < 0 {
		return Event{}, false
	}
	ipsrc := head[i+len(" from: "):]
	who := head[:i]
	slash := strings.IndexByte(ipsrc, '/')
	if slash < 0 {
		return Event{}, false
	}
	a, ok := parseAddr(ipsrc[:slash])
	if !ok {
		return Event{}, false
	}
	// SRC is the client port, or (WebDAV) the account name: never a space.
	if src := ipsrc[slash+1:]; src == "" || strings.IndexByte(src, ' ') >= 0 {
		return Event{}, false
	}
	// who = USER/PROTO/PORT
	j := strings.LastIndexByte(who, '/')
	if j < 0 {
		return Event{}, false
	}
	port := who[j+1:]
	who = who[:j]
	k := strings.LastIndexByte(who, '/')
	if k < 0 {
		return Event{}, false
	}
	proto := who[k+1:]
	switch proto {
	case "imap", "pop3", "smtp", "submission", "sieve", "lmtp", "sso":
		if n, ok := atoiBounded(port, 65535); ok && proto != "sso" {
			ev.Port = int(n)
		}
		if n, ok := atoiBounded(ipsrc[slash+1:], 65535); ok {
			ev.SrcPort = uint16(n)
		}
	case "web":
		// web/<client port> from: IP/<user> (WebDAV quirk): the client
		// port sits where the server port would.
		if n, ok := atoiBounded(port, 65535); ok {
			ev.SrcPort = uint16(n)
		}
	default:
		return Event{}, false
	}
	ev.Addr = a
	ev.User = who[:k]
	return ev, true
}

// adminInvalidUser parses master's "Invalid user 'EMAIL' from IP: CAUSE",
// where EMAIL is a Python repr: quoted, with its own quote escaped.
func adminInvalidUser(s string) (Event, bool) {
	if len(s) < 2 || (s[0] != '\'' && s[0] != '"') {
		return Event{}, false
	}
	q := s[0]
	end := -1
	for i := 1; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			continue
		}
		if s[i] == q {
			end = i
			break
		}
	}
	if end < 0 {
		return Event{}, false
	}
	rest := s[end+1:]
	if !strings.HasPrefix(rest, " from ") {
		return Event{}, false
	}
	rest = rest[len(" from "):]
	c := strings.Index(rest, ": ")
	if c < 0 {
		return Event{}, false
	}
	a, ok := parseAddr(rest[:c])
	if !ok {
		return Event{}, false
	}
	return Event{Kind: KindUnknownUser, Addr: a, User: s[1:end]}, true
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
