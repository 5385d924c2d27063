package ban

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/netnstest"
	"github.com/bansd/bansd/store"
)

// burstChild bans addresses ten at a time until it is killed, saying so
// after the first batches.
func burstChild(spec string) error {
	m, err := childManager(spec)
	if err != nil {
		return err
	}
	<-m.Ready()
	for i := 0; ; i += 10 {
		rs := make([]Request, 10)
		for k := range rs {
			rs[k] = Request{Target: v4(i + k), Jail: "auth", Duration: time.Hour}
		}
		if i < 200 {
			// The first 200 are committed before the parent is told, so
			// that the kill always finds at least those, however slow
			// the machine.
			if _, err := m.BanMany(context.Background(), rs); err != nil {
				return err
			}
			continue
		}
		if i == 200 {
			fmt.Println("bursting")
		}
		// Concurrent callers, so that batches coalesce as in the daemon.
		go m.BanMany(context.Background(), rs)
		time.Sleep(100 * time.Microsecond)
	}
}

// TestHistorySurvivesKill: a bansd killed in the middle of a ban burst
// leaves, after restart, exactly one ban event for each ban in the kernel.
func TestHistorySurvivesKill(t *testing.T) {
	requireRoot(t)
	ns := netnstest.New(t)
	storePath := filepath.Join(t.TempDir(), "state", "bansd.db")
	killChild(t, "BANSD_BAN_BURST", storePath, ns, "bursting", 300*time.Millisecond)
	cfg := testConfig(t)
	fw := newNFT(t, ns, cfg)
	db := openStore(t, storePath)
	m := startManager(t, withConfig(t, Options{Firewall: fw, Store: db}, cfg))
	k := kernel(t, fw)
	evs, err := db.Events(store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	count := map[netip.Prefix]int{}
	for _, e := range evs {
		if e.Kind != store.EventBan || e.Jail != "auth" || e.Duration != time.Hour {
			t.Fatalf("unexpected event %+v", e)
		}
		count[e.Target]++
	}
	t.Logf("killed with %d bans in the kernel after restart, %d events", len(k), len(evs))
	if len(k) < 200 || len(k) != len(m.Bans()) {
		t.Fatalf("%d bans in the kernel, %d in the index; want the same, at least 200", len(k), len(m.Bans()))
	}
	for p := range k {
		if count[p] != 1 {
			t.Errorf("%s in the kernel has %d ban events, want 1", p, count[p])
		}
	}
	if len(count) != len(k) || len(evs) != len(k) {
		t.Errorf("%d events for %d targets, %d bans in the kernel", len(evs), len(count), len(k))
	}
}

// TestHistoryKinds: each action of the manager leaves its event.
func TestHistoryKinds(t *testing.T) {
	ns := netnstest.New(t)
	cfg := testConfig(t)
	cfg.Firewall.Reconcile = time.Second
	fw := newNFT(t, ns, cfg)
	db := openStore(t, "")
	m := startManager(t, withConfig(t, Options{Firewall: fw, Store: db}, cfg))
	ctx := t.Context()
	a, b, c, d := pfx("192.0.2.40/32"), pfx("198.51.100.0/24"), pfx("2001:db8:40::/64"), pfx("203.0.113.41/32")
	steps := []struct {
		name string
		do   func() error
	}{
		{"ban", func() error {
			_, err := m.Ban(ctx, Request{Target: a, Jail: "smtp", Reason: "auth failed", Duration: time.Hour, Evidence: []string{"line"}})
			return err
		}},
		{"refresh", func() error {
			_, err := m.Ban(ctx, Request{Target: a, Jail: "smtp", Reason: "again", Duration: 2 * time.Hour})
			return err
		}},
		{"manual", func() error {
			_, err := m.Ban(WithCaller(ctx, 1000), Request{Target: b, Jail: "manual", Duration: time.Hour, Manual: true})
			return err
		}},
		{"import", func() error {
			_, err := m.BanMany(WithCaller(ctx, 0), []Request{{Target: c, Jail: "fail2ban", Duration: time.Hour, Manual: true}})
			return err
		}},
		{"unban", func() error {
			_, err := m.Unban(WithCaller(ctx, 1000), []netip.Prefix{b, pfx("192.0.2.99/32")})
			return err
		}},
		{"each", func() error {
			// The engine's path: no caller, so no uid.
			_, err := m.BanEach(ctx, []Request{{Target: pfx("192.0.2.42/32"), Jail: "auth", Duration: time.Hour}})
			return err
		}},
		{"short", func() error {
			_, err := m.Ban(ctx, Request{Target: d, Jail: "web", Duration: 2 * time.Second})
			return err
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	waitFor(t, 8*time.Second, "the expiry event", func() bool {
		evs, err := db.Events(store.EventFilter{Kinds: []string{store.EventExpire}})
		return err == nil && len(evs) == 1
	})
	evs, err := db.Events(store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ban 192.0.2.40/32 smtp 1h0m0s uid=-1",
		"refresh 192.0.2.40/32 smtp 2h0m0s uid=-1", // the same episode: level 0, its own base
		"manual 198.51.100.0/24 manual 1h0m0s uid=1000",
		"import 2001:db8:40::/64 fail2ban 1h0m0s uid=0",
		"unban 198.51.100.0/24 manual 0s uid=1000",
		"ban 192.0.2.42/32 auth 1h0m0s uid=-1",
		"ban 203.0.113.41/32 web 2s uid=-1",
		"expire 203.0.113.41/32 web 2s uid=-1",
	}
	var got []string
	for _, e := range evs {
		got = append(got, fmt.Sprintf("%s %s %s %s uid=%d", e.Kind, e.Target, e.Jail, e.Duration, e.UID))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if evs[0].Reason != "auth failed" || len(evs[0].Evidence) != 1 {
		t.Errorf("ban event lost reason or evidence: %+v", evs[0])
	}
}
