package parse

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/sources"
)

// want is the part of an Event a table test checks.
type want struct {
	kind   Kind
	origin Origin
	addr   string
	user   string
	port   int
	count  int
	hash   string
}

func checkEvent(t *testing.T, line string, ev Event, ok bool, w *want) {
	t.Helper()
	if w == nil {
		if ok {
			t.Fatalf("line %q: want no event, got %+v", line, ev)
		}
		return
	}
	if !ok {
		t.Fatalf("line %q: want %+v, got no event", line, *w)
	}
	got := want{ev.Kind, ev.Origin, ev.Addr.String(), ev.User, ev.Port, ev.Count, ev.PassHash}
	if got != *w {
		t.Fatalf("line %q:\n got  %+v\n want %+v", line, got, *w)
	}
	if ev.Line != line {
		t.Fatalf("Line = %q, want the input line", ev.Line)
	}
}

// nginxTime is the line's own timestamp, as Docker would have stamped it a
// little later; zero if the line has none.
func nginxTime(line string) time.Time {
	if len(line) < 19 {
		return time.Time{}
	}
	t, err := time.Parse("2006/01/02 15:04:05", line[:19])
	if err != nil {
		return time.Time{}
	}
	return t.Add(300 * time.Millisecond)
}

var exampleBase = time.Date(2024, 9, 2, 23, 0, 0, 0, time.UTC)

