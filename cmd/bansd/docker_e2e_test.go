package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/internal/dockertest"
	"github.com/bansd/bansd/stats"
)

// TestPipelineRealDocker: a real dockerd runs a Mailu-like front whose
// log holds port-25 AUTH attempts from 203.0.113.9 and from the Mailu
// network's gateway. bansd follows it, bans the bot in the kernel, raises
// the gateway alarm instead of banning the gateway, and after a restart
// resumes at its cursor instead of reading the log again.
func TestPipelineRealDocker(t *testing.T) {
	e := dockertest.Start(t, dockertest.Options{})
	// Each attempt is nginx's "connected" line, then, as long after it as
	// a real SMTP dialogue and admin's auth_http round trip take, the
	// failure line: the parser takes a failure that reaches Docker together
	// with its "connected" line for a forged pair.
	const script = `n=100
for a in 203.0.113.9 203.0.113.9 203.0.113.9 203.0.113.9 203.0.113.9 192.0.2.161; do
  n=$((n+1)); ts=$(date -u '+%Y/%m/%d %H:%M:%S')
  echo "$ts [info] 23#23: *$n client $a:4$n connected to 0.0.0.0:25"
  sleep 0.05
  echo "$ts [info] 23#23: *$n client login failed: \"AUTH not supported\" while in http auth state, client: $a, server: 0.0.0.0:25, login: \"bot$n\""
  sleep 1.1
done
exec sleep 600`
	e.MailuLike(t, "192.0.2.160/28", "192.0.2.161", map[string]string{"front": script})

	in := startWith(t, e.Host())
	c := control.NewClient(in.socket)
	var st control.Status
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, err := c.Bans(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		st = mustStatus(t, c)
		if len(l.Bans) > 0 && len(st.Alarms) > 0 {
			if len(l.Bans) != 1 || l.Bans[0].Target.String() != "203.0.113.9/32" || l.Bans[0].Jail != "smtp-auth-bots" {
				t.Fatalf("bans = %+v", l.Bans)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ban and alarm after 30 s: bans %+v, status %+v", l.Bans, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if k := in.kernel(t, "v4_32"); !strings.Contains(k, "203.0.113.9") || strings.Contains(k, "192.0.2.161") {
		t.Errorf("kernel set:\n%s", k)
	}
	if a := st.Alarms[0]; a.Kind != "gateway-client" || a.Addr != "192.0.2.161" || !strings.Contains(a.Fix, "userland-proxy") {
		t.Errorf("alarm = %+v", a)
	}
	if st.Docker.Project != "mailu" || st.Docker.State != "following" {
		t.Errorf("docker status = %+v", st.Docker)
	}
	// why prints each evidence line of a ban after a "|".
	evidence := regexp.MustCompile(`(?m)^ +\| .*"AUTH not supported".*client: 203\.0\.113\.9,`)
	out := in.mustCtl(t, 0, "why", "203.0.113.9")
	if !strings.Contains(out, "by jail smtp-auth-bots") || !evidence.MatchString(out) {
		t.Errorf("why shows no jail or evidence:\n%s", out)
	}
	if out := in.mustCtl(t, 0, "why", "192.0.2.161"); !strings.Contains(out, "never banned") {
		t.Errorf("why gateway:\n%s", out)
	}
	m := scrape(t, c)
	for _, re := range []string{
		`bansd_lines_total\{service="front"\} 12`,
		`bansd_decisions_total\{jail="smtp-auth-bots"\} 1`,
		`bansd_alarms_total\{kind="gateway-client"\} [1-9]`,
		`bansd_ban_latency_seconds_count 1`,
		`bansd_events_total\{kind="port25-auth"\} [1-9]`,
		`bansd_source_state\{service="front",state="attached"\} 1`,
		`bansd_bans_active\{jail="smtp-auth-bots"\} 1`,
	} {
		if !regexp.MustCompile(re).MatchString(m) {
			t.Errorf("metrics lack %s", re)
		}
	}

	// Stats: the attempts the jails saw (the gateway's too), the jail's ban
	// and the alarm.
	var sum stats.Summary
	if err := json.Unmarshal([]byte(in.mustCtl(t, 0, "--json", "stats", "--since", "1h")), &sum); err != nil {
		t.Fatal(err)
	}
	// The same count as the metric: the store's hours are fed from it.
	counted := regexp.MustCompile(`bansd_events_total\{kind="port25-auth"\} (\d+)`).FindStringSubmatch(scrape(t, c))
	if tt := sum.Totals; counted == nil || strconv.FormatUint(tt.Attempts, 10) != counted[1] || tt.Attempts < 5 ||
		tt.AttemptsByKind["port25-auth"] != tt.Attempts || tt.Bans != 1 || tt.Alarms < 1 {
		t.Errorf("stats totals %+v, want bansd_events_total's %v port25-auth attempts, 1 ban, an alarm", tt, counted)
	}
	if len(sum.Jails) != 1 || sum.Jails[0].Name != "smtp-auth-bots" || len(sum.Networks) != 1 || sum.Networks[0].Name != "203.0.113.0/24" {
		t.Errorf("stats jails %+v, networks %+v", sum.Jails, sum.Networks)
	}

	// Restart: the cursor saved at SIGTERM means no line is read again.
	in.stop(t)
	in.run(t)
	time.Sleep(2 * time.Second)
	st = mustStatus(t, c)
	for _, s := range st.Sources {
		if s.Service == "front" && (s.State != "attached" || s.Lines != 0) {
			t.Errorf("front after restart: %+v (want attached, no line re-read)", s)
		}
	}
	if l, _ := c.Bans(context.Background(), ""); len(l.Bans) != 1 {
		t.Errorf("bans after restart: %+v", l.Bans)
	}
	// The evidence is read from the store: the restarted bansd, which
	// never saw the lines, shows it too.
	if out := in.mustCtl(t, 0, "why", "203.0.113.9"); !evidence.MatchString(out) {
		t.Errorf("why after restart shows no evidence:\n%s", out)
	}
}

func mustStatus(t *testing.T, c *control.Client) control.Status {
	t.Helper()
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func scrape(t *testing.T, c *control.Client) string {
	t.Helper()
	var b strings.Builder
	if err := c.Metrics(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
