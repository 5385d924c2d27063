package seen

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// TestSpoofedSYN: an attacker who can forge source addresses but cannot see
// the replies (the internet's blind spoofer) sends SYNs, retransmitted SYNs,
// blind ACKs with guessed numbers and bare ACKs (conntrack's mid-stream
// pickup) in a victim's name. The record must stay empty for the victim.
// A probe table beside it records with "ct state established" instead, and
// shows that that rule would have been fooled.
func TestSpoofedSYN(t *testing.T) {
	for _, fam := range []struct{ name, silent, client, hostAtt, nfproto, saddr string }{
		{"ipv4", silent4, client4, hostX4, "ip", "ip saddr"},
		{"ipv6", silent6, client6, hostX6, "ip6", "ip6 saddr"},
	} {
		t.Run(fam.name, func(t *testing.T) {
			tp := buildTopo(t)
			r := openRecord(t, tp.host, Options{}, portIn)
			listen(t, tp.host, ":8025")
			typ := "ipv4_addr"
			if fam.name == "ipv6" {
				typ = "ipv6_addr"
			}
			h := tp.host
			h.Run(t, "nft", "add", "table", "inet", "probe")
			h.Run(t, "nft", "add", "chain", "inet", "probe", "pre", "{ type filter hook prerouting priority -180; policy accept; }")
			h.Run(t, "nft", "add", "set", "inet", "probe", "est", "{ type "+typ+" . inet_service; flags dynamic,timeout; timeout 1h; }")
			h.Run(t, "nft", "add", "rule", "inet", "probe", "pre", "tcp", "dport", "8025", "ct", "direction", "original", "ct", "state", "established",
				"update", "@est", "{ "+fam.saddr+" . tcp sport }")
			h.Run(t, "nft", "add", "rule", "inet", "probe", "pre", "tcp", "dport", "8025", "counter")

			raw := newRawSender(t, tp.attacker, hostXMAC)
			dst := netip.MustParseAddr(fam.hostAtt)
			silent := netip.MustParseAddr(fam.silent)
			victim := netip.MustParseAddr(fam.client)
			rng := rand.New(rand.NewPCG(1, 2))
			type attempt struct {
				src  netip.Addr
				port uint16
				syn  bool
			}
			attempts := []attempt{
				{silent, 40000, true},  // SYN-ACK lost: conntrack stays in SYN_RECV
				{victim, 40001, true},  // the real client answers the SYN-ACK with RST
				{silent, 40002, false}, // no SYN: bare ACKs, picked up mid-stream
			}
			for _, a := range attempts {
				const isn = 1000
				if a.syn {
					raw.send(t, a.src, dst, a.port, portIn, isn, 0, tcpSYN)
					time.Sleep(20 * time.Millisecond)
					// A retransmitted SYN after the SYN-ACK: conntrack calls
					// it "established" (a reply was seen).
					raw.send(t, a.src, dst, a.port, portIn, isn, 0, tcpSYN)
					time.Sleep(20 * time.Millisecond)
				}
				for range 64 {
					raw.send(t, a.src, dst, a.port, portIn, isn+1, rng.Uint32(), tcpACK)
				}
				raw.send(t, a.src, dst, a.port, portIn, isn+1, 1, tcpACK)
			}
			time.Sleep(200 * time.Millisecond)
			out := h.Run(t, "nft", "list", "chain", "inet", "probe", "pre")
			t.Logf("probe chain:\n%s", out)
			for _, a := range attempts {
				if s := mustSeen(t, r, a.src.String(), a.port); s.Seen {
					t.Errorf("spoofed %s port %d recorded", a.src, a.port)
				}
			}
			if s := mustSeen(t, r, fam.silent, 0); s.Seen {
				t.Errorf("spoofed %s recorded (any port)", fam.silent)
			}
			if s := mustSeen(t, r, fam.client, 0); s.Seen {
				t.Errorf("spoofed %s recorded (any port)", fam.client)
			}
			// The alternative rule is fooled by the spoofed, retransmitted SYN.
			if !nftGet(h, "probe", "est", fam.silent+" . 40000") {
				t.Errorf("the probe's ct-state-established set does not hold %s . 40000: the spoofed packets did not get the SYN-ACK this test relies on", fam.silent)
			}
			// The same path records a real connection.
			_, p := mustDial(t, tp.client, hostPort(hostOf(fam.name), portIn))
			waitSeen(t, r, fam.client, p, true, 2*time.Second)
			if !nftGet(h, "probe", "est", fam.client+" . "+strconv.Itoa(int(p))) {
				t.Error("probe did not record the real connection either")
			}
		})
	}
}

func hostOf(fam string) string {
	if fam == "ipv6" {
		return hostC6
	}
	return hostC4
}
