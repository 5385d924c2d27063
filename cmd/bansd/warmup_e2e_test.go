package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/internal/dockertest"
)

// warmAdminScript is a Mailu 2024.06 admin that logs one failed login of
// 203.0.113.45 (a new password each time) whenever /fail appears.
const warmAdminScript = `n=0
while :; do
  if [ -e /fail ]; then
    rm -f /fail; n=$((n+1))
    echo "[$(date -u '+%Y-%m-%d %H:%M:%S'),000] INFO in nginx: Login attempt for: alice@example.com/imap/993 from: 203.0.113.45/4100$n: failed: badauth: 00aa0$n"
  fi
  sleep 0.05
done`

// TestWarmupAcrossRestarts: maxretry 5, four failed logins through a real
// container's log, bansd stopped (kill -9, SIGTERM, or replaced by another
// build), started again: the fifth failure bans, because the four are read
// again from the log into the windows before the cursor. Without the
// warm-up the restarted bansd counts 1 of 5.
func TestWarmupAcrossRestarts(t *testing.T) {
	e := dockertest.Start(t, dockertest.Options{})
	// A second build, as an upgrade installs one: another path, another
	// version string.
	upgraded := filepath.Join(t.TempDir(), "bansd-upgraded")
	if out, err := exec.Command("go", "build", "-o", upgraded, "-ldflags",
		"-X github.com/bansd/bansd/internal/version.Version=upgrade-test", "github.com/bansd/bansd/cmd/bansd").CombinedOutput(); err != nil {
		t.Fatalf("build the upgrade: %v\n%s", err, out)
	}
	cases := []struct {
		name, subnet, gateway string
		stop                  func(in *instance, t *testing.T)
		bin                   string
	}{
		{"kill -9", "192.0.2.192/28", "192.0.2.193", func(in *instance, t *testing.T) {
			in.kill()
		}, ""},
		{"SIGTERM", "192.0.2.208/28", "192.0.2.209", (*instance).stopT, ""},
		{"upgrade", "192.0.2.224/28", "192.0.2.225", (*instance).stopT, upgraded},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.Docker(t, "rm", "-f", "mailu-front-1", "mailu-admin-1")
			e.Docker(t, "network", "rm", "-f", "mailu_default")
			e.MailuLike(t, tc.subnet, tc.gateway, map[string]string{"admin": warmAdminScript})
			fail := func() { e.Docker(t, "exec", "mailu-admin-1", "touch", "/fail") }

			in := newInstance(t, e.Host())
			in.writeConfig(t, "[jails.auth]\nmaxretry = 5\n")
			in.run(t)
			c := control.NewClient(in.socket)
			for i := 1; i <= 4; i++ {
				fail()
				waitMetric(t, c, fmt.Sprintf(`bansd_events_total\{kind="auth-failure"\} %d\n`, i), 30*time.Second)
			}
			// The cursor is saved each second once the lines are done.
			time.Sleep(2 * time.Second)
			if l, err := c.Bans(context.Background(), ""); err != nil || len(l.Bans) != 0 {
				t.Fatalf("bans after 4 of 5: %+v %v", l.Bans, err)
			}
			tc.stop(in, t)

			in.bin = tc.bin
			in.run(t)
			if tc.bin != "" {
				if st := mustStatus(t, c); st.Version != "upgrade-test" {
					t.Fatalf("running version %q, want the upgrade", st.Version)
				}
			}
			w := waitWarmup(t, c, "admin")
			if w.State != "complete" || w.Lines != 4 || w.Why != "" || w.Until.Sub(w.From) > time.Hour {
				t.Fatalf("admin warm-up %+v, want complete with the 4 lines", w)
			}
			out := in.mustCtl(t, 0, "status")
			if !regexp.MustCompile(`(?m)^admin\s+complete\s+4\s`).MatchString(out) {
				t.Errorf("bansctl status shows no complete warm-up of 4 lines for admin:\n%s", out)
			}
			if m := scrape(t, c); !strings.Contains(m, `bansd_lines_total{service="admin"} 0`) || strings.Contains(m, `bansd_decisions_total{jail="auth"} 1`) {
				t.Errorf("warm-up lines reached the metrics:\n%s", grepLines(m, "admin"))
			}
			fail()
			waitOneBan(t, in, c, "203.0.113.45/32", "auth", "the fifth failure did not ban after the restart")
			if k := in.kernel(t, "v4_32"); !strings.Contains(k, "203.0.113.45") {
				t.Errorf("kernel set:\n%s", k)
			}
			if ev := in.mustCtl(t, 0, "why", "203.0.113.45"); !strings.Contains(ev, "5 failed logins") {
				t.Errorf("why does not show the 5 failures:\n%s", ev)
			}
		})
	}
}

