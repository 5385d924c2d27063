package main

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/notify"
	"github.com/bansd/bansd/store"
)

func TestNotifyEvent(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC)
	a := netip.MustParsePrefix("203.0.113.7/32")
	tests := []struct {
		in         store.Event
		kind       notify.Kind
		reason     string
		textPrefix string
		skip       bool
	}{
		{in: store.Event{Kind: store.EventBan, Target: a, Jail: "auth", Reason: "10 failures", UID: store.NoUID}, kind: notify.KindBan, reason: "10 failures"},
		{in: store.Event{Kind: store.EventRefresh, Target: a, Jail: "auth", Reason: "again", Level: 1, UID: store.NoUID}, kind: notify.KindBan, reason: "refresh: again"},
		{in: store.Event{Kind: store.EventManual, Target: a, Jail: "manual", Reason: "manual ban", UID: 1000}, kind: notify.KindBan, reason: "manual: manual ban (uid 1000)"},
		{in: store.Event{Kind: store.EventImport, Target: a, Jail: "fail2ban", Reason: "f2b", UID: 0}, kind: notify.KindBan, reason: "import: f2b (uid 0)"},
		{in: store.Event{Kind: store.EventUnban, Target: a, UID: 0}, kind: notify.KindUnban, reason: "by uid 0"},
		{in: store.Event{Kind: store.EventExpire, Target: a, UID: store.NoUID}, skip: true},
		{in: store.Event{Kind: store.EventAlarm, Reason: "gateway-client", Detail: "seen 3 times", Evidence: []string{"the line"}, UID: store.NoUID},
			kind: notify.KindAlarm, reason: "gateway-client", textPrefix: "seen 3 times\n\nWhat to do: Mailu sees a Docker gateway"},
		{in: store.Event{Kind: store.EventAlarm, Reason: "something-new", UID: store.NoUID}, kind: notify.KindAlarm, reason: "something-new", textPrefix: "What to do: a never-ban address"},
		{in: store.Event{Kind: store.EventCleared, Reason: alarmFirewallLost, Detail: "repaired", UID: store.NoUID}, kind: notify.KindAlarmCleared, reason: alarmFirewallLost, textPrefix: "repaired"},
		{in: store.Event{Kind: store.EventStart, Detail: "version 1", UID: store.NoUID}, kind: notify.KindDaemon, reason: "start", textPrefix: "version 1"},
		{in: store.Event{Kind: store.EventReload, UID: 0}, kind: notify.KindDaemon, reason: "reload (uid 0)"},
	}
	for _, tt := range tests {
		tt.in.Time = t0
		got, ok := notifyEvent(tt.in)
		if ok == tt.skip {
			t.Errorf("%s: handed on %v, want %v", tt.in.Kind, ok, !tt.skip)
			continue
		}
		if tt.skip {
			continue
		}
		if got.Kind != tt.kind || got.Reason != tt.reason || !strings.HasPrefix(got.Text, tt.textPrefix) || !got.Time.Equal(t0) || got.Target != tt.in.Target {
			t.Errorf("%s: got %+v, want kind %s reason %q text %q...", tt.in.Kind, got, tt.kind, tt.reason, tt.textPrefix)
		}
	}
	if got, _ := notifyEvent(store.Event{Kind: store.EventAlarm, Reason: "gateway-client", Evidence: []string{"the line"}}); !strings.Contains(got.Text, "Log line: the line") {
		t.Errorf("alarm text lacks its line:\n%s", got.Text)
	}
}

// testDaemon is a daemon with a real store and no pipeline, for the
// alarm rules.
func testDaemon(t *testing.T) *daemon {
	t.Helper()
	cfg, err := configs.Default()
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDaemon(cfg, "", slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)), new(slog.LevelVar))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(t.TempDir(), "bansd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d.db = db
	return d
}

// alarmLog is the alarm history so far, as "kind:reason" words.
func alarmLog(t *testing.T, d *daemon) string {
	t.Helper()
	evs, err := d.db.Events(store.EventFilter{Kinds: []string{store.EventAlarm, store.EventCleared}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Kind+":"+e.Reason)
	}
	return strings.Join(out, " ")
}