func TestParseNginxExamples(t *testing.T) {
	cases := []struct {
		name      string
		connected string // the connection's "connected" line, fed first
		line      string
		want      *want
	}{
		{"2024.06 port 25 bot", `2024/09/02 20:46:22 [info] 23#23: *341375 client 80.94.95.239:41234 connected to 0.0.0.0:25`,
			`2024/09/02 20:46:22 [info] 23#23: *341375 client login failed: "AUTH not supported" while in http auth state, client: 80.94.95.239, server: 0.0.0.0:25, login: "paula@REDACTED.COM"`,
			&want{KindPort25Auth, OriginNginx, "80.94.95.239", "paula@REDACTED.COM", 25, 1, ""}},
		{"port 25 bot, plain user", `2025/05/23 10:27:04 [info] 71#71: *5762 client 81.30.107.130:5000 connected to 0.0.0.0:25`,
			`2025/05/23 10:27:05 [info] 71#71: *5762 client login failed: "AUTH not supported" while in http auth state, client: 81.30.107.130, server: 0.0.0.0:25, login: "eishi"`,
			&want{KindPort25Auth, OriginNginx, "81.30.107.130", "eishi", 25, 1, ""}},
		{"2.0 credentials invalid, no own timestamp", `[info] 12#12: *210 client 77.73.32.213:33333 connected to 0.0.0.0:465`,
			`[info] 12#12: *210 client login failed: "Authentication credentials invalid" while in http auth state, client: 77.73.32.213, server: 0.0.0.0:465, login: "test@test.com"`,
			&want{KindAuthFailure, OriginNginx, "77.73.32.213", "test@test.com", 465, 1, ""}},
		{"2.0 rate limit", `2023/07/06 16:40:33 [info] 17#17: *712 client 172.18.0.1:1000 connected to 0.0.0.0:465`,
			`2023/07/06 16:40:33 [info] 17#17: *712 client login failed: "Temporary authentication failure (rate-limit)" while in http auth state, client: 172.18.0.1, server: 0.0.0.0:465, login: "domesticate01"`,
			&want{KindRateLimited, OriginNginx, "172.18.0.1", "domesticate01", 465, 1, ""}},
		{"1.9 rate limit wording", `2022/02/23 06:37:25 [info] 11#11: *1305 client 5.34.207.81:2222 connected to 0.0.0.0:25`,
			`2022/02/23 06:37:26 [info] 11#11: *1305 client login failed: "Authentication rate limit from one source exceeded" while in http auth state, client: 5.34.207.81, server: 0.0.0.0:25, login: "hrc@fakedomain.net"`,
			&want{KindRateLimited, OriginNginx, "5.34.207.81", "hrc@fakedomain.net", 25, 1, ""}},
		{"IPv6 logged in is not counted", `2022/02/27 14:25:29 [info] 11#11: *2056 client [2a00:1450:4864:20::535]:33682 connected to [::]:25`,
			`2022/02/27 14:25:29 [info] 11#11: *2056 client logged in, client: 2a00:1450:4864:20::535 using starttls, server: [::]:25`, nil},
		{"IPv6 port 25 bot", `2024/09/02 20:50:00 [info] 23#23: *341400 client [2001:db8::66]:39397 connected to [::]:25`,
			`2024/09/02 20:50:01 [info] 23#23: *341400 client login failed: "AUTH not supported" while in http auth state, client: 2001:db8::66, server: [::]:25, login: "admin"`,
			&want{KindPort25Auth, OriginNginx, "2001:db8::66", "admin", 25, 1, ""}},
		{"IPv4-mapped client is unmapped", `2024/09/02 20:50:00 [info] 23#23: *341401 client [::ffff:203.0.113.8]:39397 connected to [::]:25`,
			`2024/09/02 20:50:01 [info] 23#23: *341401 client login failed: "AUTH not supported" while in http auth state, client: ::ffff:203.0.113.8, server: [::]:25, login: "admin"`,
			&want{KindPort25Auth, OriginNginx, "203.0.113.8", "admin", 25, 1, ""}},
		{"STARTTLS session (2.0 submission)", `2023/07/06 16:40:33 [info] 17#17: *713 client 203.0.113.5:1000 connected to 0.0.0.0:587`,
			`2023/07/06 16:40:34 [info] 17#17: *713 client login failed: "Authentication credentials invalid" while in http auth state, client: 203.0.113.5 using starttls, server: 0.0.0.0:587, login: "bob@example.com"`,
			&want{KindAuthFailure, OriginNginx, "203.0.113.5", "bob@example.com", 587, 1, ""}},
		{"login cut by CR: no closing quote", `2024/09/02 20:46:22 [info] 23#23: *9 client 198.51.100.4:1000 connected to 0.0.0.0:25`,
			`2024/09/02 20:46:22 [info] 23#23: *9 client login failed: "AUTH not supported" while in http auth state, client: 198.51.100.4, server: 0.0.0.0:25, login: "cr`,
			&want{KindPort25Auth, OriginNginx, "198.51.100.4", "cr", 25, 1, ""}},
		{"no login field", `2024/09/02 20:46:22 [info] 23#23: *10 client 198.51.100.4:1000 connected to 0.0.0.0:25`,
			`2024/09/02 20:46:22 [info] 23#23: *10 client login failed: "AUTH not supported" while in http auth state, client: 198.51.100.4, server: 0.0.0.0:25`,
			&want{KindPort25Auth, OriginNginx, "198.51.100.4", "", 25, 1, ""}},
		{"STARTTLS required is not abuse", `2024/09/02 20:46:22 [info] 23#23: *11 client 198.51.100.4:1000 connected to 0.0.0.0:25`,
			`2024/09/02 20:46:22 [info] 23#23: *11 client login failed: "Must issue a STARTTLS command first" while in http auth state, client: 198.51.100.4, server: 0.0.0.0:25, login: "x"`, nil},
		{"could not be resolved", `2024/09/02 20:46:22 [info] 23#23: *12 client 80.94.95.239:1000 connected to 0.0.0.0:25`,
			`2024/09/02 20:46:22 [error] 23#23: *12 "host.example" could not be resolved (3: Host not found) while in resolving client hostname, client: 80.94.95.239, server: 0.0.0.0:25`, nil},
		{"admin down: recv() failed", `2024/09/02 20:46:22 [info] 23#23: *13 client 80.94.95.239:1000 connected to 0.0.0.0:25`,
			`2024/09/02 20:46:22 [error] 23#23: *13 recv() failed (111: Connection refused) while in http auth state, client: 80.94.95.239, server: 0.0.0.0:25, login: "a"`, nil},
		{"admin 500", `2024/09/02 20:46:22 [info] 23#23: *14 client 80.94.95.239:1000 connected to 0.0.0.0:25`,
			`2024/09/02 20:46:22 [error] 23#23: *14 auth http server 127.0.0.1:8000 did not send server or port while in http auth state, client: 80.94.95.239, server: 0.0.0.0:25, login: "a"`, nil},
		{"SSL_shutdown repeats login", `2024/09/02 20:46:22 [info] 23#23: *15 client 80.94.95.239:1000 connected to 0.0.0.0:465`,
			`2024/09/02 20:46:22 [crit] 23#23: *15 SSL_shutdown() failed (SSL: error:0A000123) while in http auth state, client: 80.94.95.239, server: 0.0.0.0:465, login: "a"`, nil},
		{"failure at [error] level is not nginx's", `2024/09/02 20:46:22 [info] 23#23: *16 client 80.94.95.239:1000 connected to 0.0.0.0:25`,
			`2024/09/02 20:46:22 [error] 23#23: *16 client login failed: "AUTH not supported" while in http auth state, client: 80.94.95.239, server: 0.0.0.0:25, login: "a"`, nil},
		{"zone in address", `2024/09/02 20:46:22 [info] 23#23: *17 client [fe80::1%eth0]:1000 connected to [::]:25`,
			`2024/09/02 20:46:22 [info] 23#23: *17 client login failed: "AUTH not supported" while in http auth state, client: fe80::1%eth0, server: [::]:25, login: "a"`, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := NewParser(ParserOptions{})
			// The dialogue and admin's answer take a while: the failure
			// is logged at least a few ms after its connected line.
			ct, lt := nginxTime(c.connected).Add(-200*time.Millisecond), nginxTime(c.line)
			if lt.IsZero() {
				ct, lt = exampleBase, exampleBase.Add(time.Second)
			}
			if ev, ok := p.Parse(sources.Line{Service: "front", Time: ct, Text: c.connected}); ok {
				t.Fatalf("connected line gave an event: %+v", ev)
			}
			ev, ok := p.Parse(sources.Line{Service: "front", Time: lt, Text: c.line})
			checkEvent(t, c.line, ev, ok, c.want)
			if ok && !ev.Time.Equal(lt) {
				t.Fatalf("Time = %v, want Docker's %v", ev.Time, lt)
			}
			for r, n := range p.Stats().Forged {
				if n != 0 {
					t.Fatalf("real lines judged forged: %s=%d", r, n)
				}
			}
		})
	}
}

