// Package doctor audits a Mailu-on-Docker host for what bansd cannot fix
// by itself: an unreachable dockerd, the userland-proxy open relay, a
// missing or misplaced ban table, INPUT-only firewalls, and Mailu settings.
// Gather fills Facts from the host; Check judges Facts, so the verdicts are
// tested with plain values.
package doctor

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/bansd/bansd/seen"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/sources/docker"
)

// Verdict is a check's outcome.
type Verdict string

const (
	Pass Verdict = "PASS"
	Warn Verdict = "WARN"
	Fail Verdict = "FAIL"
)

// Result is one check's outcome with what to do about it.
type Result struct {
	Check   string  `json:"check"`
	Verdict Verdict `json:"verdict"`
	Message string  `json:"message"`
	Fix     string  `json:"fix,omitempty"`
}

// Facts is what Gather learned about the host. Zero values mean "unknown"
// or "absent"; the *Err fields say why something could not be learned.
type Facts struct {
	Docker DockerFacts `json:"docker"`
	// Mailu is nil when no Mailu compose project was found.
	Mailu *MailuFacts `json:"mailu,omitempty"`
	Proxy ProxyFacts  `json:"userland_proxy"`
	// HostIPv6 lists the host's global IPv6 addresses.
	HostIPv6 []netip.Addr `json:"host_ipv6,omitempty"`
	NFT      NFTFacts     `json:"nftables"`
	Input    InputFacts   `json:"input_firewall"`
	// Daemon is bansd's status when its socket answered.
	Daemon    *control.Status `json:"daemon,omitempty"`
	DaemonErr string          `json:"daemon_error,omitempty"`
}

type DockerFacts struct {
	Host       string `json:"host"`
	Reachable  bool   `json:"reachable"`
	Err        string `json:"error,omitempty"`
	Version    string `json:"version,omitempty"`
	APIVersion string `json:"api_version,omitempty"`
}

type MailuFacts struct {
	Project  string         `json:"project"`
	Services []string       `json:"services"`
	Networks []NetworkFacts `json:"networks"`
	Ports    []PortFacts    `json:"ports"`
	// Env holds the Mailu settings doctor reads (SUBNET, SUBNET6,
	// REAL_IP_FROM, AUTH_RATELIMIT_*), from front and admin.
	Env map[string]string `json:"env"`
	// GatewayClientLines counts recent front log lines whose client is a
	// Docker gateway; GatewayClientSample is one of them.
	GatewayClientLines  int    `json:"gateway_client_lines"`
	GatewayClientSample string `json:"gateway_client_sample,omitempty"`
	LogsErr             string `json:"logs_error,omitempty"`
	// forwards are front's published ports with its addresses, for the
	// userland-proxy rule.
	forwards []docker.Forward
}

type NetworkFacts struct {
	Name     string         `json:"name"`
	Subnets  []netip.Prefix `json:"subnets"`
	Gateways []netip.Addr   `json:"gateways"`
	IPv6     bool           `json:"ipv6"`
}

// PortFacts is one published port of a Mailu container.
type PortFacts struct {
	Service       string `json:"service"`
	HostIP        string `json:"host_ip"`
	HostPort      string `json:"host_port"`
	ContainerPort string `json:"container_port"`
}

// AllAddresses says whether the port is published on every host address,
// which with the userland proxy lets IPv6 clients in as the gateway.
func (p PortFacts) AllAddresses() bool {
	return docker.AllAddresses(p.HostIP)
}

// ProxyFacts says whether Docker's userland proxy is on.
type ProxyFacts struct {
	// Known is false when nothing could tell.
	Known bool `json:"known"`
	On    bool `json:"on"`
	// How names the evidence: "docker-proxy processes", "dockerd flag",
	// "daemon.json", "default".
	How string `json:"how,omitempty"`
	// Processes is how many docker-proxy processes forward front's ports.
	Processes int `json:"processes"`
}

// NFTFacts is bansd's table as the kernel holds it.
type NFTFacts struct {
	Err   string `json:"error,omitempty"`
	Table string `json:"table"`
	// WantPriority is the configured priority.
	WantPriority int  `json:"want_priority"`
	Present      bool `json:"present"`
	// Chains are the base chains of the table.
	Chains []ChainFacts `json:"chains"`
}

