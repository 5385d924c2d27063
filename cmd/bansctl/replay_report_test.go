package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/mailugen"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/jail/parse"
)

// Real Mailu lines (see jail/parse's tests), addresses from the
// documentation ranges, each with a Docker timestamp equal to its own.
const (
	rConnected = `2024-09-02T20:46:21.100000000Z 2024/09/02 20:46:21 [info] 23#23: *100 client 203.0.113.9:4711 connected to 0.0.0.0:25`
	rPort25    = `2024-09-02T20:46:22.100000000Z 2024/09/02 20:46:22 [info] 23#23: *100 client login failed: "AUTH not supported" while in http auth state, client: 203.0.113.9, server: 0.0.0.0:25, login: "paula@example.com"`
	rUnopened  = `2024-09-02T20:46:23.100000000Z 2024/09/02 20:46:23 [info] 23#23: *999 client login failed: "AUTH not supported" while in http auth state, client: 198.51.100.3, server: 0.0.0.0:25, login: "eishi"`
	rHTTP      = `2024-09-02T20:46:24.100000000Z 198.51.100.7 - - [02/Sep/2024:20:46:24 +0000] "GET /sso/login HTTP/2.0" 200 4322 "-" "Mozilla/5.0"`
	rGarbage   = `2024-09-02T20:46:25.100000000Z Traceback (most recent call last):`
	rDovecot   = `2024-09-02T20:46:26.100000000Z Sep 02 20:46:26 imap-login: Info: Disconnected: Connection closed (auth failed, 3 attempts in 9 secs): user=<info@example.com>, method=PLAIN, rip=2001:db8:1::5, rport=50122, lip=192.168.203.5, lport=993, TLS`
	rAdmin     = `2024-09-02T22:31:07.412000000Z [2024-09-02 22:31:07,412] INFO in nginx: Login attempt for: alice@example.com/imap/993 from: 203.0.113.7/51544: failed: badauth: 3fa9c2`
	rAdminHTTP = `2024-09-02T22:31:08.000000000Z 192.168.203.5 - - [02/Sep/2024:22:31:08 +0000] "GET /internal/auth/email HTTP/1.0" 200 0 "-" "-"`
)

