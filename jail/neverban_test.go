package jail

import (
	"net/netip"
	"testing"
)

// TestNeverBanMapped: every spelling of a range gets the same verdict, so
// ::ffff:172.17.0.0/112 is the Docker network 172.17.0.0/16; --force lifts
// only what was learnt from Docker and the host, never the configured lists.
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
		force  bool
		rule   string // "" means not protected
	}{
		{"::ffff:172.17.0.0/112", false, "docker gateway 172.17.0.1"},
		{"172.17.0.0/16", false, "docker gateway 172.17.0.1"},
		{"::ffff:172.17.9.9/128", false, "docker network 172.17.0.0/16"},
		{"::ffff:172.17.0.0/112", true, ""},
		{"::ffff:198.51.100.77/128", false, "host address 198.51.100.77"},
		{"::ffff:198.51.100.77/128", true, ""},
		{"::ffff:192.0.2.0/120", false, "ignoreip 192.0.2.0/28"},
		{"::ffff:192.0.2.0/120", true, "ignoreip 192.0.2.0/28"},
		{"::ffff:192.168.203.7/128", true, "Mailu SUBNET 192.168.203.0/24"},
		{"::ffff:0:0/95", false, "invalid prefix: ::ffff:0.0.0.0/95: IPv4-mapped with a prefix shorter than /96"},
		{"::ffff:203.0.113.0/120", false, ""},
		{"203.0.113.0/24", true, ""},
	} {
		rule, ok := e.NeverBan(pfx(tc.target), tc.force)
		if ok != (tc.rule != "") || rule != tc.rule {
			t.Errorf("NeverBan(%s, force=%v) = %q, %v; want %q", tc.target, tc.force, rule, ok, tc.rule)
		}
	}
}

// TestNeverBanReload: an ignoreip added by Reload holds at once.
func TestNeverBanReload(t *testing.T) {
	e, _ := newTestEngine(t, "")
	if rule, ok := e.NeverBan(pfx("203.0.113.70/32"), true); ok {
		t.Fatalf("protected before reload by %q", rule)
	}
	if err := e.Reload(testConfig(t, "[engine]\nignoreip = [\"203.0.113.64/26\"]\n")); err != nil {
		t.Fatal(err)
	}
	if rule, ok := e.NeverBan(pfx("203.0.113.70/32"), true); !ok || rule != "ignoreip 203.0.113.64/26" {
		t.Fatalf("after reload: %q, %v", rule, ok)
	}
}
