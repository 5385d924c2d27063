package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/internal/dockertest"
)

// TestKillBetweenDecisionAndCommit: bansd is SIGKILLed after a line has
// made its decision but before the store committed the ban, with the
// cursor flusher running meanwhile. The restarted bansd must read that
// line again (its cursor never passed it) and ban, while the lines done
// before it are not read again. The fault hook only holds the commit for
// the timing; the kill and the restart are real.
func TestKillBetweenDecisionAndCommit(t *testing.T) {
	e := dockertest.Start(t, dockertest.Options{})
	// Ten lines that decide nothing, then, once the test has seen bansd
	// read them and save their cursor (it touches /token), one invalid
	// API token: a ban on its own (maxretry 1 below), so the line read
	// again after the restart is all the ban needs. A fixed sleep here
	// let a slow start read all eleven in one batch, held together.
	const script = `for n in 1 2 3 4 5 6 7 8 9 10; do
  echo "[$(date -u '+%Y-%m-%d %H:%M:%S'),000] INFO in common: request $n served"
done
while [ ! -e /token ]; do sleep 0.05; done
echo "[$(date -u '+%Y-%m-%d %H:%M:%S'),000] WARNING in common: Invalid API token provided by 203.0.113.77."
exec sleep 600`
	e.MailuLike(t, "192.0.2.176/28", "192.0.2.177", map[string]string{"admin": script})

	in := newInstance(t, e.Host())
	in.env = []string{"BANSD_FAULT_COMMIT_DELAY=1h"}
	in.writeConfig(t, "[jails.api]\nmaxretry = 1\n")
	in.run(t)
	c := control.NewClient(in.socket)
	waitMetric(t, c, `bansd_lines_total\{service="admin"\} 10\n`, 60*time.Second)
	time.Sleep(2 * time.Second) // two cursor flushes of the ten
	e.Docker(t, "exec", "mailu-admin-1", "touch", "/token")
	waitMetric(t, c, `bansd_decisions_total\{jail="api"\} 1\n`, 60*time.Second)
	// The decision is made and held; let the one-second cursor flusher run
	// a few times inside the window.
	time.Sleep(3 * time.Second)
	if l, err := c.Bans(context.Background(), ""); err != nil || len(l.Bans) != 0 {
		t.Fatalf("bans before the kill = %+v, %v; want none (the commit is held)", l.Bans, err)
	}
	if !strings.Contains(in.log.String(), "holding decisions before their commit") {
		t.Fatalf("the fault hook did not hold the decision:\n%s", in.log.String())
	}
	in.kill()

	in.env = nil
	in.run(t)
	waitOneBan(t, in, c, "203.0.113.77/32", "api", "the held ban was lost")
	if k := in.kernel(t, "v4_32"); !strings.Contains(k, "203.0.113.77") {
		t.Errorf("kernel set after restart:\n%s", k)
	}
	// Resumed at the cursor: only the held line is read again, not the
	// ten done before it.
	if m := scrape(t, c); !regexp.MustCompile(`bansd_lines_total\{service="admin"\} 1\n`).MatchString(m) {
		t.Errorf("admin lines read after the restart, want 1:\n%s", grepLines(m, "bansd_lines_total"))
	}
}

// waitMetric polls the instance's metrics until re matches.
func waitMetric(t *testing.T, c *control.Client, re string, within time.Duration) {
	t.Helper()
	want := regexp.MustCompile(re)
	deadline := time.Now().Add(within)
	for {
		m := scrape(t, c)
		if want.MatchString(m) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %s after %s:\n%s", re, within, m)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
