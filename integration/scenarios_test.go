package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/integration/mailclient"
	"github.com/bansd/bansd/internal/dockertest"
)

// Scenario 2: what UFW and Fail2Ban's default action do, a DROP in the
// INPUT chain, does not stop a client of a published port (Docker DNATs it
// through FORWARD); bansd's ban does.
func TestInputChainDropIsNotEnough(t *testing.T) {
	e := dockertest.Start(t, dockertest.Options{})
	startStack(t, e, "2024.06")
	legit := newLegit(t, e)
	attacker := newAttacker(t, e, 0)
	waitReady(t, legit)
	startBansd(t, e, testJails)
	bot := attacker.addrs[0]

	e.Exec(t, "iptables", "-I", "INPUT", "-s", bot.String(), "-j", "DROP")
	for i := 1; i <= 2; i++ {
		if i > 1 {
			time.Sleep(internetRTT)
		}
		if r := attacker.login(bot, mailclient.SMTP, fmt.Sprintf("bot%d@example.com", i), "x"); r.Outcome != mailclient.Failure {
			t.Fatalf("with the INPUT DROP, attempt %d should still reach front and fail: %+v", i, r)
		}
	}
	if n := inputDrops(t, e, bot); n != 0 {
		t.Errorf("INPUT rule for %s matched %d packets; Docker's DNAT should route them through FORWARD", bot, n)
	}
	time.Sleep(internetRTT)
	if r := attacker.login(bot, mailclient.SMTP, "bot3@example.com", "x"); r.Outcome != mailclient.Failure {
		t.Fatalf("attempt 3: %+v", r)
	}
	waitDropped(t, attacker, bot, 25)
	assertCutOff(t, attacker, 500*time.Millisecond, bot)
	if r := legit.login(legit.addrs[0], mailclient.IMAPS, legitUser, legitPass); r.Outcome != mailclient.Success {
		t.Errorf("legitimate login: %+v", r)
	}
}

// inputDrops is the packet count of the INPUT rule dropping src.
func inputDrops(t testing.TB, e *dockertest.Engine, src netip.Addr) int {
	t.Helper()
	out := e.Exec(t, "iptables", "-L", "INPUT", "-n", "-v", "-x")
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 8 && f[2] == "DROP" && f[7] == src.String() {
			n, err := strconv.Atoi(f[0])
			if err != nil {
				t.Fatalf("iptables counters: %q", l)
			}
			return n
		}
	}
	t.Fatalf("no INPUT rule for %s:\n%s", src, out)
	return 0
}

