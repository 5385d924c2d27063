package parse

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/sources"
)

// Real Mailu lines (jail/parse tests, /work/shared/reference/mailu-logs.md),
// addresses from the documentation ranges.
const (
	vConnected   = `2024/09/02 20:46:21 [info] 23#23: *341375 client 203.0.113.9:4711 connected to 0.0.0.0:25`
	vPort25      = `2024/09/02 20:46:22 [info] 23#23: *341375 client login failed: "AUTH not supported" while in http auth state, client: 203.0.113.9, server: 0.0.0.0:25, login: "paula@example.com"`
	vUnopened    = `2024/09/02 20:46:23 [info] 23#23: *341399 client login failed: "AUTH not supported" while in http auth state, client: 203.0.113.9, server: 0.0.0.0:25, login: "eishi"`
	vStartTLS    = `2024/09/02 20:46:21 [info] 23#23: *341375 client login failed: "Must issue a STARTTLS command first" while in http auth state, client: 203.0.113.9, server: 0.0.0.0:25`
	vNginxError  = `2024/09/02 20:46:21 [error] 23#23: *341375 upstream timed out (110: Connection timed out) while reading upstream, client: 203.0.113.9`
	vNginxStart  = `2024/09/02 20:40:00 [notice] 1#1: start worker processes`
	vHTTP        = `198.51.100.7 - - [02/Sep/2024:20:46:21 +0000] "GET /sso/login HTTP/2.0" 200 4322 "-" "Mozilla/5.0"`
	vDovecotFail = `Sep 02 23:30:10 imap-login: Info: Disconnected: Connection closed (auth failed, 3 attempts in 9 secs): user=<info@example.com>, method=PLAIN, rip=2001:db8:1::5, rport=50122, lip=192.168.203.5, lport=993, TLS`
	vDovecotOK   = `Sep 02 23:30:10 imap-login: Info: proxy(info@example.com,192.168.203.8:993): Started proxying to 192.168.203.8:993 (0.042 secs): user=<info@example.com>, method=PLAIN, rip=2001:db8:1::5, rport=50123, lip=192.168.203.5, lport=993, TLS`
	vAdminFail   = `[2024-09-02 22:31:07,412] INFO in nginx: Login attempt for: alice@example.com/imap/993 from: 203.0.113.7/51544: failed: badauth: 3fa9c2`
	vAdminOther  = `[2024-09-02 22:31:07,412] INFO in app: Starting Mailu admin`
	vAdminHTTP   = `192.168.203.5 - - [02/Sep/2024:22:31:07 +0000] "GET /internal/auth/email HTTP/1.0" 200 0 "-" "-"`
	vPostfixDeny = `Oct 25 04:10:11 mail postfix/smtpd[61001]: NOQUEUE: reject: RCPT from unknown[203.0.113.9]: 554 5.7.1 <victim@example.net>: Relay access denied; from=<spam@x.example> to=<victim@example.net> proto=ESMTP helo=<x.example>`
	vPostfixConn = `Oct 25 03:33:07 mail postfix/smtpd[59863]: connect from mailu-front-1.mailu_default[192.168.203.3]`
	vPostfixQmgr = `Oct 25 03:33:09 mail postfix/qmgr[352]: A303311BB3A: from=<customer@example.com>, size=42254, nrcpt=1 (queue active)`
	vRspamd      = `2023-08-14 20:07:05 #156(rspamd_proxy) <37497c>; proxy; rspamd_task_write_log: id: <a>, qid: <Q>, ip: 192.0.2.208, from: <noreply@example.com>, len: 1`
	vRspamdAuth  = `2023-08-14 20:07:05 #156(rspamd_proxy) <37497c>; proxy; rspamd_task_write_log: id: <a>, qid: <Q>, ip: 192.0.2.208, user: alice, from: <alice@example.com>, len: 1`
	vRspamdOther = `2023-08-14 20:07:05 #1(main) <aa>; main; rspamd_main: rspamd 3.8 is starting`
	vGarbage     = `Traceback (most recent call last):`
)

