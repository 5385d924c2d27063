package shield

import (
	"context"
	"errors"
	"net"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/roottest"

	"github.com/bansd/bansd/internal/netnstest"
)

// pair is a server namespace (the shield's, as the Docker host) and a
// client namespace joined by a veth, with addresses from the docs ranges.
func pair(t *testing.T) (srv, cli *netnstest.NS) {
	t.Helper()
	roottest.Require(t, "network namespaces, nftables")
	srv, cli = netnstest.New(t), netnstest.New(t)
	srv.Run(t, "ip", "link", "add", "vs", "type", "veth", "peer", "name", "vc", "netns", cli.Name)
	srv.Run(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "vs")
	srv.Run(t, "ip", "addr", "add", "2001:db8::1/64", "dev", "vs", "nodad")
	srv.Run(t, "ip", "link", "set", "vs", "up")
	cli.Run(t, "ip", "addr", "add", "192.0.2.2/24", "dev", "vc")
	cli.Run(t, "ip", "addr", "add", "2001:db8::2/64", "dev", "vc", "nodad")
	cli.Run(t, "ip", "link", "set", "vc", "up")
	return srv, cli
}

// listen accepts and closes on [::]:port (dual stack) in ns until the test ends.
func listen(t *testing.T, ns *netnstest.NS, port string) {
	t.Helper()
	ns.Serve(t, "[::]:"+port, func(net.Conn) {})
}