func TestParseDovecotExamples(t *testing.T) {
	cases := []struct {
		name string
		line string
		want *want
	}{
		{"2024.06 submission failure", `Sep 02 23:28:51 submission-login: Info: Disconnected: Aborted login by logging out (auth failed, 1 attempts in 2 secs): user=<admin>, method=LOGIN, rip=80.94.92.156, rport=1731, lip=192.168.203.5, lport=587, TLS`,
			&want{KindAuthFailure, OriginDovecot, "80.94.92.156", "admin", 587, 1, ""}},
		{"internal failure, compose prefix", `mailu-front-1 | Aug 21 09:18:45 submission-login: Info: Disconnected: Connection closed (internal failure, 1 successful auths): user=<test@example.com>, method=PLAIN, rip=2003:eb:XXXX, rport=36882, lip=fdee:eeee:eeee:eeee::4, lport=587, TLS`, nil},
		{"internal failure", `Aug 21 09:18:45 submission-login: Info: Disconnected: Connection closed (internal failure, 1 successful auths): user=<test@example.com>, method=PLAIN, rip=2001:db8::3, rport=36882, lip=fdee:eeee:eeee:eeee::4, lport=587, TLS`, nil},
		{"IPv6 imap, 3 attempts", `Sep 02 23:30:10 imap-login: Info: Disconnected: Connection closed (auth failed, 3 attempts in 9 secs): user=<info@example.com>, method=PLAIN, rip=2001:db8:1::5, rport=50122, lip=192.168.203.5, lport=993, TLS`,
			&want{KindAuthFailure, OriginDovecot, "2001:db8:1::5", "info@example.com", 993, 3, ""}},
		{"real Dovecot 2.3, auth failed after 3 attempts", `Sep 02 23:30:10 imap-login: Info: Disconnected: Aborted login by logging out (auth failed, 3 attempts in 6 secs): user=<info@example.com>, method=PLAIN, rip=198.51.100.13, rport=50122, lip=192.168.203.5, lport=993, TLS`,
			&want{KindAuthFailure, OriginDovecot, "198.51.100.13", "info@example.com", 993, 3, ""}},
		{"no trailer", `Sep 02 23:30:10 pop3-login: Info: Disconnected: Aborted login by logging out (auth failed, 1 attempts in 2 secs): user=<a@b.c>, method=PLAIN, rip=198.51.100.13, rport=50122, lip=192.168.203.5, lport=995`,
			&want{KindAuthFailure, OriginDovecot, "198.51.100.13", "a@b.c", 995, 1, ""}},
		{"sieve, mpid and TLS read error", `Sep 02 23:30:10 managesieve-login: Info: Disconnected: Connection closed (auth failed, 2 attempts in 4 secs): user=<a@b.c>, method=PLAIN, rip=198.51.100.14, rport=50122, lip=192.168.203.5, lport=4190, mpid=33, TLS: read(size=429) failed: Connection reset by peer`,
			&want{KindAuthFailure, OriginDovecot, "198.51.100.14", "a@b.c", 4190, 2, ""}},
		{"Dovecot 2.4 Login aborted", `Sep 02 23:32:00 imap-login: Info: Login aborted: Connection closed (auth failed, 2 attempts in 4 secs) (auth_failed): user=<x@example.com>, method=PLAIN, rip=203.0.113.51, rport=1, lip=192.168.203.5, lport=993, TLS`,
			&want{KindAuthFailure, OriginDovecot, "203.0.113.51", "x@example.com", 993, 2, ""}},
		{"old Aborted login", `Sep 02 23:32:00 imap-login: Info: Aborted login (auth failed, 1 attempts in 2 secs): user=<x@example.com>, method=PLAIN, rip=203.0.113.52, rport=1, lip=192.168.203.5, lport=143`,
			&want{KindAuthFailure, OriginDovecot, "203.0.113.52", "x@example.com", 143, 1, ""}},
		{"plaintext before STARTTLS: no method", `Sep 02 23:31:00 imap-login: Info: Disconnected: Aborted login by logging out (auth failed, 1 attempts in 0 secs): user=<>, rip=203.0.113.50, rport=1234, lip=192.168.203.5, lport=143`,
			&want{KindMisconfigured, OriginDovecot, "203.0.113.50", "", 143, 1, ""}},
		{"TLS junk", `May 23 10:27:13 submission-login: Info: Disconnected: Connection closed: SSL_accept() failed: error:0A000102:SSL routines::unsupported protocol (no auth attempts in 15 secs): user=<>, rip=149.109.112.183, rport=45067, lip=192.168.203.2, lport=465, TLS handshaking: SSL_accept() syscall failed: Invalid argument`,
			&want{KindScan, OriginDovecot, "149.109.112.183", "", 465, 1, ""}},
		{"disconnected before auth was ready", `Sep 02 22:48:15 imap-login: Info: Disconnected: Connection closed (disconnected before auth was ready, waited 0 secs): user=<>, rip=152.228.242.106, rport=35820, lip=192.168.203.5, lport=993, TLS handshaking: Connection closed`,
			&want{KindScan, OriginDovecot, "152.228.242.106", "", 993, 1, ""}},
		{"webmail imap port", `Sep 02 23:30:10 imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<a@b.c>, method=PLAIN, rip=192.168.204.3, rport=50122, lip=192.168.204.2, lport=10143`, nil},
		{"webmail submission port", `Sep 02 23:30:10 submission-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<a@b.c>, method=PLAIN, rip=192.168.204.3, rport=50122, lip=192.168.204.2, lport=10025`, nil},
		{"webmail sieve port", `Sep 02 23:30:10 managesieve-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<a@b.c>, method=PLAIN, rip=192.168.204.3, rport=50122, lip=192.168.204.2, lport=14190`, nil},
		{"backend refused", `Sep 02 23:30:10 imap-login: Info: Disconnected: Connection closed (proxy dest auth failed): user=<a@b.c>, method=PLAIN, rip=203.0.113.9, rport=50122, lip=192.168.203.5, lport=993, TLS`, nil},
		{"backend AUTHENTICATIONFAILED", `Sep 02 23:30:10 imap-login: Info: proxy(a@b.c,192.168.203.8:143): Login failed: [AUTHENTICATIONFAILED] Authentication failed.: user=<a@b.c>, method=PLAIN, rip=203.0.113.9, rport=1, lip=192.168.203.5, lport=993`, nil},
		{"admin down", `Sep 02 23:30:10 imap-login: Info: Disconnected: Aborted login by logging out (auth service reported temporary failure): user=<a@b.c>, method=PLAIN, rip=203.0.113.9, rport=1, lip=192.168.203.5, lport=993, TLS`, nil},
		{"success", `Sep 02 23:30:10 imap-login: Info: proxy(a@b.c,192.168.203.8:143): Started proxying to 192.168.203.8 (0.042 secs): user=<a@b.c>, method=PLAIN, rip=203.0.113.9, rport=1, lip=192.168.203.5, lport=993, TLS`, nil},
		{"master line", `Sep 02 23:30:10 master: Info: Dovecot v2.3.21 (47349e2482) starting up for imap, pop3, submission, sieve`, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := NewParser(ParserOptions{})
			ev, ok := p.Parse(sources.Line{Service: "front", Time: exampleBase, Text: c.line})
			checkEvent(t, c.line, ev, ok, c.want)
		})
	}
}

