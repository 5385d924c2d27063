package parse

import (
	"strings"
	"time"
)

// Dovecot login-proxy lines (Mailu 2024.06+ front), with Mailu's
// login_log_format_elements:
//
//	Mon DD HH:MM:SS imap-login: Info: Disconnected: REASON (auth failed, N attempts in S secs): user=<USER>, method=M, rip=IP, rport=P, lip=IP, lport=P[, TRAILER]
//
// REASON is Dovecot's own text; USER is attacker text (any character,
// lowercased, cut to 80). So the count comes from the first "(auth failed"
// group, left of the first ": user=<", and the address and port from the
// fixed fields right of the last ", rip=".

var dovecotServices = [...]string{"imap-login: Info: ", "pop3-login: Info: ", "submission-login: Info: ", "managesieve-login: Info: "}

// isDovecotLogin is the cheap test for "Mon DD HH:MM:SS <svc>-login: Info: ".
func isDovecotLogin(s string) bool {
	if len(s) < 16+len("imap-login: Info: ") || s[3] != ' ' || s[6] != ' ' || s[9] != ':' || s[12] != ':' || s[15] != ' ' {
		return false
	}
	rest := s[16:]
	for _, svc := range dovecotServices {
		if strings.HasPrefix(rest, svc) {
			return true
		}
	}
	return false
}

// WebmailPort reports whether p is one of front's listeners that serve
// Mailu's webmail container (IMAP 10143, SMTP 10025, ManageSieve 14190),
// never a client: neither counted nor alarmed on.
func WebmailPort(p int) bool {
	return p == 10143 || p == 10025 || p == 14190
}

// parseDovecot parses a line that passed isDovecotLogin.
func parseDovecot(s string, ref time.Time) (Event, lineTime, bool) {
	var ts lineTime
	msg := s[16:]
	msg = msg[strings.Index(msg, ": Info: ")+len(": Info: "):]
	if !strings.HasPrefix(msg, "Disconnected") && !strings.HasPrefix(msg, "Aborted login") && !strings.HasPrefix(msg, "Login aborted") {
		// proxy(...) lines, "Login failed: [AUTHENTICATIONFAILED]" from the
		// backend, successes.
		return Event{}, ts, false
	}
	const userField = ": user=<"
	u := strings.Index(msg, userField)
	if u < 0 {
		return Event{}, ts, false
	}
	head := msg[:u]
	if strings.Contains(head, "proxy dest auth failed") || strings.Contains(head, "auth service reported temporary failure") {
		// The backend refused, or admin was down: not a guess.
		return Event{}, ts, false
	}
	const ripField = ", rip="
	r := lastIndex(msg, ripField)
	if r < u {
		return Event{}, ts, false
	}
	ev, ok := dovecotTail(msg[r+len(ripField):])
	if !ok || WebmailPort(ev.Port) {
		return Event{}, ts, false
	}
	// Between the user and rip=: ">" or ">, method=M".
	before := msg[u+len(userField) : r]
	method := false
	if i := lastIndex(before, ">, method="); i >= 0 && isToken(before[i+len(">, method="):]) {
		before = before[:i]
		method = true
	} else if strings.HasSuffix(before, ">") {
		before = before[:len(before)-1]
	} else {
		return Event{}, ts, false
	}
	ev.User = before
	ev.Origin = OriginDovecot
	t, ok := parseSyslogTime(s[:15], ref)
	if !ok {
		return Event{}, ts, false
	}
	ts = lineTime{t, true}
	if n, ok := authFailedCount(head); ok {
		ev.Count = n
		ev.Kind = KindAuthFailure
		if !method {
			// No mechanism ran (LOGIN before STARTTLS): admin was never
			// asked, the client is misconfigured.
			ev.Kind = KindMisconfigured
		}
		return ev, ts, true
	}
	if strings.Contains(head, "no auth attempts") || strings.Contains(head, "SSL_accept() failed") || strings.Contains(head, "disconnected before auth was ready") {
		ev.Kind = KindScan
		ev.Count = 1
		return ev, ts, true
	}
	return Event{}, ts, false
}

// dovecotTail parses "IP, rport=P, lip=IP, lport=P" followed by the end or
// ", ...". Every field is strict (an address, digits), so a piece that
// does not parse as exactly that fails the line.
func dovecotTail(s string) (Event, bool) {
	addrS, s, ok1 := strings.Cut(s, ", rport=")
	rportS, s, ok2 := strings.Cut(s, ", lip=")
	lipS, s, ok3 := strings.Cut(s, ", lport=")
	lportS, _, _ := strings.Cut(s, ",")
	if !ok1 || !ok2 || !ok3 || lipS == "" || addrEnd(lipS) != len(lipS) {
		return Event{}, false
	}
	addr, ok := parseAddr(addrS)
	src, okSrc := atoiBounded(rportS, 65535)
	port, okPort := atoiBounded(lportS, 65535)
	if !ok || !okSrc || src == 0 || !okPort {
		return Event{}, false
	}
	return Event{Addr: addr, Port: int(port), SrcPort: uint16(src)}, true
}

// authFailedCount finds N in the first "(auth failed, N attempt" of head.
func authFailedCount(head string) (int, bool) {
	const g = "(auth failed, "
	i := strings.Index(head, g)
	if i < 0 {
		return 0, false
	}
	s := head[i+len(g):]
	n := digits(s)
	if n == 0 || !strings.HasPrefix(s[n:], " attempt") {
		return 0, false
	}
	v, ok := atoiBounded(s[:n], 1<<62)
	if !ok || v > maxEventCount {
		v = maxEventCount
	}
	if v < 1 {
		v = 1
	}
	return int(v), true
}

// isToken: a SASL mechanism name.
func isToken(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
