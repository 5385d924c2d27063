package parse

import (
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/sources"
)

// Attacker text in the middle of a line must never move the client address,
// the attempt count or the outcome.
func TestParseInjection(t *testing.T) {
	cases := []struct {
		name, svc, line string
		want            *want
	}{
		{"Dovecot: fake rip= tail in user", "front",
			`Sep 02 23:30:10 imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<x>, method=plain, rip=8.8.8.8, rport=1, lip=1.1.1.1, lport=993, tls>, method=PLAIN, rip=203.0.113.9, rport=50122, lip=192.168.203.5, lport=993, TLS`,
			&want{KindAuthFailure, OriginDovecot, "203.0.113.9", "x>, method=plain, rip=8.8.8.8, rport=1, lip=1.1.1.1, lport=993, tls", 993, 1, ""}},
		{"Dovecot: fake attempt count in user", "front",
			`Sep 02 23:30:10 imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<x (auth failed, 99 attempts in 1 secs): user=<y>, method=PLAIN, rip=203.0.113.9, rport=50122, lip=192.168.203.5, lport=993, TLS`,
			&want{KindAuthFailure, OriginDovecot, "203.0.113.9", "x (auth failed, 99 attempts in 1 secs): user=<y", 993, 1, ""}},
		{"Dovecot: fake count in a scan line's user", "front",
			`Sep 02 23:30:10 imap-login: Info: Disconnected: Connection closed (no auth attempts in 2 secs): user=<x (auth failed, 99 attempts in 1 secs)>, rip=203.0.113.9, rport=50122, lip=192.168.203.5, lport=993, TLS`,
			&want{KindScan, OriginDovecot, "203.0.113.9", "x (auth failed, 99 attempts in 1 secs)", 993, 1, ""}},
		{"Dovecot: fake method in user of a method-less line", "front",
			`Sep 02 23:30:10 imap-login: Info: Disconnected: Aborted login by logging out (auth failed, 1 attempts in 0 secs): user=<x>, method=PLAIN>, rip=203.0.113.9, rport=50122, lip=192.168.203.5, lport=143`,
			&want{KindMisconfigured, OriginDovecot, "203.0.113.9", "x>, method=PLAIN", 143, 1, ""}},
		{"Dovecot: fake webmail port in user", "front",
			`Sep 02 23:30:10 imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<a, lport=10143>, method=PLAIN, rip=203.0.113.9, rport=50122, lip=192.168.203.5, lport=993, TLS`,
			&want{KindAuthFailure, OriginDovecot, "203.0.113.9", "a, lport=10143", 993, 1, ""}},
		{"Dovecot: huge count capped", "front",
			`Sep 02 23:30:10 imap-login: Info: Disconnected: Connection closed (auth failed, 99999999999999999999999 attempts in 2 secs): user=<a>, method=PLAIN, rip=203.0.113.9, rport=50122, lip=192.168.203.5, lport=993, TLS`,
			&want{KindAuthFailure, OriginDovecot, "203.0.113.9", "a", 993, maxEventCount, ""}},
		{"admin: from: in user", "admin",
			`[2024-09-02 22:31:07,412] INFO in nginx: Login attempt for: 'x from: 8.8.8.8/1'/imap/993 from: 203.0.113.7/51544: failed: account disabled`,
			&want{KindUnknownUser, OriginAdmin, "203.0.113.7", "'x from: 8.8.8.8/1'", 993, 1, ""}},
		{"admin: whole fake tail in user", "admin",
			`[2024-09-02 22:31:07,412] INFO in nginx: Login attempt for: 'a/imap/993 from: 8.8.8.8/1: failed: badauth: 123456'/imap/993 from: 203.0.113.7/51544: failed: account disabled`,
			&want{KindUnknownUser, OriginAdmin, "203.0.113.7", "'a/imap/993 from: 8.8.8.8/1: failed: badauth: 123456'", 993, 1, ""}},
		{"admin: success text in user of a failure", "admin",
			`[2024-09-02 22:31:07,412] INFO in nginx: Login attempt for: 'a: success: password'/imap/993 from: 203.0.113.7/51544: failed: account disabled`,
			&want{KindUnknownUser, OriginAdmin, "203.0.113.7", "'a: success: password'", 993, 1, ""}},
		{"admin limiter: address in user", "admin",
			`[2024-09-02 22:33:44,002] WARNING in limiter: Authentication attempt from 203.0.113.7 for x from 8.8.8.8 has been rate-limited.`,
			&want{KindRateLimited, OriginAdmin, "203.0.113.7", "x from 8.8.8.8", 0, 1, ""}},
		{"admin 2.0 SSO: from in user", "admin",
			`[2023-07-06 16:40:33,000] WARNING in base: Login failed for a from 8.8.8.8 from 198.51.100.23.`,
			&want{KindAuthFailure, OriginAdmin, "198.51.100.23", "a from 8.8.8.8", 0, 1, ""}},
		{"postfix: addresses in helo, from, rcpt", "smtp",
			`Oct 25 04:10:11 mail postfix/smtpd[61001]: NOQUEUE: reject: RCPT from unknown[203.0.113.9]: 554 5.7.1 <a[8.8.8.8]@x>: Relay access denied; from=<[8.8.8.8]> to=<a[8.8.8.8]@x> proto=ESMTP helo=<[8.8.8.8]>`,
			&want{KindRelayDenied, OriginPostfix, "203.0.113.9", "", 25, 1, ""}},
		{"postfix: fake client= in from", "smtp",
			`Oct 25 04:10:11 mail postfix/smtpd[61001]: NOQUEUE: reject: RCPT from mx.example[203.0.113.9]: 554 5.7.1 <a@x>: Relay access denied; from=<client=unknown[8.8.8.8]> to=<a@x> proto=ESMTP helo=<x>`,
			&want{KindRelayDenied, OriginPostfix, "203.0.113.9", "", 25, 1, ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := NewParser(ParserOptions{})
			ev, ok := p.Parse(sources.Line{Service: c.svc, Time: exampleBase, Text: c.line})
			checkEvent(t, c.line, ev, ok, c.want)
		})
	}
}

