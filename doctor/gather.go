package doctor

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/bansd/bansd/sources/docker"

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
	var forwards []docker.Forward
	if f.Mailu != nil {
		forwards = f.Mailu.forwards
	}
	p := docker.DetectProxy(docker.ProxyProbe{Proc: opt.Proc, DaemonJSON: opt.DaemonJSON, Host: f.Docker.Host, Forwards: forwards})
	f.Proxy = ProxyFacts{Known: p.Known, On: p.On, How: p.How, Processes: p.Processes}
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
