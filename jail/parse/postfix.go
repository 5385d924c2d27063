package parse

import (
	"net/netip"
	"strings"

	"github.com/bansd/bansd/sources"
)

// Postfix (smtp service) lines:
//
//	Mon DD HH:MM:SS HOST postfix/smtpd[PID]: NOQUEUE: reject: RCPT from NAME[IP]: 554 5.7.1 <RCPT>: Relay access denied; from=<...> to=<...> proto=ESMTP helo=<...>
//	Mon DD HH:MM:SS HOST postfix/smtpd[PID]: QID: client=NAME[IP]
//
// NAME[IP] is what front passed by XCLIENT; everything after it (recipient,
// from=, to=, helo=) is the client's own text, so the address is the first
// "[IP]" after " from " / "client=". Postfix escapes control characters: no
// line feed can forge a line here.

// parsePostfix handles one line of the smtp service.
func (p *Parser) parsePostfix(l sources.Line) (Event, lineTime, bool) {
	s := l.Text
	i := strings.Index(s, "postfix/")
	if i < 0 {
		return Event{}, lineTime{}, false
	}
	rest := s[i+len("postfix/"):]
	// program: smtpd, or a named instance such as submission/smtpd.
	b := strings.IndexByte(rest[:min(len(rest), 64)], '[')
	if b < 0 || !strings.HasSuffix(rest[:b], "smtpd") {
		p.ignore(ignorePostfixProgram)
		return Event{}, lineTime{}, false
	}
	p.ignore(ignorePostfixOther)
	rest = rest[b+1:]
	n := digits(rest)
	if n == 0 || !strings.HasPrefix(rest[n:], "]: ") {
		return Event{}, lineTime{}, false
	}
	rest = rest[n+3:]
	var ev Event
	const reject = "NOQUEUE: reject: RCPT from "
	if strings.HasPrefix(rest, reject) {
		rest = rest[len(reject):]
		a, after, ok := nameAddr(rest)
		if !ok || !strings.HasPrefix(after, ": ") {
			return Event{}, lineTime{}, false
		}
		switch {
		case strings.Contains(after, ": Relay access denied;"):
			ev.Kind = KindRelayDenied
		case strings.Contains(after, ": User unknown in virtual mailbox table;"), strings.Contains(after, ": User unknown in local recipient table;"):
			ev.Kind = KindUserUnknown
		default:
			return Event{}, lineTime{}, false
		}
		ev.Addr = a
		ev.Port = 25
	} else {
		// QID: client=NAME[IP]
		q := 0
		for q < len(rest) && q < 32 && isAlnum(rest[q]) {
			q++
		}
		if q == 0 || !strings.HasPrefix(rest[q:], ": client=") {
			return Event{}, lineTime{}, false
		}
		a, after, ok := nameAddr(rest[q+len(": client="):])
		if !ok || (after != "" && after[0] != ',') {
			return Event{}, lineTime{}, false
		}
		ev.Kind = KindRelayClient
		ev.Addr = a
		if j := strings.Index(after, ", sasl_username="); j >= 0 {
			u := after[j+len(", sasl_username="):]
			if k := strings.IndexByte(u, ','); k >= 0 {
				u = u[:k]
			}
			ev.User = u
		}
	}
	ev.Origin = OriginPostfix
	ev.Count = 1
	var ts lineTime
	if i >= 16 {
		if t, ok := parseSyslogTime(s[:15], p.yearRef(l)); ok {
			ts = lineTime{t, true}
		}
	}
	return ev, ts, true
}

// nameAddr parses "NAME[IP]" (NAME never holds '[': Postfix checks it is a
// hostname, else "unknown") and returns what follows "]".
func nameAddr(s string) (a netip.Addr, after string, ok bool) {
	b := strings.IndexByte(s[:min(len(s), 300)], '[')
	if b < 0 || strings.IndexByte(s[:b], ' ') >= 0 {
		return a, "", false
	}
	s = s[b+1:]
	e := strings.IndexByte(s[:min(len(s), 64)], ']')
	if e < 0 {
		return a, "", false
	}
	a, ok = parseAddr(strings.TrimPrefix(s[:e], "IPv6:"))
	return a, s[e+1:], ok
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}
