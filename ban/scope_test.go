package ban

import (
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/netnstest"
)

// The scope on the data plane: Docker's `-p 8080:80` emulated as in
// TestDataPlane, a host listener on :2222 standing for SSH and one on :2223
// listed in firewall.scope_ports. A "mail" ban stops the published port
// (learned, as from Docker) and the listed port and leaves SSH alone; an
// "all" ban stops all three. The other client reaches everything.
func TestScopeDataPlane(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		scope   string
		blocked map[string]bool
	}{
		{"mail", map[string]bool{"published v4": true, "published v6": true, "listed v4": true, "listed v6": true}},
		{"all", map[string]bool{"published v4": true, "published v6": true, "listed v4": true, "listed v6": true,
			"ssh v4": true, "ssh v6": true}},
	} {
		t.Run(tc.scope, func(t *testing.T) {
			tp := buildTopology(t)
			dockerPublish(t, tp.host, "iptables-nft")
			serveEcho(t, tp.ctr, ":80")
			serveEcho(t, tp.host, ":2222")
			serveEcho(t, tp.host, ":2223")
			targets := func(v4, v6 string) map[string]string {
				return map[string]string{
					"published v4": net.JoinHostPort(v4, "8080"), "published v6": net.JoinHostPort(v6, "8080"),
					"ssh v4": net.JoinHostPort(v4, "2222"), "ssh v6": net.JoinHostPort(v6, "2222"),
					"listed v4": net.JoinHostPort(v4, "2223"), "listed v6": net.JoinHostPort(v6, "2223"),
				}
			}
			probe := func(ns *netnstest.NS, ts map[string]string) map[string]error {
				var mu sync.Mutex
				res := map[string]error{}
				var wg sync.WaitGroup
				for name, addr := range ts {
					wg.Go(func() {
						err := roundTrip(ns, addr)
						mu.Lock()
						res[name] = err
						mu.Unlock()
					})
				}
				wg.Wait()
				return res
			}
			expect := func(phase, who string, got map[string]error, blocked map[string]bool) {
				t.Helper()
				for name, err := range got {
					switch {
					case blocked[name] && err == nil:
						t.Errorf("%s: %s → %s connected, want blocked", phase, who, name)
					case !blocked[name] && err != nil:
						t.Errorf("%s: %s → %s failed: %v", phase, who, name, err)
					}
				}
			}
			fromBanned, fromOK := targets(hostAV4, hostAV6), targets(hostBV4, hostBV6)
			for _, ns := range []*netnstest.NS{tp.banned, tp.ok} {
				for range 2 { // warm-up, as in TestDataPlane
					_ = roundTrip(ns, net.JoinHostPort(hostAV6, "8080"))
					_ = roundTrip(ns, net.JoinHostPort(hostBV6, "8080"))
				}
			}
			expect("before any ban", "banned client", probe(tp.banned, fromBanned), nil)

			cfg := testConfig(t)
			cfg.Firewall.Scope = tc.scope
			cfg.Firewall.ScopePorts = []uint16{2223}
			fw := newNFT(t, tp.host, cfg)
			// What Docker reports for front's `-p 8080:80`: host and container port.
			if err := fw.SetMailPorts([]uint16{8080, 80}); err != nil {
				t.Fatal(err)
			}
			m := startManager(t, withConfig(t, Options{Firewall: fw, Store: openStore(t, "")}, cfg))
			ctx := t.Context()
			for _, target := range []string{bannedV4 + "/32", "2001:db8:a::/64"} {
				if _, err := m.Ban(ctx, Request{Target: pfx(target), Jail: "auth", Duration: time.Hour}); err != nil {
					t.Fatal(err)
				}
			}
			expect("ban", "banned client", probe(tp.banned, fromBanned), tc.blocked)
			expect("ban", "other client", probe(tp.ok, fromOK), nil)

			out := tp.host.Run(t, "nft", "list", "table", "inet", "bansd")
			has := strings.Contains(out, "tcp dport @"+ScopeSetName)
			if has != (tc.scope == "mail") {
				t.Errorf("scope %s: rules match @%s = %v:\n%s", tc.scope, ScopeSetName, has, out)
			}
			if tc.scope == "mail" {
				if got, want := fw.MailPorts(), []uint16{80, 2223, 8080}; !slices.Equal(got, want) {
					t.Errorf("MailPorts() = %v, want %v", got, want)
				}
			}
			if h, err := fw.Check(); err != nil || !h.OK {
				t.Errorf("Check after bans = %+v, %v", h, err)
			}
		})
	}
}

