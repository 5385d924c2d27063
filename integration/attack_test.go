package integration

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bansd/bansd/integration/mailclient"
	"github.com/bansd/bansd/internal/dockertest"
)

// The jail numbers of the attack tests, written into attackJails.
const (
	botMax     = 6   // smtp-auth-bots: AUTH on port 25
	authMax    = 8   // auth: distinct (user, password) failures
	ceilingMax = 30  // auth-ceiling: an address's failures, whatever it logged in as
	netMax     = 300 // network: a /24's events...
	netAddrs   = 8   // ...from at least this many addresses
)

// attackJails gives every jail the attack tests rely on its numbers. The
// network jail is set above what the real attackers of one group add up
// to (~60 events), so that only forged lines could make it ban their /24.
var attackJails = fmt.Sprintf(`
[engine]
success_exempt = "24h"

[jails.smtp-auth-bots]
findtime = "10m"
maxretry = %d
bantime = "1d"

[jails.auth]
findtime = "1h"
maxretry = %d
bantime = "1h"

# After a successful login only that (address, user) pair is exempt; an
# address that guesses many users is banned at this ceiling however it
# logged in before.
[jails.auth-ceiling]
events = ["auth-failure", "unknown-user"]
findtime = "1h"
maxretry = %d
bantime = "1h"
prefix4 = 32
prefix6 = 128

[jails.network]
findtime = "1h"
maxretry = %d
min_addresses = %d
prefix4 = 24
prefix6 = 64

[jails.network48]
enabled = false
`, botMax, authMax, ceilingMax, netMax, netAddrs)

// Victims: addresses that never connect (the spoofed-SYN one only sends
// SYNs through the attacker), named by forged lines.
var (
	victimNginx   = netip.MustParseAddr("198.51.100.53")
	victimWarning = netip.MustParseAddr("198.51.100.54")
	victimRestart = netip.MustParseAddr("198.51.100.55")
	victimSYN     = netip.MustParseAddr("198.51.100.56")
	victimV6      = netip.MustParseAddr("2001:db8:ffff::53")
	gateway       = netip.MustParseAddr("192.168.203.1")
)

const victimSYNPort = 40056

// TestAttacks runs issue 10's adaptive attacker against the live stack:
// framing (forged nginx and Dovecot lines about addresses that never
// connected, a /24, IPv6, the gateway, a spoofed SYN) and evasion
// (pipelining, counter poisoning, guard camping, a success exemption),
// on both Mailu versions, idle and with every core busy and a log flood.
// One stack serves every scenario of a group; each scenario attacks from
// fresh addresses, and the legitimate client must keep logging in.
func TestAttacks(t *testing.T) {
	for _, version := range []string{"2.0", "2024.06"} {
		for _, loaded := range []bool{false, true} {
			name := version + "/idle"
			if loaded {
				name = version + "/loaded"
			}
			t.Run(name, func(t *testing.T) { attackGroup(t, version, loaded) })
		}
	}
}

type attackRun struct {
	e        *dockertest.Engine
	s        *stack
	b        *bansd
	f        *forger
	legit    *peer
	attacker *peer
	next     int // next unused attacker address
	// textLimited are attackers that the text rules alone (replay) are not
	// expected to ban: see replayAttacks.
	textLimited []netip.Addr
}

// fresh is an attacker address no earlier scenario used.
func (r *attackRun) fresh() netip.Addr {
	a := r.attacker.addrs[r.next]
	r.next++
	return a
}

