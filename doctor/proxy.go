package doctor

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

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