// stopT is stop for a table of stop functions.
func (in *instance) stopT(t *testing.T) { in.stop(t) }

// waitWarmup waits until service's warm-up is over.
func waitWarmup(t *testing.T, c *control.Client, service string) control.WarmupStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, s := range mustStatus(t, c).Sources {
			if s.Service == service && s.Warmup != nil && s.Warmup.State != "running" {
				return *s.Warmup
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finished warm-up for %s after 30 s: %+v", service, mustStatus(t, c).Sources)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWarmupAfterReboot: in kernel mode the record of connections outlives
// bansd (a restart keeps it: the warm-up is complete) but not a reboot,
// played here by deleting bansd's table between two runs: the record
// starts empty, the replayed lines cannot be corroborated, and status says
// the windows were not rebuilt.
func TestWarmupAfterReboot(t *testing.T) {
	e := dockertest.Start(t, dockertest.Options{})
	e.MailuLike(t, "192.0.2.192/28", "192.0.2.193", map[string]string{"admin": warmAdminScript})
	in := newInstance(t, e.Host())
	cfg, err := os.ReadFile(in.config)
	if err != nil {
		t.Fatal(err)
	}
	kernel := strings.Replace(string(cfg), `attribution = "text"`, `attribution = "kernel"`, 1)
	if err := os.WriteFile(in.config, []byte(kernel), 0o644); err != nil {
		t.Fatal(err)
	}
	in.run(t)
	c := control.NewClient(in.socket)
	for i := 1; i <= 2; i++ {
		e.Docker(t, "exec", "mailu-admin-1", "touch", "/fail")
		waitMetric(t, c, fmt.Sprintf(`bansd_lines_total\{service="admin"\} %d\n`, i), 30*time.Second)
	}
	time.Sleep(2 * time.Second)
	cases := []struct {
		name   string
		reboot bool
		state  string
		why    string
	}{
		{"restart", false, "complete", ""},
		{"reboot", true, "partial", "the kernel record of connections started empty"},
	}
	parent := t // the process outlives each subtest
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in.stop(parent)
			if tc.reboot {
				in.ns.Run(t, "nft", "delete", "table", "inet", "bansd")
			}
			in.run(parent)
			w := waitWarmup(t, c, "admin")
			if w.State != tc.state || w.Lines != 2 || (tc.why == "") != (w.Why == "") || !strings.Contains(w.Why, tc.why) {
				t.Fatalf("warm-up %+v, want %s with 2 lines, why %q", w, tc.state, tc.why)
			}
			// The replayed lines met the kernel's check as the live ones
			// did (no real client stands behind them: unseen), apart
			// from the live counts.
			if at := mustStatus(t, c).Attribution; at.Mode != "kernel" || at.WarmupUncorroborated["unseen"] != 2 || at.Uncorroborated["unseen"] != 0 {
				t.Errorf("attribution %+v, want the 2 warm-up lines unseen and no live one", at)
			}
			if tc.reboot && !strings.Contains(in.log.String(), "kernel record of connections started empty") {
				t.Errorf("the log does not say the record started empty:\n%s", in.log.String())
			}
		})
	}
}