func attackGroup(t *testing.T, version string, loaded bool) {
	start := time.Now()
	e := dockertest.Start(t, dockertest.Options{})
	// Mailu's own limiter is raised out of the way (it would refuse the
	// attempts before anyone logs them); admin starts at WARNING for item 4.
	s := startStack(t, e, version, "AUTH_RATELIMIT_IP=10000/hour", "LOG_LEVEL=WARNING")
	legit := newLegit(t, e)
	attacker := newAttacker(t, e, 16)
	waitReady(t, legit)
	if loaded {
		startLoad(t, e)
	}
	b := startBansd(t, e, attackJails)
	r := &attackRun{e: e, s: s, b: b, legit: legit, attacker: attacker, next: 1}
	r.f = newForger(t, s, legit)
	t.Logf("stack, peers and bansd ready after %v (nginx worker %s, front %s)", time.Since(start).Round(time.Millisecond), r.f.worker, r.f.lip)

	for _, sc := range []struct {
		name string
		run  func(*testing.T, *attackRun)
	}{
		{"4-dovecot-line-admin-at-WARNING", itemDovecotWarning},
		{"4-dovecot-line-after-bansd-restart", itemDovecotRestart},
		{"1-forged-nginx-lines", itemNginxFraming},
		{"3-ipv6-victim", itemIPv6},
		{"5-gateway", itemGateway},
		{"spoofed-syn", itemSpoofedSYN},
		{"6-pipelining", itemPipelining},
		{"7-counter-poisoning", itemPoisoning},
		{"8-guard-camping", itemCamping},
		{"9-success-exemption", itemSuccess},
		// Last: with today's code its /24 ban would cut every later attacker.
		{"2-network-24", itemNetwork},
	} {
		t0 := time.Now()
		t.Run(sc.name, func(t *testing.T) {
			sc.run(t, r)
			if res := legit.login(legit.addrs[0], mailclient.IMAPS, legitUser, legitPass); res.Outcome != mailclient.Success {
				t.Errorf("legitimate client after %s: %+v", sc.name, res)
			}
		})
		t.Logf("%s: %v", sc.name, time.Since(t0).Round(time.Millisecond))
	}
	t.Run("replay", func(t *testing.T) { replayAttacks(t, r) })
	t.Logf("group %s: %v in all", t.Name(), time.Since(start).Round(time.Millisecond))
}

