package ban

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/netnstest"
	"github.com/bansd/bansd/jail"
)

// TestNeverBanWired: the manager's last line is the engine's verdict, so
// an IPv4-mapped spelling of a Docker network is refused without Force,
// and an ignoreip added by a reload holds for forced manual bans too.
func TestNeverBanWired(t *testing.T) {
	ns := netnstest.New(t)
	cfg := testConfig(t)
	e, err := jail.NewEngine(cfg, jail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.SetProtected(jail.Protected{Networks: []netip.Prefix{pfx("172.17.0.0/16")}, Gateways: []netip.Addr{netip.MustParseAddr("172.17.0.1")}})
	o := withConfig(t, Options{Firewall: newNFT(t, ns, cfg), Store: openStore(t, "")}, cfg)
	o.NeverBan = e.NeverBan
	m := startManager(t, o)
	ctx := t.Context()

	mapped := Request{Target: pfx("::ffff:172.17.0.0/112"), Jail: "manual", Duration: time.Hour, Manual: true}
	if b, err := m.Ban(ctx, mapped); !errors.Is(err, ErrRefused) {
		t.Fatalf("mapped Docker network without force: %+v, %v; want ErrRefused", b, err)
	}
	mapped.Force = true
	b, err := m.Ban(ctx, mapped)
	if err != nil || b.Target != pfx("172.17.0.0/16") {
		t.Fatalf("mapped Docker network with force: %+v, %v; want 172.17.0.0/16 banned", b, err)
	}

	target := Request{Target: pfx("203.0.113.70/32"), Jail: "manual", Duration: time.Hour, Manual: true, Force: true}
	cfg2 := testConfig(t)
	cfg2.Engine.IgnoreIP = []netip.Prefix{pfx("203.0.113.64/26")}
	if err := e.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	if b, err := m.Ban(ctx, target); !errors.Is(err, ErrRefused) {
		t.Fatalf("ignoreip added by reload, forced manual ban: %+v, %v; want ErrRefused", b, err)
	}
}
