package seen

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/roottest"

	"golang.org/x/sys/unix"

	"github.com/bansd/bansd/internal/netnstest"
)

// Addresses: documentation prefixes only, inside the test's namespaces.
const (
	hostC4, hostC6      = "198.51.100.1", "2001:db8:a::1" // the host on the client's link
	client4, client6    = "198.51.100.2", "2001:db8:a::2"
	silent4, silent6    = "198.51.100.3", "2001:db8:a::3" // on the client link, answers nothing
	hostX4, hostX6      = "203.0.113.1", "2001:db8:b::1"  // the host on the attacker's link
	attack4, attack6    = "203.0.113.2", "2001:db8:b::2"
	hostCMAC, clientMAC = "02:00:00:00:0a:01", "02:00:00:00:0a:02"
	silentMAC           = "02:00:00:00:0a:99" // nobody has it: frames to it are lost
	hostXMAC, attackMAC = "02:00:00:00:0b:01", "02:00:00:00:0b:02"
)

type topo struct {
	host, client, attacker *netnstest.NS
}

func requireRoot(t testing.TB) {
	t.Helper()
	roottest.Require(t, "nftables in network namespaces")
}

// buildTopo links a client and an attacker to the host, each on its own
// veth, with permanent neighbours (no NDP/ARP timing in the results) and
// reverse-path filtering off on the host, so spoofed packets reach its TCP
// stack as they would from the internet.
func buildTopo(t testing.TB) topo {
	t.Helper()
	requireRoot(t)
	tp := topo{host: netnstest.New(t), client: netnstest.New(t), attacker: netnstest.New(t)}
	h := tp.host
	for _, ns := range []*netnstest.NS{tp.host, tp.client, tp.attacker} {
		sysctl(t, ns, "net/ipv6/conf/all/accept_dad", "0")
		sysctl(t, ns, "net/ipv6/conf/default/accept_dad", "0")
	}
	sysctl(t, h, "net/ipv4/conf/all/rp_filter", "0")
	sysctl(t, h, "net/ipv4/conf/default/rp_filter", "0")
	type link struct {
		peer             *netnstest.NS
		hostIf           string
		hostMAC, peerMAC string
		hostV4, hostV6   string
		v4, v6           string
	}
	for _, l := range []link{
		{tp.client, "hC", hostCMAC, clientMAC, hostC4, hostC6, client4, client6},
		{tp.attacker, "hX", hostXMAC, attackMAC, hostX4, hostX6, attack4, attack6},
	} {
		h.Run(t, "ip", "link", "add", l.hostIf, "address", l.hostMAC, "type", "veth", "peer", "name", "eth0", "address", l.peerMAC, "netns", l.peer.Name)
		h.Run(t, "ip", "link", "set", l.hostIf, "up")
		h.Run(t, "ip", "addr", "add", l.hostV4+"/24", "dev", l.hostIf)
		h.Run(t, "ip", "addr", "add", l.hostV6+"/64", "dev", l.hostIf, "nodad")
		l.peer.Run(t, "ip", "link", "set", "eth0", "up")
		l.peer.Run(t, "ip", "addr", "add", l.v4+"/24", "dev", "eth0")
		l.peer.Run(t, "ip", "addr", "add", l.v6+"/64", "dev", "eth0", "nodad")
		l.peer.Run(t, "ip", "route", "add", "default", "via", l.hostV4)
		l.peer.Run(t, "ip", "-6", "route", "add", "default", "via", l.hostV6)
		l.peer.Run(t, "ip", "neigh", "replace", l.hostV4, "lladdr", l.hostMAC, "dev", "eth0", "nud", "permanent")
		l.peer.Run(t, "ip", "-6", "neigh", "replace", l.hostV6, "lladdr", l.hostMAC, "dev", "eth0", "nud", "permanent")
		h.Run(t, "ip", "neigh", "replace", l.v4, "lladdr", l.peerMAC, "dev", l.hostIf, "nud", "permanent")
		h.Run(t, "ip", "-6", "neigh", "replace", l.v6, "lladdr", l.peerMAC, "dev", l.hostIf, "nud", "permanent")
		sysctl(t, h, "net/ipv4/conf/"+l.hostIf+"/rp_filter", "0")
	}
	h.Run(t, "ip", "neigh", "replace", silent4, "lladdr", silentMAC, "dev", "hC", "nud", "permanent")
	h.Run(t, "ip", "-6", "neigh", "replace", silent6, "lladdr", silentMAC, "dev", "hC", "nud", "permanent")
	return tp
}

func sysctl(t testing.TB, ns *netnstest.NS, key, value string) {
	t.Helper()
	if err := ns.Do(func() error { return os.WriteFile("/proc/sys/"+key, []byte(value), 0) }); err != nil {
		t.Fatalf("sysctl %s=%s in %s: %v", key, value, ns.Name, err)
	}
}

