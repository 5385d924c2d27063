// Package wire holds the conversions between bansd's packages that both
// binaries need (the packages themselves do not import each other that
// way): the daemon and `bansctl replay --docker` protect the same
// addresses.
package wire

import (
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/sources/docker"
)

// Protected turns what Docker told us into never-ban inputs: every Docker
// network and gateway, and Mailu's own trusted settings.
func Protected(info docker.MailuInfo) jail.Protected {
	var p jail.Protected
	for _, n := range info.Networks {
		p.Networks = append(p.Networks, n.Subnets...)
		p.Gateways = append(p.Gateways, n.Gateways...)
	}
	for _, s := range info.Prefixes("SUBNET") {
		if s.Addr().Is4() && !p.Subnet.IsValid() {
			p.Subnet = s
		}
	}
	for _, s := range info.Prefixes("SUBNET6") {
		if s.Addr().Is6() && !p.Subnet6.IsValid() {
			p.Subnet6 = s
		}
	}
	p.RealIPFrom = info.Prefixes("REAL_IP_FROM")
	p.RatelimitExemption = info.Prefixes("AUTH_RATELIMIT_EXEMPTION")
	return p
}