// dial connects from ns and reports the error and how long it took.
func dial(t *testing.T, ns *netnstest.NS, addr string) (error, time.Duration) {
	t.Helper()
	var derr error
	var took time.Duration
	if err := ns.Do(func() error {
		start := time.Now()
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		took = time.Since(start)
		if err == nil {
			c.Close()
		}
		derr = err
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return derr, took
}

func wantRefused(t *testing.T, cli *netnstest.NS, addr string) {
	t.Helper()
	err, took := dial(t, cli, addr)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: %v, want connection refused (a reset)", addr, err)
	}
	if took > 100*time.Millisecond {
		t.Fatalf("dial %s refused after %v, want within 100ms", addr, took)
	}
	t.Logf("dial %s refused in %v", addr, took)
}

func wantConnect(t *testing.T, cli *netnstest.NS, addr string) {
	t.Helper()
	if err, _ := dial(t, cli, addr); err != nil {
		t.Fatalf("dial %s: %v, want connected", addr, err)
	}
}

func TestShieldKernel(t *testing.T) {
	srv, cli := pair(t)
	listen(t, srv, "25")
	listen(t, srv, "2525")
	ctx := context.Background()
	s, err := Open(Options{Table: "bansd", NetNS: srv.Fd()})
	if err != nil {
		t.Fatal(err)
	}

	// Lower before anything exists creates nothing.
	if err := s.Lower(ctx); err != nil {
		t.Fatal(err)
	}
	if out := srv.Run(t, "nft", "list", "ruleset"); strings.Contains(out, "bansd") {
		t.Fatalf("Lower created a table:\n%s", out)
	}
	wantConnect(t, cli, "[2001:db8::1]:25")

	if err := s.Raise(ctx, []uint16{25, 465}); err != nil {
		t.Fatal(err)
	}
	t.Logf("nft list table inet bansd:\n%s", srv.Run(t, "nft", "list", "table", "inet", "bansd"))
	wantRefused(t, cli, "[2001:db8::1]:25")
	wantConnect(t, cli, "192.0.2.1:25")
	wantConnect(t, cli, "[2001:db8::1]:2525")
	st, err := s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Up || !st.Intact || !slices.Equal(st.Ports, []uint16{25, 465}) || st.Refused != 1 {
		t.Fatalf("status after one refusal = %+v, want up, intact, [25 465], refused 1", st)
	}

	// Raise again with other ports: replaced, counter kept.
	if err := s.Raise(ctx, []uint16{25}); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, cli, "[2001:db8::1]:25")
	if st, _ = s.Status(ctx); !slices.Equal(st.Ports, []uint16{25}) || st.Refused != 2 {
		t.Fatalf("status after re-raise = %+v, want [25] and refused 2", st)
	}

	// Lowered: IPv6 passes; twice is fine.
	for range 2 {
		if err := s.Lower(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wantConnect(t, cli, "[2001:db8::1]:25")
	if st, _ = s.Status(ctx); st.Up || !st.Intact || st.Refused != 2 {
		t.Fatalf("status lowered = %+v, want down, intact, refused 2", st)
	}
	// Ensure keeps it lowered, and commits nothing when all is as asked
	// (lowered or raised): the ban manager's cheap reconcile check is the
	// ruleset generation.
	g0 := srv.Generation(t)
	if err := s.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	wantConnect(t, cli, "[2001:db8::1]:25")
	if err := s.Raise(ctx, []uint16{465}); err != nil {
		t.Fatal(err)
	}
	g1 := srv.Generation(t)
	if err := s.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if g := srv.Generation(t); g0 != g1-1 || g != g1 {
		t.Fatalf("generations %d, (raise) %d, (ensure) %d: Ensure of an intact shield committed", g0, g1, g)
	}
	if err := s.Lower(ctx); err != nil {
		t.Fatal(err)
	}

	// Raised, then the ruleset is wiped: Status says so, Ensure restores.
	if err := s.Raise(ctx, []uint16{25}); err != nil {
		t.Fatal(err)
	}
	srv.Run(t, "nft", "flush", "ruleset")
	wantConnect(t, cli, "[2001:db8::1]:25")
	if st, _ = s.Status(ctx); st.Intact {
		t.Fatalf("status after flush ruleset = %+v, want not intact", st)
	}
	if err := s.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, cli, "[2001:db8::1]:25")
	if st, _ = s.Status(ctx); !st.Up || !st.Intact {
		t.Fatalf("status after Ensure = %+v, want up and intact", st)
	}

	// Someone else's rule in our chain is noticed and replaced.
	srv.Run(t, "nft", "add", "rule", "inet", "bansd", "shield", "accept")
	if st, _ = s.Status(ctx); st.Intact {
		t.Fatalf("status with a foreign rule = %+v, want not intact", st)
	}
	if err := s.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ = s.Status(ctx); !st.Intact {
		t.Fatalf("status after repair = %+v", st)
	}
}

// The shield shares its table: raising and lowering never touches another
// chain or set there, nor another table.
func TestShieldLeavesOthersAlone(t *testing.T) {
	srv, _ := pair(t)
	srv.Run(t, "nft", "add", "table", "inet", "bansd")
	srv.Run(t, "nft", "add", "chain", "inet", "bansd", "prerouting", "{ type filter hook prerouting priority -310; policy accept; }")
	srv.Run(t, "nft", "add", "set", "inet", "bansd", "v6_128", "{ type ipv6_addr; flags timeout; }")
	srv.Run(t, "nft", "add", "element", "inet", "bansd", "v6_128", "{ 2001:db8::99 timeout 1h }")
	srv.Run(t, "nft", "add", "rule", "inet", "bansd", "prerouting", "ip6 saddr @v6_128 drop")
	srv.Run(t, "nft", "add", "table", "ip", "filter")
	srv.Run(t, "nft", "add", "chain", "ip", "filter", "DOCKER-USER")
	before := srv.Run(t, "nft", "list", "ruleset")
	ctx := context.Background()
	s, err := Open(Options{Table: "bansd", NetNS: srv.Fd()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Raise(ctx, []uint16{25}); err != nil {
		t.Fatal(err)
	}
	if err := s.Lower(ctx); err != nil {
		t.Fatal(err)
	}
	after := expires.ReplaceAllString(srv.Run(t, "nft", "list", "ruleset"), "")
	before = expires.ReplaceAllString(before, "")
	for _, want := range strings.Split(strings.TrimSpace(before), "\n") {
		if !strings.Contains(after, strings.TrimSpace(want)) {
			t.Errorf("line %q of the ruleset is gone after Raise/Lower:\n%s", want, after)
		}
	}
}

// expires is the ticking part of a listed element.
var expires = regexp.MustCompile(` expires [0-9a-z.]+`)
