package ban

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/netnstest"
)

// The data-plane test (Docker publishing a port behind bansd's prerouting chain): Docker's
// `-p 8080:80` emulated with the iptables rules Docker writes, a banned and
// an unbanned client, real TCP. It proves the prerouting chain stops a
// banned client on the published port (DNAT + FORWARD), on a host port and
// over IPv6, kills its established connection, leaves the other client
// alone, and, as a regression guard, that an input-hook ban is bypassed
// for the published port.

const dialTimeout = time.Second

type topo struct {
	host, banned, ok, ctr *netnstest.NS
}

// Addresses: documentation prefixes only, inside the test's namespaces.
const (
	bannedV4, bannedV6 = "198.51.100.2", "2001:db8:a::2"
	hostAV4, hostAV6   = "198.51.100.1", "2001:db8:a::1" // the host as the banned client sees it
	okV4, okV6         = "203.0.113.2", "2001:db8:b::2"
	hostBV4, hostBV6   = "203.0.113.1", "2001:db8:b::1"
	ctrV4, ctrV6       = "192.0.2.2", "2001:db8:c::2"
	brV4, brV6         = "192.0.2.1", "2001:db8:c::1"
)

func TestDataPlane(t *testing.T) {
	requireRoot(t)
	for _, variant := range []string{"iptables-nft", "iptables-legacy"} {
		t.Run(variant, func(t *testing.T) {
			t.Parallel()
			for _, tool := range []string{variant, strings.Replace(variant, "iptables", "ip6tables", 1)} {
				if _, err := exec.LookPath(tool); err != nil {
					t.Fatalf("%s not found (apt package iptables)", tool)
				}
			}
			dataPlane(t, variant)
		})
	}
}

