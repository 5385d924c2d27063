package jail

import (
	"net/netip"
	"testing"
)

// TestNeverBanMapped: every spelling of a range gets the same verdict, so
// ::ffff:172.17.0.0/112 is the Docker network 172.17.0.0/16.
func TestNeverBanMapped(t *testing.T) {
	e, _ := newTestEngine(t, `
[engine]
ignoreip = ["192.0.2.0/28"]
`)
	e.SetProtected(Protected{
		Gateways:  []netip.Addr{addr("172.17.0.1")},
		Networks:  []netip.Prefix{pfx("172.17.0.0/16")},
		HostAddrs: []netip.Addr{addr("198.51.100.77")},
	})
	for _, tc := range []struct {
		target string
		rule   string // "" means not protected
	}{
		{"::ffff:172.17.0.0/112", "docker gateway 172.17.0.1"},
		{"172.17.0.0/16", "docker gateway 172.17.0.1"},
		{"::ffff:172.17.9.9/128", "docker network 172.17.0.0/16"},
		{"::ffff:198.51.100.77/128", "host address 198.51.100.77"},
		{"::ffff:192.0.2.0/120", "ignoreip 192.0.2.0/28"},
		{"::ffff:0:0/95", "invalid prefix: ::ffff:0.0.0.0/95: IPv4-mapped with a prefix shorter than /96"},
		{"::ffff:203.0.113.0/120", ""},
	} {
		rule, _, ok := e.NeverBan(pfx(tc.target), false)
		if ok != (tc.rule != "") || rule != tc.rule {
			t.Errorf("NeverBan(%s) = %q, %v; want %q", tc.target, rule, ok, tc.rule)
		}
	}
}

// TestForceRule: bansd's one --force rule, per class of protection.
// Loopback, the host's own addresses, Docker networks and gateways and
// Mailu's SUBNET/SUBNET6 (and REAL_IP_FROM) are never banned, with or
// without --force; ignoreip and AUTH_RATELIMIT_EXEMPTION only with it.
// Each refusal says whether --force would lift it, and a target that
// overlaps both kinds is refused by the hard rule.
func TestForceRule(t *testing.T) {
	e, _ := newTestEngine(t, `
[engine]
ignoreip = ["192.0.2.0/28", "198.51.100.64/26"]
subnet6 = "fd00:1::/64"
real_ip_from = ["203.0.113.200/32"]
ratelimit_exemption = ["203.0.113.128/28"]
`)
	e.SetProtected(Protected{
		Gateways:  []netip.Addr{addr("172.18.0.1")},
		Networks:  []netip.Prefix{pfx("172.18.0.0/16")},
		HostAddrs: []netip.Addr{addr("198.51.100.77"), addr("2001:db8:77::1")},
		Subnet:    pfx("192.168.203.0/24"),
	})
	for _, tc := range []struct {
		class  string
		target string
		rule   string
		hard   bool
	}{
		{"loopback", "127.0.0.1/32", "loopback", true},
		{"loopback v6", "::1/128", "loopback", true},
		{"host address", "198.51.100.77/32", "host address 198.51.100.77", true},
		{"host address v6", "2001:db8:77::1/128", "host address 2001:db8:77::1", true},
		{"docker gateway", "172.18.0.1/32", "docker gateway 172.18.0.1", true},
		{"docker network", "172.18.5.5/32", "docker network 172.18.0.0/16", true},
		{"Mailu SUBNET", "192.168.203.7/32", "Mailu SUBNET 192.168.203.0/24", true},
		{"Mailu SUBNET6", "fd00:1::9/128", "Mailu SUBNET6 fd00:1::/64", true},
		{"REAL_IP_FROM", "203.0.113.200/32", "REAL_IP_FROM 203.0.113.200/32", true},
		{"ignoreip", "192.0.2.5/32", "ignoreip 192.0.2.0/28", false},
		{"ignoreip inside a network ban", "192.0.2.0/24", "ignoreip 192.0.2.0/28", false},
		{"AUTH_RATELIMIT_EXEMPTION", "203.0.113.130/32", "AUTH_RATELIMIT_EXEMPTION 203.0.113.128/28", false},
		{"ignoreip and the host: the hard rule", "198.51.100.0/24", "host address 198.51.100.77", true},
	} {
		t.Run(tc.class, func(t *testing.T) {
			rule, forceable, ok := e.NeverBan(pfx(tc.target), false)
			if !ok || rule != tc.rule || forceable == tc.hard {
				t.Errorf("without --force: %q, forceable %v, refused %v; want %q, forceable %v", rule, forceable, ok, tc.rule, !tc.hard)
			}
			rule, _, ok = e.NeverBan(pfx(tc.target), true)
			if ok != tc.hard || tc.hard && rule != tc.rule {
				t.Errorf("with --force: %q, refused %v; want refused %v", rule, ok, tc.hard)
			}
		})
	}
	if rule, _, ok := e.NeverBan(pfx("203.0.113.7/32"), false); ok {
		t.Errorf("an unprotected address refused by %q", rule)
	}
}

// TestNeverBanReload: an ignoreip added by Reload holds at once.
func TestNeverBanReload(t *testing.T) {
	e, _ := newTestEngine(t, "")
	if rule, _, ok := e.NeverBan(pfx("203.0.113.70/32"), false); ok {
		t.Fatalf("protected before reload by %q", rule)
	}
	if err := e.Reload(testConfig(t, "[engine]\nignoreip = [\"203.0.113.64/26\"]\n")); err != nil {
		t.Fatal(err)
	}
	if rule, _, ok := e.NeverBan(pfx("203.0.113.70/32"), false); !ok || rule != "ignoreip 203.0.113.64/26" {
		t.Fatalf("after reload: %q, %v", rule, ok)
	}
}
