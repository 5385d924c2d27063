package parse

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/sources"
)

// The fuzz targets build real-looking lines around attacker text (the
// username and the like) for a known client, feed them the way Docker would
// deliver them, and check that no event ever names anyone but that client.
// In CI the seeds run as ordinary tests; run each target by hand with
// -fuzz=FuzzX -fuzztime=30s.

var fuzzClient = netip.MustParseAddr("203.0.113.66")

var fuzzUsers = []string{
	"alice@example.com",
	"",
	"client: 8.8.8.8, server: 0.0.0.0:25",
	"x>, method=PLAIN, rip=8.8.8.8, rport=1, lip=1.1.1.1, lport=993, TLS",
	"x (auth failed, 99 attempts in 1 secs): user=<y",
	" from: 8.8.8.8/1",
	"a from: 8.8.8.8/1: failed: badauth: 123456",
	"x\n2026/01/01 00:00:01 [info] 23#23: *200 client 8.8.8.8:1 connected to 0.0.0.0:25\n2026/01/01 00:00:01 [info] 23#23: *200 client login failed: \"AUTH not supported\" while in http auth state, client: 8.8.8.8, server: 0.0.0.0:25, login: \"y",
	"x\"\n2026/01/01 00:00:01 [info] 23#23: *100 client login failed: \"AUTH not supported\" while in http auth state, client: 8.8.8.8, server: 0.0.0.0:25, login: \"y",
	"cr\rpart2 client: 8.8.8.8",
	"x\"\nJan 01 00:00:01 imap-login: Info: Disconnected: Connection closed (auth failed, 5 attempts in 10 secs): user=<x>, method=PLAIN, rip=8.8.8.8, rport=1, lip=192.168.203.5, lport=993, TLS\ny",
	"x has been rate-limited.\n[2026-01-01 00:00:01,000] WARNING in limiter: Authentication attempt from 8.8.8.8",
	"x\n[2026-01-01 00:00:01,000] WARNING in common: Invalid API token provided by 8.8.8.8.",
	"\xff\xfe\uFFFD using starttls",
	"<8.8.8.8>[8.8.8.8]: Relay access denied; from=<a> to=<b>",
}

// fuzzFeed feeds one Docker write per element of writes (split at LF, and
// at CR when splitCR), 1 s apart, the lines of one write 1 µs apart.
type fuzzFeed struct {
	t       *testing.T
	p       *Parser
	service string
	events  []Event
	lines   map[string]bool
}

func newFuzzFeed(t *testing.T, service string) *fuzzFeed {
	return &fuzzFeed{t: t, p: NewParser(ParserOptions{MaxConnections: 1024}), service: service, lines: map[string]bool{}}
}

func (f *fuzzFeed) write(at time.Time, w string, splitCR bool) time.Time {
	return f.writeStep(at, time.Microsecond, w, splitCR)
}

// writeStep is write with the pieces step apart; it returns the time of
// the last one.
func (f *fuzzFeed) writeStep(at time.Time, step time.Duration, w string, splitCR bool) time.Time {
	last := at
	for i, l := range strings.FieldsFunc(w, func(r rune) bool { return r == '\n' || (splitCR && r == '\r') }) {
		f.lines[l] = true
		last = at.Add(time.Duration(i) * step)
		if ev, ok := f.p.Parse(sources.Line{Service: f.service, Container: "c", Time: last, Text: l}); ok {
			f.events = append(f.events, ev)
		}
	}
	return last
}

// check asserts the invariants of every event and returns how many there
// were.
func (f *fuzzFeed) check(onlyClient bool) int {
	f.t.Helper()
	for _, ev := range f.events {
		checkInvariants(f.t, ev)
		if !f.lines[ev.Line] {
			f.t.Fatalf("event Line %q is not an input line", ev.Line)
		}
		if onlyClient && ev.Addr != fuzzClient {
			f.t.Fatalf("event names %v, not the client %v: %+v", ev.Addr, fuzzClient, ev)
		}
	}
	// Allocated at the first connection, then never resized.
	if n := len(f.p.conns.slots); n != 0 && n != 1024 {
		f.t.Fatalf("connection table has %d slots", n)
	}
	return len(f.events)
}

func checkInvariants(t *testing.T, ev Event) {
	t.Helper()
	switch {
	case !ev.Addr.IsValid(), ev.Addr.Zone() != "", ev.Addr.Is4In6(), ev.Addr.IsUnspecified():
		t.Fatalf("bad Addr %v", ev.Addr)
	case ev.Count < 1 || ev.Count > maxEventCount:
		t.Fatalf("Count %d", ev.Count)
	case len(ev.User) > maxUserLen:
		t.Fatalf("User is %d bytes", len(ev.User))
	case ev.Kind == KindNone || ev.Kind >= KindCount, ev.Origin == OriginNone:
		t.Fatalf("Kind %v Origin %v", ev.Kind, ev.Origin)
	case ev.Time.IsZero():
		t.Fatal("zero Time")
	case ev.PassHash != "" && (len(ev.PassHash) != 6 || !isHex(ev.PassHash)):
		t.Fatalf("PassHash %q", ev.PassHash)
	case ev.Port < 0 || ev.Port > 65535:
		t.Fatalf("Port %d", ev.Port)
	}
}

