package main

import (
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/bansd/bansd/ban"
	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/internal/crowdsectest"
	"github.com/bansd/bansd/internal/netnstest"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/store"
)

// TestCrowdSecEngineDecisions runs the daemon's own ban loop (the path of
// every jail decision) against a real ban manager, kernel and LAPI: a
// decision is pushed once, not again when the engine repeats it while the
// ban holds, and a pulled
// decision on a target banned locally leaves the local ban as it is.
func TestCrowdSecEngineDecisions(t *testing.T) {
	lapi := crowdsectest.Start(t)
	ns := netnstest.New(t)
	cfg, err := configs.Default()
	if err != nil {
		t.Fatal(err)
	}
	cfg.CrowdSec = configs.CrowdSec{URL: lapi.URL, MachineID: lapi.MachineID, Password: configs.Secret(lapi.Password),
		BouncerKey: configs.Secret(lapi.BouncerKey), PullInterval: time.Second, Push: true, Pull: true, PushManual: true}
	log := slog.New(slog.DiscardHandler)
	d, err := newDaemon(cfg, "", log, new(slog.LevelVar))
	if err != nil {
		t.Fatal(err)
	}
	if d.db, err = store.Open(filepath.Join(t.TempDir(), "bansd.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.db.Close() })
	nft, err := ban.NewNFT(cfg.Firewall.Table, cfg.Firewall.Priority, ban.WithNetNS(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if d.mgr, err = ban.NewManager(banOptions(cfg, nft, d.db, d.engine.NeverBan, log)); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- d.mgr.Run(ctx) }()
	t.Cleanup(func() { <-mgrDone })
	stop, err := d.startCrowdSec(ctx, cfg, lapi.HTTPClient())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)

	target := netip.MustParsePrefix("203.0.113.40/32")
	dec := jail.Decision{Target: target, Jail: "auth", Duration: time.Hour, Reason: "10 failures", Time: time.Now(), Events: 10}
	// The second decision (escalated to 2 min) is shorter than the ban in
	// force: the manager leaves the ban alone, and nothing new is pushed.
	again := dec
	again.Duration = time.Minute
	for _, dd := range []jail.Decision{dec, again} {
		d.ban(ctx, []ban.Request{requestFrom(dd)}, []jail.Decision{dd})
	}
	waitFor(t, 15*time.Second, func() bool { return d.crowdsecStatus().Pushed > 0 }, "push")
	time.Sleep(1500 * time.Millisecond)
	var n int
	for _, a := range lapi.Alerts(t) {
		for _, dd := range a.Decisions {
			if dd.Value == "203.0.113.40" {
				n++
				if a.Scenario != "bansd/auth" || dd.Origin != "bansd" || dd.Scope != "Ip" {
					t.Errorf("pushed %+v in %+v", dd, a)
				}
			}
		}
	}
	if n != 1 {
		t.Errorf("%d decisions in LAPI for the target, want 1", n)
	}

	// cscli bans the same address: the local ban (evidence, escalation) stays.
	lapi.Cscli(t, "decisions", "add", "--ip", "203.0.113.40", "--duration", "5h")
	waitFor(t, 15*time.Second, func() bool { return d.crowdsecStatus().Applied > 0 }, "pull")
	if b, ok := d.mgr.Lookup(target); !ok || b.Pulled || b.Jail != "auth" || origin(b) != originLocal {
		t.Errorf("ban after the pull = %+v, %v", b, ok)
	}
	if h, _ := d.db.History(target); h.Offences != 1 {
		t.Errorf("offences = %d, want 1", h.Offences)
	}
}

func waitFor(t testing.TB, within time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
