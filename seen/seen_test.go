package seen

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/netnstest"
)

const (
	portIn  = 8025 // in the ports set
	portOut = 8026 // listening, not in the ports set
	portSyn = 8027 // in the ports set; the client never sees the SYN-ACK
)

func TestHandshakeRecorded(t *testing.T) {
	for _, fam := range []struct{ name, client, host string }{
		{"ipv4", client4, hostC4},
		{"ipv6", client6, hostC6},
	} {
		t.Run(fam.name, func(t *testing.T) {
			tp := buildTopo(t)
			r := openRecord(t, tp.host, Options{}, portIn, portSyn)
			listen(t, tp.host, ":8025")
			listen(t, tp.host, ":8026")
			listen(t, tp.host, ":8027")

			// Not in the ports set: nothing recorded, not even the address.
			_, outPort := mustDial(t, tp.client, hostPort(fam.host, portOut))
			time.Sleep(50 * time.Millisecond)
			if s := mustSeen(t, r, fam.client, outPort); s.Seen {
				t.Errorf("connection to port %d (not published) recorded", portOut)
			}
			if s := mustSeen(t, r, fam.client, 0); s.Seen {
				t.Errorf("address recorded from a connection to port %d (not published)", portOut)
			}

			// Only a SYN: the client drops the SYN-ACK, so the handshake
			// never completes (conntrack reaches SYN_RECV, never ASSURED).
			tp.client.Run(t, "nft", "add", "table", "inet", "t")
			tp.client.Run(t, "nft", "add", "chain", "inet", "t", "in", "{ type filter hook input priority 0; policy accept; }")
			tp.client.Run(t, "nft", "add", "rule", "inet", "t", "in", "tcp", "sport", "8027", "drop")
			if c, err := dial(tp.client, hostPort(fam.host, portSyn)); err == nil {
				c.Close()
				t.Fatal("dial with dropped SYN-ACKs succeeded")
			}
			if s := mustSeen(t, r, fam.client, 0); s.Seen {
				t.Error("a connection that only got to SYN was recorded")
			}

			c, port := mustDial(t, tp.client, hostPort(fam.host, portIn))
			waitSeen(t, r, fam.client, port, true, 2*time.Second)
			waitSeen(t, r, fam.client, 0, true, time.Second)
			for _, other := range []uint16{port + 1, port - 1, portIn} {
				if s := mustSeen(t, r, fam.client, other); s.Seen {
					t.Errorf("Seen(%s, %d) = true; only port %d connected", fam.client, other, port)
				}
			}
			if s := mustSeen(t, r, hostX4, port); s.Seen {
				t.Error("another address reads as seen")
			}
			s := mustSeen(t, r, fam.client, port)
			if s.Age < 0 || s.Age > 5*time.Second {
				t.Errorf("Age = %s just after the connection", s.Age)
			}
			c.Close()
		})
	}
}

