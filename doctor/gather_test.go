package doctor

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/network"
	"golang.org/x/sys/unix"

	"github.com/bansd/bansd/ban"
	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/internal/dockertest"
)

// frontLines: two with the gateway as client; one where it is only in the
// attacker's login text.
var frontLines = []string{
	"2026/01/01 10:00:00 [info] 9#9: *1 client 192.168.203.1:40000 connected to 0.0.0.0:25",
	"2026/01/01 10:00:01 [error] 9#9: *2 auth failed, client: 192.168.203.1, server: 0.0.0.0:587, login: \"a\"",
	"2026/01/01 10:00:02 [error] 9#9: *3 auth failed, client: 203.0.113.5, server: 0.0.0.0:587, login: \"client: 192.168.203.1, x\"",
}

func TestNetworkFacts(t *testing.T) {
	a := netip.MustParseAddr
	v4 := network.IPAMConfig{Subnet: "192.168.203.0/24"}
	v6 := network.IPAMConfig{Subnet: "fd00:1234:abcd::/48"}
	cases := []struct {
		name string
		ipam []network.IPAMConfig
		ipv6 bool
		seen []netip.Addr
		want []netip.Addr
	}{
		{"IPAM names the gateway", []network.IPAMConfig{{Subnet: "192.168.203.0/24", Gateway: "192.168.203.1"}}, false, nil, []netip.Addr{a("192.168.203.1")}},
		// compose's `subnet:` without `gateway:` on Engine 20.10 (API 1.41)
		{"implicit gateway, from the endpoints", []network.IPAMConfig{v4}, false, []netip.Addr{a("192.168.203.1"), a("192.168.203.1")}, []netip.Addr{a("192.168.203.1")}},
		{"IPAM and endpoints agree", []network.IPAMConfig{{Subnet: "192.168.203.0/24", Gateway: "192.168.203.1"}}, false, []netip.Addr{a("192.168.203.1")}, []netip.Addr{a("192.168.203.1")}},
		{"dual stack, implicit", []network.IPAMConfig{v4, v6}, true, []netip.Addr{a("fd00:1234:abcd::1"), a("192.168.203.1")}, []netip.Addr{a("192.168.203.1"), a("fd00:1234:abcd::1")}},
		{"mapped and invalid IPAM gateways", []network.IPAMConfig{{Subnet: "192.168.203.0/24", Gateway: "::ffff:192.168.203.1"}, {Subnet: "x", Gateway: "192.168.203.1/24"}}, false, nil, []netip.Addr{a("192.168.203.1")}},
		{"nothing known", []network.IPAMConfig{v4}, false, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nf := networkFacts(network.Inspect{Name: "mailu_default", EnableIPv6: tc.ipv6, IPAM: network.IPAM{Config: tc.ipam}}, tc.seen)
			if !slices.Equal(nf.Gateways, tc.want) || nf.IPv6 != tc.ipv6 || nf.Name != "mailu_default" {
				t.Errorf("got %+v, want gateways %v", nf, tc.want)
			}
			if len(nf.Subnets) == 0 || nf.Subnets[0] != netip.MustParsePrefix("192.168.203.0/24") {
				t.Errorf("subnets %v", nf.Subnets)
			}
		})
	}
	for _, tc := range []struct {
		ep   *network.EndpointSettings
		want []netip.Addr
	}{
		{nil, nil},
		{&network.EndpointSettings{}, nil},
		{&network.EndpointSettings{Gateway: "192.168.203.1", IPAddress: "192.168.203.5"}, []netip.Addr{a("192.168.203.1")}},
		{&network.EndpointSettings{Gateway: "192.168.203.1", IPv6Gateway: "fd00:1234:abcd::1"}, []netip.Addr{a("192.168.203.1"), a("fd00:1234:abcd::1")}},
	} {
		if got := endpointGateways(tc.ep); !slices.Equal(got, tc.want) {
			t.Errorf("endpointGateways(%+v) = %v, want %v", tc.ep, got, tc.want)
		}
	}
}