func dataPlane(t *testing.T, iptables string) {
	tp := buildTopology(t)
	dockerPublish(t, tp.host, iptables)

	// Services: the "container" on :80, a host service on :2222.
	serveEcho(t, tp.ctr, ":80")
	serveEcho(t, tp.host, ":2222")

	type target struct{ name, addr string }
	fromBanned := []target{
		{"published v4", net.JoinHostPort(hostAV4, "8080")},
		{"published v6", net.JoinHostPort(hostAV6, "8080")},
		{"host port v4", net.JoinHostPort(hostAV4, "2222")},
		{"host port v6", net.JoinHostPort(hostAV6, "2222")},
	}
	fromOK := []target{
		{"published v4", net.JoinHostPort(hostBV4, "8080")},
		{"published v6", net.JoinHostPort(hostBV6, "8080")},
		{"host port v4", net.JoinHostPort(hostBV4, "2222")},
		{"host port v6", net.JoinHostPort(hostBV6, "2222")},
	}
	// probe dials every target at once; it returns what each got.
	probe := func(ns *netnstest.NS, ts []target) map[string]error {
		var mu sync.Mutex
		res := map[string]error{}
		var wg sync.WaitGroup
		for _, tg := range ts {
			wg.Go(func() {
				err := roundTrip(ns, tg.addr)
				mu.Lock()
				res[tg.name] = err
				mu.Unlock()
			})
		}
		wg.Wait()
		return res
	}
	expect := func(phase, who string, got map[string]error, blocked map[string]bool) {
		t.Helper()
		for name, err := range got {
			switch {
			case blocked[name] && err == nil:
				t.Errorf("%s: %s → %s connected, want blocked", phase, who, name)
			case !blocked[name] && err != nil:
				t.Errorf("%s: %s → %s failed: %v", phase, who, name, err)
			}
		}
	}
	none := map[string]bool{}
	all := map[string]bool{"published v4": true, "published v6": true, "host port v4": true, "host port v6": true}

	// Warm-up: the first forwarded IPv6 connection can miss a 1 s timeout.
	for _, ns := range []*netnstest.NS{tp.banned, tp.ok} {
		for range 2 {
			_ = roundTrip(ns, net.JoinHostPort(hostAV6, "8080"))
			_ = roundTrip(ns, net.JoinHostPort(hostBV6, "8080"))
		}
	}
	expect("before any ban", "banned client", probe(tp.banned, fromBanned), none)
	expect("before any ban", "other client", probe(tp.ok, fromOK), none)

	// Regression guard: a ban in the input hook (what fail2ban, UFW and
	// crowdsec's default do) stops host ports but not the published port.
	tp.host.Run(t, "nft", "add", "table", "inet", "inputban")
	tp.host.Run(t, "nft", "add", "chain", "inet", "inputban", "input", "{ type filter hook input priority -10; policy accept; }")
	tp.host.Run(t, "nft", "add", "rule", "inet", "inputban", "input", "ip", "saddr", bannedV4, "drop")
	tp.host.Run(t, "nft", "add", "rule", "inet", "inputban", "input", "ip6", "saddr", bannedV6, "drop")
	got := probe(tp.banned, fromBanned)
	expect("input-hook ban", "banned client", got, map[string]bool{"host port v4": true, "host port v6": true})
	if got["published v4"] == nil && got["published v6"] == nil {
		t.Logf("input-hook ban bypassed for the published port, as expected")
	}
	tp.host.Run(t, "nft", "delete", "table", "inet", "inputban")

	// An established connection of the client about to be banned.
	est, err := dialIn(tp.banned, net.JoinHostPort(hostAV4, "8080"))
	if err != nil {
		t.Fatal(err)
	}
	defer est.Close()
	if err := echo(est, "before"); err != nil {
		t.Fatalf("established connection before the ban: %v", err)
	}

	cfg := testConfig(t)
	fw := newNFT(t, tp.host, cfg)
	m := startManager(t, withConfig(t, Options{Firewall: fw, Store: openStore(t, "")}, cfg))
	ctx := t.Context()
	if _, err := m.Ban(ctx, Request{Target: pfx(bannedV4 + "/32"), Jail: "auth", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// The IPv6 client through its /64, as the network jails ban.
	if _, err := m.Ban(ctx, Request{Target: pfx("2001:db8:a::/64"), Jail: "auth", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	var estErr error
	wg.Go(func() { estErr = echo(est, "after") })
	expect("prerouting ban", "banned client", probe(tp.banned, fromBanned), all)
	expect("prerouting ban", "other client", probe(tp.ok, fromOK), none)
	wg.Wait()
	if estErr == nil {
		t.Error("the banned client's established connection still works")
	}

	st, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	drops := map[string]uint64{}
	for _, s := range st.Sets {
		drops[s.Name] = s.Packets
	}
	if drops["v4_32"] == 0 || drops["v6_64"] == 0 || drops["v6_128"] != 0 || drops["v4_24"] != 0 {
		t.Errorf("per-set drop counters = %v; want drops in v4_32 and v6_64 only", drops)
	}
	t.Logf("dropped packets per set: %v", drops)

	if _, err := m.Unban(ctx, []netip.Prefix{pfx(bannedV4 + "/32"), pfx("2001:db8:a::/64")}); err != nil {
		t.Fatal(err)
	}
	expect("after unban", "banned client", probe(tp.banned, fromBanned), none)
}

// roundTrip connects and exchanges one line, with 1 s timeouts.
func roundTrip(ns *netnstest.NS, addr string) error {
	c, err := dialIn(ns, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return echo(c, "ping")
}

func dialIn(ns *netnstest.NS, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		c, err = (&net.Dialer{Timeout: dialTimeout}).Dial("tcp", addr)
		return err
	})
	return c, err
}

func echo(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(dialTimeout))
	if _, err := fmt.Fprintln(c, msg); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != msg+"\n" {
		return fmt.Errorf("echo %q, got %q", msg, line)
	}
	return nil
}

// serveEcho listens (dual stack) inside ns and echoes lines until the test ends.
func serveEcho(t *testing.T, ns *netnstest.NS, addr string) {
	t.Helper()
	ns.Serve(t, addr, func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
	})
}

// buildTopology: two clients on their own links to the host, and a
// "container" behind a bridge on the host, as Docker's default network.
func buildTopology(t *testing.T) topo {
	tp := topo{host: netnstest.New(t), banned: netnstest.New(t), ok: netnstest.New(t), ctr: netnstest.New(t)}
	h := tp.host
	for _, ns := range []*netnstest.NS{tp.host, tp.banned, tp.ok, tp.ctr} {
		// DAD would delay the addresses; nodad below covers the rest.
		sysctl(t, ns, "net/ipv6/conf/all/accept_dad", "0")
		sysctl(t, ns, "net/ipv6/conf/default/accept_dad", "0")
	}
	sysctl(t, h, "net/ipv4/ip_forward", "1")
	sysctl(t, h, "net/ipv6/conf/all/forwarding", "1")

	type link struct {
		peer                   *netnstest.NS
		hostIf, peerIf         string
		hostMAC, peerMAC       string
		hostV4, hostV6, v4, v6 string
	}
	links := []link{
		{tp.banned, "hA", "eth0", "02:00:00:00:0a:01", "02:00:00:00:0a:02", hostAV4, hostAV6, bannedV4, bannedV6},
		{tp.ok, "hB", "eth0", "02:00:00:00:0b:01", "02:00:00:00:0b:02", hostBV4, hostBV6, okV4, okV6},
	}
	h.Run(t, "ip", "link", "add", "br-test", "address", "02:00:00:00:0c:01", "type", "bridge")
	h.Run(t, "ip", "link", "set", "br-test", "up")
	h.Run(t, "ip", "addr", "add", brV4+"/24", "dev", "br-test")
	h.Run(t, "ip", "addr", "add", brV6+"/64", "dev", "br-test", "nodad")
	h.Run(t, "ip", "link", "add", "hC", "type", "veth", "peer", "name", "eth0", "address", "02:00:00:00:0c:02", "netns", tp.ctr.Name)
	h.Run(t, "ip", "link", "set", "hC", "master", "br-test", "up")
	tp.ctr.Run(t, "ip", "link", "set", "eth0", "up")
	tp.ctr.Run(t, "ip", "addr", "add", ctrV4+"/24", "dev", "eth0")
	tp.ctr.Run(t, "ip", "addr", "add", ctrV6+"/64", "dev", "eth0", "nodad")
	tp.ctr.Run(t, "ip", "route", "add", "default", "via", brV4)
	tp.ctr.Run(t, "ip", "-6", "route", "add", "default", "via", brV6)
	tp.ctr.Run(t, "ip", "-6", "neigh", "replace", brV6, "lladdr", "02:00:00:00:0c:01", "dev", "eth0", "nud", "permanent")
	h.Run(t, "ip", "-6", "neigh", "replace", ctrV6, "lladdr", "02:00:00:00:0c:02", "dev", "br-test", "nud", "permanent")

	for _, l := range links {
		h.Run(t, "ip", "link", "add", l.hostIf, "address", l.hostMAC, "type", "veth", "peer", "name", l.peerIf, "address", l.peerMAC, "netns", l.peer.Name)
		h.Run(t, "ip", "link", "set", l.hostIf, "up")
		h.Run(t, "ip", "addr", "add", l.hostV4+"/24", "dev", l.hostIf)
		h.Run(t, "ip", "addr", "add", l.hostV6+"/64", "dev", l.hostIf, "nodad")
		l.peer.Run(t, "ip", "link", "set", l.peerIf, "up")
		l.peer.Run(t, "ip", "addr", "add", l.v4+"/24", "dev", l.peerIf)
		l.peer.Run(t, "ip", "addr", "add", l.v6+"/64", "dev", l.peerIf, "nodad")
		l.peer.Run(t, "ip", "route", "add", "default", "via", l.hostV4)
		l.peer.Run(t, "ip", "-6", "route", "add", "default", "via", l.hostV6)
		// A banned on-link client loses NDP (its solicitations come from
		// the banned address): permanent entries keep the test honest.
		l.peer.Run(t, "ip", "-6", "neigh", "replace", l.hostV6, "lladdr", l.hostMAC, "dev", l.peerIf, "nud", "permanent")
		h.Run(t, "ip", "-6", "neigh", "replace", l.v6, "lladdr", l.peerMAC, "dev", l.hostIf, "nud", "permanent")
		l.peer.Run(t, "ip", "neigh", "replace", l.hostV4, "lladdr", l.hostMAC, "dev", l.peerIf, "nud", "permanent")
		h.Run(t, "ip", "neigh", "replace", l.v4, "lladdr", l.peerMAC, "dev", l.hostIf, "nud", "permanent")
	}
	return tp
}

// sysctl sets a network sysctl of ns: /proc/sys/net follows the netns of
// the thread that opens it, so no sysctl binary is needed.
func sysctl(t *testing.T, ns *netnstest.NS, key, value string) {
	t.Helper()
	if err := ns.Do(func() error { return os.WriteFile("/proc/sys/"+key, []byte(value), 0) }); err != nil {
		t.Fatalf("sysctl %s=%s in %s: %v", key, value, ns.Name, err)
	}
}

// dockerPublish writes the rules Docker (27/28, iptables backend) writes for
// `-p 8080:80` to a container on bridge br-test, for IPv4 and IPv6.
func dockerPublish(t *testing.T, h *netnstest.NS, iptables string) {
	ip6tables := strings.Replace(iptables, "iptables", "ip6tables", 1)
	for _, fam := range []struct{ cmd, ctr, subnet string }{
		{iptables, ctrV4, "192.0.2.0/24"},
		{ip6tables, "[" + ctrV6 + "]", "2001:db8:c::/64"},
	} {
		ctrIP := strings.Trim(fam.ctr, "[]")
		for _, rule := range [][]string{
			{"-t", "nat", "-N", "DOCKER"},
			{"-t", "nat", "-A", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER"},
			{"-t", "nat", "-A", "OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER"},
			{"-t", "nat", "-A", "POSTROUTING", "-s", fam.subnet, "!", "-o", "br-test", "-j", "MASQUERADE"},
			{"-t", "nat", "-A", "DOCKER", "!", "-i", "br-test", "-p", "tcp", "--dport", "8080", "-j", "DNAT", "--to-destination", fam.ctr + ":80"},
			{"-N", "DOCKER"},
			{"-N", "DOCKER-USER"},
			{"-P", "FORWARD", "DROP"},
			{"-A", "FORWARD", "-j", "DOCKER-USER"},
			{"-A", "FORWARD", "-o", "br-test", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
			{"-A", "FORWARD", "-o", "br-test", "-j", "DOCKER"},
			{"-A", "FORWARD", "-i", "br-test", "!", "-o", "br-test", "-j", "ACCEPT"},
			{"-A", "FORWARD", "-i", "br-test", "-o", "br-test", "-j", "ACCEPT"},
			{"-A", "DOCKER", "-d", ctrIP, "!", "-i", "br-test", "-o", "br-test", "-p", "tcp", "--dport", "80", "-j", "ACCEPT"},
			{"-A", "DOCKER-USER", "-j", "RETURN"},
		} {
			h.Run(t, fam.cmd, append([]string{"-w"}, rule...)...)
		}
	}
}