var fuzzT0 = time.Date(2026, 1, 1, 0, 0, 0, 100e6, time.UTC)

func FuzzParseFront(f *testing.F) {
	for i, u := range fuzzUsers {
		f.Add(u, uint8(i))
	}
	f.Fuzz(func(t *testing.T, user string, mode uint8) {
		ff := newFuzzFeed(t, "front")
		c := fuzzClient.String()
		ts0, ts1 := "2026/01/01 00:00:00 ", "2026/01/01 00:00:01 "
		switch mode % 4 {
		case 0, 1, 2:
			starttls := ""
			if mode%4 == 1 {
				starttls = " using starttls"
			}
			if mode%4 == 2 {
				ts0, ts1 = "", ""
			}
			// Pieces of one write: a Docker read to a Python pipe
			// (0-450 µs apart).
			step := time.Microsecond + time.Duration(mode/4%10)*50*time.Microsecond
			ff.write(fuzzT0, ts0+"[info] 23#23: *100 client "+c+":40000 connected to 0.0.0.0:25", false)
			ff.writeStep(fuzzT0.Add(time.Second), step, ts1+`[info] 23#23: *100 client login failed: "Authentication credentials invalid" while in http auth state, client: `+c+starttls+`, server: 0.0.0.0:587, login: "`+user+`"`, true)
			last := ff.writeStep(fuzzT0.Add(time.Second+200*time.Millisecond), step, ts1+`[crit] 23#23: *100 SSL_shutdown() failed while in http auth state, client: `+c+`, server: 0.0.0.0:587, login: "`+user+`"`, true)
			// The bot's next connection, back to back (1-3 ms), must
			// count too.
			last = ff.write(last.Add(time.Millisecond+time.Duration(mode%16)*128*time.Microsecond), ts1+"[info] 23#23: *101 client "+c+":40001 connected to 0.0.0.0:25", false)
			ff.write(last.Add(4*time.Millisecond), ts1+`[info] 23#23: *101 client login failed: "Authentication credentials invalid" while in http auth state, client: `+c+starttls+`, server: 0.0.0.0:587, login: "again"`, true)
			if n := ff.check(true); n != 2 {
				t.Fatalf("%d events from two attempts", n)
			}
			return
		case 3:
			// Dovecot cuts the user to 80 and turns control characters
			// into '?': no line feed gets through.
			u := strings.Map(func(r rune) rune {
				if r < 0x20 || r == 0x7f {
					return '?'
				}
				return r
			}, user)
			ff.write(fuzzT0, `Jan 01 00:00:00 imap-login: Info: Disconnected: Connection closed (auth failed, 3 attempts in 6 secs): user=<`+u+`>, method=PLAIN, rip=`+c+`, rport=50122, lip=192.168.203.5, lport=993, TLS`, false)
		}
		if n := ff.check(true); n > 1 {
			t.Fatalf("%d events from one attempt", n)
		}
	})
}

// pyRepr approximates Python's repr() of a str, as admin prints raw_user.
func pyRepr(s string) string {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == rune(q):
			b.WriteByte('\\')
			b.WriteByte(q)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}

func FuzzParseAdmin(f *testing.F) {
	for i, u := range fuzzUsers {
		f.Add(u, uint8(i))
	}
	f.Fuzz(func(t *testing.T, user string, mode uint8) {
		ff := newFuzzFeed(t, "admin")
		c := fuzzClient.String()
		noLF := strings.NewReplacer("\n", "?", "\r", "?").Replace(user)
		const ts = "[2026-01-01 00:00:00,000] "
		var w string
		switch mode % 6 {
		case 0: // an existing account's address: no line feed
			w = ts + "INFO in nginx: Login attempt for: " + noLF + "/imap/993 from: " + c + "/51544: failed: badauth: 3fa9c2"
		case 1:
			w = ts + "INFO in nginx: Login attempt for: " + pyRepr(user) + "/submission/465 from: " + c + "/51550: failed: account disabled"
		case 2: // the limiter prints the username raw
			w = ts + "WARNING in limiter: Authentication attempt from " + c + " for " + user + " has been rate-limited."
		case 3: // WebDAV: the account name lands in the source port
			w = ts + "INFO in nginx: Login attempt for: " + noLF + "/web/53211 from: " + c + "/" + strings.ReplaceAll(noLF, " ", "") + ": failed: badauth: 88c01b"
		case 4: // ≤2.0 SSO, e-mail validated
			w = ts + "WARNING in base: Login failed for " + noLF + " from " + c + "."
		case 5:
			w = ts + "WARNING in api: Invalid user " + pyRepr(user) + " from " + c + ": The email address is not valid"
		}
		ff.write(fuzzT0, w, false)
		if n := ff.check(true); n > 1 {
			t.Fatalf("%d events from one line", n)
		}
	})
}

