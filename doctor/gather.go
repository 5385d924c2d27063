package doctor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bansd/bansd/internal/nfhook"
	"github.com/bansd/bansd/sources/docker"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/shield"
)

// Options says where to look.
type Options struct {
	// DockerHost is the daemon address; "" means $DOCKER_HOST, else the
	// default socket.
	DockerHost string
	// Project is the Mailu compose project; "" finds it by its services.
	Project string
	// Table and Priority are bansd's nftables table and chain priority.
	Table    string
	Priority int
	// Socket is bansd's control socket; "" skips the daemon.
	Socket string
	// Proc is the procfs root (tests may point it elsewhere); "" is /proc.
	Proc string
	// DaemonJSON is Docker's config file; "" is /etc/docker/daemon.json.
	DaemonJSON string
	// LogTail is how many recent front lines to scan for gateway clients.
	LogTail int
}

// Gather learns the facts. It never fails as a whole: what cannot be
// learned is recorded in the facts' error fields.
func Gather(ctx context.Context, opt Options) Facts {
	if opt.Proc == "" {
		opt.Proc = "/proc"
	}
	if opt.DaemonJSON == "" {
		opt.DaemonJSON = "/etc/docker/daemon.json"
	}
	if opt.LogTail == 0 {
		opt.LogTail = 2000
	}
	var f Facts
	gatherDocker(ctx, opt, &f)
	f.Proxy = gatherProxy(opt, len(portsOf(f.Mailu)) > 0)
	f.HostIPv6 = hostIPv6()
	f.NFT = gatherNFT(opt.Table, opt.Priority)
	f.Input = gatherInput()
	if opt.Socket != "" {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := control.NewClient(opt.Socket).Status(cctx)
		cancel()
		if err != nil {
			f.DaemonErr = err.Error()
		} else {
			f.Daemon = &st
		}
	}
	return f
}

func portsOf(m *MailuFacts) []PortFacts {
	if m == nil {
		return nil
	}
	return m.Ports
}

func gatherDocker(ctx context.Context, opt Options, f *Facts) {
	copts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if opt.DockerHost != "" {
		copts = append(copts, client.WithHost(opt.DockerHost))
	}
	cl, err := client.NewClientWithOpts(copts...)
	if err != nil {
		f.Docker.Host, f.Docker.Err = opt.DockerHost, err.Error()
		return
	}
	defer cl.Close()
	f.Docker.Host = cl.DaemonHost()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := cl.ServerVersion(ctx)
	if err != nil {
		f.Docker.Err = err.Error()
		return
	}
	f.Docker.Reachable, f.Docker.Version, f.Docker.APIVersion = true, v.Version, v.APIVersion

	list, err := cl.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", docker.LabelProject))})
	if err != nil {
		f.Docker.Err = "list containers: " + err.Error()
		return
	}
	// The daemon's own rule, so that doctor audits the project bansd follows.
	project, _ := docker.ChooseProject(opt.Project, list)
	if project == "" {
		return
	}
	m := &MailuFacts{Project: project, Env: map[string]string{}}
	// nets maps each network of Mailu's containers to the gateways its
	// endpoints report: API 1.41 leaves IPAM's Gateway empty when Docker
	// picked it itself, which compose does for `subnet:` without `gateway:`.
	nets := map[string][]netip.Addr{}
	var front *container.InspectResponse
	svcs := map[string]bool{}
	for _, c := range list {
		if c.Labels[docker.LabelProject] != project || docker.IsOneOff(c) {
			continue
		}
		svc := c.Labels[docker.LabelService]
		svcs[svc] = true
		ins, err := cl.ContainerInspect(ctx, c.ID)
		if err != nil {
			continue // removed meanwhile
		}
		if ins.NetworkSettings != nil {
			for port, binds := range ins.NetworkSettings.Ports {
				for _, b := range binds {
					m.Ports = append(m.Ports, PortFacts{Service: svc, HostIP: b.HostIP, HostPort: b.HostPort, ContainerPort: string(port)})
				}
			}
			for name, ep := range ins.NetworkSettings.Networks {
				nets[name] = append(nets[name], endpointGateways(ep)...)
			}
		}
		if (svc == "front" || svc == "admin") && ins.Config != nil {
			for _, kv := range ins.Config.Env {
				k, v, _ := strings.Cut(kv, "=")
				if _, seen := m.Env[k]; !seen && slices.Contains(docker.MailuEnv, k) {
					m.Env[k] = v
				}
			}
		}
		if svc == "front" {
			front = &ins
		}
	}
	for s := range svcs {
		m.Services = append(m.Services, s)
	}
	sort.Strings(m.Services)
	sort.Slice(m.Ports, func(i, j int) bool {
		return m.Ports[i].Service+m.Ports[i].ContainerPort+m.Ports[i].HostIP < m.Ports[j].Service+m.Ports[j].ContainerPort+m.Ports[j].HostIP
	})
	for name, gws := range nets {
		n, err := cl.NetworkInspect(ctx, name, network.InspectOptions{})
		if err != nil {
			continue
		}
		m.Networks = append(m.Networks, networkFacts(n, gws))
	}
	sort.Slice(m.Networks, func(i, j int) bool { return m.Networks[i].Name < m.Networks[j].Name })
	if front != nil {
		scanFront(ctx, cl, front, opt.LogTail, m)
	}
	f.Mailu = m
}