func TestParseAdminExamples(t *testing.T) {
	cases := []struct {
		line string
		want *want
	}{
		{`[2024-09-02 22:25:33,601] INFO in nginx: Login attempt for: REDACTED@REDACTED.COM/imap/993 from: 91.166.8.250/35618: success: password`,
			&want{KindAuthSuccess, OriginAdmin, "91.166.8.250", "REDACTED@REDACTED.COM", 993, 1, ""}},
		{`[2024-09-02 22:31:07,412] INFO in nginx: Login attempt for: alice@example.com/imap/993 from: 203.0.113.7/51544: failed: badauth: 3fa9c2`,
			&want{KindAuthFailure, OriginAdmin, "203.0.113.7", "alice@example.com", 993, 1, "3fa9c2"}},
		{`[2024-09-02 22:31:09,020] INFO in nginx: Login attempt for: 'admin'/submission/465 from: 203.0.113.7/51550: failed: account disabled`,
			&want{KindUnknownUser, OriginAdmin, "203.0.113.7", "'admin'", 465, 1, ""}},
		{`[2024-09-02 22:31:12,733] INFO in nginx: Login attempt for: alice@example.com/sieve/4190 from: 2001:db8:1::5/40222: failed: badauth: 3fa9c2`,
			&want{KindAuthFailure, OriginAdmin, "2001:db8:1::5", "alice@example.com", 4190, 1, "3fa9c2"}},
		{`[2024-09-02 22:32:00,105] INFO in base: Login attempt for: bob@example.com/sso/https from: 198.51.100.23/60412: failed: badauth: 0d41e7`,
			&want{KindAuthFailure, OriginAdmin, "198.51.100.23", "bob@example.com", 0, 1, "0d41e7"}},
		{`[2024-09-02 22:32:01,105] INFO in base: Login attempt for: bob@example.com/sso/https from: 198.51.100.23/60412: success: password: 0`,
			&want{KindAuthSuccess, OriginAdmin, "198.51.100.23", "bob@example.com", 0, 1, ""}},
		{`[2024-09-02 22:33:41,560] WARNING in limiter: Authentication attempt from 203.0.113.7 has been rate-limited.`,
			&want{KindRateLimited, OriginAdmin, "203.0.113.7", "", 0, 1, ""}},
		{`[2024-09-02 22:33:44,002] WARNING in limiter: Authentication attempt from 2001:db8:1::5 for alice@example.com has been rate-limited.`,
			&want{KindRateLimited, OriginAdmin, "2001:db8:1::5", "alice@example.com", 0, 1, ""}},
		{`[2024-09-02 22:40:02,871] WARNING in common: Invalid API token provided by 198.51.100.99.`,
			&want{KindTokenInvalid, OriginAdmin, "198.51.100.99", "", 0, 1, ""}},
		{`[2024-09-02 22:41:15,330] INFO in nginx: Login attempt for: carol@example.com/web/53211 from: 203.0.113.40/carol@example.com: failed: badauth: 88c01b`,
			&want{KindAuthFailure, OriginAdmin, "203.0.113.40", "carol@example.com", 0, 1, "88c01b"}},
		{`[2024-09-02 22:41:16,330] INFO in nginx: Login attempt for: carol@example.com/imap/993 from: 203.0.113.40/5000: failed: password ok, but a token is required`,
			&want{KindAuthFailure, OriginAdmin, "203.0.113.40", "carol@example.com", 993, 1, ""}},
		{`[2024-09-02 22:41:17,330] INFO in nginx: Login attempt for: carol@example.com/imap/993 from: 203.0.113.40/5000: failed: badip: token-3: 'laptop'`, nil},
		{`[2024-09-02 22:41:18,330] INFO in nginx: Login attempt for: carol@example.com/imap/993 from: 203.0.113.40/5000: success: token-3: 'laptop from: 8.8.8.8/1: x'`,
			&want{KindAuthSuccess, OriginAdmin, "203.0.113.40", "carol@example.com", 993, 1, ""}},
		{`[2024-09-02 22:41:19,330] INFO in nginx: Login attempt for: carol@example.com/smtp/25 from: 203.0.113.41/5000: failed: account disabled`,
			&want{KindUnknownUser, OriginAdmin, "203.0.113.41", "carol@example.com", 25, 1, ""}},
		{`[2023-07-06 16:40:33,000] WARNING in base: Login failed for bob@example.com from 198.51.100.23.`,
			&want{KindAuthFailure, OriginAdmin, "198.51.100.23", "bob@example.com", 0, 1, ""}},
		{`[2023-07-06 16:40:34,000] INFO in base: Login succeeded for bob@example.com from 198.51.100.23 pwned=0.`,
			&want{KindAuthSuccess, OriginAdmin, "198.51.100.23", "bob@example.com", 0, 1, ""}},
		{`[2025-01-01 10:00:00,000] WARNING in api: Invalid credentials for bob@example.com from 2001:db8::7.`,
			&want{KindAuthFailure, OriginAdmin, "2001:db8::7", "bob@example.com", 0, 1, ""}},
		{`[2025-01-01 10:00:00,000] WARNING in api: Invalid user 'x\' from 8.8.8.8: ' from 203.0.113.70: The email address is not valid`,
			&want{KindUnknownUser, OriginAdmin, "203.0.113.70", `x\' from 8.8.8.8: `, 0, 1, ""}},
		{`[2024-09-02 22:41:19,330] WARNING in base: Login failed by proxy - not on whitelist: from 203.0.113.9 through 192.168.203.1.`, nil},
		{`192.168.203.5 - - [02/Sep/2024:22:41:19 +0000] "GET /internal/auth/user HTTP/1.0" 403 0 "-" "-"`, nil},
		{`[2024-09-02 22:41:19,330] INFO in nginx: Login attempt for: x/imap/993 from: 203.0.113.40/5000: failed: badauth: 3FA9C2`, nil},
		{`[2024-09-02 22:41:19,330] INFO in nginx: Login attempt for: x/ftp/21 from: 203.0.113.40/5000: failed: badauth: 3fa9c2`, nil},
	}
	for _, c := range cases {
		p := NewParser(ParserOptions{})
		ev, ok := p.Parse(sources.Line{Service: "admin", Time: exampleBase, Text: c.line})
		checkEvent(t, c.line, ev, ok, c.want)
	}
}