// A wiped table comes back with its port set, filled with the ports known
// now; a port set with the wrong content is rewritten; switching a table
// from "mail" to "all" removes the set and the port match.
func TestScopeReconcile(t *testing.T) {
	requireRoot(t)
	ns := netnstest.New(t)
	cfg := testConfig(t)
	cfg.Firewall.Reconcile = time.Second
	cfg.Firewall.Scope = "mail"
	cfg.Firewall.ScopePorts = []uint16{2223}
	fw := newNFT(t, ns, cfg)
	m := startManager(t, withConfig(t, Options{Firewall: fw, Store: openStore(t, "")}, cfg))
	if _, err := m.Ban(t.Context(), Request{Target: pfx("192.0.2.50/32"), Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	setHolds := func(want string) func() bool {
		return func() bool {
			out, err := ns.Exec("nft", "list", "set", "inet", "bansd", ScopeSetName)
			// nft wraps long element lists.
			return err == nil && strings.Contains(strings.Join(strings.Fields(out), " "), "elements = { "+want+" }")
		}
	}
	// Before Docker reports, the standard Mailu ports stand in.
	waitFor(t, 5*time.Second, "the fallback ports", setHolds("25, 80, 110, 143, 443, 465, 587, 993, 995, 2223, 4190"))
	if err := fw.SetMailPorts([]uint16{25, 8443}); err != nil {
		t.Fatal(err)
	}
	if !setHolds("25, 2223, 8443")() {
		t.Fatal("SetMailPorts did not rewrite the set at once")
	}

	for _, wipe := range []struct {
		name string
		do   func()
	}{
		{"nft flush ruleset", func() { ns.Run(t, "nft", "flush", "ruleset") }},
		{"nft flush set", func() { ns.Run(t, "nft", "flush", "set", "inet", "bansd", ScopeSetName) }},
		{"nft add element", func() { ns.Run(t, "nft", "add", "element", "inet", "bansd", ScopeSetName, "{ 22 }") }},
		{"nft flush chain", func() { ns.Run(t, "nft", "flush", "chain", "inet", "bansd", "prerouting") }},
	} {
		wipe.do()
		waitFor(t, 5*time.Second, "the set after "+wipe.name, setHolds("25, 2223, 8443"))
		waitFor(t, 5*time.Second, "the ban after "+wipe.name, func() bool {
			_, ok := kernel(t, fw)[pfx("192.0.2.50/32")]
			return ok
		})
		waitFor(t, 5*time.Second, "a healthy table after "+wipe.name, func() bool {
			h, err := fw.Check()
			return err == nil && h.OK
		})
		if out := ns.Run(t, "nft", "list", "chain", "inet", "bansd", "prerouting"); strings.Count(out, "@"+ScopeSetName) != len(DefaultClasses()) {
			t.Fatalf("after %s, not every drop rule matches the port set:\n%s", wipe.name, out)
		}
	}

}

// Switching a table from "mail" to "all" removes the set and the port
// match, and Check of a mail table under "all" reports it.
func TestScopeSwitch(t *testing.T) {
	requireRoot(t)
	ns := netnstest.New(t)
	mail := testConfig(t)
	mail.Firewall.Scope = "mail"
	if err := newNFT(t, ns, mail).Ensure(DefaultClasses()); err != nil {
		t.Fatal(err)
	}
	fwAll := newNFT(t, ns, testConfig(t))
	if h, err := fwAll.Check(); err != nil || h.OK {
		t.Fatalf("Check of a mail table under scope all = %+v, %v; want a problem", h, err)
	}
	if err := fwAll.Ensure(DefaultClasses()); err != nil {
		t.Fatal(err)
	}
	out := ns.Run(t, "nft", "list", "table", "inet", "bansd")
	if strings.Contains(out, ScopeSetName) || strings.Contains(out, "dport") {
		t.Fatalf("scope all left the port match:\n%s", out)
	}
	if h, err := fwAll.Check(); err != nil || !h.OK {
		t.Fatalf("Check under scope all = %+v, %v", h, err)
	}
	// And back: the mail table is whole again.
	fwMail := newNFT(t, ns, mail)
	if err := fwMail.Ensure(DefaultClasses()); err != nil {
		t.Fatal(err)
	}
	if h, err := fwMail.Check(); err != nil || !h.OK {
		t.Fatalf("Check under scope mail = %+v, %v", h, err)
	}
}

func TestNewNFTRejectsUnknownScope(t *testing.T) {
	if _, err := NewNFT("bansd", -310, WithScope("ssh", nil)); err == nil || !strings.Contains(err.Error(), "scope") {
		t.Fatalf("NewNFT(scope ssh) = %v, want a scope error", err)
	}
}
