package ban

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/netnstest"
	"github.com/bansd/bansd/store"
)

// TestEvidenceKeptInStore: the index holds no evidence, and the bans the
// manager writes from it (the pieces of a ban split around an allow entry,
// another jail's ban a list extends) keep the stored ban's evidence.
func TestEvidenceKeptInStore(t *testing.T) {
	requireRoot(t)
	ns := netnstest.New(t)
	cfg := testConfig(t)
	db := openStore(t, "")
	m := startManager(t, withConfig(t, Options{Firewall: ensuredNFT(t, ns, cfg), Store: db}, cfg))
	ctx := t.Context()
	lines := []string{"line one", "line two"}
	wide, single := pfx("198.51.100.0/24"), pfx("203.0.113.9/32")
	for _, p := range []netip.Prefix{wide, single} {
		if _, err := m.Ban(ctx, Request{Target: p, Jail: "auth", Reason: "test", Duration: time.Hour, Evidence: lines}); err != nil {
			t.Fatal(err)
		}
	}
	if b, ok := m.Lookup(single); !ok || b.Evidence != nil {
		t.Errorf("Lookup = %+v, %v; want the ban without evidence", b, ok)
	}
	stored := func(p netip.Prefix) store.Ban {
		t.Helper()
		b, ok, err := db.GetBan(p)
		if err != nil || !ok {
			t.Fatalf("GetBan(%s) = %v, %v", p, ok, err)
		}
		return b
	}

	lifts, err := m.Allow(ctx, store.Allow{Target: pfx("198.51.100.7/32")})
	if err != nil || len(lifts) != 1 || len(lifts[0].Split) != 8 {
		t.Fatalf("Allow = %+v, %v", lifts, err)
	}
	for _, p := range lifts[0].Split {
		if b := stored(p); !reflect.DeepEqual(b.Evidence, lines) || b.Jail != "auth" {
			t.Errorf("piece %s stored as %+v, want the wide ban's evidence %q", p, b, lines)
		}
	}

	const list = "blocklist:drop"
	errs, _, err := m.ReplaceJail(ctx, list, listRequests(list, 24*time.Hour, "203.0.113.9"), nil, nil)
	if err != nil || errs[0] != nil {
		t.Fatalf("ReplaceJail = %v, %v", errs, err)
	}
	if b := stored(single); b.Jail != "auth" || b.Until.Sub(b.Since) < 23*time.Hour || !reflect.DeepEqual(b.Evidence, lines) {
		t.Errorf("extended ban stored as %+v, want auth's ban, a day long, its evidence %q", b, lines)
	}
}
