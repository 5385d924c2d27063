package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/jail/parse"
)

// Real Mailu lines of each source (see jail/parse's tests), addresses from
// the documentation ranges.
const (
	tConnected = `2024/09/02 20:46:21 [info] 23#23: *341375 client 203.0.113.9:4711 connected to 0.0.0.0:25`
	tPort25    = `2024/09/02 20:46:22 [info] 23#23: *341375 client login failed: "AUTH not supported" while in http auth state, client: 203.0.113.9, server: 0.0.0.0:25, login: "paula@example.com"`
	tDovecot   = `Sep 02 23:30:10 imap-login: Info: Disconnected: Connection closed (auth failed, 3 attempts in 9 secs): user=<info@example.com>, method=PLAIN, rip=2001:db8:1::5, rport=50122, lip=192.168.203.5, lport=993, TLS`
	tAdmin     = `[2024-09-02 22:31:09,020] INFO in nginx: Login attempt for: 'admin'/submission/465 from: 203.0.113.7/51550: failed: account disabled`
	tPostfix   = `Oct 25 04:10:40 mail postfix/smtpd[61002]: NOQUEUE: reject: RCPT from unknown[2001:db8::9]: 550 5.1.1 <nosuch@example.com>: Recipient address rejected: User unknown in virtual mailbox table; from=<a@b.example> to=<nosuch@example.com> proto=ESMTP helo=<b.example>`
	tRspamd    = `2023-08-14 20:07:05 #156(rspamd_proxy) <37497c>; proxy; rspamd_task_write_log: id: <a>, qid: <Q>, ip: 192.0.2.208, from: <noreply@example.com>, len: 1`
	tSuccess   = `[2024-09-02 22:25:33,601] INFO in nginx: Login attempt for: alice@example.com/imap/993 from: 198.51.100.20/35618: success: password`
	tHTTP      = `198.51.100.7 - - [02/Sep/2024:20:46:24 +0000] "GET /sso/login HTTP/2.0" 200 4322 "-" "Mozilla/5.0"`
	tIgnored   = `Sep 02 23:30:10 imap-login: Info: proxy(info@example.com,192.168.203.8:993): Started proxying to 192.168.203.8:993 (0.042 secs): user=<info@example.com>, method=PLAIN, rip=2001:db8:1::5, rport=50123, lip=192.168.203.5, lport=993, TLS`
)

func runTest(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd()
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"test"}, args...))
	root.SetOut(&out)
	root.SetErr(&errb)
	code := 0
	if err := root.ExecuteContext(context.Background()); err != nil {
		var ee exitError
		if e, ok := err.(exitError); ok {
			ee = e
			code = ee.code
		} else {
			code = exitCode(err, &errb)
		}
	}
	return code, out.String(), errb.String()
}

