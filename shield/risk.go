// Package shield closes Mailu's IPv6 open relay: while Docker's userland
// proxy hands IPv6 clients to an IPv4-only Mailu network as the bridge
// gateway (an address Postfix trusts), it refuses those IPv6 connections
// with a TCP reset in bansd's own nftables table.
package shield

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Facts are what discovery knows about the Docker host and the Mailu
// network; the shield decides from them alone.
type Facts struct {
	// UserlandProxy: dockerd runs docker-proxy for published ports.
	UserlandProxy bool
	// PublishedAll are host ports published on all addresses (0.0.0.0/::).
	PublishedAll []uint16
	// HostIPv6: the host has a global IPv6 address.
	HostIPv6 bool
	// MailuIPv6: the Mailu network has IPv6 (so Docker DNATs IPv6 itself
	// and clients keep their addresses).
	MailuIPv6 bool
}

// Risk returns the ports to shield, sorted and without duplicates, and why.
// No ports means the risk is absent; why then says which fact removes it.
func Risk(f Facts) (ports []uint16, why string) {
	var absent []string
	if !f.UserlandProxy {
		absent = append(absent, "the userland proxy is off")
	}
	if f.MailuIPv6 {
		absent = append(absent, "the Mailu network has IPv6")
	}
	if !f.HostIPv6 {
		absent = append(absent, "the host has no global IPv6 address")
	}
	ps := slices.Clone(f.PublishedAll)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	if len(ps) > 0 && ps[0] == 0 {
		ps = ps[1:] // port 0 is never a published port; a discovery slip must not shield "all"
	}
	if len(ps) == 0 {
		absent = append(absent, "no Mailu port is published on all addresses")
	}
	if len(absent) > 0 {
		return nil, "no open-relay risk: " + strings.Join(absent, ", ")
	}
	list := make([]string, len(ps))
	for i, p := range ps {
		list[i] = fmt.Sprint(p)
	}
	return ps, fmt.Sprintf("OPEN RELAY RISK: Docker's userland proxy hands IPv6 clients of ports %s to the IPv4-only Mailu network "+
		"as the bridge gateway, an address inside Mailu's trusted SUBNET, so Postfix relays for them; "+
		"IPv6 connections to those ports are refused with a TCP reset",
		strings.Join(list, ","))
}

// GlobalIPv6 returns the addresses of addrs that IPv6 clients on the
// Internet can reach: the ones that make Facts.HostIPv6 true.
func GlobalIPv6(addrs []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, ip := range addrs {
		if ip.Is4() || ip.Is4In6() || !ip.IsGlobalUnicast() || ip.IsPrivate() {
			continue
		}
		out = append(out, ip)
	}
	return out
}