// Scenario 6: usernames that carry another address where the parsers look
// for the client (`client: X`, `rip=X`, `from: X/`), and line feeds or
// carriage returns that make nginx write whole lines naming X. Several
// attacker addresses, each below every threshold, together forge more
// than enough to ban X: X must never be counted, only the attacker banned.
func TestInjectedUsernamesNeverBanOthers(t *testing.T) {
	e := dockertest.Start(t, dockertest.Options{})
	// Mailu's own limiter would refuse the attempts before admin logs the
	// injected usernames: raise it out of the way.
	s := startStack(t, e, "2024.06", "AUTH_RATELIMIT_IP=10000/hour")
	legit := newLegit(t, e)
	attacker := newAttacker(t, e, 4)
	waitReady(t, legit)
	b := startBansd(t, e, testJails)
	victim := legit.addrs[0]
	x := victim.String()

	now := func() string { return time.Now().UTC().Format("2006/01/02 15:04:05") }
	nginxForged := func(sep string) string {
		return "u" + sep + now() + ` [info] 13#13: *9 client login failed: "AUTH not supported" while in http auth state, client: ` + x + `, server: 0.0.0.0:25, login: "v`
	}
	smtpUsers := [][]string{ // two per source: below maxretry 3
		{`a", client: ` + x + `, server: 0.0.0.0:25, login: "b`, nginxForged("\n")},
		{nginxForged("\r"), nginxForged("\n") + "\n" + nginxForged("\n")},
		{`c client: ` + x + ` using starttls, server: 0.0.0.0:25`, nginxForged("\n")},
		{nginxForged("\n"), `d", client: ` + x + `, server: [::]:25, login: "e`},
	}
	imapUsers := []string{ // four unknown users per source: below maxretry 5
		`p rip=` + x + `, rport=1, lip=192.168.203.5, lport=143`,
		`q (auth failed, 99 attempts in 1 secs): user=<r, method=PLAIN, rip=` + x + `, rport=2, lip=192.168.203.5, lport=993`,
		`s from: ` + x + `/40000: failed: badauth: 0a1b2c`,
		"t\nMar 01 00:00:00 imap-login: Info: Disconnected: Aborted login (auth failed, 9 attempts in 1 secs): user=<w>, method=PLAIN, rip=" + x + ", rport=3, lip=192.168.203.5, lport=143",
	}
	var wg sync.WaitGroup
	for i, src := range attacker.addrs[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k, u := range smtpUsers[i] {
				if k > 0 {
					time.Sleep(internetRTT)
				}
				if r := attacker.login(src, mailclient.SMTP, u, "x"); r.Outcome != mailclient.Failure {
					t.Errorf("%s port 25 AUTH %q: %+v", src, u, r)
				}
			}
			for _, u := range imapUsers {
				if r := attacker.login(src, mailclient.IMAP, u, "x"); r.Outcome != mailclient.Failure {
					t.Errorf("%s IMAP %q: %+v", src, u, r)
				}
			}
		}()
	}
	wg.Wait()

	// The forgeries reached the logs as an attacker wants them.
	front := s.logs(t, "front")
	for _, re := range []string{
		`(?m)^\S+ \d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[info\] 13#13: \*9 client login failed: "AUTH not supported" while in http auth state, client: ` + regexp.QuoteMeta(x) + `, server: 0\.0\.0\.0:25, login: "v`,
		`rip=198\.51\.100\.1[0-3], rport=\d+, lip=`,
	} {
		if !regexp.MustCompile(re).MatchString(front) {
			t.Fatalf("front log lacks %s; the injection did not happen as planned:\n%s", re, front)
		}
	}
	if !strings.Contains(s.logs(t, "admin"), "from: "+x+"/40000: failed: badauth: 0a1b2c'/imap/143 from: 198.51.100.") {
		t.Fatalf("admin log lacks the injected from:")
	}

	// One attacker now crosses smtp-auth-bots' threshold with plain
	// attempts (a daemon may set the split lines aside; these must count).
	bot := attacker.addrs[1]
	for i := 1; i <= 3; i++ {
		time.Sleep(internetRTT)
		r := attacker.login(bot, mailclient.SMTP, fmt.Sprintf("plain-bot%d@example.com", i), "x")
		if r.Outcome == mailclient.Timeout {
			t.Logf("%s banned after %d plain attempts", bot, i-1)
			break
		}
		if r.Outcome != mailclient.Failure {
			t.Fatalf("plain attempt %d: %+v", i, r)
		}
	}
	waitDropped(t, attacker, bot, 25)

	// How much of the injecting attempts still counted for their senders.
	for _, src := range attacker.addrs[2:] {
		for _, win := range whyOf(t, b, src).Windows {
			t.Logf("%s: jail %s counts %d/%d", src, win.Jail, win.Count, win.MaxRetry)
		}
	}

	var list control.BanList
	out, err := b.ctl("list")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("bansctl list: %v: %s", err, out)
	}
	for _, ban := range list.Bans {
		if ban.Target.Contains(victim) {
			t.Errorf("victim %s banned: %+v", victim, ban)
		}
		if !ban.Target.IsSingleIP() || !attackerAddr(attacker, ban.Target.Addr()) {
			t.Errorf("ban of %s: want only attacker addresses", ban.Target)
		}
	}
	if len(list.Bans) == 0 {
		t.Errorf("no ban at all: %s", out)
	}
	w := whyOf(t, b, victim)
	if len(w.Bans) != 0 || slices.ContainsFunc(w.Windows, func(s control.WindowStatus) bool { return s.Count > 0 }) {
		t.Errorf("victim %s counted: %+v", victim, w)
	}
	if r := legit.login(victim, mailclient.IMAPS, legitUser, legitPass); r.Outcome != mailclient.Success {
		t.Errorf("victim cannot log in: %+v", r)
	}
}