// bansctl test says what bansd makes of a line of each Mailu source, with
// the service guessed (and said so) or given.
func TestTestCommand(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		wants []string
	}{
		{"nginx front", []string{tConnected, tPort25}, 0, []string{
			"line 1: " + tConnected, "verdict: ignored: " + parse.IgnoreNginxConnected,
			"service: front (guessed from content)", "verdict: matched", "event:   port25-auth (from nginx)", "client:  203.0.113.9",
			`user:    "paula@example.com"`, "port:    25", "count:   1", "counted: yes"}},
		{"nginx alone", []string{tPort25}, 1, []string{"verdict: set aside as forged: unopened", `hint:    an nginx failure counts only on a connection its "connected" line opened`}},
		{"dovecot", []string{tDovecot}, 0, []string{"service: front (guessed", "event:   auth-failure (from dovecot)", "client:  2001:db8:1::5", `user:    "info@example.com"`, "port:    993", "count:   3"}},
		{"admin", []string{tAdmin}, 0, []string{"service: admin (guessed", "event:   unknown-user (from admin)", "client:  203.0.113.7", `user:    "'admin'"`, "port:    465", "counted: yes"}},
		{"admin success", []string{tSuccess}, 0, []string{"event:   auth-success (from admin)", "counted: no, " + jail.SkipSuccess}},
		{"postfix", []string{tPostfix}, 0, []string{"service: smtp (guessed", "event:   user-unknown (from postfix)", "client:  2001:db8::9", "port:    25"}},
		{"rspamd", []string{tRspamd}, 0, []string{"service: antispam (guessed", "event:   relay-client (from rspamd)", "client:  192.0.2.208", "counted: no, " + jail.SkipAlarmOnly}},
		{"ignored", []string{tIgnored}, 1, []string{"verdict: ignored: " + parse.IgnoreDovecotOther}},
		{"access log", []string{tHTTP}, 1, []string{"service: unknown (not guessed from content)", "verdict: ignored: service not guessed (as front: " + parse.IgnoreHTTPAccess + "; as admin: " + parse.IgnoreAdminAccess + ")"}},
		{"not guessed", []string{"hello world"}, 1, []string{"service: unknown (not guessed from content)", "verdict: unparsable: no line of front, admin, smtp or antispam"}},
		{"given service", []string{"--service", "admin", tDovecot}, 1, []string{"service: admin\n", "verdict: unparsable: " + parse.UnparsableAdmin}},
		{"docker prefix", []string{"2024-09-02T22:31:09.020000000Z " + tAdmin}, 0, []string{"event:   unknown-user (from admin)"}},
		{"ban", []string{"-"}, 0, []string{"line 10:", "ban:     203.0.113.7/32 (jail auth): 10 "}},
		{"unknown service", []string{"--service", "frnt", tAdmin}, exitUsage, []string{`--service: want front, admin, smtp or antispam, got "frnt"`}},
		{"no line", nil, exitUsage, []string{"wrong arguments"}},
		{"stdin twice", []string{"-", "-"}, exitUsage, []string{"standard input (-) given twice"}},
		{"two lines in one", []string{tConnected + "\n" + tPort25}, exitUsage, []string{"one line per argument"}},
		{"empty", []string{""}, exitUsage, []string{"no line to test"}},
		{"empty stdin", []string{"-"}, exitUsage, []string{"no line to test"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdin := ""
			if tc.name == "ban" {
				for i := range 10 {
					stdin += strings.Replace(tAdmin, "'admin'", fmt.Sprintf("'u%d'", i), 1) + "\n"
				}
			}
			code, out, errs := runTest(t, stdin, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s%s", code, tc.code, out, errs)
			}
			for _, w := range tc.wants {
				if !strings.Contains(out+errs, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestTestJSON(t *testing.T) {
	code, out, errs := runTest(t, "", "--json", tConnected, tPort25, "hello")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res struct {
		Lines    []map[string]json.RawMessage `json:"lines"`
		AnyEvent bool                         `json:"any_event"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Lines) != 3 || !res.AnyEvent {
		t.Fatalf("json: %v %+v\n%s", err, res, out)
	}
	keys := func(m map[string]json.RawMessage) []string {
		var k []string
		for x := range m {
			k = append(k, x)
		}
		sort.Strings(k)
		return k
	}
	for i, want := range [][]string{
		{"class", "counted", "guessed", "line", "reason", "service"},
		{"class", "counted", "event", "guessed", "line", "service"},
		{"class", "counted", "guessed", "line", "reason", "service"},
	} {
		if got := keys(res.Lines[i]); !slices.Equal(got, want) {
			t.Errorf("line %d keys %v, want %v", i+1, got, want)
		}
	}
	var ev printedEvent
	if err := json.Unmarshal(res.Lines[1]["event"], &ev); err != nil || ev != (printedEvent{Kind: "port25-auth", Origin: "nginx", Client: "203.0.113.9", User: "paula@example.com", Port: 25, Count: 1}) {
		t.Errorf("event %+v (%v)", ev, err)
	}
}
