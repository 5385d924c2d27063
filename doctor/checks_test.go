package doctor

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/bansd/bansd/control"
)

// healthy is a host where every check passes.
func healthy() Facts {
	return Facts{
		Docker: DockerFacts{Host: "unix:///var/run/docker.sock", Reachable: true, Version: "20.10.24", APIVersion: "1.41"},
		Mailu: &MailuFacts{
			Project:  "mailu",
			Services: []string{"admin", "front", "smtp"},
			Networks: []NetworkFacts{{Name: "mailu_default", Subnets: []netip.Prefix{netip.MustParsePrefix("192.168.203.0/24")}, Gateways: []netip.Addr{netip.MustParseAddr("192.168.203.1")}}},
			Ports:    []PortFacts{{Service: "front", HostIP: "0.0.0.0", HostPort: "25", ContainerPort: "25/tcp"}},
			Env:      map[string]string{"SUBNET": "192.168.203.0/24", "AUTH_RATELIMIT_IP": "5/hour"},
		},
		Proxy:    ProxyFacts{Known: true, On: false, How: "/etc/docker/daemon.json"},
		HostIPv6: []netip.Addr{netip.MustParseAddr("2001:db8::10")},
		NFT:      NFTFacts{Table: "bansd", WantPriority: -310, Present: true, Chains: []ChainFacts{{Name: "prerouting", Type: "filter", Hook: "prerouting", Priority: -310, Rules: 5}}},
		Daemon:   &control.Status{Version: "1.0", PID: 42, Docker: control.DockerStatus{State: "following"}},
	}
}