func TestMappedAndOddInput(t *testing.T) {
	tp := buildTopo(t)
	r := openRecord(t, tp.host, Options{}, portIn)
	listen(t, tp.host, ":8025")
	_, port := mustDial(t, tp.client, hostPort(hostC4, portIn))
	waitSeen(t, r, client4, port, true, 2*time.Second)
	if s := mustSeen(t, r, "::ffff:"+client4, port); !s.Seen {
		t.Error("IPv4-mapped address not unmapped")
	}
	if s := mustSeen(t, r, "::ffff:"+client4, 0); !s.Seen {
		t.Error("IPv4-mapped address (any port) not unmapped")
	}
	_, port6 := mustDial(t, tp.client, hostPort(hostC6, portIn))
	waitSeen(t, r, client6, port6, true, 2*time.Second)
	if s := mustSeen(t, r, client6+"%eth0", port6); !s.Seen {
		t.Error("address with a zone not found")
	}
	ctx := context.Background()
	if _, err := r.Seen(ctx, netip.Addr{}, 25); err == nil {
		t.Error("zero address: no error")
	}
	for _, a := range []string{"0.0.0.0", "::", "255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::1%eth0", "::1"} {
		for _, p := range []uint16{0, 1, 65535} {
			if s := mustSeen(t, r, a, p); s.Seen {
				t.Errorf("Seen(%s, %d) = true", a, p)
			}
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.Seen(cctx, netip.MustParseAddr(client4), port); err == nil {
		t.Error("cancelled context: no error")
	}
}

func TestExpiry(t *testing.T) {
	tp := buildTopo(t)
	r := openRecord(t, tp.host, Options{Timeout: 2 * time.Second}, portIn)
	listen(t, tp.host, ":8025")
	c, port := mustDial(t, tp.client, hostPort(hostC4, portIn))
	waitSeen(t, r, client4, port, true, 2*time.Second)
	time.Sleep(1100 * time.Millisecond)
	if s := mustSeen(t, r, client4, port); !s.Seen || s.Age < time.Second {
		t.Errorf("after 1.1 s idle: %+v, want seen with Age >= 1s", s)
	}
	// update: a packet of the connection rewrites the element.
	if _, err := c.Write([]byte("NOOP\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if s := mustSeen(t, r, client4, port); !s.Seen || s.Age > 500*time.Millisecond {
		t.Errorf("after a new packet: %+v, want Age reset", s)
	}
	c.Close()
	start := time.Now()
	waitSeen(t, r, client4, port, false, 5*time.Second)
	waitSeen(t, r, client4, 0, false, time.Second)
	t.Logf("gone %s after close (timeout 2s)", time.Since(start).Round(10*time.Millisecond))
}

func TestEnsureRepairs(t *testing.T) {
	tp := buildTopo(t)
	r := openRecord(t, tp.host, Options{}, portIn, 8465)
	listen(t, tp.host, ":8025")
	ctx := context.Background()
	_, port := mustDial(t, tp.client, hostPort(hostC4, portIn))
	waitSeen(t, r, client4, port, true, 2*time.Second)

	// Twice more: elements and ports stay, nothing is duplicated.
	for range 2 {
		if err := r.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if s := mustSeen(t, r, client4, port); !s.Seen {
		t.Error("Ensure lost an element")
	}
	h := mustHealth(t, r)
	if !h.OK() || h.Ports != 2 {
		t.Errorf("after Ensure twice: %+v", h)
	}

	for _, wipe := range [][]string{
		{"nft", "flush", "ruleset"},
		{"nft", "delete", "table", "inet", "bansd"},
		{"nft", "delete", "chain", "inet", "bansd", "seen"},
		{"nft", "flush", "chain", "inet", "bansd", "seen"},
		{"nft", "flush", "set", "inet", "bansd", "ports"},
	} {
		tp.host.Run(t, wipe[0], wipe[1:]...)
		if h := mustHealth(t, r); h.Intact && h.Ports == 2 {
			t.Errorf("after %v Health says intact with both ports", wipe)
		} else {
			t.Logf("after %v: %q ports=%d", strings.Join(wipe, " "), h.Problem, h.Ports)
		}
		if err := r.Ensure(ctx); err != nil {
			t.Fatalf("Ensure after %v: %v", wipe, err)
		}
		if h := mustHealth(t, r); !h.OK() || h.Ports != 2 {
			t.Errorf("Ensure after %v: %+v", wipe, h)
		}
		// It records again.
		_, p := mustDial(t, tp.client, hostPort(hostC4, portIn))
		waitSeen(t, r, client4, p, true, 2*time.Second)
	}

	// The first record started empty; a second process keeps its sets
	// (a daemon restart keeps the kernel's word on the connections).
	if !r.EmptyAtStart() {
		t.Error("a record created in a new namespace says it kept a previous one")
	}
	if again := openRecord(t, tp.host, Options{}, portIn, 8465); again.EmptyAtStart() {
		t.Error("a second record on the same table says it started empty")
	}

	// A redefined set (another Timeout) is recreated.
	r2 := openRecord(t, tp.host, Options{Timeout: time.Hour})
	if h := mustHealth(t, r2); !h.OK() {
		t.Errorf("after a new Timeout: %+v", h)
	}
	if !r2.EmptyAtStart() {
		t.Error("a record whose sets were recreated says it kept them")
	}
	if h := mustHealth(t, r); h.Intact {
		t.Error("the old record reads its sets as intact after their timeout changed")
	}
}

func TestSetPorts(t *testing.T) {
	tp := buildTopo(t)
	r := openRecord(t, tp.host, Options{}, portIn)
	listen(t, tp.host, ":8025")
	listen(t, tp.host, ":8026")
	ctx := context.Background()
	if err := r.SetPorts(ctx, []uint16{portOut, portOut, 993}); err != nil {
		t.Fatal(err)
	}
	if h := mustHealth(t, r); h.Ports != 2 {
		t.Errorf("ports = %d, want 2 (replace, deduplicated)", h.Ports)
	}
	_, pIn := mustDial(t, tp.client, hostPort(hostC4, portIn))
	_, pOut := mustDial(t, tp.client, hostPort(hostC4, portOut))
	waitSeen(t, r, client4, pOut, true, 2*time.Second)
	if s := mustSeen(t, r, client4, pIn); s.Seen {
		t.Error("port removed by SetPorts still records")
	}
	if err := r.SetPorts(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if h := mustHealth(t, r); h.Ports != 0 || !h.Intact {
		t.Errorf("after SetPorts(nil): %+v", h)
	}
	if err := r.SetPorts(ctx, []uint16{25, 0}); err == nil {
		t.Error("port 0 accepted")
	}
	if h := mustHealth(t, r); h.Ports != 0 {
		t.Error("a refused SetPorts changed the kernel")
	}
}

func TestBounded(t *testing.T) {
	tp := buildTopo(t)
	r := openRecord(t, tp.host, Options{Size: 64}, portIn)
	listen(t, tp.host, ":8025")
	for i := range 200 {
		c, err := dial(tp.client, hostPort(hostC4, portIn))
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		c.Close()
	}
	time.Sleep(100 * time.Millisecond)
	// The check only reads: the ruleset generation stays (the ban
	// manager's cheap reconcile check relies on it).
	g := tp.host.Generation(t)
	h := mustHealth(t, r)
	if now := tp.host.Generation(t); now != g {
		t.Errorf("Health moved the ruleset generation from %d to %d", g, now)
	}
	t.Logf("health: %+v", h)
	if !h.Intact || !h.Full {
		t.Fatalf("Health = %+v, want intact and full", h)
	}
	want := map[string]int{Seen4: 64, Seen4A: 1, Seen6: 0, Seen6A: 0}
	for _, s := range h.Sets {
		if s.Full != (s.Name == Seen4) || s.Size != 64 {
			t.Errorf("%s: %+v, want full only for %s", s.Name, s, Seen4)
		}
		n, err := r.Count(context.Background(), s.Name)
		if err != nil || n != want[s.Name] {
			t.Errorf("Count(%s) = %d, %v; want %d", s.Name, n, err, want[s.Name])
		}
	}
	// Fails closed: a new connection is not recorded, the address still is.
	_, p := mustDial(t, tp.client, hostPort(hostC4, portIn))
	time.Sleep(100 * time.Millisecond)
	if s := mustSeen(t, r, client4, p); s.Seen {
		t.Error("a full set recorded one more connection")
	}
	if s := mustSeen(t, r, client4, 0); !s.Seen {
		t.Error("address not recorded")
	}
}

func mustHealth(t testing.TB, r *Record) Health {
	t.Helper()
	h, err := r.Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestAddOperation: the "add" rule the benchmarks compare records too, but
// writes once: later packets do not reset the element's age.
func TestAddOperation(t *testing.T) {
	tp := buildTopo(t)
	r := openRecord(t, tp.host, Options{}, portIn)
	r.refresh = false
	if err := r.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	listen(t, tp.host, ":8025")
	c, port := mustDial(t, tp.client, hostPort(hostC4, portIn))
	waitSeen(t, r, client4, port, true, 2*time.Second)
	time.Sleep(600 * time.Millisecond)
	if _, err := c.Write([]byte("NOOP\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if s := mustSeen(t, r, client4, port); !s.Seen || s.Age < 500*time.Millisecond {
		t.Errorf("with add: %+v, want the age of the handshake", s)
	}
}

// TestHealthWantsAssured: rules that record on "ct state established" (what
// a spoofed SYN reaches) are not taken for the record's rules.
func TestHealthWantsAssured(t *testing.T) {
	ns := netnstest.New(t)
	r := openRecord(t, ns, Options{}, portIn)
	ns.Run(t, "nft", "flush", "chain", "inet", "bansd", "seen")
	for _, rl := range []string{
		"meta nfproto ipv4 tcp dport @ports ct direction original ct state established update @seen4 { ip saddr . tcp sport }",
		"meta nfproto ipv4 tcp dport @ports ct direction original ct state established update @seen4a { ip saddr }",
		"meta nfproto ipv6 tcp dport @ports ct direction original ct state established update @seen6 { ip6 saddr . tcp sport }",
		"meta nfproto ipv6 tcp dport @ports ct direction original ct state established update @seen6a { ip6 saddr }",
	} {
		ns.Run(t, "sh", "-c", "nft add rule inet bansd seen "+rl)
	}
	if h := mustHealth(t, r); h.Intact {
		t.Errorf("ct-state rules taken for the record's: %+v", h)
	}
	if err := r.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h := mustHealth(t, r); !h.OK() {
		t.Errorf("after Ensure: %+v", h)
	}
}

// TestLocalConnectionRecorded: a connection the host opens itself (Docker's
// userland proxy dialling a container from the bridge gateway) is recorded
// by the output-hook chain, under its own source address and port.
func TestLocalConnectionRecorded(t *testing.T) {
	tp := buildTopo(t)
	r := openRecord(t, tp.host, Options{}, portIn)
	listen(t, tp.client, ":8025")
	c, port := mustDial(t, tp.host, hostPort(client4, portIn))
	defer c.Close()
	waitSeen(t, r, hostC4, port, true, 2*time.Second)
	if s := mustSeen(t, r, hostC4, port+1); s.Seen {
		t.Error("another port of the host reads as seen")
	}
	if h := mustHealth(t, r); !h.Intact {
		t.Fatalf("health: %+v", h)
	}
	tp.host.Run(t, "nft", "delete", "chain", "inet", "bansd", LocalChainName)
	if h := mustHealth(t, r); h.Intact || !strings.Contains(h.Problem, LocalChainName) {
		t.Fatalf("health after the local chain was deleted: %+v", h)
	}
	if err := r.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h := mustHealth(t, r); !h.Intact {
		t.Fatalf("health after Ensure: %+v", h)
	}
}
