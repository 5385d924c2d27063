package main

import (
	"encoding/json"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/bansd/bansd/control"
)

// TestUnbanCovering: unbanning an address inside a banned network, through
// the real daemon and kernel, names the covering ban and exits 1 while the
// network stays in the kernel; --covering lifts it and says so.
func TestUnbanCovering(t *testing.T) {
	in := start(t)
	in.mustCtl(t, 0, "ban", "--for", "1h", "192.0.2.64/28", "192.0.2.70")

	out := in.mustCtl(t, 1, "unban", "192.0.2.65")
	if !strings.Contains(out, "192.0.2.64/28") || !strings.Contains(out, "--covering") {
		t.Errorf("unban of a covered address does not name the covering ban:\n%s", out)
	}
	if k := in.kernel(t, "v4_28"); !strings.Contains(k, "192.0.2.64") {
		t.Fatalf("the covering ban left the kernel without --covering:\n%s", k)
	}
	// An address with a ban of its own inside the network: its own ban is
	// lifted, and the answer still says it is dropped.
	outJSON, _, code := in.ctl(t, "--json", "unban", "192.0.2.70")
	var res control.UnbanResult
	if err := json.Unmarshal([]byte(outJSON), &res); err != nil || code != 1 || res.Unbanned != 1 || len(res.Covering) != 1 ||
		res.Covering[0].Target.String() != "192.0.2.64/28" || res.CoveringLifted {
		t.Errorf("unban --json of a banned, covered address: exit %d, %+v, %v\n%s", code, res, err, outJSON)
	}
	if k := in.kernel(t, "v4_32"); strings.Contains(k, "192.0.2.70") {
		t.Errorf("the address's own ban is still in the kernel:\n%s", k)
	}

	out = in.mustCtl(t, 0, "unban", "--covering", "192.0.2.65")
	if !strings.Contains(out, "lifted covering ban 192.0.2.64/28") {
		t.Errorf("unban --covering does not say what it lifted:\n%s", out)
	}
	if k := in.kernel(t, "v4_28"); strings.Contains(k, "192.0.2.64") {
		t.Errorf("unban --covering left the network in the kernel:\n%s", k)
	}
	if out := in.mustCtl(t, 0, "list"); strings.Contains(out, "192.0.2.64/28") {
		t.Errorf("list after unban --covering:\n%s", out)
	}
}

// TestForceRuleDaemon: the one --force rule through bansctl, the API and
// the kernel, per class of protection, with refusals that name the rule
// and say whether --force would help; wide bans need --yes; a ban without
// --for lasts [ban] manual_bantime.
func TestForceRuleDaemon(t *testing.T) {
	in := newInstance(t, noDocker)
	in.ns.Run(t, "ip", "addr", "add", "198.51.100.77/32", "dev", "lo")
	in.writeConfig(t, `
[ban]
manual_bantime = "2h"
[engine]
ignoreip = ["203.0.113.64/26"]
subnet6 = "fd00:1::/64"
`)
	in.run(t)
	const never, forceable = "not even with --force", "--force bans it anyway"
	for _, tc := range []struct {
		class, target, set, kernelKey string
		refused, forcedRefused        string // the refusal's hint; "" means banned
	}{
		{"loopback", "127.0.0.1", "v4_32", "127.0.0.1", never, never},
		{"host address", "198.51.100.77", "v4_32", "198.51.100.77", never, never},
		{"Mailu SUBNET", "192.168.203.5", "v4_32", "192.168.203.5", never, never},
		{"docker gateway (assumed from SUBNET)", "192.168.203.1", "v4_32", "192.168.203.1", never, never},
		{"Mailu SUBNET6", "fd00:1::5", "v6_128", "fd00:1::5", never, never},
		{"a network holding the host address", "198.51.100.0/24", "v4_24", "198.51.100.0", never, never},
		{"ignoreip", "203.0.113.70", "v4_32", "203.0.113.70", forceable, ""},
	} {
		t.Run(tc.class, func(t *testing.T) {
			out := in.mustCtl(t, 1, "ban", tc.target)
			if !strings.Contains(out, tc.refused) {
				t.Errorf("ban %s: refusal lacks %q:\n%s", tc.target, tc.refused, out)
			}
			if tc.forcedRefused == "" {
				in.mustCtl(t, 0, "ban", "--force", tc.target)
			} else if out := in.mustCtl(t, 1, "ban", "--force", tc.target); !strings.Contains(out, tc.forcedRefused) {
				t.Errorf("ban --force %s: refusal lacks %q:\n%s", tc.target, tc.forcedRefused, out)
			}
			inKernel := strings.Contains(in.ns.Run(t, "nft", "list", "table", "inet", "bansd"), tc.kernelKey)
			if inKernel != (tc.forcedRefused == "") {
				t.Errorf("%s in the kernel: %v, want %v", tc.target, inKernel, tc.forcedRefused == "")
			}
		})
	}
	// The forced ban lasts manual_bantime.
	if k := in.kernel(t, "v4_32"); !regexp.MustCompile(`203\.0\.113\.70 timeout (2h|1h59m59s\d+ms) expires 1h59m`).MatchString(k) {
		t.Errorf("a ban without --for does not last manual_bantime (2h):\n%s", k)
	}

	// Wider than /16 (198.18.0.0/15 is the benchmarking range) needs --yes.
	out := in.mustCtl(t, 1, "ban", "198.18.0.0/15")
	if !strings.Contains(out, "--yes") || !strings.Contains(out, "198.18.0.0/15") {
		t.Errorf("a /15 without --yes:\n%s", out)
	}
	if k := in.ns.Run(t, "nft", "list", "table", "inet", "bansd"); strings.Contains(k, "198.18.0.0") {
		t.Fatalf("a /15 without --yes reached the kernel:\n%s", k)
	}
	in.mustCtl(t, 0, "ban", "--yes", "198.18.0.0/15")
	if k := in.kernel(t, "v4_15"); !strings.Contains(k, "198.18.0.0") {
		t.Errorf("a /15 with --yes is not in the kernel:\n%s", k)
	}
	in.mustCtl(t, 0, "ban", "2001:db8::/32") // not wider than /32: no --yes
}

