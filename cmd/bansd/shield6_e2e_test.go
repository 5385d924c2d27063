package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/internal/dockertest"
	"github.com/bansd/bansd/internal/netnstest"
	"github.com/bansd/bansd/shield"
)

const (
	// relaySubnet6 is the Mailu network's IPv6 subnet once the operator
	// enables it (Mailu's SUBNET6), and relayGateway6 its bridge address.
	relaySubnet6  = "2001:db8:25::/64"
	relayGateway6 = "2001:db8:25::1"
)

// TestRelayShieldLiftsOnMailuIPv6: the other fix for the open relay. A
// real dockerd with IPv6 and ip6tables, the userland proxy on, an
// IPv4-only Mailu network and front publishing port 25 on all addresses:
// bansd raises the shield and IPv6 clients get a reset. The operator then
// gives the Mailu network IPv6 (enable_ipv6 and SUBNET6, then `docker
// compose up -d`, which removes the containers and the network and
// creates them again): the shield lifts by itself, and an IPv6 client
// reaches front through Docker's ip6tables DNAT with its own address.
func TestRelayShieldLiftsOnMailuIPv6(t *testing.T) {
	e := dockertest.Start(t, dockertest.Options{IPv6: true, UserlandProxy: true})
	img := e.ImportBusybox(t)
	mailu := func(ipv6 bool) {
		a := []string{"network", "create", "--subnet", relaySubnet, "--gateway", relayGateway}
		if ipv6 {
			a = append(a, "--ipv6", "--subnet", relaySubnet6, "--gateway", relayGateway6)
		}
		e.Docker(t, append(a, "--label", "com.docker.compose.project=mailu", "mailu_default")...)
		runRelay(t, e, "mailu-front-1", "front", "-p", "25:25", img, "httpd", "-f", "-vv", "-p", "25")
		runRelay(t, e, "mailu-admin-1", "admin", img, "sleep", "3600")
	}
	mailu(false)
	cl := newRelayClient(t, e)
	v6 := net.JoinHostPort(relayHost6, "25")
	ok := func(l string, err error) bool { return err == nil && strings.HasPrefix(l, "HTTP/") }
	waitFor(t, 30*time.Second, func() bool { return ok(cl.get(v6)) }, "front answering IPv6 through docker-proxy")

	ns := &netnstest.NS{Name: e.NetNS, Path: "/run/netns/" + e.NetNS}
	in := startInNS(t, ns, e.Host(), fmt.Sprintf("reconcile = %q\n", relayReconcile.String()))
	c := control.NewClient(in.socket)
	var st control.Status
	waitFor(t, 30*time.Second, func() bool { st = mustStatus(t, c); return st.Shield.Up }, "the shield up after discovery")
	if sh := st.Shield; len(sh.Ports) != 1 || sh.Ports[0] != 25 || !sh.Risk {
		t.Fatalf("shield status = %+v", sh)
	}
	if _, _, err := cl.dial(v6); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("IPv6 to 25 with the shield: %v, want a reset (connection refused)", err)
	}
	refused := mustStatus(t, c).Shield.Refused
	if refused == 0 {
		t.Fatalf("the shield counted no refused connection")
	}

	// What `docker compose up -d` does after enable_ipv6 and SUBNET6.
	changed := time.Now()
	e.Docker(t, "rm", "-f", "mailu-front-1", "mailu-admin-1")
	e.Docker(t, "network", "rm", "mailu_default")
	mailu(true)
	recreated := time.Now()
	waitFor(t, 3*relayReconcile+60*time.Second, func() bool {
		st = mustStatus(t, c)
		return !st.Shield.Up && !st.Shield.Risk && strings.Contains(st.Shield.Why, "the Mailu network has IPv6") &&
			!strings.Contains(st.Shield.Why, "no Mailu port is published")
	}, "the shield lifted once the Mailu network has IPv6")
	t.Logf("shield lifted %v after the change began, %v after front ran on the IPv6 network (reconcile %v): %s",
		time.Since(changed).Round(time.Millisecond), time.Since(recreated).Round(time.Millisecond), relayReconcile, st.Shield.Why)
	if k := in.ns.Run(t, "nft", "list", "set", "inet", "bansd", shield.SetName); strings.Contains(k, "elements") {
		t.Fatalf("shield set after lifting:\n%s", k)
	}
	if out := in.mustCtl(t, 0, "status"); !strings.Contains(out, "Relay shield: down") || !strings.Contains(out, "the Mailu network has IPv6") {
		t.Errorf("bansctl status:\n%s", out)
	}

	// The IPv6 client connects and front sees its own address: the
	// kernel's DNAT, not docker-proxy, carries it.
	var took time.Duration
	waitFor(t, 30*time.Second, func() bool {
		start := time.Now()
		l, err := cl.get(v6)
		took = time.Since(start)
		return ok(l, err)
	}, "front answering IPv6 on its IPv6 network")
	t.Logf("IPv6 to 25 after the lift: answered in %v", took.Round(time.Millisecond))
	waitFor(t, 10*time.Second, func() bool { return clientLines(relayClient6).MatchString(logsOf(t, e, "mailu-front-1")) },
		"front logging the IPv6 client's own address")
	logs := logsOf(t, e, "mailu-front-1")
	for _, gw := range []string{relayGateway, relayGateway6} {
		if clientLines(gw).MatchString(logs) {
			t.Errorf("front on the IPv6 network logged the gateway %s as a client:\n%s", gw, logs)
		}
	}
	if got := mustStatus(t, c).Shield.Refused; got != refused {
		t.Errorf("the shield refused %d more connections after lifting", got-refused)
	}
	if h := in.mustCtl(t, 0, "history", "--kind", "shield"); !strings.Contains(h, "lowered") {
		t.Errorf("history has no shield lowered event:\n%s", h)
	}
}