func writeLog(t *testing.T, dir, name string, lines ...string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// replayJSON runs replay --json and decodes its report.
func replayJSON(t *testing.T, args ...string) (*replayReport, string) {
	t.Helper()
	code, out, errs := runReplay(t, "", append([]string{"--json"}, args...)...)
	if code != 0 {
		t.Fatalf("replay %v: exit %d: %s", args, code, errs)
	}
	var rep replayReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	return &rep, errs
}

// Each class of line is counted per service with its reason, and --print
// shows each line with the parser's own verdict.
func TestReplayClasses(t *testing.T) {
	dir := t.TempDir()
	front := writeLog(t, dir, "front.log", rConnected, rPort25, rUnopened, rHTTP, rGarbage)
	admin := writeLog(t, dir, "admin.log", rAdmin, rAdminHTTP)
	rep, _ := replayJSON(t, "--print", "all", "front="+front, "admin="+admin)

	f, a := rep.Services["front"], rep.Services["admin"]
	if f.Lines != 5 || f.Matched["port25-auth"] != 1 || f.Forged[parse.ForgeUnopened] != 1 || f.Ignored[parse.IgnoreNginxConnected] != 1 ||
		f.Ignored[parse.IgnoreHTTPAccess] != 1 || f.Unparsable[parse.UnparsableFront] != 1 {
		t.Errorf("front: %+v", f)
	}
	if a.Lines != 2 || a.Matched["auth-failure"] != 1 || a.Ignored[parse.IgnoreAdminAccess] != 1 {
		t.Errorf("admin: %+v", a)
	}
	if j := rep.Jails["auth"]; j.Events != 1 || j.Decisions != 0 {
		t.Errorf("auth jail: %+v", j)
	}
	if j := rep.Jails["smtp-auth-bots"]; j.Events != 1 {
		t.Errorf("smtp-auth-bots jail: %+v", j)
	}
	type row struct{ class, reason, kind, line string }
	var got []row
	for _, p := range rep.Printed {
		r := row{p.Class, p.Reason, "", p.Line}
		if p.Event != nil {
			r.kind = p.Event.Kind + " " + p.Event.Client
		}
		got = append(got, r)
	}
	text := func(l string) string { return l[strings.IndexByte(l, ' ')+1:] }
	want := []row{
		{"ignored", parse.IgnoreNginxConnected, "", text(rConnected)},
		{"matched", "", "port25-auth 203.0.113.9", text(rPort25)},
		{"forged", parse.ForgeUnopened, "", text(rUnopened)},
		{"ignored", parse.IgnoreHTTPAccess, "", text(rHTTP)},
		{"unparsable", parse.UnparsableFront, "", text(rGarbage)},
		{"matched", "", "auth-failure 203.0.113.7", text(rAdmin)},
		{"ignored", parse.IgnoreAdminAccess, "", text(rAdminHTTP)},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("printed\n got %q\nwant %q", got, want)
	}

	// One class, a limit per class, and the human words.
	for _, tc := range []struct {
		print   string
		limit   int
		classes []string
	}{
		{"matched", 50, []string{"matched", "matched"}},
		{"set-aside", 50, []string{"forged"}},
		{"missed", 1, []string{"ignored", "unparsable"}},
		{"missed,set-aside", 50, []string{"ignored", "forged", "ignored", "unparsable", "ignored"}},
		{"", 50, nil},
	} {
		args := []string{"--print-limit", fmt.Sprint(tc.limit), "front=" + front, "admin=" + admin}
		if tc.print != "" {
			args = append([]string{"--print", tc.print}, args...)
		}
		rep, _ := replayJSON(t, args...)
		var classes []string
		for _, p := range rep.Printed {
			classes = append(classes, p.Class)
		}
		if !slices.Equal(classes, tc.classes) {
			t.Errorf("--print %q --print-limit %d: classes %v, want %v", tc.print, tc.limit, classes, tc.classes)
		}
	}
	_, out, _ := runReplay(t, "", "--print", "all", "front="+front, "admin="+admin)
	for _, w := range []string{
		"front set aside as forged: unopened\n    | " + text(rUnopened),
		"front matched: port25-auth (nginx) client 203.0.113.9 user \"paula@example.com\" port 25 count 1; counted",
		"front unparsable: " + parse.UnparsableFront,
		"SERVICE  CLASS       KIND OR REASON",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// Input that is probably wrong gets a warning, in JSON and on stderr;
// right input gets none.
func TestReplayWarnings(t *testing.T) {
	dir := t.TempDir()
	v24, err := mailugen.Generate(mailugen.Options{Dir: filepath.Join(dir, "v24"), Lines: 5000, Attackers: 3, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	v20, err := mailugen.Generate(mailugen.Options{Dir: filepath.Join(dir, "v20"), Lines: 5000, Attackers: 3, Seed: 5, Version: mailugen.V20})
	if err != nil {
		t.Fatal(err)
	}
	garbage := writeLog(t, dir, "garbage.log", "hello", "world", "again")
	for _, tc := range []struct {
		name string
		args []string
		want []string // one substring per warning
	}{
		{"right input", serviceArgs(v24), nil},
		{"wrong service", []string{"admin=" + v24.Files["front"], "front=" + v24.Files["admin"]},
			[]string{"admin=" + v24.Files["front"] + ": its lines look like front's", "front=" + v24.Files["admin"] + ": its lines look like admin's"}},
		{"unknown service", []string{"frnt=" + v24.Files["front"], "admin=" + v24.Files["admin"]},
			[]string{`frnt=` + v24.Files["front"] + `: its lines look like front's`, `unknown service "frnt": bansd reads front, admin, smtp and antispam`}},
		{"nothing recognised", []string{"smtp=" + garbage}, []string{"smtp=" + garbage + ": none of its 3 lines is one bansd reads for smtp"}},
		{"2024.06 front alone", []string{"front=" + v24.Files["front"]}, []string{"front=" + v24.Files["front"] + " has Dovecot lines (Mailu 2024.06 or later) but no admin file"}},
		{"2.0 front alone", []string{"front=" + v20.Files["front"]}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, stderr := replayJSON(t, tc.args...)
			if len(rep.Warnings) != len(tc.want) {
				t.Fatalf("warnings %q, want %d like %q", rep.Warnings, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(rep.Warnings[i], w) {
					t.Errorf("warning %q lacks %q", rep.Warnings[i], w)
				}
				if !strings.Contains(stderr, "warning: "+rep.Warnings[i]+"\n") {
					t.Errorf("stderr lacks warning %q: %q", rep.Warnings[i], stderr)
				}
			}
		})
	}
}

// Files given without SERVICE= are read as the service their lines look
// like, with the same result as when named, and the report says so.
func TestReplayGuessedServices(t *testing.T) {
	tr, err := mailugen.Generate(mailugen.Options{Dir: t.TempDir(), Lines: 20000, Attackers: 8, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	named, _ := replayJSON(t, serviceArgs(tr)...)
	guessed, _ := replayJSON(t, tr.Files["admin"], tr.Files["smtp"], tr.Files["front"])
	bans := func(r *replayReport) []string {
		var s []string
		for _, b := range r.Bans {
			s = append(s, b.Target)
		}
		sort.Strings(s)
		return s
	}
	if !slices.Equal(bans(named), bans(guessed)) || len(bans(named)) == 0 || named.Matched != guessed.Matched {
		t.Fatalf("named: %v (%d matched); guessed: %v (%d matched)", bans(named), named.Matched, bans(guessed), guessed.Matched)
	}
	var svcs []string
	for _, in := range guessed.Inputs {
		if !in.Guessed {
			t.Errorf("input %+v not marked guessed", in)
		}
		svcs = append(svcs, in.Service)
	}
	if !slices.Equal(svcs, []string{"admin", "smtp", "front"}) || len(guessed.Warnings) != 0 {
		t.Fatalf("guessed services %v, warnings %q", svcs, guessed.Warnings)
	}
	_, out, _ := runReplay(t, "", tr.Files["front"], "admin="+tr.Files["admin"])
	if !strings.Contains(out, "front (guessed)") {
		t.Errorf("human output does not say the service was guessed:\n%s", out)
	}
}

// A ban carries the daemon's duration (bantime escalated by the target's
// earlier bans: level), and its evidence; a decision while the previous
// ban holds makes no ban.
func TestReplayBanLevels(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	var lines []string
	n := 0
	burst := func(start time.Duration) {
		for i := range 10 {
			ts := t0.Add(start + time.Duration(i)*time.Minute)
			n++
			lines = append(lines, fmt.Sprintf("%s [%s] INFO in nginx: Login attempt for: u%d@example.com/imap/993 from: 203.0.113.50/%d: failed: badauth: %06x",
				ts.Format(time.RFC3339Nano), ts.Format("2006-01-02 15:04:05,000"), n, 40000+n, n))
		}
	}
	burst(0)                            // ban 1: level 0, 1h (the auth jail's bantime)
	burst(3 * time.Hour)                // ban 2: level 1, 2h (bantime_factor 2)
	burst(3*time.Hour + 20*time.Minute) // still banned: no ban
	burst(6 * time.Hour)                // ban 3: level 2, 4h
	admin := writeLog(t, t.TempDir(), "admin.log", lines...)
	rep, _ := replayJSON(t, "admin="+admin)
	type ban struct {
		level    int
		duration string
		first    string
	}
	var got []ban
	for _, b := range rep.Bans {
		got = append(got, ban{b.Level, b.Duration, b.First})
		if b.Target != "203.0.113.50/32" || b.Jail != "auth" || len(b.Evidence) != 10 || !strings.Contains(b.Evidence[9], "203.0.113.50") {
			t.Errorf("ban %+v", b)
		}
	}
	want := []ban{{0, "1h0m0s", "2026-11-20T00:09:00Z"}, {1, "2h0m0s", "2026-11-20T03:09:00Z"}, {2, "4h0m0s", "2026-11-20T06:09:00Z"}}
	if !slices.Equal(got, want) || rep.WhileBanned != 1 {
		t.Fatalf("bans %+v (while banned %d), want %+v and 1", got, rep.WhileBanned, want)
	}
	_, out, _ := runReplay(t, "", "admin="+admin)
	for _, w := range []string{"BANS (3)", "for 2h0m (level 1)", "    | [2026-11-20 06:09:00,000] INFO in nginx: Login attempt for: u40@example.com", "(1 more decisions came while their target's ban held"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// The JSON report's keys, and each ban's, are what scripts rely on.
func TestReplayJSONShape(t *testing.T) {
	tr, err := mailugen.Generate(mailugen.Options{Dir: t.TempDir(), Lines: 5000, Attackers: 3, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := runReplay(t, "", append([]string{"--json", "--print", "matched", "--print-limit", "1"}, serviceArgs(tr)...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]json.RawMessage) []string {
		var k []string
		for x := range m {
			k = append(k, x)
		}
		sort.Strings(k)
		return k
	}
	want := []string{"alarms", "attribution", "bans", "events", "forged", "guards", "inputs", "jails", "lines", "matched", "not_counted", "printed", "seconds", "services", "unguarded_dovecot_lines", "untimed_front_lines", "warnings", "while_banned"}
	if !slices.Equal(keys(m), want) {
		t.Fatalf("keys %v, want %v", keys(m), want)
	}
	var bans []map[string]json.RawMessage
	if err := json.Unmarshal(m["bans"], &bans); err != nil || len(bans) == 0 {
		t.Fatalf("bans: %v %s", err, m["bans"])
	}
	wantBan := []string{"corroborated", "duration", "events", "evidence", "first", "jail", "level", "reason", "target", "until"}
	if !slices.Equal(keys(bans[0]), wantBan) {
		t.Fatalf("ban keys %v, want %v", keys(bans[0]), wantBan)
	}
	var svcs map[string]map[string]json.RawMessage
	if err := json.Unmarshal(m["services"], &svcs); err != nil {
		t.Fatal(err)
	}
	wantSvc := []string{"forged", "ignored", "lines", "matched", "uncorroborated", "unparsable"}
	if got := keys(svcs["front"]); !slices.Equal(got, wantSvc) {
		t.Fatalf("service keys %v, want %v", got, wantSvc)
	}
	var printed []map[string]json.RawMessage
	if err := json.Unmarshal(m["printed"], &printed); err != nil || len(printed) != 1 {
		t.Fatalf("printed: %v %s", err, m["printed"])
	}
	if got := keys(printed[0]); !slices.Equal(got, []string{"class", "event", "line", "path", "reason", "service"}) && !slices.Equal(got, []string{"class", "event", "line", "path", "service"}) {
		t.Fatalf("printed keys %v", got)
	}
}

// Matched events no jail counted are tallied by the engine's reason for
// each, once per event.
func TestReplayNotCounted(t *testing.T) {
	success := `2024-09-02T22:31:09.000000000Z [2024-09-02 22:31:09,000] INFO in nginx: Login attempt for: bob@example.com/imap/993 from: 198.51.100.20/35618: success: password`
	admin := writeLog(t, t.TempDir(), "admin.log", rAdmin, strings.Replace(rAdmin, "22:31:07", "22:31:08", 2), success)
	rep, _ := replayJSON(t, "admin="+admin)
	want := map[string]uint64{jail.SkipDeduped: 1, jail.SkipSuccess: 1}
	if len(rep.NotCounted) != len(want) || rep.NotCounted[jail.SkipDeduped] != 1 || rep.NotCounted[jail.SkipSuccess] != 1 {
		t.Fatalf("not counted %v, want %v", rep.NotCounted, want)
	}
	if j := rep.Jails["auth"]; j.Events != 1 {
		t.Fatalf("auth counted %d events, want 1", j.Events)
	}
}

// TestReplayUntimedFront: a front file saved without docker logs -t is
// judged by line count; the report says so, and another client's Dovecot
// failures after an nginx login line still count (they were set aside for
// 2048 lines before: 11 bans of 17 on this mix).
func TestReplayUntimedFront(t *testing.T) {
	dir := t.TempDir()
	tr, err := mailugen.Generate(mailugen.Options{Dir: dir, Lines: 200000, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	timed, err := os.ReadFile(tr.Files["front"])
	if err != nil {
		t.Fatal(err)
	}
	var untimed strings.Builder
	for _, l := range strings.SplitAfter(string(timed), "\n") {
		if _, rest, ok := strings.Cut(l, " "); ok {
			untimed.WriteString(rest)
		}
	}
	bare := writeLog(t, dir, "front.bare", strings.Split(strings.TrimSuffix(untimed.String(), "\n"), "\n")...)
	with, _ := replayJSON(t, "front="+tr.Files["front"])
	without, _ := replayJSON(t, "front="+bare)
	if !slices.Equal(with.Guards, []string{"docker time"}) || with.UntimedFront != 0 {
		t.Errorf("with Docker time: guards %v, %d untimed lines", with.Guards, with.UntimedFront)
	}
	if !slices.Equal(without.Guards, []string{"line count"}) || without.UntimedFront != without.Lines || without.UnguardedDovecot == 0 {
		t.Errorf("without Docker time: guards %v, %d untimed of %d lines, %d unguarded Dovecot", without.Guards, without.UntimedFront, without.Lines, without.UnguardedDovecot)
	}
	targets := func(r *replayReport) map[string]bool {
		m := map[string]bool{}
		for _, b := range r.Bans {
			m[b.Target] = true
		}
		return m
	}
	tw, tn := targets(with), targets(without)
	if len(tn) < len(tw)-2 {
		t.Errorf("without Docker time %d bans, with it %d", len(tn), len(tw))
	}
	for b := range tn {
		if !tw[b] {
			t.Errorf("without Docker time %s is banned, which the timed replay does not ban", b)
		}
	}
}
