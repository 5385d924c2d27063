package parse

import (
	"strings"

	"github.com/bansd/bansd/sources"
)

// rspamd (antispam service) task lines feed the gateway alarm only:
//
//	YYYY-MM-DD HH:MM:SS #N(rspamd_proxy) <id>; proxy; rspamd_task_write_log: id: <MSGID>, qid: <QID>, ip: IP, [user: LOGIN, ]from: <FROM>, ...
//
// MSGID and FROM are the sender's text and may themselves hold ", ip: ": a
// line with more than one is ambiguous and skipped.

// parseRspamd handles one line of the antispam service.
func (p *Parser) parseRspamd(l sources.Line) (Event, lineTime, bool) {
	s := l.Text
	const marker, ipField = "rspamd_task_write_log: ", ", ip: "
	i := strings.Index(s, marker)
	if i >= 0 || isRspamd(s) {
		p.ignore(ignoreRspamdOther)
	}
	if i < 0 {
		return Event{}, lineTime{}, false
	}
	rest := s[i+len(marker):]
	j := strings.Index(rest, ipField)
	if j < 0 || strings.Contains(rest[j+len(ipField):], ipField) {
		return Event{}, lineTime{}, false
	}
	rest = rest[j+len(ipField):]
	n := addrEnd(rest)
	a, ok := parseAddr(rest[:n])
	if !ok || !strings.HasPrefix(rest[n:], ", ") || strings.HasPrefix(rest[n:], ", user: ") {
		// Authenticated mail (user:) is not a relay alarm.
		return Event{}, lineTime{}, false
	}
	var ts lineTime
	if t, ok := parseDateTime(s, '-'); ok {
		ts = lineTime{t, true}
	}
	return Event{Kind: KindRelayClient, Origin: OriginRspamd, Addr: a, Count: 1}, ts, true
}