func attackerAddr(p *peer, a netip.Addr) bool {
	for _, b := range p.addrs {
		if a == b {
			return true
		}
	}
	return false
}

// With Docker's userland proxy and an IPv4-only Mailu network, an IPv6
// client reaches front from the bridge gateway, inside Mailu's SUBNET.
// A brute force over IPv6 must raise an alarm, not ban the gateway (that
// would cut every IPv6 client, and nothing of the attacker); IPv4 clients
// keep their real addresses and their bans.
func TestUserlandProxyGatewayAlarm(t *testing.T) {
	e := dockertest.Start(t, dockertest.Options{UserlandProxy: true})
	s := startStack(t, e, "2024.06")
	legit := newLegit(t, e)
	attacker := newAttacker(t, e, 0)
	waitReady(t, legit)
	// The shield off first, to show what it prevents; relayShield turns
	// it on at the end.
	b := startBansd(t, e, testJails+shieldOffConfig)
	alarmsBefore := alarmsTotal(t, b)

	for i := 1; i <= 4; i++ {
		time.Sleep(internetRTT)
		if r := attacker.login(attacker.addr6, mailclient.SMTP, fmt.Sprintf("bot%d@example.com", i), "x"); r.Outcome != mailclient.Failure {
			t.Fatalf("IPv6 port 25 AUTH %d: %+v", i, r)
		}
	}
	front := regexp.MustCompile(`client: (192\.168\.203\.1) using starttls, server: 0\.0\.0\.0:25, login: "bot4@example\.com"`)
	if log := s.logs(t, "front"); !front.MatchString(log) {
		t.Fatalf("front does not see the IPv6 client as the gateway 192.168.203.1:\n%s", log)
	}
	deadline := time.Now().Add(10 * time.Second)
	var alarm control.AlarmStatus
	for {
		var st control.Status
		out, err := b.ctl("status")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("bansctl status: %v: %s", err, out)
		}
		i := slices.IndexFunc(st.Alarms, func(a control.AlarmStatus) bool { return a.Addr == "192.168.203.1" })
		if i >= 0 {
			alarm = st.Alarms[i]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alarm for the gateway 192.168.203.1 after 10s: %+v", st.Alarms)
		}
		time.Sleep(200 * time.Millisecond)
	}
	const proxyOff = `{"userland-proxy": false} in /etc/docker/daemon.json`
	if alarm.Count < 1 || !strings.Contains(alarm.Fix, proxyOff) || !strings.Contains(alarm.Fix, "enable_ipv6 on the Mailu network") {
		t.Errorf("alarm %+v: want its count and the fix (%s, or IPv6 on the Mailu network)", alarm, proxyOff)
	}
	if st := b.ctlText(t, "status"); !regexp.MustCompile(`(?m)^  \S+ 192\.168\.203\.1: \d+ time\(s\)`).MatchString(st) ||
		!strings.Contains(st, "fix:  "+alarm.Fix) {
		t.Errorf("bansctl status does not show the gateway alarm with its fix:\n%s", st)
	}
	if after := alarmsTotal(t, b); after <= alarmsBefore {
		t.Errorf("bansd_alarms_total did not move: %v before the attack, %v after", alarmsBefore, after)
	}
	doctorOpenRelay(t, e, b)
	if w := whyOf(t, b, netip.MustParseAddr("192.168.203.1")); len(w.Bans) != 0 {
		t.Errorf("gateway banned: %+v", w.Bans)
	}
	if r := legit.login(legit.addr6, mailclient.IMAPS, legitUser, legitPass); r.Outcome != mailclient.Success {
		t.Errorf("IPv6 legitimate client after the attack: %+v", r)
	}
	// The same bot over IPv4 is seen, and banned, as itself.
	bot := attacker.addrs[0]
	for i := 1; i <= 3; i++ {
		time.Sleep(internetRTT)
		if r := attacker.login(bot, mailclient.SMTP, fmt.Sprintf("bot%d@example.com", i), "x"); r.Outcome != mailclient.Failure {
			t.Fatalf("IPv4 port 25 AUTH %d: %+v", i, r)
		}
	}
	waitDropped(t, attacker, bot, 25)
	relayShield(t, e, s, b, legit, attacker)
}

