package seen

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// FuzzSeenInput feeds odd addresses (any bytes, text with zones, mapped
// forms) and ports to a real record holding one real connection: Seen must
// never panic or fail for a valid address, and must answer true exactly
// for that connection's address (with its port, or port 0).
func FuzzSeenInput(f *testing.F) {
	for _, s := range []string{client4, "::ffff:" + client4, client6, client6 + "%eth0", "0.0.0.0", "::", "fe80::1%lo", "::ffff:0.0.0.0", "", "not an address"} {
		f.Add(s, []byte(nil), uint16(0))
		f.Add(s, []byte(nil), uint16(portIn))
	}
	f.Add("", []byte{198, 51, 100, 2}, uint16(0))
	f.Add("", make([]byte, 16), uint16(65535))
	tp := buildTopo(f)
	r := openRecord(f, tp.host, Options{}, portIn)
	listen(f, tp.host, ":8025")
	_, port := mustDial(f, tp.client, hostPort(hostC4, portIn))
	waitSeen(f, r, client4, port, true, 2*time.Second)
	real := netip.MustParseAddr(client4)
	ctx := context.Background()

	f.Fuzz(func(t *testing.T, text string, raw []byte, p uint16) {
		a, err := netip.ParseAddr(text)
		if err != nil {
			a, _ = netip.AddrFromSlice(raw)
		}
		if p == 1 {
			p = port // reach the hit with some inputs
		}
		s, err := r.Seen(ctx, a, p)
		if !a.IsValid() {
			if err == nil {
				t.Fatalf("Seen(%v) of an invalid address: no error", a)
			}
			return
		}
		if err != nil {
			t.Fatalf("Seen(%s, %d): %v", a, p, err)
		}
		want := a.Unmap().WithZone("") == real && (p == 0 || p == port)
		if s.Seen != want {
			t.Fatalf("Seen(%s, %d) = %v, want %v", a, p, s.Seen, want)
		}
		set, key := lookupKey(a, p)
		n := map[string]int{Seen4: 8, Seen4A: 4, Seen6: 20, Seen6A: 16}[set]
		if len(key) != n {
			t.Fatalf("key for %s in %s is %d bytes, want %d", a, set, len(key), n)
		}
	})
}
