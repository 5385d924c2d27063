package ban

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/prefix"

	"github.com/bansd/bansd/internal/netnstest"
	"github.com/bansd/bansd/jail"
)

// TestNeverBanWired: the manager's last line is the engine's verdict, with
// its one --force rule. An IPv4-mapped spelling of a Docker network is
// refused with or without Force, and says --force would not help; an
// ignoreip added by a reload holds at once, is refused without Force with
// a message that says --force lifts it, and is banned with Force.
func TestNeverBanWired(t *testing.T) {
	ns := netnstest.New(t)
	cfg := testConfig(t)
	e, err := jail.NewEngine(cfg, jail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.SetProtected(jail.Protected{Networks: []netip.Prefix{pfx("172.17.0.0/16")}, Gateways: []netip.Addr{netip.MustParseAddr("172.17.0.1")},
		HostAddrs: []netip.Addr{netip.MustParseAddr("198.51.100.77")}})
	fw := newNFT(t, ns, cfg)
	o := withConfig(t, Options{Firewall: fw, Store: openStore(t, "")}, cfg)
	o.NeverBan = e.NeverBan
	m := startManager(t, o)
	ctx := t.Context()

	cfg2 := testConfig(t)
	cfg2.Engine.IgnoreIP = []netip.Prefix{pfx("203.0.113.64/26")}
	if err := e.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		target string
		force  bool
		want   string // the refusal's text; "" means banned
	}{
		{"::ffff:172.17.0.0/112", false, "172.17.0.0/16 overlaps never-ban rule docker gateway 172.17.0.1 (never banned, not even with --force)"},
		{"::ffff:172.17.0.0/112", true, "172.17.0.0/16 overlaps never-ban rule docker gateway 172.17.0.1 (never banned, not even with --force)"},
		{"198.51.100.77/32", true, "198.51.100.77/32 overlaps never-ban rule host address 198.51.100.77 (never banned, not even with --force)"},
		{"127.0.0.2/32", true, "127.0.0.2/32 is a loopback, unspecified, multicast or link-local address (never banned, not even with --force)"},
		{"203.0.113.70/32", false, "203.0.113.70/32 overlaps never-ban rule ignoreip 203.0.113.64/26 (an allow-list entry: --force bans it anyway)"},
		{"203.0.113.70/32", true, ""},
	} {
		_, err := m.Ban(ctx, Request{Target: pfx(tc.target), Jail: "manual", Duration: time.Hour, Manual: true, Force: tc.force})
		p, _ := prefix.Normalize(pfx(tc.target))
		_, inKernel := kernel(t, fw)[p]
		switch {
		case tc.want == "" && (err != nil || !inKernel):
			t.Errorf("%s force=%v: %v (in kernel: %v); want banned", tc.target, tc.force, err, inKernel)
		case tc.want != "" && (!errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) || inKernel):
			t.Errorf("%s force=%v: %v (in kernel: %v); want refused: %s", tc.target, tc.force, err, inKernel, tc.want)
		}
	}
}
