package netnstest

import (
	"net"
	"os"
	"strings"
	"testing"

	"github.com/bansd/bansd/internal/roottest"
)

func TestNamespaceIsFreshAndRemoved(t *testing.T) {
	roottest.Require(t, "network namespaces")
	var name string
	t.Run("inner", func(t *testing.T) {
		ns := New(t)
		name = ns.Name
		out := ns.Run(t, "ip", "-o", "link")
		if strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "lo:") {
			t.Errorf("a fresh namespace should only have lo, got:\n%s", out)
		}
		// A listener opened through Do lives in the namespace: the host
		// cannot see a port bound there.
		var ln net.Listener
		if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:0"); return err }); err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			c.Close()
			t.Error("host reached a listener inside the namespace")
		}
		var c net.Conn
		if err := ns.Do(func() (err error) { c, err = net.Dial("tcp", ln.Addr().String()); return err }); err != nil {
			t.Fatalf("dial inside the namespace: %v", err)
		}
		c.Close()
	})
	if _, err := os.Stat("/run/netns/" + name); !os.IsNotExist(err) {
		t.Errorf("namespace %s not removed: %v", name, err)
	}
}