// Item 4, admin at LOG_LEVEL=WARNING: no Login attempt line ever tells
// bansd that admin judges the logins; a Dovecot-format line forged in an
// nginx username on front's stream must still count for nobody.
func itemDovecotWarning(t *testing.T, r *attackRun) {
	if strings.Contains(r.s.logs(t, "admin"), "Login attempt for:") {
		t.Fatal("admin at LOG_LEVEL=WARNING logged a Login attempt line")
	}
	carrier := r.fresh()
	lines := []string{r.f.dovecot(victimWarning, 41000, 10), r.f.dovecot(victimWarning, 41001, 10)}
	r.f.forge(t, r.attacker, carrier, "\n", lines...)
	assertForgedLine(t, r.s, r.f, victimWarning, "dovecot")
	settle(t, r.s, r.b, "front")
	assertUncounted(t, r.b, victimWarning)

	// Back to Mailu's default level for the rest of the group.
	cmd := r.s.composeCmd("up", "-d", "--no-deps", "admin")
	cmd.Env = append(slices.Clone(r.s.env), "LOG_LEVEL=INFO")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("recreate admin at INFO: %v: %s", err, out)
	}
	waitReady(t, r.legit)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(sourceOf(t, r.b, "admin").State, "attached") || (r.s.version != "2.0" && !strings.Contains(r.s.logs(t, "admin"), "Login attempt for:")) {
		if time.Now().After(deadline) {
			t.Fatalf("admin at INFO not followed or not logging after 20s: %+v", sourceOf(t, r.b, "admin"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Item 4, right after a bansd restart: the new process knows admin's lines
// only from its warm-up (read again from before its cursor).
func itemDovecotRestart(t *testing.T, r *attackRun) {
	// admin (INFO) logs the legitimate login; bansd reads it, then restarts.
	if res := r.legit.login(r.legit.addrs[0], mailclient.IMAPS, legitUser, legitPass); res.Outcome != mailclient.Success {
		t.Fatalf("legitimate login: %+v", res)
	}
	settle(t, r.s, r.b, "front", "admin")
	r.b.stop(t)
	r.b.restart(t)
	carrier := r.fresh()
	r.f.forge(t, r.attacker, carrier, "\n", r.f.dovecot(victimRestart, 41002, 10), r.f.dovecot(victimRestart, 41003, 10))
	assertForgedLine(t, r.s, r.f, victimRestart, "dovecot")
	settle(t, r.s, r.b, "front")
	assertUncounted(t, r.b, victimRestart)
}

// Item 1: an attacker that never makes a failed login writes whole nginx
// lines (failures, and connected lines with CONNIDs far above the real
// counter) about a victim, 2×maxretry of them in each of four layouts.
func itemNginxFraming(t *testing.T, r *attackRun) {
	carrier := r.fresh()
	r.f.forgeFailures(t, r.attacker, carrier, victimNginx, 2*botMax)
	assertForgedLine(t, r.s, r.f, victimNginx, "nginx")
	settle(t, r.s, r.b, "front")
	assertUncounted(t, r.b, victimNginx)
	// The carrier made no failed login either.
	if w := whyOf(t, r.b, carrier); len(w.Bans) > 0 || windowCount(w, "smtp-auth-bots") > 0 {
		t.Errorf("carrier %s, which never failed a login, counted: %+v", carrier, w)
	}
}

// Item 3: the same against an IPv6 address, nginx and Dovecot layouts.
func itemIPv6(t *testing.T, r *attackRun) {
	carrier := r.fresh()
	r.f.forgeFailures(t, r.attacker, carrier, victimV6, 2*botMax)
	r.f.forge(t, r.attacker, carrier, "\n", r.f.dovecot(victimV6, 41004, 10))
	assertForgedLine(t, r.s, r.f, victimV6, "nginx")
	assertForgedLine(t, r.s, r.f, victimV6, "dovecot")
	settle(t, r.s, r.b, "front")
	assertUncounted(t, r.b, victimV6)
}

// Item 5: forged lines naming the Docker gateway must not raise the
// open-relay alarm (alarm fatigue is an attack too), nor count.
func itemGateway(t *testing.T, r *attackRun) {
	before := alarmsTotal(t, r.b)
	carrier := r.fresh()
	r.f.forgeFailures(t, r.attacker, carrier, gateway, 2*botMax)
	r.f.forge(t, r.attacker, carrier, "\n", r.f.dovecot(gateway, 41005, 10))
	assertForgedLine(t, r.s, r.f, gateway, "nginx")
	settle(t, r.s, r.b, "front")
	if after := alarmsTotal(t, r.b); after != before {
		t.Errorf("bansd_alarms_total moved from %v to %v on forged gateway lines", before, after)
	}
	for _, al := range statusOf(t, r.b).Alarms {
		if al.Addr == gateway.String() {
			t.Errorf("false gateway alarm in bansctl status: %+v", al)
		}
	}
	if w := whyOf(t, r.b, gateway); len(w.Bans) > 0 {
		t.Errorf("gateway banned: %+v", w.Bans)
	}
	assertUncounted(t, r.b, gateway)
}

// Spoofed SYN: raw SYNs from the attacker's namespace with the victim's
// address and a chosen port reach front's published port 25 (conntrack
// sees them, half open), then forged lines name exactly that address and
// port: a bare SYN is no completed handshake, nothing may count.
func itemSpoofedSYN(t *testing.T, r *attackRun) {
	if err := sendSYN(r.attacker, victimSYN, victimSYNPort, r.attacker.front, 25, 3); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var ct string
	for ct = conntrackEntry(t, r.e, victimSYN, victimSYNPort, 25); ct == ""; ct = conntrackEntry(t, r.e, victimSYN, victimSYNPort, 25) {
		if time.Now().After(deadline) {
			t.Fatalf("no conntrack entry for the spoofed SYN from %s:%d: it never reached the engine", victimSYN, victimSYNPort)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(ct, "ESTABLISHED") {
		t.Fatalf("spoofed SYN established a connection: %s", ct)
	}
	t.Logf("conntrack: %s", strings.Join(strings.Fields(ct), " "))
	carrier := r.fresh()
	var lines []string
	for range 2 * botMax {
		id := r.f.id()
		lines = append(lines, r.f.connected(id, victimSYN, victimSYNPort), r.f.failure(id, victimSYN))
	}
	lines = append(lines, r.f.dovecot(victimSYN, victimSYNPort, 10))
	r.f.forge(t, r.attacker, carrier, "\n", lines...)
	assertForgedLine(t, r.s, r.f, victimSYN, "nginx")
	settle(t, r.s, r.b, "front")
	assertUncounted(t, r.b, victimSYN)
}

// bannedBy waits for src's ban to reach the kernel (port) and checks that
// jail (one of jails) made it.
func bannedBy(t *testing.T, r *attackRun, src netip.Addr, port int, jails ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r.attacker.probe(src, port, 500*time.Millisecond).Outcome != mailclient.Timeout {
		if time.Now().After(deadline) {
			w := whyOf(t, r.b, src)
			var counts []string
			for _, win := range w.Windows {
				counts = append(counts, fmt.Sprintf("%s %s %d/%d", win.Jail, win.Target, win.Count, win.MaxRetry))
			}
			t.Fatalf("%s not banned 10s after its real failures (want a ban by %v); bansctl why: windows %v, bans %d", src, jails, counts, len(w.Bans))
		}
		time.Sleep(50 * time.Millisecond)
	}
	w := whyOf(t, r.b, src)
	if len(w.Bans) == 0 || !slices.Contains(jails, w.Bans[0].Jail) {
		t.Errorf("%s: want a ban by %v: %+v", src, jails, w)
	}
}

// smtpBotFailures makes n real AUTH failures on port 25 from src with
// attempt before each; every one must reach front (not banned early).
func smtpBotFailures(t *testing.T, r *attackRun, src netip.Addr, n int, attempt func(i int) mailclient.Result) {
	t.Helper()
	for i := 1; i <= n; i++ {
		time.Sleep(internetRTT)
		if res := attempt(i); res.Outcome != mailclient.Failure {
			t.Fatalf("%s real failure %d/%d: %+v", src, i, n, res)
		}
	}
}

// Item 6: a bot that sends EHLO and AUTH in its first packet makes nginx
// log the failure within a millisecond of the connection; its maxretry
// real failures must ban it.
func itemPipelining(t *testing.T, r *attackRun) {
	bot := r.fresh()
	addr := net.JoinHostPort(r.attacker.front.String(), "25")
	smtpBotFailures(t, r, bot, botMax, func(i int) mailclient.Result {
		return mailclient.PipelinedAuth(context.Background(), mailclient.Options{
			Addr: addr, User: fmt.Sprintf("pipe%d@example.com", i), Pass: "x", Source: bot, Timeout: 8 * time.Second, Dial: r.attacker.dial,
		})
	})
	bannedBy(t, r, bot, 25, "smtp-auth-bots")
}

// Item 7: a forged connected line about the bot's own address with a huge
// CONNID (again every 15 attempts), then real failures: banned within
// maxretry.
func itemPoisoning(t *testing.T, r *attackRun) {
	bot := r.fresh()
	smtpBotFailures(t, r, bot, botMax, func(i int) mailclient.Result {
		if (i-1)%15 == 0 {
			r.f.forge(t, r.attacker, bot, "\n", r.f.connected(9_000_000_000+uint64(i), bot, 40000+i))
		}
		return r.attacker.login(bot, mailclient.SMTP, fmt.Sprintf("poison%d@example.com", i), "x")
	})
	bannedBy(t, r, bot, 25, "smtp-auth-bots")
}

// Item 8: one connection after another from a camper keeps a dense stream
// of login-carrying lines (no line feeds) in front's log while a bot makes
// its real failures: the bot is banned within maxretry.
func itemCamping(t *testing.T, r *attackRun) {
	camper, bot := r.fresh(), r.fresh()
	r.textLimited = append(r.textLimited, bot)
	ctx, cancel := context.WithCancel(context.Background())
	var sent atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		addr := net.JoinHostPort(r.attacker.front.String(), "25")
		for i := 0; ctx.Err() == nil; i++ {
			users := []string{fmt.Sprintf("camp%da@example.com", i), fmt.Sprintf("camp%db@example.com", i), fmt.Sprintf("camp%dc@example.com", i)}
			n, _ := mailclient.AuthLoginNoPassword(ctx, addr, camper, users, 5*time.Second, r.attacker.dial)
			sent.Add(int64(n))
		}
	}()
	defer func() { cancel(); wg.Wait() }()
	time.Sleep(200 * time.Millisecond)
	before := sent.Load()
	smtpBotFailures(t, r, bot, botMax, func(i int) mailclient.Result {
		return r.attacker.login(bot, mailclient.SMTP, fmt.Sprintf("camped%d@example.com", i), "x")
	})
	// At least a few login lines around each real failure (a loaded
	// machine slows the camper down as much as the bot).
	if during := sent.Load() - before; during < 3*int64(botMax) {
		t.Fatalf("the camper logged only %d usernames during the bot's %d failures: no dense stream", during, botMax)
	}
	bannedBy(t, r, bot, 25, "smtp-auth-bots")
	cancel()
	wg.Wait()
	t.Logf("camper %s logged %d usernames", camper, sent.Load())
	if w := whyOf(t, r.b, camper); len(w.Bans) > 0 {
		t.Errorf("camper %s, which never failed a login, banned: %+v", camper, w.Bans)
	}
}

// Item 9: a successful login exempts only its own (address, user) pair.
func itemSuccess(t *testing.T, r *attackRun) {
	// An account the attacker owns, then wrong passwords for another user.
	guesser := r.fresh()
	if res := r.attacker.login(guesser, mailclient.IMAPS, "bob@example.com", "bob-password"); res.Outcome != mailclient.Success {
		t.Fatalf("attacker's own login: %+v", res)
	}
	for i := 1; i <= authMax; i++ {
		time.Sleep(internetRTT)
		if res := r.attacker.login(guesser, mailclient.IMAPS, legitUser, fmt.Sprintf("guess-%d", i)); res.Outcome != mailclient.Failure {
			t.Fatalf("%s guess %d/%d for %s: %+v", guesser, i, authMax, legitUser, res)
		}
	}
	bannedBy(t, r, guesser, 993, "auth")

	// After one success, many different users: banned at the ceiling (or
	// sooner by auth).
	sprayer := r.fresh()
	if res := r.attacker.login(sprayer, mailclient.IMAPS, "bob@example.com", "bob-password"); res.Outcome != mailclient.Success {
		t.Fatalf("sprayer's own login: %+v", res)
	}
	for i := 1; i <= ceilingMax; i++ {
		time.Sleep(internetRTT)
		res := r.attacker.login(sprayer, mailclient.IMAPS, fmt.Sprintf("user%d@example.com", i), "x")
		if res.Outcome == mailclient.Timeout && i > authMax {
			break // banned
		}
		if res.Outcome != mailclient.Failure {
			t.Fatalf("%s user %d/%d: %+v", sprayer, i, ceilingMax, res)
		}
	}
	bannedBy(t, r, sprayer, 993, "auth", "auth-ceiling")

	// The legitimate client (logged in a moment ago) retries a stale
	// password from an old device: its own pair stays exempt.
	for i := 0; i < 5; i++ {
		time.Sleep(internetRTT)
		if res := r.legit.login(r.legit.addrs[0], mailclient.IMAPS, legitUser, "alice-old-password"); res.Outcome != mailclient.Failure {
			t.Fatalf("stale password %d: %+v", i, res)
		}
	}
	settle(t, r.s, r.b, "front", "admin")
	w := whyOf(t, r.b, r.legit.addrs[0])
	if len(w.Bans) > 0 || windowCount(w, "auth") > 0 || windowCount(w, "auth-ceiling") > 0 {
		t.Errorf("legitimate client's stale-password retries counted: %+v", w)
	}
}

// Item 2: eight addresses of one /24 framed like item 1, together far
// above the network jail's maxretry: no ban of the /24, the /24's count
// unchanged, no framed address counted.
func itemNetwork(t *testing.T, r *attackRun) {
	var victims []netip.Addr
	for i := range netAddrs {
		victims = append(victims, netip.MustParseAddr(fmt.Sprintf("198.51.100.%d", 200+i)))
	}
	before, _ := networkCount(t, r.b, victims[0], "network")
	per := 2*netMax/netAddrs + 1
	carriers := []netip.Addr{r.fresh(), r.fresh()}
	var wg sync.WaitGroup
	for k, c := range carriers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, v := range victims {
				if i%len(carriers) != k {
					continue
				}
				var lines []string
				for range per / 2 {
					id := r.f.id()
					lines = append(lines, r.f.connected(id, v, 40000+int(id%20000)), r.f.failure(id, v))
				}
				for range per - per/2 {
					lines = append(lines, r.f.failure(r.f.id(), v))
				}
				r.f.forge(t, r.attacker, c, "\n", lines...)
			}
		}()
	}
	wg.Wait()
	assertForgedLine(t, r.s, r.f, victims[len(victims)-1], "nginx")
	settle(t, r.s, r.b, "front")
	after, bans := networkCount(t, r.b, victims[0], "network")
	if after != before || len(bans) > 0 {
		t.Errorf("198.51.100.0/24 in the network jail: count %d before the framing, %d after (maxretry %d); network bans %+v", before, after, netMax, bans)
	}
	assertUncounted(t, r.b, victims...)
}

// stop ends the daemon with SIGTERM, as an operator's restart does.
func (b *bansd) stop(t testing.TB) {
	t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM bansd: %v", err)
	}
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		t.Fatal("bansd still running 10s after SIGTERM")
	}
}