type ChainFacts struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Hook is the hook as nft names it, or its number when unknown.
	Hook     string `json:"hook"`
	Priority int    `json:"priority"`
	Rules    int    `json:"rules"`
}

// InputFacts describes host firewalls that filter only INPUT.
type InputFacts struct {
	Err string `json:"error,omitempty"`
	UFW bool   `json:"ufw"`
	// DropRules counts INPUT rules that drop or reject (plus a drop policy).
	DropRules int `json:"drop_rules"`
}

// Check judges the facts. The order is the order to fix things in.
func Check(f Facts) []Result {
	out := []Result{checkDocker(f), checkMailu(f), checkOpenRelay(f), checkTable(f), checkInput(f), checkSubnet(f), checkLimiter(f), checkDaemon(f)}
	return out
}

// Failed says whether any result is a FAIL.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if r.Verdict == Fail {
			return true
		}
	}
	return false
}

func checkDocker(f Facts) Result {
	r := Result{Check: "dockerd"}
	if f.Docker.Reachable {
		r.Verdict, r.Message = Pass, fmt.Sprintf("dockerd %s (API %s) answers on %s", f.Docker.Version, f.Docker.APIVersion, f.Docker.Host)
		return r
	}
	r.Verdict = Fail
	r.Message = fmt.Sprintf("dockerd does not answer on %s: %s", f.Docker.Host, f.Docker.Err)
	r.Fix = "start Docker (systemctl start docker), or point DOCKER_HOST / --docker-host / [docker] host at its socket; bansd needs read access to it"
	return r
}

func checkMailu(f Facts) Result {
	r := Result{Check: "mailu"}
	switch {
	case !f.Docker.Reachable:
		r.Verdict, r.Message = Warn, "not checked: dockerd unreachable"
	case f.Mailu == nil:
		r.Verdict = Fail
		r.Message = "no Mailu compose project found (no project with a front service)"
		r.Fix = "start Mailu with docker compose, or set [docker] project to its compose project name"
	default:
		r.Verdict = Pass
		r.Message = fmt.Sprintf("Mailu project %q, services %s", f.Mailu.Project, strings.Join(f.Mailu.Services, ", "))
	}
	return r
}

// noMailu is the verdict of a check that needs the Mailu project.
func noMailu(r Result) Result {
	r.Verdict, r.Message = Warn, "not checked: no Mailu project"
	return r
}

const relayFix = configs.RelayFix

// CheckOpenRelay names the open-relay check (the daemon's relay shield
// decides on the same facts, live).
const CheckOpenRelay = "userland-proxy"

func checkOpenRelay(f Facts) Result {
	r := Result{Check: CheckOpenRelay}
	if f.Mailu == nil {
		return noMailu(r)
	}
	// Docker lists a port bound on all addresses twice (0.0.0.0 and ::).
	var all []string
	for _, p := range f.Mailu.Ports {
		if s := p.Service + ":" + p.HostPort; p.AllAddresses() && !slices.Contains(all, s) {
			all = append(all, s)
		}
	}
	mailu6 := false
	for _, n := range f.Mailu.Networks {
		mailu6 = mailu6 || n.IPv6
	}
	switch {
	case !f.Proxy.Known:
		r.Verdict, r.Message, r.Fix = Warn, "cannot tell whether Docker's userland proxy is on", relayFix
	case !f.Proxy.On:
		r.Verdict, r.Message = Pass, "userland proxy off ("+f.Proxy.How+"): clients keep their real addresses"
	case len(all) == 0:
		r.Verdict, r.Message = Pass, "userland proxy on ("+f.Proxy.How+"), but no Mailu port is published on all addresses"
	case len(f.HostIPv6) > 0 && !mailu6:
		r.Verdict = Fail
		r.Message = fmt.Sprintf("OPEN RELAY RISK: userland proxy on (%s), ports %s published on all addresses, the host has IPv6 (%s) but the Mailu network does not: IPv6 clients reach Mailu as the Docker gateway, inside SUBNET, and Postfix relays for them",
			f.Proxy.How, strings.Join(all, " "), f.HostIPv6[0])
		r.Fix = relayFix
	default:
		r.Verdict = Warn
		r.Message = fmt.Sprintf("userland proxy on (%s) with ports %s published on all addresses: safe only while IPv6 does not reach the Mailu ports through the proxy (Mailu: \"you MUST disable userland-proxy\")", f.Proxy.How, strings.Join(all, " "))
		r.Fix = relayFix
	}
	if f.Daemon != nil {
		r.Message += "; " + shieldState(f.Daemon.Shield)
	}
	return r
}