// endpointGateways are the gateways a container's endpoint on a network
// reports (IPv4, and IPv6 when the network has it).
func endpointGateways(ep *network.EndpointSettings) []netip.Addr {
	if ep == nil {
		return nil
	}
	var out []netip.Addr
	for _, s := range []string{ep.Gateway, ep.IPv6Gateway} {
		if g, err := netip.ParseAddr(s); err == nil {
			out = append(out, g.Unmap())
		}
	}
	return out
}

// networkFacts merges the gateways IPAM names with those the network's
// endpoints report (seen), without duplicates.
func networkFacts(n network.Inspect, seen []netip.Addr) NetworkFacts {
	nf := NetworkFacts{Name: n.Name, IPv6: n.EnableIPv6}
	gws := map[netip.Addr]bool{}
	add := func(g netip.Addr) {
		if g.IsValid() && !gws[g] {
			gws[g] = true
			nf.Gateways = append(nf.Gateways, g)
		}
	}
	for _, c := range n.IPAM.Config {
		if p, err := netip.ParsePrefix(c.Subnet); err == nil {
			nf.Subnets = append(nf.Subnets, p.Masked())
		}
		if g, err := netip.ParseAddr(c.Gateway); err == nil {
			add(g.Unmap())
		}
	}
	for _, g := range seen {
		add(g)
	}
	sort.Slice(nf.Gateways, func(i, j int) bool { return nf.Gateways[i].Less(nf.Gateways[j]) })
	return nf
}

// scanFront counts recent front lines whose client is a gateway.
func scanFront(ctx context.Context, cl *client.Client, front *container.InspectResponse, tail int, m *MailuFacts) {
	gws := map[netip.Addr]bool{}
	for _, n := range m.Networks {
		for _, g := range n.Gateways {
			gws[g] = true
		}
	}
	if len(gws) == 0 {
		return
	}
	rc, err := cl.ContainerLogs(ctx, front.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(tail)})
	if err != nil {
		m.LogsErr = err.Error()
		return
	}
	defer rc.Close()
	var r io.Reader = rc
	if front.Config == nil || !front.Config.Tty {
		pr, pw := io.Pipe()
		go func() {
			_, err := stdcopy.StdCopy(pw, pw, rc)
			pw.CloseWithError(err)
		}()
		defer pr.Close()
		r = pr
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		ln := sc.Text()
		if a, ok := nginxClient(ln); ok && gws[a] {
			m.GatewayClientLines++
			if m.GatewayClientSample == "" {
				m.GatewayClientSample = ln
			}
		}
	}
}

// nginxConnected is front's per-connection line; it starts the line, where
// no attacker text can be.
var nginxConnected = regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[\w+\] \d+#\d+: \*\d+ client ([0-9a-fA-F:.]+):\d+ connected to `)

// nginxClient returns the client address of an nginx mail line: from the
// connection line, else the first "client: " field, which nginx writes
// before the login (attacker text) and the server.
func nginxClient(ln string) (netip.Addr, bool) {
	if m := nginxConnected.FindStringSubmatch(ln); m != nil {
		a, err := netip.ParseAddr(m[1])
		return a.Unmap(), err == nil
	}
	_, rest, ok := strings.Cut(ln, ", client: ")
	if !ok {
		return netip.Addr{}, false
	}
	end := strings.IndexByte(rest, ',')
	if end < 0 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(rest[:end])
	return a.Unmap(), err == nil
}

