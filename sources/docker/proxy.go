package docker

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
)

// Proxy is what can be told about Docker's userland proxy: the one rule,
// for the daemon's discovery and doctor alike.
type Proxy struct {
	// Known is false when nothing could tell.
	Known bool
	On    bool
	// How names the evidence: "2 docker-proxy processes for front's
	// ports", "dockerd --userland-proxy=false", a daemon.json path, "no
	// docker-proxy process for the published ports".
	How string
	// Processes counts the docker-proxy processes forwarding front's ports.
	Processes int
}

// Word is discovery's summary: "yes", "no" or "unknown".
func (p Proxy) Word() string {
	switch {
	case !p.Known:
		return "unknown"
	case p.On:
		return "yes"
	}
	return "no"
}

// Forward is one port front publishes, as docker-proxy's flags name it.
type Forward struct {
	HostPort, ContainerIP, ContainerPort string
}

// ForwardsOf lists front's published TCP ports for each of its addresses.
func ForwardsOf(front container.Summary) []Forward {
	var ips []string
	if front.NetworkSettings != nil {
		for _, n := range front.NetworkSettings.Networks {
			if n != nil && n.IPAddress != "" {
				ips = append(ips, n.IPAddress)
			}
			if n != nil && n.GlobalIPv6Address != "" {
				ips = append(ips, n.GlobalIPv6Address)
			}
		}
	}
	var out []Forward
	for _, p := range front.Ports {
		if p.PublicPort == 0 || (p.Type != "" && p.Type != "tcp") {
			continue
		}
		for _, ip := range ips {
			out = append(out, Forward{strconv.Itoa(int(p.PublicPort)), ip, strconv.Itoa(int(p.PrivatePort))})
		}
	}
	return out
}

// ProxyProbe says where to look.
type ProxyProbe struct {
	// Proc is the procfs root; "" is /proc.
	Proc string
	// DaemonJSON is Docker's config file; "" is /etc/docker/daemon.json.
	DaemonJSON string
	// Host is the engine address in use: it picks its dockerd when the
	// machine runs several (tests do, each in its own namespace).
	Host string
	// Forwards are front's published ports.
	Forwards []Forward
}

// DetectProxy decides, strongest evidence first: a docker-proxy process
// forwarding one of front's ports (host port, container address and port:
// another engine's proxy does not match); else the engine's own dockerd
// flag; else daemon.json; else, when front publishes ports and its dockerd
// is visible but runs no proxy for them, off. It sees processes only when
// it shares the host's process namespace.
func DetectProxy(p ProxyProbe) Proxy {
	proc := p.Proc
	if proc == "" {
		proc = "/proc"
	}
	want := map[Forward]bool{}
	for _, f := range p.Forwards {
		want[f] = true
	}
	self, _ := os.Readlink(filepath.Join(proc, "self/ns/net"))
	var out Proxy
	var dockerds []dockerd
	ents, _ := os.ReadDir(proc)
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		dir := filepath.Join(proc, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		switch filepath.Base(args[0]) {
		case "docker-proxy":
			f := Forward{flagValue(args, "-host-port"), flagValue(args, "-container-ip"), flagValue(args, "-container-port")}
			if want[f] {
				out.Processes++
			}
		case "dockerd":
			ns, _ := os.Readlink(filepath.Join(dir, "ns/net"))
			dockerds = append(dockerds, dockerd{args: args, here: ns != "" && ns == self})
		}
	}
	if out.Processes > 0 {
		out.Known, out.On, out.How = true, true, fmt.Sprintf("%d docker-proxy processes for front's ports", out.Processes)
		return out
	}
	engine, found := pickDockerd(dockerds, p.Host)
	if found {
		if v := userlandFlag(engine.args); v != "" {
			on, err := strconv.ParseBool(v)
			if err == nil {
				out.Known, out.On, out.How = true, on, "dockerd --userland-proxy="+v
				return out
			}
		}
	}
	path := p.DaemonJSON
	if path == "" {
		path = "/etc/docker/daemon.json"
	}
	if on, ok := daemonJSONProxy(path); ok {
		out.Known, out.On, out.How = true, on, path
		return out
	}
	if found && len(p.Forwards) > 0 {
		// Docker starts a docker-proxy per published port when it is on.
		out.Known, out.On, out.How = true, false, "no docker-proxy process for the published ports"
	}
	return out
}

type dockerd struct {
	args []string
	here bool // in the prober's network namespace
}

// pickDockerd finds the engine at host: the dockerd whose flags name its
// socket, else the one in the prober's network namespace, else the only
// one.
func pickDockerd(ds []dockerd, host string) (dockerd, bool) {
	if sock, ok := strings.CutPrefix(host, "unix://"); ok && sock != "" {
		for _, d := range ds {
			for _, a := range d.args {
				if strings.Contains(a, sock) {
					return d, true
				}
			}
		}
	}
	var here []dockerd
	for _, d := range ds {
		if d.here {
			here = append(here, d)
		}
	}
	switch {
	case len(here) == 1:
		return here[0], true
	case len(ds) == 1:
		return ds[0], true
	}
	return dockerd{}, false
}

// userlandFlag is dockerd's --userland-proxy value, "" when not given.
func userlandFlag(args []string) string {
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "--userland-proxy="):
			return strings.TrimPrefix(a, "--userland-proxy=")
		case a == "--userland-proxy" && i+1 < len(args) && (args[i+1] == "true" || args[i+1] == "false"):
			return args[i+1]
		case a == "--userland-proxy":
			return "true"
		}
	}
	return ""
}

// daemonJSONProxy reads "userland-proxy" from Docker's config; a file
// without the key means Docker's default, on.
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
		return true, true
	}
	return v, true
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}
