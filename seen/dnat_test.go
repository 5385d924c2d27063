package seen

import (
	"testing"
	"time"

	"github.com/bansd/bansd/internal/netnstest"
)

// TestPublishedPortDNAT: Docker's `-p 8025:25` rewrites the destination at
// dstnat (-100). The record runs before it, so it matches the published
// host port and records the client's own address and port, and the
// container's port needs no entry.
func TestPublishedPortDNAT(t *testing.T) {
	tp := buildTopo(t)
	ctr := netnstest.New(t)
	h := tp.host
	sysctl(t, h, "net/ipv4/ip_forward", "1")
	h.Run(t, "ip", "link", "add", "hK", "type", "veth", "peer", "name", "eth0", "netns", ctr.Name)
	h.Run(t, "ip", "link", "set", "hK", "up")
	h.Run(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "hK")
	ctr.Run(t, "ip", "link", "set", "eth0", "up")
	ctr.Run(t, "ip", "addr", "add", "192.0.2.2/24", "dev", "eth0")
	ctr.Run(t, "ip", "route", "add", "default", "via", "192.0.2.1")
	h.Run(t, "nft", "add", "table", "ip", "nat")
	h.Run(t, "nft", "add", "chain", "ip", "nat", "pre", "{ type nat hook prerouting priority -100; }")
	h.Run(t, "nft", "add", "rule", "ip", "nat", "pre", "tcp", "dport", "8025", "dnat", "to", "192.0.2.2:25")

	r := openRecord(t, h, Options{}, portIn)
	listen(t, ctr, ":25")
	_, p := mustDial(t, tp.client, hostPort(hostC4, portIn))
	waitSeen(t, r, client4, p, true, 2*time.Second)
	// The container's replies (192.0.2.2:25 → client) are not recorded.
	if s := mustSeen(t, r, "192.0.2.2", 25); s.Seen {
		t.Error("reply direction recorded")
	}
	if s := mustSeen(t, r, "192.0.2.2", 0); s.Seen {
		t.Error("container address recorded")
	}
}