// openRecord opens and ensures a record in ns, with the given ports.
func openRecord(t testing.TB, ns *netnstest.NS, opts Options, ports ...uint16) *Record {
	t.Helper()
	opts.NetNS = ns.Fd()
	if opts.Table == "" {
		opts.Table = "bansd"
	}
	r, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := r.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(ports) > 0 {
		if err := r.SetPorts(context.Background(), ports); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// listen accepts on addr inside ns and keeps every connection open, reading
// and discarding, until the peer closes or the test ends.
func listen(t testing.TB, ns *netnstest.NS, addr string) {
	t.Helper()
	ns.Serve(t, addr, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
}

// dial connects from ns; the caller closes the connection.
func dial(ns *netnstest.NS, addr string) (*net.TCPConn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		c, err = (&net.Dialer{Timeout: time.Second}).Dial("tcp", addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

func mustDial(t testing.TB, ns *netnstest.NS, addr string) (*net.TCPConn, uint16) {
	t.Helper()
	c, err := dial(ns, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// One data segment after the handshake: the final ACK alone already
	// records, this makes sure the test does not hinge on it.
	if _, err := c.Write([]byte("EHLO x\r\n")); err != nil {
		t.Fatal(err)
	}
	return c, uint16(c.LocalAddr().(*net.TCPAddr).Port)
}

func hostPort(a string, p uint16) string { return net.JoinHostPort(a, strconv.Itoa(int(p))) }

func mustSeen(t testing.TB, r *Record, a string, port uint16) Sighting {
	t.Helper()
	s, err := r.Seen(context.Background(), netip.MustParseAddr(a), port)
	if err != nil {
		t.Fatalf("Seen(%s, %d): %v", a, port, err)
	}
	return s
}

// waitSeen polls, because the last packet of a handshake may still be on
// its way through the veth when the dialer returns.
func waitSeen(t testing.TB, r *Record, a string, port uint16, want bool, limit time.Duration) Sighting {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s := mustSeen(t, r, a, port)
		if s.Seen == want {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("Seen(%s, %d) = %v after %s, want %v", a, port, s.Seen, limit, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rawSender sends hand-built TCP segments from the attacker's eth0 with any
// source address (AF_PACKET: the kernel checks nothing of the IP header).
type rawSender struct {
	fd      int
	ifindex int
	dstMAC  net.HardwareAddr
}

func newRawSender(t testing.TB, ns *netnstest.NS, dstMAC string) *rawSender {
	t.Helper()
	mac, err := net.ParseMAC(dstMAC)
	if err != nil {
		t.Fatal(err)
	}
	s := &rawSender{dstMAC: mac}
	err = ns.Do(func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		s.ifindex = ifc.Index
		s.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		t.Fatalf("raw socket in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

const (
	tcpFIN = 1 << 0
	tcpSYN = 1 << 1
	tcpRST = 1 << 2
	tcpACK = 1 << 4
)

// send one TCP segment src:sport → dst:dport with the given flags.
func (s *rawSender) send(t testing.TB, src, dst netip.Addr, sport, dport uint16, seq, ack uint32, flags byte) {
	t.Helper()
	pkt := buildTCP(src, dst, sport, dport, seq, ack, flags)
	proto := uint16(unix.ETH_P_IP)
	if src.Is6() {
		proto = unix.ETH_P_IPV6
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: s.ifindex, Halen: 6}
	copy(sa.Addr[:], s.dstMAC)
	if err := unix.Sendto(s.fd, pkt, 0, sa); err != nil {
		t.Fatalf("sendto: %v", err)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// buildTCP returns an IPv4 or IPv6 packet holding a 20-byte TCP header.
func buildTCP(src, dst netip.Addr, sport, dport uint16, seq, ack uint32, flags byte) []byte {
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12] = 5 << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	var pseudo []byte
	pseudo = append(pseudo, src.AsSlice()...)
	pseudo = append(pseudo, dst.AsSlice()...)
	if src.Is4() {
		pseudo = append(pseudo, 0, unix.IPPROTO_TCP, 0, 20)
	} else {
		pseudo = append(pseudo, 0, 0, 0, 20, 0, 0, 0, unix.IPPROTO_TCP)
	}
	binary.BigEndian.PutUint16(tcp[16:], checksum(append(pseudo, tcp...)))
	if src.Is4() {
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], 40)
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8] = 64
		ip[9] = unix.IPPROTO_TCP
		copy(ip[12:], src.AsSlice())
		copy(ip[16:], dst.AsSlice())
		binary.BigEndian.PutUint16(ip[10:], checksum(ip))
		return append(ip, tcp...)
	}
	ip := make([]byte, 40)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], 20)
	ip[6] = unix.IPPROTO_TCP
	ip[7] = 64
	copy(ip[8:], src.AsSlice())
	copy(ip[24:], dst.AsSlice())
	return append(ip, tcp...)
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func nftGet(ns *netnstest.NS, table, set, elem string) bool {
	_, err := ns.Exec("nft", "get", "element", "inet", table, set, fmt.Sprintf("{ %s }", elem))
	return err == nil
}
