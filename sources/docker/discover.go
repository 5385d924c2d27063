package docker

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
)

// Compose labels (docker/compose pkg/api/labels.go).
const (
	LabelProject = "com.docker.compose.project"
	LabelService = "com.docker.compose.service"
	labelOneoff  = "com.docker.compose.oneoff"
)

// MailuEnv are the settings read from the Mailu containers' environment,
// by the daemon and by doctor.
var MailuEnv = []string{"SUBNET", "SUBNET6", "REAL_IP_FROM", "AUTH_RATELIMIT_EXEMPTION", "PROXY_PROTOCOL", "LOG_LEVEL", "REAL_IP_HEADER",
	"AUTH_RATELIMIT_IP", "AUTH_RATELIMIT_USER", "AUTH_RATELIMIT_EXEMPTION_LENGTH"}

// MailuInfo is what the Docker source learned about the Mailu deployment
// and its engine: what must never be banned, and what `bansctl doctor`
// checks.
type MailuInfo struct {
	// Project is the compose project followed; "" until one is found.
	Project string
	// Networks are all of the engine's networks, not only Mailu's.
	Networks []NetworkInfo
	// Env holds MailuEnv keys set in the Mailu containers (front first).
	Env map[string]string
	// ServerVersion is the engine's version, ServerAPI its newest API
	// version and ClientAPI the version negotiated with it.
	ServerVersion string
	ServerAPI     string
	ClientAPI     string
	// IPv6 is whether one of the project's networks has IPv6 enabled.
	IPv6 bool
	// Ports are front's published ports, the host's and the container's
	// numbers: the ports whose handshakes the kernel records for
	// attribution (the userland proxy dials the container's port).
	Ports []uint16
	// PublishedAll are front's host ports published on all addresses
	// (no address, 0.0.0.0 or ::), sorted: with the userland proxy on,
	// the ports IPv6 clients reach as the bridge gateway.
	PublishedAll []uint16
	// UserlandProxy is "yes" when a docker-proxy process forwards one of
	// Mailu's published ports, "no" when none does though the engine's
	// processes are visible, "unknown" otherwise.
	UserlandProxy string
}

// NetworkInfo is one Docker network.
type NetworkInfo struct {
	Name     string
	ID       string
	Driver   string
	Project  string // compose project label, if any
	Internal bool
	IPv6     bool
	Subnets  []netip.Prefix
	Gateways []netip.Addr
}

// Prefixes parses the Mailu setting key (a comma or space separated list
// of addresses and CIDRs); entries that do not parse are left out.
func (m MailuInfo) Prefixes(key string) []netip.Prefix {
	var ps []netip.Prefix
	for _, f := range strings.FieldsFunc(m.Env[key], func(r rune) bool { return r == ',' || r == ' ' }) {
		if p, ok := parsePrefix(f); ok {
			ps = append(ps, p)
		}
	}
	return ps
}

func (m MailuInfo) clone() MailuInfo {
	c := m
	c.Networks = slices.Clone(m.Networks)
	c.Env = maps.Clone(m.Env)
	c.Ports = slices.Clone(m.Ports)
	c.PublishedAll = slices.Clone(m.PublishedAll)
	return c
}

// watch follows the engine's events and keeps the services' targets and
// the Mailu facts current, reconnecting with backoff until ctx ends.
func (d *Docker) watch(ctx context.Context) {
	var bo backoff
	for ctx.Err() == nil {
		err := d.watchOnce(ctx, &bo)
		if ctx.Err() != nil {
			return
		}
		d.log.Warn("docker engine unreachable, retrying", "err", err)
		if bo.wait(ctx) != nil {
			return
		}
	}
}