// A line feed in the limiter's raw username lets the attacker write admin
// lines: those in the same burst do not count.
func TestAdminForgedLines(t *testing.T) {
	forged := []string{
		`[2024-09-02 22:33:44,002] WARNING in limiter: Authentication attempt from 198.51.100.1 has been rate-limited.`,
		`[2024-09-02 22:33:44,002] INFO in nginx: Login attempt for: a/imap/993 from: 198.51.100.1/1: failed: badauth: 123456`,
		`[2024-09-02 22:33:44,002] INFO in nginx: Login attempt for: a/imap/993 from: 198.51.100.1/1: success: password`,
	}
	for _, closed := range []bool{false, true} {
		for _, docker := range []bool{true, false} {
			p := NewParser(ParserOptions{})
			first := `[2024-09-02 22:33:44,002] WARNING in limiter: Authentication attempt from 203.0.113.7 for x`
			if closed {
				first += limiterSuffix
			}
			var got []string
			for i, l := range append([]string{first}, forged...) {
				line := sources.Line{Service: "admin", Text: l}
				if docker {
					line.Time = exampleBase.Add(time.Duration(i) * time.Microsecond)
				}
				if ev, ok := p.Parse(line); ok {
					got = append(got, ev.Addr.String())
				}
			}
			want := ""
			if closed {
				want = "203.0.113.7"
			}
			if strings.Join(got, " ") != want {
				t.Fatalf("closed=%v docker=%v: events %v, want %q", closed, docker, got, want)
			}
			if !closed || !docker {
				continue
			}
			// After the burst, admin lines count again.
			if _, ok := p.Parse(sources.Line{Service: "admin", Time: exampleBase.Add(time.Second), Text: forged[0]}); !ok {
				t.Fatal("line after the burst not counted")
			}
		}
	}
}

// An attacker's own admin lines in his burst still count: parallel
// attempts are logged microseconds apart. Lines about anyone else do not.
func TestAdminBurstOwnClientCounts(t *testing.T) {
	lines := []string{
		`[2024-09-02 22:33:44,002] WARNING in limiter: Authentication attempt from 203.0.113.7 for alice@example.com has been rate-limited.`,
		`[2024-09-02 22:33:44,002] WARNING in limiter: Authentication attempt from 203.0.113.7 for alice@example.com has been rate-limited.`,
		`[2024-09-02 22:33:44,002] INFO in nginx: Login attempt for: alice@example.com/imap/993 from: 203.0.113.7/4711: failed: badauth: 3fa9c2`,
		`[2024-09-02 22:33:44,002] WARNING in limiter: Authentication attempt from 198.51.100.1 has been rate-limited.`,
		`[2024-09-02 22:33:44,002] WARNING in limiter: Authentication attempt from 203.0.113.7 for bob@example.com has been rate-limited.`,
	}
	p := NewParser(ParserOptions{})
	var got []string
	for i, l := range lines {
		if ev, ok := p.Parse(sources.Line{Service: "admin", Time: exampleBase.Add(time.Duration(i) * 20 * time.Microsecond), Text: l}); ok {
			got = append(got, ev.Addr.String())
		}
	}
	want := "203.0.113.7 203.0.113.7 203.0.113.7 203.0.113.7"
	if strings.Join(got, " ") != want {
		t.Fatalf("events %v, want %s", got, want)
	}
	if n := p.Stats().Forged[ForgeBurst]; n != 1 {
		t.Fatalf("forged burst lines = %d, want 1", n)
	}
}
