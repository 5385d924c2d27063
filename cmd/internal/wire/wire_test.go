package wire

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/bansd/bansd/sources/docker"
)

func TestProtected(t *testing.T) {
	pfx := netip.MustParsePrefix
	for _, c := range []struct {
		name string
		info docker.MailuInfo
		want string
	}{
		{"nothing", docker.MailuInfo{}, "{Gateways:[] Networks:[] HostAddrs:[] Subnet:invalid Prefix Subnet6:invalid Prefix RealIPFrom:[] RatelimitExemption:[]}"},
		{"networks and settings", docker.MailuInfo{
			Networks: []docker.NetworkInfo{
				{Name: "mailu_default", Subnets: []netip.Prefix{pfx("192.0.2.160/28"), pfx("2001:db8:1::/64")}, Gateways: []netip.Addr{netip.MustParseAddr("192.0.2.161")}},
				{Name: "bridge", Subnets: []netip.Prefix{pfx("192.0.2.0/25")}},
			},
			Env: map[string]string{"SUBNET": "2001:db8:9::/64, 192.0.2.192/27 198.51.100.0/24", "SUBNET6": "192.0.2.0/24,2001:db8:2::/64", "REAL_IP_FROM": "203.0.113.0/28", "AUTH_RATELIMIT_EXEMPTION": "198.51.100.7/32"},
		}, "{Gateways:[192.0.2.161] Networks:[192.0.2.160/28 2001:db8:1::/64 192.0.2.0/25] HostAddrs:[] Subnet:192.0.2.192/27 Subnet6:2001:db8:2::/64 RealIPFrom:[203.0.113.0/28] RatelimitExemption:[198.51.100.7/32]}"},
	} {
		if got := fmt.Sprintf("%+v", Protected(c.info)); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}