func (d *Docker) watchOnce(ctx context.Context, bo *backoff) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Subscribe first, replaying a little of the past, so that nothing
	// between the listing and the subscription is missed.
	since := d.now().Add(-2 * time.Second)
	msgs, errs := d.cli.Events(ctx, events.ListOptions{
		Since:   fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		Filters: filters.NewArgs(filters.Arg("type", "container"), filters.Arg("type", "network")),
	})
	v, err := d.cli.ServerVersion(ctx)
	if err != nil {
		return fmt.Errorf("version: %w", err)
	}
	d.mu.Lock()
	d.info.ServerVersion, d.info.ServerAPI, d.info.ClientAPI = v.Version, v.APIVersion, d.cli.ClientVersion()
	d.mu.Unlock()
	starts := map[string]int{}
	if err := d.reconcile(ctx, starts); err != nil {
		return err
	}
	bo.reset()
	// Compose changes several containers at once: gather a burst of
	// events into one reconcile.
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			return fmt.Errorf("events: %w", err)
		case m := <-msgs:
			if !d.relevant(m) {
				continue
			}
			if m.Type == events.ContainerEventType && m.Action == events.ActionStart {
				starts[m.Actor.Attributes[LabelService]]++
			}
			if settle == nil {
				settle = time.After(50 * time.Millisecond)
			}
		case <-settle:
			settle = nil
			if err := d.reconcile(ctx, starts); err != nil {
				return err
			}
		}
	}
}

func (d *Docker) relevant(m events.Message) bool {
	switch m.Type {
	case events.NetworkEventType:
		return m.Action == events.ActionCreate || m.Action == events.ActionDestroy
	case events.ContainerEventType:
		switch m.Action {
		case events.ActionStart, events.ActionDie, events.ActionDestroy, events.ActionRename:
		default:
			return false
		}
		p := m.Actor.Attributes[LabelProject]
		if d.opt.Project != "" {
			return p == d.opt.Project
		}
		return p != ""
	}
	return false
}

// reconcile lists the compose containers and the networks, picks each
// service's container and refreshes the Mailu facts. starts counts start
// events per service, so that a container restarted between two listings
// still wakes its follower.
func (d *Docker) reconcile(ctx context.Context, starts map[string]int) error {
	cs, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelProject))})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	nets, err := d.cli.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return fmt.Errorf("list networks: %w", err)
	}
	proj := d.opt.Project
	if proj == "" {
		proj = d.discover(cs)
	}
	best := map[string]container.Summary{}
	for _, c := range cs {
		svc := c.Labels[LabelService]
		if c.Labels[LabelProject] != proj || proj == "" || IsOneOff(c) {
			continue
		}
		if b, ok := best[svc]; !ok || better(c, b) {
			best[svc] = c
		}
	}
	ts := map[string]target{}
	for name := range d.svcs {
		if c, ok := best[name]; ok {
			ts[name] = target{id: c.ID, running: c.State == container.StateRunning, starts: starts[name]}
		}
	}
	info := MailuInfo{Project: proj, Env: map[string]string{}}
	d.mu.Lock()
	info.ServerVersion, info.ServerAPI, info.ClientAPI = d.info.ServerVersion, d.info.ServerAPI, d.info.ClientAPI
	d.mu.Unlock()
	for _, n := range nets {
		ni := NetworkInfo{Name: n.Name, ID: n.ID, Driver: n.Driver, Project: n.Labels[LabelProject], Internal: n.Internal, IPv6: n.EnableIPv6}
		for _, c := range n.IPAM.Config {
			p, ok := parsePrefix(c.Subnet)
			if !ok {
				continue
			}
			ni.Subnets = append(ni.Subnets, p)
			if g, err := netip.ParseAddr(c.Gateway); err == nil {
				ni.Gateways = append(ni.Gateways, g.Unmap())
			} else if p.Bits() < p.Addr().BitLen() {
				// Docker's default gateway is the subnet's first address.
				ni.Gateways = append(ni.Gateways, p.Addr().Next())
			}
		}
		if proj != "" && ni.Project == proj && ni.IPv6 {
			info.IPv6 = true
		}
		info.Networks = append(info.Networks, ni)
	}
	slices.SortFunc(info.Networks, func(a, b NetworkInfo) int { return strings.Compare(a.Name, b.Name) })
	// Mailu's settings come from one env file shared by its containers;
	// read them from the followed services, front first.
	// A container's environment never changes: inspect each one once.
	envs := map[string][]string{}
	names := append([]string{"front", "admin"}, d.order...)
	for i, name := range names {
		c, ok := best[name]
		if !ok || slices.Contains(names[:i], name) {
			continue
		}
		env, ok := d.envs[c.ID]
		if !ok {
			insp, err := d.cli.ContainerInspect(ctx, c.ID)
			if err != nil || insp.Config == nil {
				continue
			}
			env = insp.Config.Env
		}
		envs[c.ID] = env
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			if _, seen := info.Env[k]; !seen && slices.Contains(MailuEnv, k) {
				info.Env[k] = v
			}
		}
	}
	d.envs = envs
	info.UserlandProxy = DetectProxy(ProxyProbe{Host: d.cli.DaemonHost(), Forwards: ForwardsOf(best["front"])}).Word()
	info.Ports = publishedPorts(best["front"])
	info.PublishedAll = publishedAll(best["front"])
	d.setTargets(proj, ts)
	d.mu.Lock()
	changed := !reflect.DeepEqual(info, d.info)
	if changed {
		d.info = info
	}
	d.mu.Unlock()
	if changed {
		d.log.Info("mailu discovered", "project", proj, "networks", len(info.Networks), "userland_proxy", info.UserlandProxy)
		if d.opt.OnMailu != nil {
			d.opt.OnMailu(info.clone())
		}
	}
	return nil
}

