package parse

import (
	"strings"
	"time"

	"github.com/bansd/bansd/sources"
)

// LineTime returns when a line was logged: Docker's timestamp when it has
// one, else the line's own (nginx, admin, Dovecot/Postfix syslog, rspamd,
// nginx access log), with ref placing year-less timestamps. It is what
// replay merges streams by.
func LineTime(l sources.Line, ref time.Time) (time.Time, bool) {
	if !l.Time.IsZero() {
		return l.Time, true
	}
	s := l.Text
	if len(s) < 15 {
		return time.Time{}, false
	}
	switch {
	case s[0] == '[':
		return parseAdminTime(s[1:])
	case s[4] == '/':
		return parseDateTime(s, '/')
	case s[4] == '-':
		return parseDateTime(s, '-')
	case s[3] == ' ':
		return parseSyslogTime(s, ref)
	}
	// nginx combined: ADDR - USER [02/Jan/2006:15:04:05 -0700] "..."
	if i := strings.Index(s, " ["); i > 0 && i < 64 && len(s) >= i+28 && s[i+28] == ']' {
		if t, err := time.Parse("02/Jan/2006:15:04:05 -0700", s[i+2:i+28]); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}
