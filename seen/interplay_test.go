package seen

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/bansd/bansd/ban"
	"github.com/bansd/bansd/configs"
)

// TestBesideBan: the ban manager's firewall and the record share table
// inet bansd. Each one's Ensure (ban's flushes its own chain) leaves the
// other's chain, sets and rules alone, a ban still drops, and the record
// still records.
func TestBesideBan(t *testing.T) {
	tp := buildTopo(t)
	cfg, err := configs.Default()
	if err != nil {
		t.Fatal(err)
	}
	fw, err := ban.NewNFT(cfg.Firewall.Table, cfg.Firewall.Priority, ban.WithNetNS(tp.host.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Ensure(ban.DefaultClasses()); err != nil {
		t.Fatal(err)
	}
	r := openRecord(t, tp.host, Options{Table: cfg.Firewall.Table}, portIn)
	listen(t, tp.host, ":8025")
	_, p1 := mustDial(t, tp.client, hostPort(hostC4, portIn))
	waitSeen(t, r, client4, p1, true, 2*time.Second)

	if err := fw.Ensure(ban.DefaultClasses()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(phase string) {
		t.Helper()
		if h, err := fw.Check(); err != nil || !h.OK {
			t.Errorf("%s: ban Check = %+v, %v", phase, h, err)
		}
		if h := mustHealth(t, r); !h.OK() {
			t.Errorf("%s: seen Health = %+v", phase, h)
		}
		if s := mustSeen(t, r, client4, p1); !s.Seen {
			t.Errorf("%s: the record lost an element", phase)
		}
	}
	check("ban Ensure after seen Ensure")
	if err := fw.Add([]ban.Element{{Target: netip.MustParsePrefix(attack4 + "/32"), Timeout: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	check("seen Ensure after a ban")
	if els, err := fw.List(); err != nil || len(els) != 1 {
		t.Errorf("ban List = %v, %v; want the one ban only (our sets are not its)", els, err)
	}

	// The ban drops (its chain at -310 runs before ours), the client records.
	if c, err := dial(tp.attacker, hostPort(hostX4, portIn)); err == nil {
		c.Close()
		t.Error("banned attacker connected")
	}
	if s := mustSeen(t, r, attack4, 0); s.Seen {
		t.Error("a banned (dropped) client was recorded")
	}
	_, p2 := mustDial(t, tp.client, hostPort(hostC4, portIn))
	waitSeen(t, r, client4, p2, true, 2*time.Second)
	st, err := fw.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Counters["v4_32"].Packets == 0 {
		t.Errorf("ban counters = %v, want drops in v4_32", st.Counters)
	}
}
