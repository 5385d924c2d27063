package doctor

import (
	"bufio"
	"context"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bansd/bansd/sources/docker"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

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
			m.forwards = docker.ForwardsOf(c)
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
