package jail

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/bansd/bansd/jail/parse"
)

var kindNouns = [parse.KindCount]string{
	parse.KindAuthFailure:  "failed logins",
	parse.KindUnknownUser:  "logins for unknown users",
	parse.KindPort25Auth:   "AUTH attempts on port 25",
	parse.KindRateLimited:  "attempts refused by Mailu's rate limiter",
	parse.KindTokenInvalid: "invalid API tokens",
	parse.KindRelayDenied:  "relay attempts",
	parse.KindUserUnknown:  "unknown recipients",
	parse.KindScan:         "connections without login",
}

var portNames = map[uint16]string{
	25: "smtp", 465: "submission", 587: "submission", 143: "imap", 993: "imap",
	110: "pop3", 995: "pop3", 4190: "sieve", 80: "http", 443: "https",
}

// reason reads like "10 failed logins in 1h (auth-failure) on imap/993".
func reason(j *jailRT, w *window, sum int, target netip.Prefix) string {
	var kinds []string
	noun := "attempts"
	for k := parse.Kind(1); k < parse.KindCount; k++ {
		if w.kinds&(1<<k) != 0 {
			kinds = append(kinds, k.String())
			if len(kinds) == 1 && kindNouns[k] != "" {
				noun = kindNouns[k]
			} else {
				noun = "attempts"
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s in %s (%s)", sum, noun, shortDuration(j.cfg.FindTime), strings.Join(kinds, ", "))
	if w.port != 0 {
		if name, ok := portNames[w.port]; ok {
			fmt.Fprintf(&b, " on %s/%d", name, w.port)
		} else {
			fmt.Fprintf(&b, " on port %d", w.port)
		}
	}
	if j.cfg.MinAddresses > 1 {
		fmt.Fprintf(&b, " from %d addresses of %s", w.distinct(w.newest-j.find), target)
	}
	return b.String()
}

// shortDuration prints 1h rather than 1h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
