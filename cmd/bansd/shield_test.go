package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/internal/netnstest"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/shield"
	"github.com/bansd/bansd/sources/docker"
	"github.com/bansd/bansd/store"
)

var (
	global6 = netip.MustParseAddr("2001:db8:1::1")
	local6  = netip.MustParseAddr("fe80::1")
	ula6    = netip.MustParseAddr("fd00::1")
	host4   = netip.MustParseAddr("198.51.100.1")
)

// risky is what discovery reports for the open relay: docker-proxy seen,
// 25 and 465 on all addresses, an IPv4-only Mailu network.
func risky() docker.MailuInfo {
	return docker.MailuInfo{Project: "mailu", UserlandProxy: "yes", PublishedAll: []uint16{465, 25}, Ports: []uint16{25, 465}}
}

// Facts -> raise or lower: every fact that removes the risk lowers.
func TestShieldPlan(t *testing.T) {
	with := func(f func(*docker.MailuInfo)) docker.MailuInfo {
		i := risky()
		f(&i)
		return i
	}
	hostV6 := []netip.Addr{host4, global6, local6}
	for _, tc := range []struct {
		name   string
		info   docker.MailuInfo
		host   []netip.Addr
		listen map[uint16]bool
		cfgOn  bool
		ctlOff bool
		known  bool
		ports  []uint16
		risk   bool
		off    string
	}{
		{"risk holds", risky(), hostV6, nil, true, false, true, []uint16{25, 465}, true, ""},
		{"proxy unseen counts as on", with(func(i *docker.MailuInfo) { i.UserlandProxy = "unknown" }), hostV6, nil, true, false, true, []uint16{25, 465}, true, ""},
		{"proxy unseen, docker-proxy listens on 25", with(func(i *docker.MailuInfo) { i.UserlandProxy = "unknown" }), hostV6, map[uint16]bool{25: true, 22: true}, true, false, true, []uint16{25, 465}, true, ""},
		{"proxy unseen, nothing listens on the ports", with(func(i *docker.MailuInfo) { i.UserlandProxy = "unknown" }), hostV6, map[uint16]bool{22: true}, true, false, true, nil, false, ""},
		{"proxy seen wins over listeners", risky(), hostV6, map[uint16]bool{}, true, false, true, []uint16{25, 465}, true, ""},
		{"proxy off", with(func(i *docker.MailuInfo) { i.UserlandProxy = "no" }), hostV6, nil, true, false, true, nil, false, ""},
		{"Mailu network has IPv6", with(func(i *docker.MailuInfo) { i.IPv6 = true }), hostV6, nil, true, false, true, nil, false, ""},
		{"ports on specific addresses", with(func(i *docker.MailuInfo) { i.PublishedAll = nil }), hostV6, nil, true, false, true, nil, false, ""},
		{"host without global IPv6", risky(), []netip.Addr{host4, local6, ula6}, nil, true, false, true, nil, false, ""},
		{"config off", risky(), hostV6, nil, false, false, true, nil, true, "config"},
		{"bansctl off", risky(), hostV6, nil, true, true, true, nil, true, "bansctl"},
		{"config off, no risk", with(func(i *docker.MailuInfo) { i.UserlandProxy = "no" }), hostV6, nil, false, false, true, nil, false, "config"},
		{"no Mailu project yet", docker.MailuInfo{UserlandProxy: "yes", PublishedAll: []uint16{25}}, hostV6, nil, true, false, false, nil, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, ok := shieldFacts(tc.info, tc.host, tc.listen)
			if ok != tc.known {
				t.Fatalf("known = %v, want %v", ok, tc.known)
			}
			if !ok {
				return
			}
			p := planShield(f, tc.cfgOn, tc.ctlOff)
			if !slices.Equal(p.ports, tc.ports) || p.risk != tc.risk || p.off != tc.off {
				t.Fatalf("plan = %+v, want ports %v risk %v off %q", p, tc.ports, tc.risk, tc.off)
			}
			if p.risk != strings.Contains(p.why, "OPEN RELAY RISK") {
				t.Errorf("why %q does not match risk %v", p.why, p.risk)
			}
		})
	}
}

// recorder keeps what the shield sent down the daemon's alarm path and
// into the history.
type recorder struct {
	mu     sync.Mutex
	alarms []jail.Alarm
	events []store.Event
}

func (r *recorder) alarm(a jail.Alarm)  { r.mu.Lock(); r.alarms = append(r.alarms, a); r.mu.Unlock() }
func (r *recorder) event(e store.Event) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }

func (r *recorder) kinds() (alarms, events []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.alarms {
		alarms = append(alarms, a.Kind)
	}
	for _, e := range r.events {
		events = append(events, e.Kind+"/"+e.Reason)
	}
	return
}

// shieldInNS opens the shield's table in a new namespace (root: netnstest
// says so when not).
func shieldInNS(t *testing.T) (*netnstest.NS, *shield.Shield) {
	t.Helper()
	ns := netnstest.New(t)
	sh, err := shield.Open(shield.Options{Table: "bansd", NetNS: ns.Fd()})
	if err != nil {
		t.Fatal(err)
	}
	return ns, sh
}

