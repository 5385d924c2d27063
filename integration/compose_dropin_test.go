package integration

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/integration/mailclient"
	"github.com/bansd/bansd/internal/dockertest"
)

// TestComposeDropIn runs bansd as a Mailu admin would: the image of
// configs/Dockerfile, brought up from configs/compose.yml as its own
// compose project "bansd" beside Mailu's, with the embedded default
// config. Mailu's own `up -d` and `down` do not see it as an orphan. The engine's namespace is that admin's host: its socket
// and a directory for the control socket are the host paths the drop-in
// binds. A bot on port 25 is banned, bansctl on the host sees the ban
// through the bound socket, and `docker-compose stop` leaves the ban in
// the kernel.
func TestComposeDropIn(t *testing.T) {
	e := dockertest.Start(t, dockertest.Options{})
	s := startStack(t, e, "2024.06")
	buildDaemon(t)
	buildImage(t, e)
	legit := newLegit(t, e)
	attacker := newAttacker(t, e, 0)
	waitReady(t, legit)

	run := t.TempDir()
	dropin := &dropIn{
		s:      s,
		env:    append(append([]string{}, s.env...), "DOCKER_SOCKET="+e.Socket, "BANSD_RUN_DIR="+run),
		socket: filepath.Join(run, "bansd.sock"),
	}
	t.Cleanup(func() {
		if t.Failed() {
			cmd := exec.Command("docker", "-H", e.Host(), "logs", "-t", "--tail", "60", "bansd_bansd_1")
			cmd.Env = e.Env()
			out, _ := cmd.CombinedOutput()
			t.Logf("docker logs mailu_bansd_1 (tail):\n%s", out)
		}
		if out, err := dropin.compose("rm", "--stop", "--force", "bansd"); err != nil {
			t.Errorf("docker-compose rm bansd: %v: %s", err, out)
		}
	})
	if out, err := dropin.compose("up", "-d", "--no-build", "bansd"); err != nil {
		t.Fatalf("docker-compose up bansd: %v: %s", err, out)
	}
	dropin.waitFollowing(t)

	// Mailu's own compose commands leave bansd alone and say nothing of it.
	mailu := func(args ...string) string {
		t.Helper()
		out, err := s.composeCmd(args...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker-compose -p mailu %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	if out := mailu("up", "-d"); strings.Contains(strings.ToLower(out), "orphan") {
		t.Errorf("Mailu's up -d warns about bansd:\n%s", out)
	}
	// The healthcheck (bansctl status in the image) turns healthy.
	deadline := time.Now().Add(60 * time.Second)
	for {
		h := strings.TrimSpace(e.Docker(t, "inspect", "-f", "{{.State.Health.Status}}", "bansd_bansd_1"))
		if h == "healthy" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bansd container health %q after 60s", h)
		}
		time.Sleep(time.Second)
	}

	// Jail smtp-auth-bots at its default: 5 AUTH attempts on port 25.
	bot := attacker.addrs[0]
	const attempts = 5
	for i := 1; i <= attempts; i++ {
		if i > 1 {
			if r := attacker.probe(bot, 25, 2*time.Second); r.Outcome != mailclient.Success {
				t.Fatalf("banned after %d of %d attempts: %+v", i-1, attempts, r)
			}
		}
		if r := attacker.login(bot, mailclient.SMTP, fmt.Sprintf("bot%d@example.com", i), "x"); r.Outcome != mailclient.Failure {
			t.Fatalf("port 25 AUTH %d: %+v", i, r)
		}
	}
	waitDropped(t, attacker, bot, 25)
	assertCutOff(t, attacker, time.Second, bot)
	for _, p := range []mailclient.Proto{mailclient.Submission, mailclient.IMAPS} {
		if r := legit.login(legit.addrs[0], p, legitUser, legitPass); r.Outcome != mailclient.Success {
			t.Errorf("legitimate %s login: %+v", p, r)
		}
	}
	if r := legit.probe(legit.addrs[0], 25, 2*time.Second); r.Outcome != mailclient.Success {
		t.Errorf("legitimate client on port 25: %+v", r)
	}

	// bansctl on the host, through the socket the drop-in binds.
	out, err := exec.Command(bins.bansctl, "--socket", dropin.socket, "list", "--json").Output()
	if err != nil {
		t.Fatalf("bansctl list: %v", err)
	}
	var list control.BanList
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("bansctl list --json: %v: %s", err, out)
	}
	target := netip.PrefixFrom(bot, 32)
	if len(list.Bans) != 1 || list.Bans[0].Target != target || list.Bans[0].Jail != "smtp-auth-bots" {
		t.Errorf("bansctl list: want only %s in smtp-auth-bots: %s", target, out)
	}

	// SIGTERM through compose: bansd exits cleanly and the ban stays.
	if out, err := dropin.compose("stop", "bansd"); err != nil {
		t.Fatalf("docker-compose stop bansd: %v: %s", err, out)
	}
	if st := strings.TrimSpace(e.Docker(t, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "bansd_bansd_1")); st != "exited 0" {
		t.Errorf("bansd after docker-compose stop: %s", st)
	}
	if set := e.Exec(t, "nft", "list", "set", "inet", "bansd", "v4_32"); !strings.Contains(set, "elements = { "+bot.String()+" ") {
		t.Errorf("ban of %s gone from the kernel after stop:\n%s", bot, set)
	}
	if r := attacker.probe(bot, 25, time.Second); r.Outcome != mailclient.Timeout {
		t.Errorf("banned %s reached port 25 with bansd stopped: %+v", bot, r)
	}
}

// buildImage builds configs/Dockerfile as its comment says, into a context
// holding only the static binaries, and tags it as configs/compose.yml
// names it.
func buildImage(t testing.TB, e *dockertest.Engine) {
	t.Helper()
	ctxDir := t.TempDir()
	if err := os.Mkdir(filepath.Join(ctxDir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{bins.bansd, bins.bansctl} {
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ctxDir, "bin", filepath.Base(bin)), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.Docker(t, "build", "-q", "-f", filepath.Join(repoRoot(), "configs/Dockerfile"), "-t", "bansd:latest", ctxDir)
}

// dropIn is configs/compose.yml used beside the stack's compose file.
type dropIn struct {
	s      *stack
	env    []string
	socket string // the control socket on the host
}

func (d *dropIn) compose(args ...string) ([]byte, error) {
	cmd := exec.Command("docker-compose", append([]string{"-p", "bansd", "-f", filepath.Join(repoRoot(), "configs/compose.yml")}, args...)...)
	cmd.Env = d.env
	return cmd.CombinedOutput()
}

// waitFollowing waits until the containerised bansd follows front and
// admin, asked over the bound control socket.
func (d *dropIn) waitFollowing(t testing.TB) {
	t.Helper()
	c := control.NewClient(d.socket)
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := c.Status(t.Context())
		n := 0
		for _, src := range st.Sources {
			if (src.Service == "front" || src.Service == "admin") && src.State == "attached" {
				n++
			}
		}
		if err == nil && n == 2 && st.Firewall.Present {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bansd from the drop-in not following front and admin after 20s: %v %+v", err, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