// Every line gets the class and reason of the parser's own decision, in a
// stream that runs on (so the connection table holds vConnected) and has
// no Docker time.
func TestVerdicts(t *testing.T) {
	p := NewParser(ParserOptions{Now: func() time.Time { return exampleBase }})
	for _, tc := range []struct {
		service, line string
		class         Class
		reason        string
		kind          Kind
	}{
		// Before any nginx login line: without Docker time a span of
		// lines after one sets other clients' Dovecot failures aside.
		{"front", vDovecotFail, ClassMatched, "", KindAuthFailure},
		{"front", vNginxStart, ClassIgnored, IgnoreNginxStart, 0},
		{"front", vConnected, ClassIgnored, IgnoreNginxConnected, 0},
		{"front", vStartTLS, ClassIgnored, IgnoreNginxOther, 0},
		{"front", vNginxError, ClassIgnored, IgnoreNginxNotInfo, 0},
		{"front", vPort25, ClassMatched, "", KindPort25Auth},
		{"front", vUnopened, ClassForged, ForgeUnopened, 0},
		{"front", vHTTP, ClassIgnored, IgnoreHTTPAccess, 0},
		{"front", vDovecotOK, ClassIgnored, IgnoreDovecotOther, 0},
		{"front", vGarbage, ClassUnparsable, UnparsableFront, 0},
		{"admin", vAdminFail, ClassMatched, "", KindAuthFailure},
		{"admin", vAdminOther, ClassIgnored, IgnoreAdminOther, 0},
		{"admin", vAdminHTTP, ClassIgnored, IgnoreAdminAccess, 0},
		{"admin", vGarbage, ClassUnparsable, UnparsableAdmin, 0},
		{"smtp", vPostfixDeny, ClassMatched, "", KindRelayDenied},
		{"smtp", vPostfixConn, ClassIgnored, IgnorePostfixOther, 0},
		{"smtp", vPostfixQmgr, ClassIgnored, IgnorePostfixProgram, 0},
		{"smtp", vGarbage, ClassUnparsable, UnparsablePostfix, 0},
		{"antispam", vRspamd, ClassMatched, "", KindRelayClient},
		{"antispam", vRspamdAuth, ClassIgnored, IgnoreRspamdOther, 0},
		{"antispam", vRspamdOther, ClassIgnored, IgnoreRspamdOther, 0},
		{"antispam", vGarbage, ClassUnparsable, UnparsableRspamd, 0},
		{"frnt", vPort25, ClassUnparsable, UnparsableService, 0},
	} {
		ev, ok := p.Parse(sources.Line{Service: tc.service, Text: tc.line})
		v := p.Last()
		if v.Class != tc.class || v.Reason() != tc.reason || ok != (tc.class == ClassMatched) || ev.Kind != tc.kind {
			t.Errorf("%s %q: %s %q (event %v %v), want %s %q %v", tc.service, tc.line, v.Class, v.Reason(), ok, ev.Kind, tc.class, tc.reason, tc.kind)
		}
	}
	st := p.Stats()
	want := map[string]ServiceStats{
		"front": {Lines: 10, Matched: map[string]uint64{"port25-auth": 1, "auth-failure": 1},
			Ignored: map[string]uint64{IgnoreNginxStart: 1, IgnoreNginxConnected: 1, IgnoreNginxOther: 1, IgnoreNginxNotInfo: 1, IgnoreHTTPAccess: 1, IgnoreDovecotOther: 1},
			Forged:  map[string]uint64{ForgeUnopened: 1}, Unparsable: map[string]uint64{UnparsableFront: 1}},
		"admin": {Lines: 4, Matched: map[string]uint64{"auth-failure": 1}, Ignored: map[string]uint64{IgnoreAdminOther: 1, IgnoreAdminAccess: 1},
			Unparsable: map[string]uint64{UnparsableAdmin: 1}},
		"smtp": {Lines: 4, Matched: map[string]uint64{"relay-denied": 1}, Ignored: map[string]uint64{IgnorePostfixOther: 1, IgnorePostfixProgram: 1},
			Unparsable: map[string]uint64{UnparsablePostfix: 1}},
		"antispam": {Lines: 4, Matched: map[string]uint64{"relay-client": 1}, Ignored: map[string]uint64{IgnoreRspamdOther: 2},
			Unparsable: map[string]uint64{UnparsableRspamd: 1}},
		ServiceOther: {Lines: 1, Unparsable: map[string]uint64{UnparsableService: 1}},
	}
	if len(st.Services) != len(want) {
		t.Fatalf("services %v, want %v", st.Services, want)
	}
	for svc, w := range want {
		g := st.Services[svc]
		if g.Lines != w.Lines || !sameCounts(g.Matched, w.Matched) || !sameCounts(g.Ignored, w.Ignored) || !sameCounts(g.Forged, w.Forged) ||
			!sameCounts(g.Unparsable, w.Unparsable) || !sameCounts(g.Uncorroborated, w.Uncorroborated) {
			t.Errorf("%s: %+v\nwant %+v", svc, g, w)
		}
	}
	if st.Lines != 23 || st.Matched != 5 || st.Forged[ForgeUnopened] != 1 {
		t.Errorf("totals: lines %d matched %d forged %v", st.Lines, st.Matched, st.Forged)
	}
}