// shieldState says what bansd's relay shield does about the risk. The
// verdict stays: the shield refuses IPv6 clients, Docker's fix serves them.
func shieldState(s control.ShieldStatus) string {
	switch {
	case s.Up:
		return fmt.Sprintf("bansd's relay shield is UP: IPv6 connections to ports %v are refused with a TCP reset (%d so far)", s.Ports, s.Refused)
	case s.Off != "" && s.Risk:
		return "bansd's relay shield is OFF (" + s.Off + "): the relay is open"
	case s.Off != "":
		return "bansd's relay shield is off (" + s.Off + ")"
	default:
		return "bansd's relay shield is down (" + s.Why + ")"
	}
}

func checkTable(f Facts) Result {
	r := Result{Check: "nftables"}
	n := f.NFT
	fix := "start bansd (systemctl start bansd); it creates table inet " + n.Table + " and repairs it every reconcile period"
	switch {
	case n.Err != "":
		r.Verdict, r.Message, r.Fix = Fail, "cannot read nftables: "+n.Err, "run doctor as root (CAP_NET_ADMIN) on the host's network namespace"
		return r
	case !n.Present:
		r.Verdict, r.Message, r.Fix = Fail, "table inet "+n.Table+" is missing: nothing is banned in the kernel", fix
		return r
	}
	for _, c := range n.Chains {
		if c.Hook != "prerouting" || c.Type != "filter" || c.Name == seen.ChainName {
			// The kernel record of connections hooks prerouting too,
			// after conntrack on purpose.
			continue
		}
		if c.Priority != n.WantPriority {
			r.Verdict = Warn
			r.Message = fmt.Sprintf("chain %s is at prerouting priority %d, the config says %d", c.Name, c.Priority, n.WantPriority)
			r.Fix = "restart bansd so it recreates the chain, or fix [firewall] priority"
			return r
		}
		if c.Rules == 0 {
			r.Verdict, r.Message, r.Fix = Fail, "chain "+c.Name+" has no rules: bans are not matched", fix
			return r
		}
		r.Verdict = Pass
		r.Message = fmt.Sprintf("table inet %s, chain %s: filter hook prerouting priority %d, %d rules (before conntrack and Docker's DNAT)", n.Table, c.Name, c.Priority, c.Rules)
		return r
	}
	seen := "no base chain"
	if len(n.Chains) > 0 {
		var cs []string
		for _, c := range n.Chains {
			cs = append(cs, fmt.Sprintf("%s (%s hook %s priority %d)", c.Name, c.Type, c.Hook, c.Priority))
		}
		seen = "base chains " + strings.Join(cs, ", ")
	}
	r.Verdict = Fail
	r.Message = "table inet " + n.Table + " has no filter chain on the prerouting hook (" + seen + "): published container ports are not protected"
	r.Fix = "delete the table (nft delete table inet " + n.Table + ") and restart bansd"
	return r
}

func checkInput(f Facts) Result {
	r := Result{Check: "input-firewall"}
	switch {
	case f.Input.Err != "" && !f.Input.UFW && f.Input.DropRules == 0:
		r.Verdict, r.Message = Warn, "cannot read the INPUT chain: "+f.Input.Err
	case f.Input.UFW:
		r.Verdict = Warn
		r.Message = "UFW is active: its rules and fail2ban's INPUT bans do not protect ports Docker publishes (DNAT sends them through FORWARD)"
		r.Fix = "rely on bansd for Mailu's ports; keep UFW for host services only, and remove any fail2ban Mailu jails"
	case f.Input.DropRules > 0:
		r.Verdict = Warn
		r.Message = fmt.Sprintf("%d INPUT drop/reject rule(s): an INPUT-only firewall does not protect ports Docker publishes", f.Input.DropRules)
		r.Fix = "do not count on INPUT rules for Mailu's ports; bansd bans in prerouting"
	default:
		r.Verdict, r.Message = Pass, "no INPUT-only firewall that would give a false sense of safety"
	}
	return r
}