// gatherProxy finds whether the userland proxy is on: docker-proxy
// processes in this network namespace are proof; otherwise dockerd's flag,
// daemon.json, and when ports are published but no proxy runs, off.
func gatherProxy(opt Options, published bool) ProxyFacts {
	self, _ := os.Readlink(filepath.Join(opt.Proc, "self/ns/net"))
	var p ProxyFacts
	dockerdFlag := ""
	ents, _ := os.ReadDir(opt.Proc)
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		dir := filepath.Join(opt.Proc, e.Name())
		comm, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil {
			continue
		}
		name := strings.TrimSpace(string(comm))
		if name != "docker-proxy" && name != "dockerd" {
			continue
		}
		ns, err := os.Readlink(filepath.Join(dir, "ns/net"))
		if err != nil || ns != self {
			continue
		}
		if name == "docker-proxy" {
			p.Processes++
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		args := strings.Split(string(cmdline), "\x00")
		for i, a := range args {
			switch {
			case strings.HasPrefix(a, "--userland-proxy="):
				dockerdFlag = strings.TrimPrefix(a, "--userland-proxy=")
			case a == "--userland-proxy" && i+1 < len(args) && (args[i+1] == "true" || args[i+1] == "false"):
				dockerdFlag = args[i+1]
			}
		}
	}
	switch {
	case p.Processes > 0:
		p.Known, p.On, p.How = true, true, fmt.Sprintf("%d docker-proxy processes", p.Processes)
	case dockerdFlag != "":
		on, _ := strconv.ParseBool(dockerdFlag)
		p.Known, p.On, p.How = true, on, "dockerd --userland-proxy="+dockerdFlag
	default:
		if on, ok := daemonJSONProxy(opt.DaemonJSON); ok {
			p.Known, p.On, p.How = true, on, opt.DaemonJSON
		} else if published {
			// Docker starts a docker-proxy per published port when it is on.
			p.Known, p.On, p.How = true, false, "no docker-proxy process for the published ports"
		}
	}
	return p
}

func daemonJSONProxy(path string) (on, ok bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, false
	}
	var cfg map[string]any
	if json.Unmarshal(data, &cfg) != nil {
		return false, false
	}
	v, found := cfg["userland-proxy"].(bool)
	if !found {
		return true, true // Docker's default
	}
	return v, true
}

func hostIPv6() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var ips []netip.Addr
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
				ips = append(ips, ip)
			}
		}
	}
	return shield.GlobalIPv6(ips)
}

func gatherNFT(table string, prio int) NFTFacts {
	nf := NFTFacts{Table: table, WantPriority: prio}
	c, err := nftables.New()
	if err != nil {
		nf.Err = err.Error()
		return nf
	}
	t, err := c.ListTableOfFamily(table, nftables.TableFamilyINet)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) && !strings.Contains(err.Error(), "no such file") {
			nf.Err = err.Error()
		}
		return nf
	}
	nf.Present = true
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		nf.Err = err.Error()
		return nf
	}
	for _, ch := range chains {
		if ch.Table.Name != t.Name || ch.Hooknum == nil {
			continue
		}
		cf := ChainFacts{Name: ch.Name, Type: string(ch.Type), Hook: nfhook.Name(*ch.Hooknum)}
		if ch.Priority != nil {
			cf.Priority = int(*ch.Priority)
		}
		rules, err := c.GetRules(t, ch)
		if err == nil {
			cf.Rules = len(rules)
		}
		nf.Chains = append(nf.Chains, cf)
	}
	return nf
}

// gatherInput reads INPUT chains through nftables (iptables-nft, UFW,
// native nft) and, when an iptables binary exists, through it too, which
// also covers iptables-legacy.
func gatherInput() InputFacts {
	var in InputFacts
	c, err := nftables.New()
	if err != nil {
		in.Err = err.Error()
	} else {
		chains, err := c.ListChains()
		if err != nil {
			in.Err = err.Error()
		}
		for _, ch := range chains {
			if strings.HasPrefix(ch.Name, "ufw-") || strings.HasPrefix(ch.Name, "ufw6-") {
				in.UFW = true
			}
			if ch.Hooknum == nil || *ch.Hooknum != unix.NF_INET_LOCAL_IN || ch.Type != nftables.ChainTypeFilter || ch.Table.Family == nftables.TableFamilyNetdev {
				continue
			}
			if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
				in.DropRules++
			}
			rules, err := c.GetRules(ch.Table, ch)
			if err != nil {
				continue
			}
			for _, r := range rules {
				if dropsOrRejects(r.Exprs) {
					in.DropRules++
				}
			}
		}
	}
	for _, bin := range []string{"iptables-legacy", "ip6tables-legacy"} {
		path, err := exec.LookPath(bin)
		if err != nil {
			continue
		}
		out, err := exec.Command(path, "-w", "-S").Output()
		if err != nil {
			continue
		}
		for _, ln := range strings.Split(string(out), "\n") {
			switch {
			case strings.Contains(ln, "ufw-"):
				in.UFW = true
			case ln == "-P INPUT DROP":
				in.DropRules++
			case strings.HasPrefix(ln, "-A INPUT ") && (strings.Contains(ln, "-j DROP") || strings.Contains(ln, "-j REJECT")):
				in.DropRules++
			}
		}
	}
	return in
}

func dropsOrRejects(es []expr.Any) bool {
	for _, e := range es {
		switch v := e.(type) {
		case *expr.Verdict:
			if v.Kind == expr.VerdictDrop {
				return true
			}
		case *expr.Reject:
			return true
		case *expr.Target:
			if v.Name == "REJECT" || v.Name == "DROP" {
				return true
			}
		}
	}
	return false
}