func TestFirewallAlarm(t *testing.T) {
	d := testDaemon(t)
	boom := errors.New("netlink: operation not permitted")
	steps := []struct {
		repaired []string
		err      error
		want     string // the history after the step
	}{
		{nil, nil, ""},
		{[]string{"table inet bansd missing"}, nil, "alarm:firewall-table-lost alarm-cleared:firewall-table-lost"},
		{nil, boom, "alarm:firewall-table-lost alarm-cleared:firewall-table-lost alarm:firewall-table-lost"},
		{nil, boom, "alarm:firewall-table-lost alarm-cleared:firewall-table-lost alarm:firewall-table-lost"}, // still failing: once
		{nil, nil, "alarm:firewall-table-lost alarm-cleared:firewall-table-lost alarm:firewall-table-lost alarm-cleared:firewall-table-lost"},
		{nil, nil, "alarm:firewall-table-lost alarm-cleared:firewall-table-lost alarm:firewall-table-lost alarm-cleared:firewall-table-lost"},
	}
	for i, s := range steps {
		d.onReconcile(s.repaired, s.err)
		if got := alarmLog(t, d); got != s.want {
			t.Fatalf("step %d: history %q, want %q", i, got, s.want)
		}
	}
}

func TestDockerAlarm(t *testing.T) {
	d := testDaemon(t)
	t0 := time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC)
	steps := []struct {
		at   time.Duration
		down bool
		want string
	}{
		{0, false, ""},
		{time.Minute, true, ""},
		{5 * time.Minute, true, ""}, // down for 4m
		{6 * time.Minute, true, "alarm:docker-unreachable"},
		{7 * time.Minute, true, "alarm:docker-unreachable"},
		{8 * time.Minute, false, "alarm:docker-unreachable alarm-cleared:docker-unreachable"},
		{9 * time.Minute, true, "alarm:docker-unreachable alarm-cleared:docker-unreachable"}, // a blip starts anew
		{10 * time.Minute, false, "alarm:docker-unreachable alarm-cleared:docker-unreachable"},
	}
	for _, s := range steps {
		d.dockerAlarm(t0.Add(s.at), s.down, "dockerd at unix:///run/docker.sock", "connection refused")
		if got := alarmLog(t, d); got != s.want {
			t.Fatalf("at %s (down %v): history %q, want %q", s.at, s.down, got, s.want)
		}
	}
	if l := d.alarms.list(); len(l) != 1 || l[0].Kind != alarmDockerDown || !strings.Contains(l[0].Fix, "has not answered since 2026-12-01T21:01:00Z") {
		t.Errorf("status alarms %+v", l)
	}
}

// TestGatewayAlarmClears: a gateway-client alarm not heard of again for
// gatewayQuiet is cleared (history, channels) and leaves status; one heard
// again meanwhile stays.
func TestGatewayAlarmClears(t *testing.T) {
	d := testDaemon(t)
	t0 := time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC)
	gw1, gw2 := netip.MustParseAddr("192.168.203.1"), netip.MustParseAddr("172.17.0.1")
	// Log times lag an hour behind (a backlog): what counts is when bansd heard it.
	raise := func(a netip.Addr, at time.Duration) {
		d.alarms.add(jail.Alarm{Kind: jail.AlarmGatewayClient, Addr: a, Time: t0.Add(at - time.Hour), Count: 1}, t0.Add(at))
	}
	raise(gw1, 0)
	raise(gw2, 0)
	steps := []struct {
		at     time.Duration
		reheat netip.Addr
		want   string
		left   int
	}{
		{30 * time.Minute, gw2, "", 2},
		{59 * time.Minute, netip.Addr{}, "", 2},
		{61 * time.Minute, netip.Addr{}, "alarm-cleared:gateway-client", 1},
		{89 * time.Minute, netip.Addr{}, "alarm-cleared:gateway-client", 1},
		{91 * time.Minute, netip.Addr{}, "alarm-cleared:gateway-client alarm-cleared:gateway-client", 0},
	}
	for _, s := range steps {
		if s.reheat.IsValid() {
			raise(s.reheat, s.at)
		}
		d.clearQuietGateways(t0.Add(s.at))
		if got := alarmLog(t, d); got != s.want {
			t.Fatalf("at %s: history %q, want %q", s.at, got, s.want)
		}
		if l := d.alarms.list(); len(l) != s.left {
			t.Fatalf("at %s: status alarms %+v, want %d", s.at, l, s.left)
		}
	}
}