// shieldOffConfig starts bansd with the relay shield off and a short
// reconcile interval, for relayShield.
const shieldOffConfig = `
[firewall]
reconcile = "2s"
relay_shield = false
`

// relayShield turns the shield on (config and SIGHUP) on the open-relay
// stack: the IPv6 client gets a reset within 100 ms and front logs no new
// connection from the gateway, IPv4 still logs in, bansctl status shows
// the shield, and `nft flush ruleset` is repaired within the reconcile
// interval.
func relayShield(t *testing.T, e *dockertest.Engine, s *stack, b *bansd, legit, attacker *peer) {
	t.Helper()
	cfg := filepath.Join(b.dir, "bansd.toml")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, bytes.Replace(data, []byte("relay_shield = false"), []byte("relay_shield = true"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !statusOf(t, b).Shield.Up {
		if time.Now().After(deadline) {
			t.Fatalf("relay shield not up 30s after the reload: %+v", statusOf(t, b).Shield)
		}
		time.Sleep(100 * time.Millisecond)
	}
	v6 := net.JoinHostPort(attacker.front6.String(), "25")
	refused := func() (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		c, err := attacker.dial(ctx, v6, attacker.addr6)
		if err == nil {
			c.Close()
			return time.Since(start), errors.New("connected")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return time.Since(start), err
		}
		return time.Since(start), nil
	}
	gateway := regexp.MustCompile(`client:? 192\.168\.203\.1\b`)
	before := len(gateway.FindAllString(s.logs(t, "front"), -1))
	took, err := refused()
	if err != nil {
		t.Fatalf("IPv6 to 25 with the shield up: %v, want a reset", err)
	}
	if took >= 100*time.Millisecond {
		t.Fatalf("IPv6 to 25 refused after %v, want < 100ms", took)
	}
	t.Logf("IPv6 to 25 with the shield up: refused in %v", took)
	// A legitimate IPv4 login goes through front after the refused
	// attempt: had that one slipped through, front would have logged it first.
	if r := legit.login(legit.addrs[0], mailclient.IMAPS, legitUser, legitPass); r.Outcome != mailclient.Success {
		t.Errorf("IPv4 login with the shield up: %+v", r)
	}
	if n := len(gateway.FindAllString(s.logs(t, "front"), -1)); n != before {
		t.Errorf("front logged %d new lines from the gateway with the shield up", n-before)
	}
	if st := b.ctlText(t, "status"); !regexp.MustCompile(`Relay shield: UP \(IPv6 to ports \[[0-9, ]*\b25\b`).MatchString(st) {
		t.Errorf("bansctl status does not show the shield up:\n%s", st)
	}

	e.Exec(t, "nft", "flush", "ruleset")
	flushed := time.Now()
	for {
		if _, err := refused(); err == nil {
			break
		}
		if time.Since(flushed) > 20*time.Second {
			t.Fatalf("relay shield not back 20s after nft flush ruleset (reconcile 2s)")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("relay shield back %v after nft flush ruleset (reconcile 2s)", time.Since(flushed).Round(time.Millisecond))
}

// alarmsTotal sums bansd_alarms_total over its kinds, from the metrics the
// control socket serves (0 while no alarm of any kind was counted: a
// vector shows no series before its first).
func alarmsTotal(t testing.TB, b *bansd) float64 {
	t.Helper()
	var buf bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := control.NewClient(b.socket).Metrics(ctx, &buf); err != nil {
		t.Fatalf("metrics: %v", err)
	}
	sum := 0.0
	for _, l := range strings.Split(buf.String(), "\n") {
		if !strings.HasPrefix(l, "bansd_alarms_total{") && !strings.HasPrefix(l, "bansd_alarms_total ") {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", l, err)
		}
		sum += v
	}
	return sum
}

// doctorOpenRelay runs `bansctl doctor` as an operator would on this host:
// in the engine's network namespace, DOCKER_HOST at its dockerd. The
// userland proxy is on, front's ports are published on all addresses, the
// host has IPv6 and the Mailu network does not: the open-relay risk must
// FAIL with its fix, and bansd's table and chain PASS.
func doctorOpenRelay(t *testing.T, e *dockertest.Engine, b *bansd) {
	t.Helper()
	run := func(args ...string) ([]byte, int) {
		cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + e.NetNS, bins.bansctl, "--socket", b.socket}, args...)...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.Host())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("bansctl %s: %v (want exit status 1)\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return out, ee.ExitCode()
	}
	out, code := run("--json", "doctor")
	var rep struct {
		Results []struct{ Check, Verdict, Message, Fix string }
		Facts   struct {
			Mailu *struct {
				Networks []struct {
					Name     string
					Gateways []netip.Addr
				}
			}
			Proxy struct {
				On        bool
				Processes int
			} `json:"userland_proxy"`
		}
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("bansctl --json doctor: %v\n%s", err, out)
	}
	if code != 1 {
		t.Errorf("doctor exit status %d, want 1\n%s", code, out)
	}
	got := map[string]string{}
	for _, r := range rep.Results {
		got[r.Check] = r.Verdict
		switch r.Check {
		case "userland-proxy":
			if r.Verdict != "FAIL" || !strings.Contains(r.Message, "OPEN RELAY") ||
				!strings.Contains(r.Fix, `{"userland-proxy": false} in /etc/docker/daemon.json`) || !strings.Contains(r.Fix, "enable_ipv6 on the Mailu network") {
				t.Errorf("doctor's open-relay check: %+v", r)
			}
		case "nftables":
			if r.Verdict != "PASS" || !strings.Contains(r.Message, "chain prerouting: filter hook prerouting priority -310") {
				t.Errorf("doctor's table check: %+v", r)
			}
		case "subnet":
			// front logged 192.168.203.1, a gateway doctor must have found.
			if r.Verdict != "FAIL" || !strings.Contains(r.Message, "gateway as the client") {
				t.Errorf("doctor's subnet check: %+v", r)
			}
		case "bansd":
			if r.Verdict != "WARN" || !strings.Contains(r.Message, "192.168.203.1") {
				t.Errorf("doctor's bansd check: %+v", r)
			}
		}
	}
	for _, c := range []string{"userland-proxy", "nftables", "subnet", "bansd"} {
		if got[c] == "" {
			t.Errorf("doctor has no %s check: %s", c, out)
		}
	}
	gws := map[string][]netip.Addr{}
	if m := rep.Facts.Mailu; m != nil {
		for _, n := range m.Networks {
			gws[n.Name] = n.Gateways
		}
	}
	if !slices.Equal(gws["mailu_default"], []netip.Addr{netip.MustParseAddr("192.168.203.1")}) {
		t.Errorf("doctor's Mailu network gateways: %v", gws)
	}
	// One docker-proxy per published port and family, all of this engine:
	// other engines' proxies run in other namespaces of the same PID space.
	if p := rep.Facts.Proxy; !p.On || p.Processes != 2*len(publishedPorts) {
		t.Errorf("doctor's userland proxy facts %+v, want on with %d processes", p, 2*len(publishedPorts))
	}
	text, code := run("doctor")
	t.Logf("bansctl doctor (exit %d):\n%s", code, text)
	if code != 1 || !regexp.MustCompile(`(?m)^FAIL  userland-proxy +OPEN RELAY RISK`).Match(text) ||
		!regexp.MustCompile(`(?m)^ +fix: set \{"userland-proxy": false\} in /etc/docker/daemon\.json`).Match(text) ||
		!regexp.MustCompile(`(?m)^PASS  nftables `).Match(text) {
		t.Errorf("bansctl doctor (exit %d):\n%s", code, text)
	}
}
