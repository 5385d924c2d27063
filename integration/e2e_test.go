package integration

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/integration/mailclient"
	"github.com/bansd/bansd/internal/dockertest"
)

// testJails is the config overlay of the end-to-end tests: small
// thresholds so that attacks are short, and no network jails, whose
// /24 counts would join the separate attacks of one test.
const testJails = `
[jails.smtp-auth-bots]
maxretry = 3

[jails.auth]
maxretry = 5

[jails.network]
enabled = false

[jails.network48]
enabled = false
`

// internetRTT paces a client's consecutive connections as a round trip
// on the Internet would.
const internetRTT = 50 * time.Millisecond

// publishedPorts are the ports front publishes in mailu/docker-compose.yml.
var publishedPorts = []int{25, 465, 587, 110, 995, 143, 993, 4190}

// Scenario 1: brute force over SMTP AUTH on port 25 and over IMAP LOGIN is
// banned within the configured attempts; the banned addresses then reach
// no published port while a legitimate client keeps logging in; bansctl
// shows the bans with their evidence; unban gives access back.
func TestBruteForceBanned(t *testing.T) {
	for _, version := range []string{"2024.06", "2.0"} {
		t.Run(version, func(t *testing.T) { bruteForceBanned(t, version) })
	}
}

func bruteForceBanned(t *testing.T, version string) {
	e := dockertest.Start(t, dockertest.Options{})
	startStack(t, e, version)
	legit := newLegit(t, e)
	attacker := newAttacker(t, e, 1)
	waitReady(t, legit)
	b := startBansd(t, e, testJails)
	smtpBot, imapBot := attacker.addrs[0], attacker.addrs[1]

	// Port 25: AUTH is never offered there, only bots send it (jail
	// smtp-auth-bots, maxretry 3). Back to back, with nothing between
	// attempts but a probe that the bot is not banned early: every attempt
	// of a fast bot must count.
	for i := 1; i <= 3; i++ {
		if i > 1 {
			if r := attacker.probe(smtpBot, 25, 2*time.Second); r.Outcome != mailclient.Success {
				t.Fatalf("banned after %d of 3 attempts: %+v", i-1, r)
			}
		}
		if r := attacker.login(smtpBot, mailclient.SMTP, fmt.Sprintf("bot%d@example.com", i), "x"); r.Outcome != mailclient.Failure {
			t.Fatalf("port 25 AUTH %d: %+v", i, r)
		}
	}
	waitDropped(t, attacker, smtpBot, 25)

	// IMAP LOGIN against a real user with five different passwords (jail
	// auth, maxretry 5, distinct passwords), in parallel as bots do.
	var wg sync.WaitGroup
	for i := 1; i <= 5; i++ {
		guess := func() {
			// The ban may land first and cut the session: a timeout.
			if r := attacker.login(imapBot, mailclient.IMAP, legitUser, fmt.Sprintf("guess-%d", i)); r.Outcome != mailclient.Failure && r.Outcome != mailclient.Timeout {
				t.Errorf("IMAP guess %d: %+v", i, r)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			guess()
		}()
	}
	wg.Wait()
	waitDropped(t, attacker, imapBot, 143)

	// Both are cut off from every published port.
	assertCutOff(t, attacker, time.Second, smtpBot, imapBot)

	// The legitimate client keeps working on every protocol.
	protos := []mailclient.Proto{mailclient.Submission, mailclient.SMTPS, mailclient.IMAP, mailclient.IMAPS, mailclient.POP3, mailclient.POP3S}
	if version != "2.0" { // 2.0's front has no ManageSieve
		protos = append(protos, mailclient.Sieve)
	}
	for _, p := range protos {
		if r := legit.login(legit.addrs[0], p, legitUser, legitPass); r.Outcome != mailclient.Success {
			t.Errorf("legitimate %s login: %+v", p, r)
		}
	}
	if r := legit.probe(legit.addrs[0], 25, 2*time.Second); r.Outcome != mailclient.Success {
		t.Errorf("legitimate client on port 25: %+v", r)
	}

	// bansctl list and why.
	var list control.BanList
	out, err := b.ctl("list")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("bansctl --json list: %v: %s", err, out)
	}
	jails := map[netip.Prefix]string{}
	for _, ban := range list.Bans {
		jails[ban.Target] = ban.Jail
	}
	want := map[netip.Prefix]string{netip.PrefixFrom(smtpBot, 32): "smtp-auth-bots", netip.PrefixFrom(imapBot, 32): "auth"}
	for target, jail := range want {
		if jails[target] != jail {
			t.Errorf("bansctl list: %s in jail %q, want %q; list: %s", target, jails[target], jail, out)
		}
	}
	if len(list.Bans) != len(want) {
		t.Errorf("bansctl list: %d bans, want %d: %s", len(list.Bans), len(want), out)
	}
	if text := b.ctlText(t, "list"); !strings.Contains(text, smtpBot.String()+"/32") || !strings.Contains(text, "smtp-auth-bots") {
		t.Errorf("bansctl list (table) lacks the ban:\n%s", text)
	}
	why := whyOf(t, b, smtpBot)
	if len(why.Bans) != 1 {
		t.Fatalf("bansctl why %s: %d bans: %+v", smtpBot, len(why.Bans), why)
	}
	var evidence int
	for _, l := range why.Bans[0].Evidence {
		if strings.Contains(l, `client login failed: "AUTH not supported"`) && strings.Contains(l, "client: "+smtpBot.String()+" ") {
			evidence++
		}
	}
	if evidence != 3 {
		t.Errorf("bansctl why %s: %d nginx lines of evidence, want 3: %q", smtpBot, evidence, why.Bans[0].Evidence)
	}
	// 2024.06: admin's Login attempt lines; 2.0 has none, nginx's count.
	imapEvidence := "Login attempt for: " + legitUser + "/imap/143 from: " + imapBot.String() + "/"
	if version == "2.0" {
		imapEvidence = `client login failed: "Authentication credentials invalid" while in http auth state, client: ` + imapBot.String() + " using starttls, server: 0.0.0.0:143"
	}
	if w := whyOf(t, b, imapBot); len(w.Bans) != 1 || !slices.ContainsFunc(w.Bans[0].Evidence, func(l string) bool {
		return strings.Contains(l, imapEvidence)
	}) {
		t.Errorf("bansctl why %s: want %q in the evidence: %+v", imapBot, imapEvidence, w)
	}
	if text := b.ctlText(t, "why", smtpBot.String()); !strings.Contains(text, "BANNED") || !strings.Contains(text, "AUTH not supported") {
		t.Errorf("bansctl why (text):\n%s", text)
	}
	if w := whyOf(t, b, legit.addrs[0]); len(w.Bans) != 0 {
		t.Errorf("legitimate client banned: %+v", w)
	}

	// unban gives access back, to that address only.
	if _, err := b.ctl("unban", smtpBot.String()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := attacker.probe(smtpBot, 25, time.Second)
		if r.Outcome == mailclient.Success {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("unbanned %s still dropped: %+v", smtpBot, r)
		}
	}
	if r := attacker.login(smtpBot, mailclient.Submission, legitUser, legitPass); r.Outcome != mailclient.Success {
		t.Errorf("unbanned address cannot log in: %+v", r)
	}
	if r := attacker.probe(imapBot, 143, time.Second); r.Outcome != mailclient.Timeout {
		t.Errorf("unban of %s also lifted %s: %+v", smtpBot, imapBot, r)
	}
}

// assertCutOff checks, all probes at once, that each of srcs times out
// on every published port.
func assertCutOff(t testing.TB, p *peer, timeout time.Duration, srcs ...netip.Addr) {
	t.Helper()
	var wg sync.WaitGroup
	for _, src := range srcs {
		for _, port := range publishedPorts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r := p.probe(src, port, timeout); r.Outcome != mailclient.Timeout {
					t.Errorf("banned %s reached port %d: %+v", src, port, r)
				}
			}()
		}
	}
	wg.Wait()
}

// waitDropped waits until src's connects to port time out: the ban is in
// the kernel.
func waitDropped(t testing.TB, p *peer, src netip.Addr, port int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := p.probe(src, port, 500*time.Millisecond)
		if r.Outcome == mailclient.Timeout {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still reaches port %d 10s after the last attempt: %+v", src, port, r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func whyOf(t testing.TB, b *bansd, a netip.Addr) control.Why {
	t.Helper()
	out, err := b.ctl("why", a.String())
	if err != nil {
		t.Fatal(err)
	}
	var w control.Why
	if err := json.Unmarshal([]byte(out), &w); err != nil {
		t.Fatalf("bansctl --json why: %v: %s", err, out)
	}
	return w
}
