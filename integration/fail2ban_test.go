package integration

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bansd/bansd/integration/mailclient"
	"github.com/bansd/bansd/internal/dockertest"
)

// comparisonJails leaves bansd's smtp-auth-bots jail at its defaults, which
// are the FAQ's: 5 attempts in 10 minutes.
const comparisonJails = `
[jails.network]
enabled = false

[jails.network48]
enabled = false
`

// comparison is a stack watched at once by bansd and by Debian's
// fail2ban-server set up as Mailu's FAQ says (integration/fail2ban/).
type comparison struct {
	e        *dockertest.Engine
	s        *stack
	legit    *peer
	attacker *peer
	b        *bansd
	f2b      *fail2ban
}

func newComparison(t testing.TB, bots int) *comparison {
	t.Helper()
	e := dockertest.Start(t, dockertest.Options{})
	c := &comparison{e: e, s: startStack(t, e, "2024.06")}
	c.legit = newLegit(t, e)
	c.attacker = newAttacker(t, e, bots)
	waitReady(t, c.legit)
	c.b = startBansd(t, e, comparisonJails)
	logPath := strings.TrimSpace(e.Docker(t, "inspect", "-f", "{{.LogPath}}", "mailu_front_1"))
	c.f2b = startFail2Ban(t, e, logPath)
	return c
}

// fail2ban is a fail2ban-server run by the test in the engine's namespace,
// with its own socket, pid file, database and log in a temporary directory.
type fail2ban struct {
	e    *dockertest.Engine
	dir  string
	sock string
	log  string
	// pid is fail2ban-server's (nsenter execs it).
	pid int
}