func checkSubnet(f Facts) Result {
	r := Result{Check: "subnet"}
	if f.Mailu == nil {
		return noMailu(r)
	}
	sub, err := netip.ParsePrefix(strings.TrimSpace(f.Mailu.Env["SUBNET"]))
	if err != nil {
		r.Verdict, r.Message = Warn, "Mailu's SUBNET is not set in front/admin's environment; bansd falls back to [engine] subnet"
		r.Fix = "set SUBNET in mailu.env to the Mailu network's subnet"
		return r
	}
	var gws []netip.Addr
	inside := false
	for _, n := range f.Mailu.Networks {
		for _, g := range n.Gateways {
			gws = append(gws, g)
			inside = inside || sub.Contains(g)
		}
	}
	if f.Mailu.GatewayClientLines > 0 {
		r.Verdict = Fail
		r.Message = fmt.Sprintf("front logged a Docker gateway as the client %d time(s), e.g. %q: the userland proxy hides real client addresses, and Mailu trusts the gateway (SUBNET %s)", f.Mailu.GatewayClientLines, f.Mailu.GatewayClientSample, sub)
		r.Fix = relayFix
		return r
	}
	if !inside {
		r.Verdict = Warn
		r.Message = fmt.Sprintf("SUBNET %s does not contain any Mailu network gateway (%v): Mailu's trusted network does not match Docker's", sub, gws)
		r.Fix = "set SUBNET in mailu.env to the subnet of the Mailu network (docker network inspect)"
		return r
	}
	r.Verdict = Pass
	r.Message = fmt.Sprintf("SUBNET %s contains the Mailu gateway (expected); no gateway-as-client lines in front's recent logs", sub)
	return r
}

// limiterKeys are Mailu's rate-limiter settings, shown in the verdict.
var limiterKeys = []string{"AUTH_RATELIMIT_IP", "AUTH_RATELIMIT_USER", "AUTH_RATELIMIT_EXEMPTION", "AUTH_RATELIMIT_EXEMPTION_LENGTH"}

func checkLimiter(f Facts) Result {
	r := Result{Check: "mailu-ratelimit"}
	if f.Mailu == nil {
		return noMailu(r)
	}
	var set []string
	for _, k := range limiterKeys {
		if v, ok := f.Mailu.Env[k]; ok {
			set = append(set, k+"="+v)
		}
	}
	sort.Strings(set)
	shown := "defaults (AUTH_RATELIMIT_IP=5/hour per /24 or /48, AUTH_RATELIMIT_USER=50/day)"
	if len(set) > 0 {
		shown = strings.Join(set, ", ")
	}
	for _, e := range strings.Split(f.Mailu.Env["AUTH_RATELIMIT_EXEMPTION"], ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(e))
		if err == nil && p.Bits() == 0 {
			r.Verdict = Warn
			r.Message = "Mailu's own limiter is disabled (AUTH_RATELIMIT_EXEMPTION contains " + p.String() + "); bansd's jails are the only brake: " + shown
			r.Fix = "remove 0.0.0.0/0 and ::/0 from AUTH_RATELIMIT_EXEMPTION"
			return r
		}
	}
	r.Verdict, r.Message = Pass, "Mailu's limiter: "+shown+"; bansd bans what it keeps refusing (jail limiter)"
	return r
}

func checkDaemon(f Facts) Result {
	r := Result{Check: "bansd"}
	if f.Daemon == nil {
		r.Verdict = Warn
		r.Message = "bansd's socket does not answer: " + f.DaemonErr
		r.Fix = "systemctl start bansd (or docker compose up -d bansd); doctor's other checks do not need it"
		return r
	}
	d := f.Daemon
	bans := 0
	for _, j := range d.Jails {
		bans += j.ActiveBans
	}
	r.Verdict = Pass
	r.Message = fmt.Sprintf("bansd %s running (pid %d), docker source %s, %d active ban(s), %d alarm(s)", d.Version, d.PID, d.Docker.State, bans, len(d.Alarms))
	if d.Config.LastReload != nil && !d.Config.LastReload.OK {
		r.Verdict = Warn
		r.Message += "; the last reload was refused: " + d.Config.LastReload.Error
		r.Fix = "fix the config file and send SIGHUP (systemctl reload bansd)"
	}
	if len(d.Alarms) > 0 && r.Verdict == Pass {
		r.Verdict = Warn
		r.Message += "; alarm: " + d.Alarms[0].Kind + " " + d.Alarms[0].Addr
		r.Fix = d.Alarms[0].Fix
	}
	return r
}