func TestParsePostfixAndRspamd(t *testing.T) {
	cases := []struct {
		svc, line string
		want      *want
	}{
		{"smtp", `Oct 25 04:10:11 mail postfix/smtpd[61001]: NOQUEUE: reject: RCPT from unknown[203.0.113.9]: 554 5.7.1 <victim@gmail.com>: Relay access denied; from=<spam@x.example> to=<victim@gmail.com> proto=ESMTP helo=<x.example>`,
			&want{KindRelayDenied, OriginPostfix, "203.0.113.9", "", 25, 1, ""}},
		{"smtp", `Oct 25 04:10:40 mail postfix/smtpd[61002]: NOQUEUE: reject: RCPT from unknown[2001:db8::9]: 550 5.1.1 <nosuch@example.com>: Recipient address rejected: User unknown in virtual mailbox table; from=<a@b.example> to=<nosuch@example.com> proto=ESMTP helo=<b.example>`,
			&want{KindUserUnknown, OriginPostfix, "2001:db8::9", "", 25, 1, ""}},
		{"smtp", `Oct 25 04:10:41 mail postfix/smtpd[61002]: NOQUEUE: reject: RCPT from mx.example.net[198.51.100.8]: 550 5.1.1 <nosuch@example.com>: Recipient address rejected: User unknown in local recipient table; from=<a@b.example> to=<nosuch@example.com> proto=ESMTP helo=<[8.8.8.8]>`,
			&want{KindUserUnknown, OriginPostfix, "198.51.100.8", "", 25, 1, ""}},
		{"smtp", `Oct 25 03:33:07 mail postfix/smtpd[59863]: A303311BB3A: client=unknown[192.168.203.1]`,
			&want{KindRelayClient, OriginPostfix, "192.168.203.1", "", 0, 1, ""}},
		{"smtp", `Oct 25 03:33:07 mail postfix/smtpd[59863]: 4XyZ1k2abcz: client=host.example[198.51.100.2], sasl_method=PLAIN, sasl_username=alice@example.com`,
			&want{KindRelayClient, OriginPostfix, "198.51.100.2", "alice@example.com", 0, 1, ""}},
		{"smtp", `Oct 25 03:33:07 mail postfix/smtpd[59863]: connect from mailu-front-1.mailu_default[192.168.203.3]`, nil},
		{"smtp", `Oct 25 03:33:09 mail postfix/qmgr[352]: A303311BB3A: from=<customer@REDACTED>, size=42254, nrcpt=1 (queue active)`, nil},
		{"smtp", `postfix/smtpd[56]: NOQUEUE: reject: RCPT from unknown[192.0.2.77]: 554 5.7.1 <me@mycompany.com>: Sender address rejected: Access denied; from=<me@mycompany.com> to=<stephen@bonfaru.org> proto=ESMTP helo=<mx0a-001b2d01.pphosted.com>`, nil},
		{"smtp", `postfix/smtpd[56]: NOQUEUE: reject: RCPT from unknown[192.0.2.77]: 554 5.7.1 <me@mycompany.com>: Relay access denied; from=<me@mycompany.com> to=<stephen@bonfaru.org> proto=ESMTP helo=<x>`,
			&want{KindRelayDenied, OriginPostfix, "192.0.2.77", "", 25, 1, ""}},
		{"smtp", `Oct 25 04:10:11 mail postfix/smtpd[61001]: NOQUEUE: reject: RCPT from unknown[203.0.113.9]: 450 4.2.1 <a@b.c>: You are sending too many emails too fast.; from=<a@b.c> to=<x@y.z> proto=ESMTP helo=<h>`, nil},
		{"antispam", `2023-08-14 20:07:05 #156(rspamd_proxy) <37497c>; proxy; rspamd_task_write_log: id: <abc@github.com>, qid: <36025354E4>, ip: 192.30.252.208, from: <noreply@github.com>, (default: F (no action): [-8.95/15.00] [...]), len: 32068, time: 817.533ms, dns req: 33, digest: <00>, rcpts: <john@contoso.com>, mime_rcpts: <john@contoso.com>`,
			&want{KindRelayClient, OriginRspamd, "192.30.252.208", "", 0, 1, ""}},
		{"antispam", `2023-08-14 20:07:05 #156(rspamd_proxy) <37497c>; proxy; rspamd_task_write_log: id: <abc@x>, qid: <36025354E4>, ip: 192.168.203.1, user: alice@example.com, from: <alice@example.com>, (default: F (no action))`, nil},
		{"antispam", `2023-08-14 20:07:05 #156(rspamd_proxy) <37497c>; proxy; rspamd_task_write_log: id: <x>, qid: <Q>, ip: 8.8.8.8, from: <a>, qid: <36025354E4>, ip: 192.168.203.1, from: <b>`, nil},
		{"antispam", `2022-02-27 14:25:29 #7(rspamd_proxy) <c542b3>; milter; rspamd_milter_process_command: got connection from [2a00:1450:4864:20::535]:60470`, nil},
		{"imap", `Oct 25 04:10:11 mail postfix/smtpd[61001]: NOQUEUE: reject: RCPT from unknown[203.0.113.9]: 554 5.7.1 <v@g.com>: Relay access denied; from=<s@x> to=<v@g.com> proto=ESMTP helo=<x>`, nil},
	}
	for _, c := range cases {
		p := NewParser(ParserOptions{})
		ev, ok := p.Parse(sources.Line{Service: c.svc, Time: exampleBase, Text: c.line})
		checkEvent(t, c.line, ev, ok, c.want)
	}
}

