package parse

import "strings"

// GuessService says which Mailu service wrote a line, from its format
// alone (the same recognisers Parse uses): "front" (nginx error log,
// Dovecot login proxy; not access logs, which admin writes too), "admin", "smtp" (Postfix) or
// "antispam" (rspamd); "" when no format fits. Attacker text can make a
// line look like another service's (a username holding a whole line), so
// the guess only ever picks how to read a file, never who is banned.
func GuessService(text string) string {
	switch {
	case text == "":
		return ""
	case isHTTPAccess(text):
		// front's nginx and admin's gunicorn both write access logs.
		return ""
	case isDovecotLogin(text), isNginxStart(text):
		return "front"
	}
	if _, ok := parseNginxHeader(text); ok {
		return "front"
	}
	if _, _, _, _, ok := adminHeader(text); ok {
		return "admin"
	}
	if i := strings.Index(text, "postfix/"); i >= 0 && i < 128 {
		return "smtp"
	}
	if isRspamd(text) {
		return "antispam"
	}
	return ""
}

// isRspamd reports whether s starts like an rspamd log line:
// "YYYY-MM-DD HH:MM:SS #PID(PROCESS) ".
func isRspamd(s string) bool {
	if _, ok := parseDateTime(s, '-'); !ok || len(s) < 23 || s[19] != ' ' || s[20] != '#' {
		return false
	}
	n := digits(s[21:])
	return n > 0 && 21+n < len(s) && s[21+n] == '('
}

// ServiceGuess tallies GuessService over lines of one file.
type ServiceGuess struct {
	// Lines is how many lines were looked at; Votes how many each service
	// got.
	Lines int
	Votes map[string]int
}

// Add counts one line.
func (g *ServiceGuess) Add(text string) {
	g.Lines++
	if s := GuessService(text); s != "" {
		if g.Votes == nil {
			g.Votes = map[string]int{}
		}
		g.Votes[s]++
	}
}

// Best is the service most lines voted for and how many did; "" when no
// line was recognised. Ties go to the service first in Mailu's order
// (front, admin, smtp, antispam).
func (g *ServiceGuess) Best() (string, int) {
	best, n := "", 0
	for _, s := range svcNames[:svcOther] {
		if v := g.Votes[s]; v > n {
			best, n = s, v
		}
	}
	return best, n
}

// KnownService reports whether bansd reads the service's lines.
func KnownService(s string) bool { return serviceIndex(s) != svcOther }
