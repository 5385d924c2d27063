// Package netnstest gives each test a fresh, named network namespace that is
// removed when the test ends, so tests that program the kernel's firewall or
// links never touch the host's own.
package netnstest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bansd/bansd/internal/roottest"
	"github.com/google/nftables"

	"golang.org/x/sys/unix"
)

var seq atomic.Uint64

// NS is a network namespace created with `ip netns add`.
type NS struct {
	Name string
	// Path is the bind mount that keeps the namespace alive.
	Path string
	fd   int
}

// New creates a namespace with loopback up and registers its removal. It
// fails the test when not run as root or without iproute2.
func New(t testing.TB) *NS {
	t.Helper()
	roottest.Require(t, "network namespaces: CAP_SYS_ADMIN, CAP_NET_ADMIN")
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("netnstest: the ip command (apt package iproute2) is needed")
	}
	name := fmt.Sprintf("bansdt-%d-%d", os.Getpid(), seq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("netnstest: ip netns add %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name, Path: "/run/netns/" + name, fd: -1}
	t.Cleanup(func() {
		if ns.fd >= 0 {
			unix.Close(ns.fd)
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("netnstest: ip netns del %s: %v: %s", name, err, out)
		}
	})
	fd, err := unix.Open(ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("netnstest: open %s: %v", ns.Path, err)
	}
	ns.fd = fd
	ns.Run(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Fd is an open descriptor of the namespace, valid until the test ends
// (for nftables.WithNetNSFd).
func (ns *NS) Fd() int { return ns.fd }

// Do runs fn on an OS thread that has joined the namespace. Sockets fn
// opens belong to the namespace and may be used from any goroutine after.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread is in another namespace, so the
		// runtime must discard it when this goroutine exits.
		runtime.LockOSThread()
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Listen listens on TCP addr inside the namespace until the test ends.
func (ns *NS) Listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Dial connects from inside the namespace (where its addresses exist); it
// fits http.Transport.DialContext and notify.Options.Dial.
func (ns *NS) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Serve listens on TCP addr inside the namespace and hands each connection
// to handle in its own goroutine, closing it after, until the test ends.
func (ns *NS) Serve(t testing.TB, addr string, handle func(net.Conn)) {
	t.Helper()
	ln := ns.Listen(t, addr)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
}

// Run runs a command inside the namespace (`ip netns exec`) and returns its
// output, failing the test on error.
func (ns *NS) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := ns.Exec(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Exec is Run without a test: the error carries the command's output.
func (ns *NS) Exec(name string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in netns %s: %s %s: %v: %s", ns.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Generation is the namespace's nftables ruleset generation, which every
// committed transaction bumps: tests of "only reads" compare it.
func (ns *NS) Generation(t testing.TB) uint32 {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.fd))
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.GetGen()
	if err != nil {
		t.Fatalf("nftables generation: %v", err)
	}
	return g.ID
}