func TestParseEventTime(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 5, 0, time.UTC)
	p := NewParser(ParserOptions{Now: func() time.Time { return now }})
	dov := `Dec 31 23:59:59 imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<a>, method=PLAIN, rip=203.0.113.1, rport=1, lip=192.168.203.5, lport=993`
	cases := []struct {
		name   string
		line   sources.Line
		expect time.Time
	}{
		{"Docker time wins", sources.Line{Service: "front", Time: exampleBase, Text: dov}, exampleBase},
		{"year-less December read in January", sources.Line{Service: "front", Text: dov}, time.Date(2024, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"admin own time", sources.Line{Service: "admin", Text: `[2024-09-02 22:33:41,560] WARNING in limiter: Authentication attempt from 203.0.113.7 has been rate-limited.`},
			time.Date(2024, 9, 2, 22, 33, 41, 560e6, time.UTC)},
		{"no time at all: now", sources.Line{Service: "smtp", Text: `postfix/smtpd[56]: NOQUEUE: reject: RCPT from unknown[192.0.2.77]: 554 5.7.1 <a@b>: Relay access denied; from=<a@b> to=<c@d> proto=ESMTP helo=<x>`}, now},
		{"postfix own time", sources.Line{Service: "smtp", Text: `Dec 30 04:10:11 mail postfix/smtpd[61001]: NOQUEUE: reject: RCPT from unknown[203.0.113.9]: 554 5.7.1 <v@g.com>: Relay access denied; from=<s@x> to=<v@g.com> proto=ESMTP helo=<x>`},
			time.Date(2024, 12, 30, 4, 10, 11, 0, time.UTC)},
		{"rspamd own time", sources.Line{Service: "antispam", Text: `2023-08-14 20:07:05 #156(rspamd_proxy) <37497c>; proxy; rspamd_task_write_log: id: <a>, qid: <Q>, ip: 203.0.113.4, from: <b>`},
			time.Date(2023, 8, 14, 20, 7, 5, 0, time.UTC)},
	}
	for _, c := range cases {
		ev, ok := p.Parse(c.line)
		if !ok || !ev.Time.Equal(c.expect) {
			t.Fatalf("%s: ok=%v Time=%v, want %v", c.name, ok, ev.Time, c.expect)
		}
	}
	// A ts-less nginx line read without Docker time: now.
	p = NewParser(ParserOptions{Now: func() time.Time { return now }})
	p.Parse(sources.Line{Service: "front", Text: `[info] 12#12: *210 client 77.73.32.213:1 connected to 0.0.0.0:465`})
	ev, ok := p.Parse(sources.Line{Service: "front", Text: `[info] 12#12: *210 client login failed: "Authentication credentials invalid" while in http auth state, client: 77.73.32.213, server: 0.0.0.0:465, login: "t"`})
	if !ok || !ev.Time.Equal(now) {
		t.Fatalf("ts-less nginx: ok=%v Time=%v, want now %v", ok, ev.Time, now)
	}
}