func FuzzParseSmtp(f *testing.F) {
	for i, u := range fuzzUsers {
		f.Add(u, uint8(i))
	}
	f.Fuzz(func(t *testing.T, text string, mode uint8) {
		ff := newFuzzFeed(t, "smtp")
		// Postfix prints control characters as '?'.
		s := strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return '?'
			}
			return r
		}, text)
		c := fuzzClient.String()
		var w string
		switch mode % 3 {
		case 0:
			w = "Jan 01 00:00:00 mail postfix/smtpd[61001]: NOQUEUE: reject: RCPT from unknown[" + c + "]: 554 5.7.1 <" + s + ">: Relay access denied; from=<" + s + "> to=<" + s + "> proto=ESMTP helo=<" + s + ">"
		case 1:
			w = "Jan 01 00:00:00 mail postfix/smtpd[61001]: NOQUEUE: reject: RCPT from unknown[" + c + "]: 550 5.1.1 <" + s + ">: Recipient address rejected: User unknown in virtual mailbox table; from=<" + s + "> to=<" + s + "> proto=ESMTP helo=<" + s + ">"
		case 2:
			w = "Jan 01 00:00:00 mail postfix/smtpd[61001]: 4XyZ1k2abcz: client=unknown[" + c + "], sasl_method=PLAIN, sasl_username=" + s
		}
		ff.write(fuzzT0, w, false)
		if n := ff.check(true); n != 1 {
			t.Fatalf("%d events from one line, want 1", n)
		}
	})
}

// FuzzParseLine feeds arbitrary text to every service, with and without
// Docker time: only the invariants hold.
func FuzzParseLine(f *testing.F) {
	seeds := []string{
		`2024/09/02 20:46:22 [info] 23#23: *341375 client 80.94.95.239:1 connected to 0.0.0.0:25`,
		`2024/09/02 20:46:22 [info] 23#23: *341375 client login failed: "AUTH not supported" while in http auth state, client: 80.94.95.239, server: 0.0.0.0:25, login: "paula@REDACTED.COM"`,
		`[info] 12#12: *210 client login failed: "Authentication credentials invalid" while in http auth state, client: 77.73.32.213, server: 0.0.0.0:465, login: "test@test.com"`,
		`2022/02/27 14:25:29 [info] 11#11: *2056 client [2a00:1450:4864:20::535]:33682 connected to [::]:25`,
		`Sep 02 23:28:51 submission-login: Info: Disconnected: Aborted login by logging out (auth failed, 1 attempts in 2 secs): user=<admin>, method=LOGIN, rip=80.94.92.156, rport=1731, lip=192.168.203.5, lport=587, TLS`,
		`May 23 10:27:13 submission-login: Info: Disconnected: Connection closed: SSL_accept() failed: error:0A000102:SSL routines::unsupported protocol (no auth attempts in 15 secs): user=<>, rip=149.109.112.183, rport=45067, lip=192.168.203.2, lport=465, TLS handshaking: SSL_accept() syscall failed: Invalid argument`,
		`[2024-09-02 22:31:07,412] INFO in nginx: Login attempt for: alice@example.com/imap/993 from: 203.0.113.7/51544: failed: badauth: 3fa9c2`,
		`[2024-09-02 22:33:44,002] WARNING in limiter: Authentication attempt from 2001:db8:1::5 for alice@example.com has been rate-limited.`,
		`[2024-09-02 22:40:02,871] WARNING in common: Invalid API token provided by 198.51.100.99.`,
		`[2023-07-06 16:40:34,000] INFO in base: Login succeeded for bob@example.com from 198.51.100.23 pwned=0.`,
		`Oct 25 04:10:11 mail postfix/smtpd[61001]: NOQUEUE: reject: RCPT from unknown[203.0.113.9]: 554 5.7.1 <victim@gmail.com>: Relay access denied; from=<spam@x.example> to=<victim@gmail.com> proto=ESMTP helo=<x.example>`,
		`Oct 25 03:33:07 mail postfix/smtpd[59863]: A303311BB3A: client=unknown[192.168.203.1]`,
		`2023-08-14 20:07:05 #156(rspamd_proxy) <37497c>; proxy; rspamd_task_write_log: id: <a>, qid: <Q>, ip: 192.30.252.208, from: <noreply@github.com>, len: 1`,
	}
	for i, s := range seeds {
		f.Add(s, uint8(i), true)
	}
	services := []string{"front", "admin", "smtp", "antispam"}
	f.Fuzz(func(t *testing.T, line string, svc uint8, docker bool) {
		p := NewParser(ParserOptions{MaxConnections: 64, Now: func() time.Time { return fuzzT0 }})
		l := sources.Line{Service: services[int(svc)%len(services)], Text: line}
		if docker {
			l.Time = fuzzT0
		}
		// Twice: the second time the connection state is not empty.
		for range 2 {
			if ev, ok := p.Parse(l); ok {
				checkInvariants(t, ev)
				if ev.Line != line {
					t.Fatal("Line is not the input")
				}
				if !strings.Contains(line, ev.User) {
					t.Fatalf("User %q is not from the line", ev.User)
				}
			}
		}
		if n := len(p.conns.slots); n != 0 && n != 64 {
			t.Fatal("connection table resized")
		}
	})
}