func sameCounts(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// In kernel mode a line the kernel did not corroborate is set aside as
// uncorroborated, with the witness's reason, and counted per service.
func TestVerdictUncorroborated(t *testing.T) {
	k := &kernelRecord{conns: map[netip.AddrPort]bool{}}
	p := NewParser(ParserOptions{Witness: k, Now: func() time.Time { return exampleBase }})
	k.connect("2001:db8:1::5", 50122)
	for _, tc := range []struct {
		line   string
		class  Class
		reason string
	}{
		{vDovecotFail, ClassMatched, ""},
		{vDovecotFail, ClassUncorroborated, UnseenSpent},
		{vConnected, ClassUncorroborated, UnseenConnection},
		{vPort25, ClassUncorroborated, UnseenUnopened},
		{vHTTP, ClassIgnored, IgnoreHTTPAccess},
		{vGarbage, ClassUnparsable, UnparsableFront},
	} {
		p.Parse(sources.Line{Service: "front", Container: "c", Time: exampleBase, Text: tc.line})
		if v := p.Last(); v.Class != tc.class || v.Reason() != tc.reason {
			t.Errorf("%q: %s %q, want %s %q", tc.line, v.Class, v.Reason(), tc.class, tc.reason)
		}
	}
	f := p.Stats().Services["front"]
	if !sameCounts(f.Uncorroborated, map[string]uint64{UnseenSpent: 1, UnseenConnection: 1, UnseenUnopened: 1}) || f.Matched["auth-failure"] != 1 {
		t.Errorf("front: %+v", f)
	}
}

func TestGuessService(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{vConnected, "front"}, {vPort25, "front"}, {vNginxStart, "front"}, {vDovecotFail, "front"}, {vDovecotOK, "front"},
		{vAdminFail, "admin"}, {vAdminOther, "admin"},
		{vPostfixDeny, "smtp"}, {vPostfixQmgr, "smtp"},
		{vRspamd, "antispam"}, {vRspamdOther, "antispam"},
		// Both front and admin write access logs: no vote.
		{vHTTP, ""}, {vAdminHTTP, ""}, {vGarbage, ""}, {"", ""},
	} {
		if got := GuessService(tc.line); got != tc.want {
			t.Errorf("GuessService(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
	var g ServiceGuess
	for _, l := range []string{vHTTP, vConnected, vAdminFail, vPort25, vGarbage} {
		g.Add(l)
	}
	if best, n := g.Best(); best != "front" || n != 2 || g.Lines != 5 {
		t.Errorf("Best = %q %d of %d, want front 2 of 5", best, n, g.Lines)
	}
}

// FuzzGuessService: the guess never panics, and a line guessed as a
// service's is one that service's parser reads (never unparsable there),
// since the guess uses the parser's own recognisers.
func FuzzGuessService(f *testing.F) {
	for _, l := range []string{vConnected, vPort25, vNginxStart, vHTTP, vDovecotFail, vAdminFail, vAdminHTTP, vPostfixDeny, vPostfixQmgr, vRspamd, vRspamdOther, vGarbage,
		"2024/09/02 20:46:21 [info] 1#1: *1 x", "[2024-09-02 22:31:07,412] X in y: z", "2023-08-14 20:07:05 #1(", "postfix/"} {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line string) {
		line = strings.ReplaceAll(line, "\n", " ")
		svc := GuessService(line)
		if svc == "" {
			return
		}
		if !KnownService(svc) {
			t.Fatalf("GuessService(%q) = %q, not a service bansd reads", line, svc)
		}
		p := NewParser(ParserOptions{MaxConnections: 16})
		p.Parse(sources.Line{Service: svc, Text: line})
		if v := p.Last(); v.Class == ClassUnparsable {
			t.Fatalf("GuessService(%q) = %q, but that parser finds it unparsable (%s)", line, svc, v.Reason())
		}
	})
}

// FuzzVerdict: whatever the lines, Parse's answer and its verdict agree,
// every line not matched has a reason, and each service's classes add up
// to its lines.
func FuzzVerdict(f *testing.F) {
	f.Add(vConnected+"\n"+vPort25+"\n"+vUnopened, "front")
	f.Add(vAdminFail+"\n"+vAdminHTTP+"\n"+vGarbage, "admin")
	f.Add(vPostfixDeny+"\n"+vPostfixQmgr, "smtp")
	f.Add(vRspamd+"\n"+vRspamdOther, "antispam")
	f.Add(vDovecotFail, "frnt")
	f.Fuzz(func(t *testing.T, text, service string) {
		p := NewParser(ParserOptions{MaxConnections: 16, Now: func() time.Time { return exampleBase }})
		for i, line := range strings.Split(text, "\n") {
			_, ok := p.Parse(sources.Line{Service: service, Time: exampleBase.Add(time.Duration(i) * time.Millisecond), Text: line})
			v := p.Last()
			if ok != (v.Class == ClassMatched) || (v.Class != ClassMatched) == (v.Reason() == "") {
				t.Fatalf("%q: ok %v, verdict %s %q", line, ok, v.Class, v.Reason())
			}
		}
		for svc, s := range p.Stats().Services {
			if n := Total(s.Matched) + Total(s.Ignored) + Total(s.Unparsable) + Total(s.Forged) + Total(s.Uncorroborated); n != s.Lines {
				t.Fatalf("%s: classes add up to %d of %d lines: %+v", svc, n, s.Lines, s)
			}
		}
	})
}