// The daemon's side of the shield on a real kernel table: it follows the
// facts, repairs a flushed ruleset, obeys bansctl and the config, and says
// so through alarms and history.
func TestRelayShieldKernel(t *testing.T) {
	ns, sh := shieldInNS(t)
	ctx := context.Background()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	rec := &recorder{}
	host := func() []netip.Addr { return []netip.Addr{host4, global6} }
	r := newRelayShield(sh, true, log, rec.alarm, rec.event, host, func() map[uint16]bool { return nil })
	set := func() string {
		out, err := ns.Exec("nft", "list", "set", "inet", "bansd", shield.SetName)
		if err != nil {
			return "(no set)"
		}
		return strings.Join(strings.Fields(out), " ")
	}
	up := func(want bool, step string) control.ShieldStatus {
		t.Helper()
		st := r.status(ctx)
		if st.Up != want || st.Problem != "" {
			t.Fatalf("%s: status %+v, want up=%v and no problem; kernel: %s", step, st, want, set())
		}
		return st
	}

	// Before discovery nothing is touched.
	r.update(ctx)
	if out, err := ns.Exec("nft", "list", "tables"); err != nil || strings.Contains(out, "bansd") {
		t.Fatalf("tables before discovery: %q, %v", out, err)
	}

	r.mailu(ctx, risky())
	st := up(true, "risk")
	if !slices.Equal(st.Ports, []uint16{25, 465}) || !strings.Contains(set(), "elements = { 25, 465 }") || st.Fix != configs.RelayFix {
		t.Fatalf("raised: %+v; kernel %s", st, set())
	}

	ns.Run(t, "nft", "flush", "ruleset")
	r.update(ctx) // the reconcile tick
	up(true, "after nft flush ruleset")

	lifted := risky()
	lifted.UserlandProxy = "no"
	r.mailu(ctx, lifted)
	up(false, "userland proxy off")

	r.mailu(ctx, risky())
	up(true, "risk again")
	st = r.set(ctx, false, 0)
	if st.Up || st.Off != "bansctl" || !st.Risk || st.Enabled {
		t.Fatalf("after bansctl shield off: %+v", st)
	}
	r.update(ctx)
	up(false, "reconcile while off")
	st = r.set(ctx, true, 0)
	if !st.Up || !st.Enabled {
		t.Fatalf("after bansctl shield on: %+v", st)
	}
	r.setConfig(ctx, false)
	st = up(false, "config relay_shield = false")
	if st.Off != "config" || !strings.Contains(logs.String(), "relay is open") {
		t.Fatalf("config off: %+v; log:\n%s", st, logs.String())
	}

	alarms, events := rec.kinds()
	wantAlarms := []string{alarmRelayShield, alarmRelayShield, alarmRelayOpen, alarmRelayShield, alarmRelayOpen}
	wantEvents := []string{"shield/lowered", "alarm-cleared/relay-shield", "shield/bansctl", "shield/bansctl"}
	if !slices.Equal(alarms, wantAlarms) || !slices.Equal(events, wantEvents) {
		t.Fatalf("alarms %v, want %v; events %v, want %v", alarms, wantAlarms, events, wantEvents)
	}
	if a := rec.alarms[0]; !strings.Contains(a.Hint, "ports 25,465") || a.Addr.IsValid() {
		t.Errorf("first alarm = %+v", a)
	}
}

// With relay_shield = false from the start the kernel gets no shield at
// all, and the log warns that the relay is open.
func TestRelayShieldConfigOff(t *testing.T) {
	ns, sh := shieldInNS(t)
	ctx := context.Background()
	var logs bytes.Buffer
	rec := &recorder{}
	r := newRelayShield(sh, false, slog.New(slog.NewTextHandler(&logs, nil)), rec.alarm, rec.event,
		func() []netip.Addr { return []netip.Addr{global6} }, func() map[uint16]bool { return nil })
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "relay is open") {
		t.Fatalf("no warning at start:\n%s", logs.String())
	}
	r.mailu(ctx, risky())
	r.update(ctx)
	if out := ns.Run(t, "nft", "list", "ruleset"); strings.Contains(out, shield.ChainName) || strings.Contains(out, shield.SetName) {
		t.Fatalf("kernel holds a shield with relay_shield = false:\n%s", out)
	}
	if st := r.status(ctx); st.Up || st.Off != "config" || !st.Risk {
		t.Fatalf("status = %+v", st)
	}
	if alarms, _ := rec.kinds(); !slices.Equal(alarms, []string{alarmRelayOpen}) {
		t.Fatalf("alarms = %v, want one %s", alarms, alarmRelayOpen)
	}
}

func TestParseListeners(t *testing.T) {
	const tcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0019 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0CEA 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: B80D0120000000000000000001000000:0019 B80D0120000000000000000002000000:D3A4 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   3: 00000000000000000000000000000000:01D1 00000000000000000000000000000000:0000 06 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 100 0 0 10 0
`
	m, err := parseListeners(strings.NewReader(tcp6))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || !m[25] || !m[3306] {
		t.Fatalf("listeners = %v, want 25 and 3306 only (not the established 25 peer, not TIME_WAIT 465)", m)
	}
	if _, err := parseListeners(strings.NewReader("0: 00:ZZZZ 00:0000 0A\n")); err == nil {
		t.Error("a bad port parsed")
	}
	if m := ipv6Listeners(); m == nil {
		t.Error("ipv6Listeners cannot read this namespace's /proc/net/tcp6")
	}
}