// startFail2Ban runs fail2ban-server in the foreground inside e's network
// namespace (its iptables and ipset commands change that namespace only),
// on the front container's json-file log.
func startFail2Ban(t testing.TB, e *dockertest.Engine, logPath string) *fail2ban {
	t.Helper()
	for _, bin := range []string{"fail2ban-server", "fail2ban-client", "ipset", "iptables"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found (apt-get install fail2ban ipset iptables): %v", bin, err)
		}
	}
	if _, err := os.Stat(logPath); err != nil {
		t.Fatalf("front's json-file log: %v", err)
	}
	dir, err := os.MkdirTemp("", "bansd-f2b")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fail2ban{e: e, dir: dir, sock: filepath.Join(dir, "fail2ban.sock"), log: filepath.Join(dir, "fail2ban.log")}
	conf := filepath.Join(dir, "conf")
	src := filepath.Join(repoRoot(), "integration/fail2ban")
	for _, name := range []string{"fail2ban.conf", "jail.conf", "filter.d/bad-auth-bots.conf", "action.d/docker-action-net.conf"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.NewReplacer("@DIR@", dir, "@LOGPATH@", logPath).Replace(string(b))
		if err := os.MkdirAll(filepath.Dir(filepath.Join(conf, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(conf, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := os.Create(filepath.Join(dir, "server.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net=/run/netns/"+e.NetNS, "fail2ban-server", "-f", "-x",
		"-c", conf, "-s", f.sock, "-p", filepath.Join(dir, "fail2ban.pid"))
	// fail2ban reads nginx's dates as local time; nginx in the container
	// writes UTC.
	cmd.Env = append(os.Environ(), "TZ=UTC")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("fail2ban-server: %v", err)
	}
	f.pid = cmd.Process.Pid
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); out.Close(); close(done) }()
	t.Cleanup(func() {
		// SIGTERM runs actionstop (the DOCKER-USER rule and the ipset
		// go); the namespace goes with the engine anyway.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("fail2ban log (tail):\n%s\nfail2ban-server output:\n%s", dockertest.Tail(f.log, 40), dockertest.Tail(filepath.Join(dir, "server.out"), 20))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := f.client("status", "bad-auth-bots"); err == nil && f.enforcing() {
			return f
		}
		select {
		case <-done:
			t.Fatalf("fail2ban-server exited:\n%s\n%s", dockertest.Tail(filepath.Join(dir, "server.out"), 20), dockertest.Tail(f.log, 20))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("fail2ban jail bad-auth-bots not up after 30s:\n%s", dockertest.Tail(f.log, 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (f *fail2ban) client(args ...string) (string, error) {
	out, err := exec.Command("fail2ban-client", append([]string{"-s", f.sock}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("fail2ban-client %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// enforcing reports whether the FAQ action's rule is in DOCKER-USER.
func (f *fail2ban) enforcing() bool {
	out, err := exec.Command("nsenter", "--net=/run/netns/"+f.e.NetNS, "iptables", "-S", "DOCKER-USER").Output()
	return err == nil && strings.Contains(string(out), "--match-set f2b-bad-auth-bots src")
}

// inSet reports whether the kernel's ipset holds a.
func (f *fail2ban) inSet(a netip.Addr) bool {
	return exec.Command("nsenter", "--net=/run/netns/"+f.e.NetNS, "ipset", "test", "f2b-bad-auth-bots", a.String()).Run() == nil
}

// failed is the jail's "Total failed" count.
func (f *fail2ban) failed(t testing.TB) string {
	t.Helper()
	out, err := f.client("status", "bad-auth-bots")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Total failed:\s*(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("fail2ban-client status: %s", out)
	}
	return m[1]
}

var f2bBanLine = regexp.MustCompile(`^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) fail2ban\.actions\s+\[\d+\]: NOTICE\s+\[bad-auth-bots\] Ban (\S+)$`)

// banLogged is the time fail2ban's log gives for its ban of a.
func (f *fail2ban) banLogged(a netip.Addr) (time.Time, bool) {
	fh, err := os.Open(f.log)
	if err != nil {
		return time.Time{}, false
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if m := f2bBanLine.FindStringSubmatch(sc.Text()); m != nil && m[2] == a.String() {
			ts, err := time.ParseInLocation("2006-01-02 15:04:05,000", m[1], time.UTC)
			return ts, err == nil
		}
	}
	return time.Time{}, false
}

// plainAuth is a port-25 bot that does not STARTTLS: EHLO, then AUTH PLAIN
// in the clear. nginx logs it as "client: <ip>, server:", the form Mailu's
// FAQ regex expects.
func (p *peer) plainAuth(src netip.Addr, user string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	nc, err := p.dial(ctx, net.JoinHostPort(p.front.String(), "25"), src)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(8 * time.Second))
	r := bufio.NewReader(nc)
	reply := func() (string, error) {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return l, err
			}
			if len(l) < 4 || l[3] != '-' {
				return strings.TrimSpace(l), nil
			}
		}
	}
	if l, err := reply(); err != nil || !strings.HasPrefix(l, "220") {
		return fmt.Errorf("greeting %q: %v", l, err)
	}
	// The veth's round trip is 0.1 ms; over the Internet each command
	// reaches nginx a one-way delay after the reply it waits for. Without
	// it the whole session can fit in bansd's 1 ms "too fast to be real"
	// window (jail/nginx.go minAuthDelay) and not be counted.
	time.Sleep(internetRTT / 2)
	if _, err := fmt.Fprint(nc, "EHLO bot.example.net\r\n"); err != nil {
		return err
	}
	if l, err := reply(); err != nil || !strings.HasPrefix(l, "250") {
		return fmt.Errorf("EHLO %q: %v", l, err)
	}
	time.Sleep(internetRTT / 2)
	if _, err := fmt.Fprintf(nc, "AUTH PLAIN %s\r\n", base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00x"))); err != nil {
		return err
	}
	l, err := reply()
	if err != nil || !strings.HasPrefix(l, "5") {
		return fmt.Errorf("AUTH %q: %v", l, err)
	}
	return nil
}

// timeToBan is one attack's outcome, measured from the client's receipt of
// the refusal of its crossing (5th) attempt.
type timeToBan struct {
	bansd     time.Duration // first SYN to port 465 dropped (fail2ban never drops 465)
	f2bLogged time.Duration // fail2ban's "Ban" log line (its decision)
	f2bSet    time.Duration // the address is in fail2ban's ipset (enforced)
}

// attack runs the FAQ's scenario from src: 5 AUTH attempts on port 25 in
// the clear, then measures both daemons' time to ban.
func (c *comparison) attack(t testing.TB, src netip.Addr) timeToBan {
	t.Helper()
	for i := 1; i <= 5; i++ {
		time.Sleep(internetRTT)
		if err := c.attacker.plainAuth(src, fmt.Sprintf("bot%d@example.com", i)); err != nil {
			t.Fatalf("%s plain AUTH %d: %v", src, i, err)
		}
	}
	t0 := time.Now()
	var res timeToBan
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		t1, err := firstDropped(c.attacker, src, 465)
		if err != nil {
			t.Errorf("bansd: %v", err)
			return
		}
		res.bansd = t1.Sub(t0)
	}()
	go func() {
		defer wg.Done()
		for !c.f2b.inSet(src) {
			if time.Since(t0) > 20*time.Second {
				t.Errorf("fail2ban did not ban %s within 20s; Total failed %s", src, c.f2b.failed(t))
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		res.f2bSet = time.Since(t0)
	}()
	wg.Wait()
	// A SYN lost to load would pass for a ban: check bansd has one.
	w := whyOf(t, c.b, src)
	for deadline := time.Now().Add(2 * time.Second); len(w.Bans) == 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		w = whyOf(t, c.b, src)
	}
	if len(w.Bans) == 0 {
		var lines []string
		for _, l := range strings.Split(c.s.logs(t, "front"), "\n") {
			if strings.Contains(l, src.String()+" ") || strings.Contains(l, src.String()+":") || strings.Contains(l, src.String()+",") {
				lines = append(lines, l)
			}
		}
		t.Fatalf("bansd did not ban %s: %+v\nits front lines:\n%s", src, w, strings.Join(lines, "\n"))
	}
	if t.Failed() {
		t.FailNow()
	}
	ts, ok := c.f2b.banLogged(src)
	if !ok {
		t.Fatalf("no Ban line for %s in fail2ban's log:\n%s", src, dockertest.Tail(c.f2b.log, 20))
	}
	res.f2bLogged = ts.Sub(t0)
	return res
}

// The same port-25 AUTH attack against the same stack, watched by bansd
// and by Fail2Ban 1.0.2 from Debian set up as Mailu's FAQ says (filter
// bad-auth-bots, maxretry 5, findtime 600, action docker-action-net),
// reading the front container's json-file log instead of the journal.
//
// What it shows: the FAQ's regex misses every attempt made after STARTTLS;
// on attempts in the clear fail2ban bans, but its ban covers port 25 only
// (the FAQ's rule), for the whole /24; bansd's ban drops the address on
// every published port. Not measured here, from the FAQ's action as
// written: it is iptables only (no ip6tables rule: IPv6 clients are never
// blocked), and with Docker's userland proxy an IPv6 client is proxied
// through INPUT, not DOCKER-USER, and seen as the bridge gateway, whose
// /24 (Mailu's SUBNET) fail2ban would then "ban".
func TestFail2BanVsBansd(t *testing.T) {
	c := newComparison(t, 2)
	tlsBot, bot, neighbour := c.attacker.addrs[0], c.attacker.addrs[1], c.attacker.addrs[2]

	// A bot that does STARTTLS first (mailclient's SMTP): nginx writes
	// "client: <ip> using starttls, server:".
	for i := 1; i <= 5; i++ {
		time.Sleep(internetRTT)
		if r := c.attacker.login(tlsBot, mailclient.SMTP, fmt.Sprintf("bot%d@example.com", i), "x"); r.Outcome != mailclient.Failure {
			t.Fatalf("%s STARTTLS AUTH %d: %+v", tlsBot, i, r)
		}
	}
	waitDropped(t, c.attacker, tlsBot, 465)
	// pyinotify hands fail2ban each write at once; give it ample time.
	time.Sleep(2 * time.Second)
	if n := c.f2b.failed(t); n != "0" || c.f2b.inSet(tlsBot) {
		t.Errorf("fail2ban counted STARTTLS attempts (Total failed %s, banned %v); the FAQ regex was expected to miss them", n, c.f2b.inSet(tlsBot))
	}

	// The same attack in the clear, which the FAQ's regex matches.
	res := c.attack(t, bot)
	t.Logf("time to ban after the 5th attempt: bansd %v (first SYN dropped); fail2ban %v (Ban logged), %v (in its ipset)",
		res.bansd.Round(time.Millisecond), res.f2bLogged.Round(time.Millisecond), res.f2bSet.Round(time.Millisecond))
	if n := c.f2b.failed(t); n != "5" {
		t.Errorf("fail2ban Total failed %s, want 5", n)
	}

	// With both bans in place: nothing gets through (bansd).
	probeAll := func(src netip.Addr, want func(port int) mailclient.Outcome, who string) {
		t.Helper()
		var wg sync.WaitGroup
		for _, port := range publishedPorts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r := c.attacker.probe(src, port, time.Second); r.Outcome != want(port) {
					t.Errorf("%s: %s port %d: %s, want %s", who, src, port, r.Outcome, want(port))
				}
			}()
		}
		wg.Wait()
	}
	probeAll(bot, func(int) mailclient.Outcome { return mailclient.Timeout }, "bansd's ban")

	// Only fail2ban's ban left: port 25 is dropped, for the whole /24
	// (a neighbour that did nothing included), every other port is open.
	if _, err := c.b.ctl("unban", bot.String()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.attacker.probe(bot, 465, 500*time.Millisecond).Outcome != mailclient.Success {
		if time.Now().After(deadline) {
			t.Fatalf("%s still dropped on 465 after bansctl unban", bot)
		}
		time.Sleep(50 * time.Millisecond)
	}
	onlyPort25 := func(port int) mailclient.Outcome {
		if port == 25 {
			return mailclient.Timeout
		}
		return mailclient.Success
	}
	probeAll(bot, onlyPort25, "fail2ban's ban")
	probeAll(neighbour, onlyPort25, "fail2ban's /24 ban")
	if r := c.attacker.login(bot, mailclient.SMTPS, legitUser, "guess-1"); r.Outcome != mailclient.Failure {
		t.Errorf("fail2ban-banned %s cannot go on guessing on 465: %+v", bot, r)
	}
	if r := c.legit.login(c.legit.addrs[0], mailclient.IMAPS, legitUser, legitPass); r.Outcome != mailclient.Success {
		t.Errorf("legitimate login: %+v", r)
	}
	open := slices.DeleteFunc(slices.Clone(publishedPorts), func(p int) bool { return p == 25 })
	t.Logf("fail2ban's ban leaves %s (and its whole /24) ports %v open; bansd's dropped all %d published ports", bot, open, len(publishedPorts))
}

// BenchmarkFail2BanVsBansd repeats the FAQ's port-25 attack from fresh
// addresses and reports each daemon's median time from the crossing attempt
// to its ban: bansd-ms (first dropped SYN), f2b-log-ms (fail2ban's Ban
// line) and f2b-set-ms (the address in fail2ban's ipset). ns/op is a whole
// attack.
//
//	go test -run '^$' -bench Fail2BanVsBansd -benchtime 5x ./integration/
func BenchmarkFail2BanVsBansd(b *testing.B) {
	c := newComparison(b, 50)
	if b.N > len(c.attacker.addrs) {
		b.Fatalf("b.N %d: at most %d attacker addresses", b.N, len(c.attacker.addrs))
	}
	var bansdT, logT, setT []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		src := c.attacker.addrs[i]
		res := c.attack(b, src)
		bansdT, logT, setT = append(bansdT, res.bansd), append(logT, res.f2bLogged), append(setT, res.f2bSet)
		// fail2ban bans the /24: lift it for the next address.
		b.StopTimer()
		if _, err := c.f2b.client("set", "bad-auth-bots", "unbanip", src.String()); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for c.f2b.inSet(src) {
			if time.Now().After(deadline) {
				b.Fatalf("fail2ban unban of %s not applied", src)
			}
			time.Sleep(10 * time.Millisecond)
		}
		b.StartTimer()
	}
	b.StopTimer()
	median := func(ds []time.Duration) float64 {
		ds = slices.Clone(ds)
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Microseconds()) / 1000
	}
	b.ReportMetric(median(bansdT), "bansd-ms")
	b.ReportMetric(median(logT), "f2b-log-ms")
	b.ReportMetric(median(setT), "f2b-set-ms")
	b.Logf("bansd %v\nfail2ban log %v\nfail2ban ipset %v", bansdT, logT, setT)
}