// publishedPorts lists the TCP ports front publishes, host and container
// numbers, sorted and without repeats.
func publishedPorts(front container.Summary) []uint16 {
	var ports []uint16
	for _, p := range front.Ports {
		if p.PublicPort != 0 && (p.Type == "" || p.Type == "tcp") {
			ports = append(ports, p.PublicPort, p.PrivatePort)
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

// publishedAll lists front's TCP host ports bound on every address.
func publishedAll(front container.Summary) []uint16 {
	var ports []uint16
	for _, p := range front.Ports {
		if p.PublicPort != 0 && (p.Type == "" || p.Type == "tcp") && AllAddresses(p.IP) {
			ports = append(ports, p.PublicPort)
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

// AllAddresses says whether a port published on hostIP listens on every
// host address.
func AllAddresses(hostIP string) bool {
	return hostIP == "" || hostIP == "0.0.0.0" || hostIP == "::"
}

// better reports whether a is a better container for its service than b:
// a running one, else the newest.
func better(a, b container.Summary) bool {
	ar, br := a.State == container.StateRunning, b.State == container.StateRunning
	if ar != br {
		return ar
	}
	return a.Created > b.Created
}

// discover names the compose project that runs Mailu (ChooseProject),
// warning when there are several and the choice is not the one followed.
func (d *Docker) discover(cs []container.Summary) string {
	name, all := ChooseProject("", cs)
	if len(all) > 1 && name != d.project() {
		d.log.Warn("several Mailu compose projects; set docker.project to choose", "projects", all, "following", name)
	}
	return name
}

// ChooseProject is the one rule, for the daemon's source and doctor alike,
// for which compose project is Mailu: want when it is set; else a project
// with both services front and admin (images are not checked: registries
// and prefixes vary), one whose front runs first, then by name. all lists
// every candidate in that order.
func ChooseProject(want string, cs []container.Summary) (name string, all []string) {
	if want != "" {
		return want, []string{want}
	}
	type seen struct{ front, admin, running bool }
	projects := map[string]*seen{}
	for _, c := range cs {
		p := c.Labels[LabelProject]
		if p == "" || IsOneOff(c) {
			continue
		}
		s := projects[p]
		if s == nil {
			s = &seen{}
			projects[p] = s
		}
		switch c.Labels[LabelService] {
		case "front":
			s.front = true
			s.running = s.running || c.State == container.StateRunning
		case "admin":
			s.admin = true
		}
	}
	for p, s := range projects {
		if s.front && s.admin {
			all = append(all, p)
		}
	}
	slices.SortFunc(all, func(a, b string) int {
		if ra, rb := projects[a].running, projects[b].running; ra != rb {
			if ra {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	if len(all) == 0 {
		return "", nil
	}
	return all[0], all
}

// IsOneOff reports whether c is a `docker compose run` container, not one
// of the project's services.
func IsOneOff(c container.Summary) bool {
	return strings.EqualFold(c.Labels[labelOneoff], "true")
}
