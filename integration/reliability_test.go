package integration

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/integration/mailclient"
	"github.com/bansd/bansd/internal/dockertest"
)

// reliabilityJails adds a short reconcile interval to testJails, so that a
// flushed ruleset is repaired within the test's patience.
const reliabilityJails = testJails + `
[firewall]
reconcile = "2s"
`

// Scenarios 4, 5 and 7: bansd, the front container and dockerd each fail
// in the middle of an attack. One stack serves all of them (a stack costs
// ~15 s); each step attacks from a fresh address and checks that every
// earlier ban is still enforced. The ruleset flush comes last: it also
// removes Docker's own iptables-nft rules, which only a dockerd restart
// brings back.
func TestReliability(t *testing.T) {
	e := dockertest.Start(t, dockertest.Options{})
	s := startStack(t, e, "2024.06")
	legit := newLegit(t, e)
	attacker := newAttacker(t, e, 4)
	waitReady(t, legit)
	b := startBansd(t, e, reliabilityJails)
	var banned []netip.Addr // enforced bans so far

	// Scenario 4a: kill -9 mid-attack, restart on the same state file.
	ok := t.Run("bansd killed", func(t *testing.T) {
		early, bot := attacker.addrs[0], attacker.addrs[1]
		smtpAttempts(t, attacker, early, 1, 3)
		waitDropped(t, attacker, early, 25)
		banned = append(banned, early)
		before := whyOf(t, b, early)
		if len(before.Bans) != 1 || before.Offences != 1 {
			t.Fatalf("why %s before the kill: %+v", early, before)
		}

		smtpAttempts(t, attacker, bot, 1, 2)
		waitCount(t, b, bot, "smtp-auth-bots", 2)
		// Cursors are written once a second; a crash may replay at most
		// that last second, so the kill comes after it.
		time.Sleep(1500 * time.Millisecond)
		b.kill9(t)
		if r := attacker.probe(early, 25, time.Second); r.Outcome != mailclient.Timeout {
			t.Fatalf("ban of %s lifted by the daemon's death: %+v", early, r)
		}
		// The attack goes on while bansd is down; that line must be read
		// after the restart, and the two before it counted once.
		smtpAttempts(t, attacker, bot, 3, 3)
		b.restart(t)

		after := whyOf(t, b, early)
		if len(after.Bans) != 1 || after.Offences != before.Offences || after.Bans[0].Level != before.Bans[0].Level ||
			!after.Bans[0].Until.Equal(before.Bans[0].Until) {
			t.Errorf("ban of %s changed across the restart (re-decided or escalated):\nbefore %+v\nafter  %+v", early, before, after)
		}
		if !listed(t, b, early) {
			t.Errorf("%s not in bansctl list after the restart", early)
		}
		if r := attacker.probe(early, 25, time.Second); r.Outcome != mailclient.Timeout {
			t.Errorf("ban of %s not enforced after the restart: %+v", early, r)
		}
		// The two attempts before the kill are read again into the window
		// (warm-up: the kernel's record of the connections outlived
		// bansd), the one made during the outage live: three of three.
		waitDropped(t, attacker, bot, 25)
		banned = append(banned, bot)
		if w := whyOf(t, b, bot); len(w.Bans) != 1 || w.Offences != 1 {
			t.Errorf("why %s: want one ban, one offence: %+v", bot, w)
		}
		if src := sourceOf(t, b, "front"); src.Warmup == nil || src.Warmup.State != "complete" || src.Warmup.Lines == 0 {
			t.Errorf("front's warm-up after the restart: %+v, want complete", src.Warmup)
		}
	})
	if !ok {
		t.FailNow()
	}

	// Scenario 5: front removed and re-created in the middle of an attack.
	t.Run("front recreated", func(t *testing.T) {
		bot := attacker.addrs[2]
		old := sourceOf(t, b, "front").Container
		smtpAttempts(t, attacker, bot, 1, 2)
		waitCount(t, b, bot, "smtp-auth-bots", 2)
		s.composeRun(t, "up", "-d", "--force-recreate", "--no-deps", "front")
		deadline := time.Now().Add(30 * time.Second)
		for {
			src := sourceOf(t, b, "front")
			if src.Container != "" && src.Container != old && src.State == "attached" {
				t.Logf("front %.12s → %.12s", old, src.Container)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("bansd does not follow the new front after 30s: %+v (old %.12s)", src, old)
			}
			time.Sleep(200 * time.Millisecond)
		}
		waitReady(t, legit)
		if w := whyOf(t, b, bot); windowCount(w, "smtp-auth-bots") != 2 || len(w.Bans) != 0 {
			t.Fatalf("%s after the re-creation: want the 2 attempts of the old front: %+v", bot, w)
		}
		smtpAttempts(t, attacker, bot, 3, 3)
		waitDropped(t, attacker, bot, 25)
		banned = append(banned, bot)
		checkEnforced(t, attacker, banned)
	})

	// Scenario 7: dockerd restarted in the middle of an attack, cleanly
	// (SIGTERM) and as a crash (SIGKILL). Without live-restore the
	// containers stop with it; restart: always brings them back, and
	// front's new nginx numbers its connections from *1 again in the same
	// container: the attack must still be counted.
	for i, crash := range []bool{false, true} {
		name := map[bool]string{false: "dockerd restarted", true: "dockerd killed"}[crash]
		t.Run(name, func(t *testing.T) {
			bot := attacker.addrs[3+i]
			reconnects := sourceOf(t, b, "front").Reconnects
			smtpAttempts(t, attacker, bot, 1, 2)
			waitCount(t, b, bot, "smtp-auth-bots", 2)
			start := time.Now()
			if crash {
				e.Kill(t)
			}
			e.Restart(t)
			if last, ok := ready(legit, 60*time.Second); !ok {
				if !crash {
					t.Fatalf("front not ready 60s after dockerd's restart: last login %+v", last)
				}
				// Docker can bring a container back from a daemon crash
				// with its published ports unprogrammed or aimed at its old
				// address (moby#20716): a Docker fault, not bansd's. The
				// test is about bansd following the engine, so it records
				// what the engine had and restarts front, as an admin would.
				t.Logf("front's published ports did not come back from dockerd's crash (last login %+v); the engine's ruleset:\n%s\nrestarting front",
					last, e.Exec(t, "nft", "list", "ruleset"))
				s.composeRun(t, "restart", "front")
				waitReady(t, legit)
			}
			t.Logf("dockerd back and front ready again after %v", time.Since(start).Round(time.Millisecond))
			deadline := time.Now().Add(20 * time.Second)
			for {
				src := sourceOf(t, b, "front")
				// A clean stop ends the log stream with the container: bansd
				// re-attaches without counting a reconnect. A crash breaks
				// the stream: that is a reconnect.
				if src.State == "attached" && (!crash || src.Reconnects > reconnects) {
					t.Logf("front source: %+v", src)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("front source after the engine restart: %+v (reconnects before: %d)", src, reconnects)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if w := whyOf(t, b, bot); windowCount(w, "smtp-auth-bots") != 2 || len(w.Bans) != 0 {
				t.Fatalf("%s after the engine restart: want its 2 attempts, each once: %+v", bot, w)
			}
			smtpAttempts(t, attacker, bot, 3, 3)
			waitDropped(t, attacker, bot, 25)
			banned = append(banned, bot)
			checkEnforced(t, attacker, banned)
		})
	}

	// Scenario 4b: `nft flush ruleset` during bans; the reconcile loop
	// (2 s here) puts the table and every ban back.
	t.Run("ruleset flushed", func(t *testing.T) {
		if len(banned) == 0 {
			t.Fatal("no ban to flush")
		}
		e.Exec(t, "nft", "flush", "ruleset")
		flushed := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var slowest time.Duration
		for _, a := range banned {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					if r := attacker.probe(a, 25, 300*time.Millisecond); r.Outcome == mailclient.Timeout {
						break
					}
					if time.Since(flushed) > 5*time.Second {
						t.Errorf("ban of %s not enforced again 5s after the flush", a)
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
				mu.Lock()
				slowest = max(slowest, time.Since(flushed))
				mu.Unlock()
			}()
		}
		wg.Wait()
		t.Logf("every ban enforced again %v after the flush (reconcile 2s)", slowest.Round(time.Millisecond))
		out := e.Exec(t, "nft", "list", "table", "inet", "bansd")
		for _, a := range banned {
			if !strings.Contains(out, a.String()) {
				t.Errorf("%s missing from the restored table:\n%s", a, out)
			}
		}
	})
}

// smtpAttempts makes AUTH attempts from..to on port 25 from src, paced as
// on the Internet; each must reach front and fail.
func smtpAttempts(t testing.TB, p *peer, src netip.Addr, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		time.Sleep(internetRTT)
		if r := p.login(src, mailclient.SMTP, fmt.Sprintf("bot%d@example.com", i), "x"); r.Outcome != mailclient.Failure {
			t.Fatalf("%s port 25 AUTH %d: %+v", src, i, r)
		}
	}
}

func windowCount(w control.Why, jail string) int {
	for _, win := range w.Windows {
		if win.Jail == jail && win.Target.IsSingleIP() {
			return win.Count
		}
	}
	return 0
}

// waitCount waits until bansd counts n events of a in jail.
func waitCount(t testing.TB, b *bansd, a netip.Addr, jail string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w := whyOf(t, b, a)
		c := windowCount(w, jail)
		if c == n {
			return
		}
		if c > n || time.Now().After(deadline) {
			t.Fatalf("%s in jail %s: count %d, want %d: %+v", a, jail, c, n, w)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func listed(t testing.TB, b *bansd, a netip.Addr) bool {
	t.Helper()
	out, err := b.ctl("list")
	if err != nil {
		t.Fatal(err)
	}
	var list control.BanList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("bansctl --json list: %v: %s", err, out)
	}
	return slices.ContainsFunc(list.Bans, func(ban control.Ban) bool { return ban.Target == netip.PrefixFrom(a, a.BitLen()) })
}

func sourceOf(t testing.TB, b *bansd, service string) control.SourceStatus {
	t.Helper()
	out, err := b.ctl("status")
	if err != nil {
		t.Fatal(err)
	}
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("bansctl --json status: %v: %s", err, out)
	}
	for _, s := range st.Sources {
		if s.Service == service {
			return s
		}
	}
	return control.SourceStatus{Service: service}
}

// checkEnforced checks that every address still gets no answer on port 25
// and is listed.
func checkEnforced(t testing.TB, p *peer, addrs []netip.Addr) {
	t.Helper()
	var wg sync.WaitGroup
	for _, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := p.probe(a, 25, time.Second); r.Outcome != mailclient.Timeout {
				t.Errorf("earlier ban of %s no longer enforced: %+v", a, r)
			}
		}()
	}
	wg.Wait()
}

// kill9 kills the daemon as a crash would: no flush, no cleanup.
func (b *bansd) kill9(t testing.TB) {
	t.Helper()
	if err := b.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill -9 bansd: %v", err)
	}
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		t.Fatal("bansd survived SIGKILL")
	}
}

// restart starts the daemon again with the same config, state file and
// socket; startBansd's cleanup stops whichever process runs last.
func (b *bansd) restart(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(b.log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(logf, "----- restarted by the test -----")
	cmd := exec.Command(b.cmd.Path, b.cmd.Args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	b.cmd, b.done = cmd, done
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st struct {
			Sources []struct {
				Service, State string
			}
		}
		out, err := b.ctl("status")
		if err == nil && json.Unmarshal([]byte(out), &st) == nil && following(st.Sources) {
			return
		}
		select {
		case <-done:
			t.Fatalf("restarted bansd exited:\n%s", dockertest.Tail(b.log, 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted bansd not following after 20s: %v %s\n%s", err, out, dockertest.Tail(b.log, 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