// TestNeedsYes: the width at which a manual ban needs --yes.
func TestNeedsYes(t *testing.T) {
	for _, tc := range []struct {
		p    string
		want bool
	}{
		{"198.18.0.0/15", true},
		{"198.51.0.0/16", false},
		{"203.0.113.0/24", false},
		{"2001:db8::/31", true},
		{"2001:db8::/32", false},
		{"2001:db8::/48", false},
	} {
		if got := needsYes(netip.MustParsePrefix(tc.p)); got != tc.want {
			t.Errorf("needsYes(%s) = %v, want %v", tc.p, got, tc.want)
		}
	}
}

// TestPermanentBanDaemon: --for permanent through the daemon: a kernel
// element without a timeout, shown as permanent by list, status, why and
// history, still there and still permanent after a bansd restart and
// after one with the kernel table wiped, lifted by unban.
func TestPermanentBanDaemon(t *testing.T) {
	in := start(t)
	in.mustCtl(t, 0, "ban", "--for", "permanent", "--reason", "known abuser", "203.0.113.90")
	check := func(when string) {
		t.Helper()
		k := in.kernel(t, "v4_32")
		if !regexp.MustCompile(`203\.0\.113\.90[,\s}]`).MatchString(k) || strings.Contains(k, "203.0.113.90 timeout") {
			t.Errorf("%s: the element is missing or has a timeout:\n%s", when, k)
		}
		if out := in.mustCtl(t, 0, "list"); !regexp.MustCompile(`203\.0\.113\.90/32 .*permanent`).MatchString(out) {
			t.Errorf("%s: list does not show it permanent:\n%s", when, out)
		}
		if out := in.mustCtl(t, 0, "why", "203.0.113.90"); !strings.Contains(out, "permanent") {
			t.Errorf("%s: why does not show it permanent:\n%s", when, out)
		}
		if out := in.mustCtl(t, 0, "status"); !strings.Contains(out, "Permanent bans (no end, until unban): 1") {
			t.Errorf("%s: status does not count the permanent ban:\n%s", when, out)
		}
		var bans control.BanList
		if err := json.Unmarshal([]byte(in.mustCtl(t, 0, "list", "--json")), &bans); err != nil || len(bans.Bans) != 1 ||
			!bans.Bans[0].Permanent || !bans.Bans[0].Until.IsZero() {
			t.Errorf("%s: list --json = %+v, %v", when, bans, err)
		}
	}
	check("after the ban")
	if out := in.mustCtl(t, 0, "history", "203.0.113.90"); !regexp.MustCompile(`manual\s+203\.0\.113\.90/32\s+manual\s+permanent`).MatchString(out) {
		t.Errorf("history does not show the ban permanent:\n%s", out)
	}
	in.stop(t)
	in.run(t)
	check("after a restart")
	// After a reboot (the kernel's table gone) it comes back from the store.
	in.stop(t)
	in.ns.Run(t, "nft", "flush", "ruleset")
	in.run(t)
	check("after a restart with the table wiped")
	in.mustCtl(t, 0, "unban", "203.0.113.90")
	if k := in.kernel(t, "v4_32"); strings.Contains(k, "203.0.113.90") {
		t.Errorf("unban left the permanent element in the kernel:\n%s", k)
	}
}