func TestNginxClient(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{frontLines[0], "192.168.203.1"},
		{frontLines[1], "192.168.203.1"},
		{frontLines[2], "203.0.113.5"},
		{"2026/01/01 10:00:00 [info] 9#9: *1 client [::ffff:192.0.2.7]:1 connected to 0.0.0.0:25", ""},
		{"2026/01/01 10:00:00 [info] 9#9: *1 client ::ffff:192.0.2.7:40000 connected to 0.0.0.0:25", "192.0.2.7"},
		{"x: *1 client 192.0.2.161:40000 connected to 0.0.0.0:25", ""},
		{"no client here", ""},
		{"trailing, client: 192.0.2.1", ""},
	} {
		a, ok := nginxClient(tc.line)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tc.want {
			t.Errorf("nginxClient(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

// TestDoctorRealDocker runs `bansctl doctor --json` inside the network
// namespace of a real dockerd that runs a Mailu-like front, once with the
// userland proxy and once without, and checks what it gathered.
func TestDoctorRealDocker(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bansctl")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/bansd/bansd/cmd/bansctl").CombinedOutput(); err != nil {
		t.Fatalf("build bansctl: %v\n%s", err, out)
	}
	for _, proxy := range []bool{true, false} {
		t.Run(fmt.Sprintf("userland-proxy=%v", proxy), func(t *testing.T) {
			e := dockertest.Start(t, dockertest.Options{UserlandProxy: proxy})
			img := e.ImportBusybox(t)
			// As compose creates Mailu's network: a subnet, no gateway
			// (Docker picks it, and API 1.41 does not list it in IPAM).
			e.Docker(t, "network", "create", "--subnet", "192.168.203.0/24",
				"--label", "com.docker.compose.project=mailu", "--label", "com.docker.compose.network=default", "mailu_default")
			if ipam := e.Docker(t, "network", "inspect", "-f", "{{json .IPAM.Config}}", "mailu_default"); strings.Contains(ipam, "Gateway") {
				t.Logf("this engine lists the gateway in IPAM: %s", ipam)
			}
			// bansd's table, as the daemon creates it, in the engine's namespace.
			nsfd, err := unix.Open("/run/netns/"+e.NetNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(nsfd)
			cfg, err := configs.Default()
			if err != nil {
				t.Fatal(err)
			}
			fw, err := ban.NewNFT(cfg.Firewall.Table, cfg.Firewall.Priority, ban.WithNetNS(nsfd))
			if err != nil {
				t.Fatal(err)
			}
			if err := fw.Ensure(ban.DefaultClasses()); err != nil {
				t.Fatal(err)
			}
			compose := func(svc string, extra ...string) []string {
				return append([]string{"run", "-d", "--name", "mailu-" + svc + "-1", "--network", "mailu_default",
					"-l", "com.docker.compose.project=mailu", "-l", "com.docker.compose.service=" + svc}, extra...)
			}
			e.Docker(t, append(compose("front", "-e", "SUBNET=192.168.203.0/24", "-e", "AUTH_RATELIMIT_IP=10/hour", "-p", "2525:25", img),
				"sh", "-c", "echo '"+strings.Join(frontLines, "\n")+"'; exec sleep 600")...)
			e.Docker(t, append(compose("admin", "-e", "AUTH_RATELIMIT_USER=50/day", img), "sleep", "600")...)

			cmd := exec.Command("nsenter", "--net=/run/netns/"+e.NetNS, bin, "doctor", "--json",
				"--docker-host", e.Host(), "--socket", filepath.Join(t.TempDir(), "none.sock"))
			out, err := cmd.Output()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("doctor: %v (want exit 1: front logged the gateway as client)\n%s", err, out)
			}
			var rep struct {
				Results []Result `json:"results"`
				Facts   Facts    `json:"facts"`
			}
			if err := json.Unmarshal(out, &rep); err != nil {
				t.Fatalf("doctor --json: %v\n%s", err, out)
			}
			f := rep.Facts
			if !f.Docker.Reachable || f.Docker.APIVersion == "" {
				t.Errorf("docker facts: %+v", f.Docker)
			}
			if f.Mailu == nil {
				t.Fatalf("Mailu project not found: %s", out)
			}
			m := f.Mailu
			if m.Project != "mailu" || !slices.Equal(m.Services, []string{"admin", "front"}) {
				t.Errorf("project %q services %v", m.Project, m.Services)
			}
			if m.Env["SUBNET"] != "192.168.203.0/24" || m.Env["AUTH_RATELIMIT_IP"] != "10/hour" || m.Env["AUTH_RATELIMIT_USER"] != "50/day" {
				t.Errorf("env %v", m.Env)
			}
			published := false
			for _, p := range m.Ports {
				if p.Service == "front" && p.HostPort == "2525" && p.ContainerPort == "25/tcp" && p.AllAddresses() {
					published = true
				}
			}
			if !published {
				t.Errorf("front's 2525 on all addresses not found: %+v", m.Ports)
			}
			var net *NetworkFacts
			for i := range m.Networks {
				if m.Networks[i].Name == "mailu_default" {
					net = &m.Networks[i]
				}
			}
			if net == nil || !slices.Equal(net.Gateways, []netip.Addr{netip.MustParseAddr("192.168.203.1")}) ||
				!slices.Equal(net.Subnets, []netip.Prefix{netip.MustParsePrefix("192.168.203.0/24")}) {
				t.Errorf("networks %+v", m.Networks)
			}
			if m.GatewayClientLines != 2 {
				t.Errorf("gateway client lines = %d (%q), want 2", m.GatewayClientLines, m.GatewayClientSample)
			}
			if !f.Proxy.Known || f.Proxy.On != proxy || (proxy && f.Proxy.Processes == 0) {
				t.Errorf("proxy facts %+v, want on=%v", f.Proxy, proxy)
			}
			wantChain := []ChainFacts{{Name: "prerouting", Type: "filter", Hook: "prerouting", Priority: cfg.Firewall.Priority, Rules: len(ban.DefaultClasses())}}
			if !f.NFT.Present || f.NFT.Err != "" || !slices.Equal(f.NFT.Chains, wantChain) {
				t.Errorf("nftables facts %+v, want bansd's chain %+v", f.NFT, wantChain)
			}
			v := verdicts(rep.Results)
			for check, want := range map[string]Verdict{"dockerd": Pass, "mailu": Pass, "nftables": Pass, "subnet": Fail, "bansd": Warn} {
				if v[check].Verdict != want {
					t.Errorf("%s = %s (%s), want %s", check, v[check].Verdict, v[check].Message, want)
				}
			}
			if proxy && v["userland-proxy"].Verdict == Pass {
				t.Errorf("userland proxy on with ports on all addresses passes: %+v", v["userland-proxy"])
			}
			if !proxy && v["userland-proxy"].Verdict != Pass {
				t.Errorf("userland proxy off: %+v", v["userland-proxy"])
			}
			if !strings.Contains(v["subnet"].Fix, "userland-proxy") {
				t.Errorf("subnet fix: %q", v["subnet"].Fix)
			}
		})
	}
}