func verdicts(rs []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range rs {
		m[r.Check] = r
	}
	return m
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name   string
		change func(f *Facts)
		check  string
		want   Verdict
		says   string // in the message, or in the fix
		not    string // if set, in neither
	}{
		{"all good", func(*Facts) {}, "userland-proxy", Pass, "proxy off", ""},
		{"dockerd down", func(f *Facts) { f.Docker = DockerFacts{Host: "unix:///x", Err: "connection refused"}; f.Mailu = nil }, "dockerd", Fail, "DOCKER_HOST", ""},
		{"dockerd down: mailu not checked", func(f *Facts) { f.Docker = DockerFacts{Err: "refused"}; f.Mailu = nil }, "mailu", Warn, "not checked", ""},
		{"no mailu", func(f *Facts) { f.Mailu = nil }, "mailu", Fail, "[docker] project", ""},
		{"open relay: proxy, all addresses, host IPv6, IPv4-only Mailu", func(f *Facts) {
			f.Proxy = ProxyFacts{Known: true, On: true, How: "2 docker-proxy processes"}
		}, "userland-proxy", Fail, `"userland-proxy": false`, ""},
		{"open relay with bansd's shield up", func(f *Facts) {
			f.Proxy = ProxyFacts{Known: true, On: true, How: "2 docker-proxy processes"}
			f.Daemon = &control.Status{Shield: control.ShieldStatus{Enabled: true, Up: true, Risk: true, Ports: []uint16{25}, Refused: 3}}
		}, "userland-proxy", Fail, "relay shield is UP: IPv6 connections to ports [25] are refused with a TCP reset (3 so far)", ""},
		{"open relay with bansd's shield off", func(f *Facts) {
			f.Proxy = ProxyFacts{Known: true, On: true, How: "2 docker-proxy processes"}
			f.Daemon = &control.Status{Shield: control.ShieldStatus{Risk: true, Off: "bansctl"}}
		}, "userland-proxy", Fail, "relay shield is OFF (bansctl): the relay is open", ""},
		{"proxy but published on :: too", func(f *Facts) {
			f.Proxy = ProxyFacts{Known: true, On: true, How: "default"}
			f.Mailu.Ports = []PortFacts{{Service: "front", HostIP: "::", HostPort: "587"}}
		}, "userland-proxy", Fail, "front:587", ""},
		{"proxy, all addresses, no host IPv6: latent", func(f *Facts) {
			f.Proxy = ProxyFacts{Known: true, On: true, How: "default"}
			f.HostIPv6 = nil
		}, "userland-proxy", Warn, "MUST disable", ""},
		{"proxy, Mailu network has IPv6", func(f *Facts) {
			f.Proxy = ProxyFacts{Known: true, On: true, How: "default"}
			f.Mailu.Networks[0].IPv6 = true
		}, "userland-proxy", Warn, "all addresses", ""},
		{"proxy but ports on specific addresses", func(f *Facts) {
			f.Proxy = ProxyFacts{Known: true, On: true, How: "default"}
			f.Mailu.Ports = []PortFacts{{Service: "front", HostIP: "203.0.113.10", HostPort: "25"}, {Service: "front", HostIP: "2001:db8::10", HostPort: "25"}}
		}, "userland-proxy", Pass, "no Mailu port", ""},
		{"proxy unknown", func(f *Facts) { f.Proxy = ProxyFacts{} }, "userland-proxy", Warn, "cannot tell", ""},
		{"table missing", func(f *Facts) { f.NFT.Present = false; f.NFT.Chains = nil }, "nftables", Fail, "start bansd", ""},
		{"table unreadable", func(f *Facts) { f.NFT.Err = "operation not permitted" }, "nftables", Fail, "root", ""},
		{"chain on input hook", func(f *Facts) { f.NFT.Chains[0].Hook = "input" }, "nftables", Fail, "prerouting (filter hook input priority -310)", ""},
		{"chain on an unknown hook number", func(f *Facts) { f.NFT.Chains[0].Hook = "7" }, "nftables", Fail, "prerouting (filter hook 7 priority -310)", ""},
		{"nat chain on prerouting", func(f *Facts) { f.NFT.Chains[0].Type = "nat" }, "nftables", Fail, "no filter chain", ""},
		{"no base chain", func(f *Facts) { f.NFT.Chains = nil }, "nftables", Fail, "no base chain", ""},
		{"table and chain as bansd makes them", func(*Facts) {}, "nftables", Pass, "filter hook prerouting priority -310, 5 rules", ""},
		{"open relay ports listed once", func(f *Facts) {
			f.Proxy = ProxyFacts{Known: true, On: true, How: "16 docker-proxy processes"}
			f.Mailu.Ports = []PortFacts{{Service: "front", HostIP: "0.0.0.0", HostPort: "25"}, {Service: "front", HostIP: "::", HostPort: "25"}, {Service: "front", HostIP: "127.0.0.1", HostPort: "8080"}}
		}, "userland-proxy", Fail, "ports front:25 published", "8080"},
		{"chain at another priority", func(f *Facts) { f.NFT.Chains[0].Priority = -150 }, "nftables", Warn, "-150", ""},
		{"chain without rules", func(f *Facts) { f.NFT.Chains[0].Rules = 0 }, "nftables", Fail, "no rules", ""},
		{"ufw", func(f *Facts) { f.Input.UFW = true }, "input-firewall", Warn, "FORWARD", ""},
		{"input drop rules", func(f *Facts) { f.Input.DropRules = 3 }, "input-firewall", Warn, "3 INPUT", ""},
		{"no input firewall", func(*Facts) {}, "input-firewall", Pass, "no INPUT", ""},
		{"subnet contains gateway", func(*Facts) {}, "subnet", Pass, "expected", ""},
		{"gateway logged as client", func(f *Facts) {
			f.Mailu.GatewayClientLines = 7
			f.Mailu.GatewayClientSample = "client: 192.168.203.1, server: 0.0.0.0:25"
		}, "subnet", Fail, "7 time(s)", ""},
		{"subnet does not match the network", func(f *Facts) { f.Mailu.Env["SUBNET"] = "10.9.0.0/16" }, "subnet", Warn, "does not contain", ""},
		{"subnet unset", func(f *Facts) { delete(f.Mailu.Env, "SUBNET") }, "subnet", Warn, "not set", ""},
		{"limiter defaults", func(f *Facts) { f.Mailu.Env = map[string]string{"SUBNET": "192.168.203.0/24"} }, "mailu-ratelimit", Pass, "defaults", ""},
		{"limiter shown", func(*Facts) {}, "mailu-ratelimit", Pass, "AUTH_RATELIMIT_IP=5/hour", ""},
		{"limiter disabled", func(f *Facts) { f.Mailu.Env["AUTH_RATELIMIT_EXEMPTION"] = "10.0.0.0/8, 0.0.0.0/0" }, "mailu-ratelimit", Warn, "disabled", ""},
		{"daemon running", func(*Facts) {}, "bansd", Pass, "pid 42", ""},
		{"daemon down", func(f *Facts) { f.Daemon, f.DaemonErr = nil, "connection refused" }, "bansd", Warn, "does not answer", ""},
		{"daemon reload refused", func(f *Facts) {
			f.Daemon.Config.LastReload = &control.ReloadResult{Error: "x.toml:3: jails.auth.maxretry"}
		}, "bansd", Warn, "reload was refused", ""},
		{"daemon alarm", func(f *Facts) {
			f.Daemon.Alarms = []control.AlarmStatus{{Kind: "gateway-client", Addr: "192.168.203.1", Fix: "disable the userland proxy"}}
		}, "bansd", Warn, "gateway-client", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := healthy()
			tc.change(&f)
			rs := Check(f)
			r, ok := verdicts(rs)[tc.check]
			if !ok {
				t.Fatalf("no %s check in %v", tc.check, rs)
			}
			if r.Verdict != tc.want {
				t.Errorf("%s = %s (%s), want %s", tc.check, r.Verdict, r.Message, tc.want)
			}
			if !strings.Contains(r.Message+" "+r.Fix, tc.says) {
				t.Errorf("%s says %q / fix %q, want it to mention %q", tc.check, r.Message, r.Fix, tc.says)
			}
			if tc.not != "" && strings.Contains(r.Message+" "+r.Fix, tc.not) {
				t.Errorf("%s says %q / fix %q, want no %q", tc.check, r.Message, r.Fix, tc.not)
			}
			if r.Verdict != Pass && r.Fix == "" && !strings.Contains(r.Message, "not checked") && !strings.Contains(r.Message, "cannot read the INPUT") {
				t.Errorf("%s is %s without a fix", tc.check, r.Verdict)
			}
			if r.Verdict == Fail && !Failed(rs) {
				t.Error("Failed misses a FAIL")
			}
		})
	}
	if Failed(Check(healthy())) {
		t.Errorf("a healthy host fails: %+v", Check(healthy()))
	}
}