func TestParseUnknownServiceAndStats(t *testing.T) {
	p := NewParser(ParserOptions{})
	line := `[2024-09-02 22:40:02,871] WARNING in common: Invalid API token provided by 198.51.100.99.`
	if _, ok := p.Parse(sources.Line{Service: "webmail", Time: exampleBase, Text: line}); ok {
		t.Fatal("unknown service gave an event")
	}
	if _, ok := p.Parse(sources.Line{Service: "admin", Time: exampleBase, Text: line}); !ok {
		t.Fatal("admin line gave no event")
	}
	s := p.Stats()
	if s.Lines != 2 || s.Matched != 1 {
		t.Fatalf("stats %+v, want 2 lines 1 matched", s)
	}
	for _, r := range []string{ForgeUnopened, ForgeOtherAddress, ForgePoisoned, ForgeRepeat, ForgeWorker, ForgeFormat, ForgeTime, ForgeBurst, ForgeForeign, ForgeStale, ForgeAhead} {
		if _, ok := s.Forged[r]; !ok {
			t.Fatalf("Forged lacks %q", r)
		}
	}
}

func TestParseAddr(t *testing.T) {
	for s, w := range map[string]string{
		"203.0.113.1": "203.0.113.1", "::ffff:203.0.113.1": "203.0.113.1", "2001:db8::1": "2001:db8::1",
		"fe80::1%eth0": "", "0.0.0.0": "", "::": "", "203.0.113.256": "", "": "", "0203.0.113.1": "", "2001:db8::1]": "",
	} {
		a, ok := parseAddr(s)
		if (w == "") == ok || (ok && a != netip.MustParseAddr(w)) {
			t.Errorf("parseAddr(%q) = %v, %v; want %q", s, a, ok, w)
		}
	}
	if _, ok := parseAddr(strings.Repeat("1", 100)); ok {
		t.Error("long garbage accepted")
	}
}
