package parse

import (
	"fmt"
	"testing"
	"time"

	"github.com/bansd/bansd/sources"
)

// benchLines is a day-in-the-life mix of a Mailu 2024.06 stack, mostly
// benign: HTTP access lines, nginx connections, Dovecot proxying, Postfix
// deliveries, admin access lines; a few percent failures.
func benchLines(n int) []sources.Line {
	out := make([]sources.Line, 0, n)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	connid := 1000
	for i := 0; len(out) < n; i++ {
		t := t0.Add(time.Duration(i) * 7 * time.Millisecond)
		ngx := t.Format("2006/01/02 15:04:05")
		sys := t.Format("Jan 02 15:04:05")
		adm := t.Format("2006-01-02 15:04:05,000")
		ip := fmt.Sprintf("198.51.100.%d", i%250+1)
		add := func(svc, text string) {
			out = append(out, sources.Line{Service: svc, Container: svc + "1", Time: t.Add(300 * time.Millisecond), Text: text})
		}
		switch i % 20 {
		case 0, 1, 2, 3:
			add("front", ip+` - - [01/Mar/2026:10:00:00 +0000] "GET /webmail/?_task=mail&_action=refresh HTTP/1.1" 200 512 "https://mail.example.com/webmail/" "Mozilla/5.0 (X11; Linux x86_64)"`)
		case 4:
			connid++
			add("front", fmt.Sprintf("%s [info] 23#23: *%d client %s:%d connected to 0.0.0.0:25", ngx, connid, ip, 40000+i%20000))
		case 5:
			add("front", fmt.Sprintf("%s [info] 23#23: *%d client logged in, client: %s using starttls, server: 0.0.0.0:25", ngx, connid, ip))
		case 6:
			connid++
			add("front", fmt.Sprintf("%s [info] 23#23: *%d client %s:%d connected to 0.0.0.0:25", ngx, connid, ip, 40000+i%20000))
			// The dialogue and admin's answer take a few ms.
			out = append(out, sources.Line{Service: "front", Container: "front1", Time: t.Add(303 * time.Millisecond),
				Text: fmt.Sprintf(`%s [info] 23#23: *%d client login failed: "AUTH not supported" while in http auth state, client: %s, server: 0.0.0.0:25, login: "user%d@example.com"`, ngx, connid, ip, i)})
		case 7:
			add("front", sys+` imap-login: Info: proxy(alice@example.com,192.168.203.8:143): Started proxying to 192.168.203.8 (0.042 secs): user=<alice@example.com>, method=PLAIN, rip=`+ip+`, rport=50122, lip=192.168.203.5, lport=993, TLS`)
		case 8:
			add("front", sys+` imap-login: Info: proxy(alice@example.com,192.168.203.8:143): Disconnected by server (0s idle, in=100, out=2000): user=<alice@example.com>, method=PLAIN, rip=`+ip+`, rport=50122, lip=192.168.203.5, lport=993, TLS`)
		case 9:
			add("front", sys+` submission-login: Info: Disconnected: Aborted login by logging out (auth failed, 1 attempts in 2 secs): user=<admin>, method=LOGIN, rip=`+ip+`, rport=1731, lip=192.168.203.5, lport=587, TLS`)
		case 10:
			add("admin", `192.168.203.5 - - [01/Mar/2026:10:00:00 +0000] "GET /internal/auth/email HTTP/1.0" 200 0 "-" "-"`)
		case 11:
			add("admin", `[`+adm+`] INFO in nginx: Login attempt for: alice@example.com/imap/993 from: `+ip+`/51544: success: password`)
		case 12:
			add("admin", `[`+adm+`] INFO in nginx: Login attempt for: alice@example.com/imap/993 from: `+ip+`/51544: failed: badauth: 3fa9c2`)
		case 13:
			add("smtp", sys+` mail postfix/smtpd[61001]: connect from mailu-front-1.mailu_default[192.168.203.5]`)
		case 14:
			add("smtp", sys+` mail postfix/cleanup[61010]: 4XyZ1k2abcz: message-id=<20260301100000.abc@example.net>`)
		case 15:
			add("smtp", sys+` mail postfix/qmgr[352]: 4XyZ1k2abcz: from=<news@example.net>, size=42254, nrcpt=1 (queue active)`)
		case 16:
			add("smtp", sys+` mail postfix/lmtp[61020]: 4XyZ1k2abcz: to=<alice@example.com>, relay=imap[192.168.203.9]:2525, delay=0.2, delays=0.1/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 Ok)`)
		case 17:
			add("smtp", sys+` mail postfix/smtpd[61001]: 4XyZ1k2abcz: client=mx.example.net[`+ip+`]`)
		case 18:
			add("antispam", `2026-03-01 10:00:00 #156(rspamd_proxy) <37497c>; proxy; rspamd_task_write_log: id: <abc@example.net>, qid: <4XyZ1k2abcz>, ip: `+ip+`, from: <news@example.net>, (default: F (no action): [-1.00/15.00] [...]), len: 32068, time: 81.533ms`)
		case 19:
			add("smtp", sys+` mail postfix/smtpd[61002]: NOQUEUE: reject: RCPT from unknown[`+ip+`]: 554 5.7.1 <victim@gmail.com>: Relay access denied; from=<spam@x.example> to=<victim@gmail.com> proto=ESMTP helo=<x.example>`)
		}
	}
	return out[:n]
}

func BenchmarkParse(b *testing.B) {
	lines := benchLines(100_000)
	p := NewParser(ParserOptions{})
	matched := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % len(lines)
		if j == 0 && i > 0 {
			// Docker time must not run backwards: a new stream.
			b.StopTimer()
			p = NewParser(ParserOptions{})
			b.StartTimer()
		}
		if _, ok := p.Parse(lines[j]); ok {
			matched++
		}
	}
	b.ReportMetric(float64(matched)/float64(b.N), "events/line")
}

// BenchmarkParseBenign is the zero-allocation path: lines with no signal.
func BenchmarkParseBenign(b *testing.B) {
	var lines []sources.Line
	for _, l := range benchLines(2000) {
		if _, ok := NewParser(ParserOptions{MaxConnections: 16}).Parse(l); !ok {
			lines = append(lines, l)
		}
	}
	p := NewParser(ParserOptions{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.Parse(lines[i%len(lines)])
	}
}
