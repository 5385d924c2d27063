package integration

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/bansd/bansd/internal/dockertest"
	"golang.org/x/sys/unix"
)

// sendSYN sends, from inside p's namespace, raw TCP SYNs whose source is
// src:sport, an address the peer does not own: a spoofer's half-open
// connection. The SYN-ACKs go to src, which nobody answers for.
func sendSYN(p *peer, src netip.Addr, sport uint16, dst netip.Addr, dport uint16, n int) error {
	pkt := synPacket(src, sport, dst, dport)
	return p.ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return fmt.Errorf("raw socket: %w", err)
		}
		defer unix.Close(fd)
		to := &unix.SockaddrInet4{Addr: dst.As4()}
		for range n {
			if err := unix.Sendto(fd, pkt, 0, to); err != nil {
				return fmt.Errorf("send SYN: %w", err)
			}
		}
		return nil
	})
}

// synPacket is an IPv4 header (IP_HDRINCL: the kernel fills in the
// checksum) and a TCP SYN with its checksum.
func synPacket(src netip.Addr, sport uint16, dst netip.Addr, dport uint16) []byte {
	b := make([]byte, 40)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], 40)
	binary.BigEndian.PutUint16(b[4:], sport) // IP id
	b[8] = 64
	b[9] = unix.IPPROTO_TCP
	s4, d4 := src.As4(), dst.As4()
	copy(b[12:16], s4[:])
	copy(b[16:20], d4[:])
	tcp := b[20:]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], 0x5ba1d000|uint32(sport))
	tcp[12] = 5 << 4
	tcp[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	var sum uint32
	for i := 0; i < 8; i += 2 { // pseudo-header addresses
		sum += uint32(binary.BigEndian.Uint16(b[12+i:]))
	}
	sum += unix.IPPROTO_TCP + uint32(len(tcp))
	for i := 0; i < len(tcp); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(tcp[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(tcp[16:], ^uint16(sum))
	return b
}

// conntrackEntry returns the engine namespace's conntrack entry for the
// original direction src:sport -> port dport, "" when there is none.
func conntrackEntry(t testing.TB, e *dockertest.Engine, src netip.Addr, sport, dport uint16) string {
	t.Helper()
	out := e.Exec(t, "cat", "/proc/net/nf_conntrack")
	want := fmt.Sprintf("src=%s ", src)
	ports := fmt.Sprintf("sport=%d dport=%d ", sport, dport)
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, want); i >= 0 && strings.Contains(l[i:], ports) {
			return l
		}
	}
	return ""
}
