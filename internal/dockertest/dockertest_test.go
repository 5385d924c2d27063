package dockertest

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/bansd/bansd/internal/roottest"
)

func TestEngine(t *testing.T) {
	roottest.Require(t, "dockerd in a network namespace")
	var e *Engine
	var pid int
	t.Run("run", func(t *testing.T) {
		e = Start(t, Options{})
		img := e.ImportBusybox(t)
		if again := e.ImportBusybox(t); again != img {
			t.Fatalf("second import %q, want cached %q", again, img)
		}
		out := e.Docker(t, "run", "--rm", "-l", "com.docker.compose.project=mailu", img, "sh", "-c", "echo hello; seq 3 | wc -l")
		if out != "hello\n3\n" {
			t.Fatalf("container output %q", out)
		}
		// The engine's bridge lives in its namespace, not in the host's.
		if addrs := e.Exec(t, "ip", "-4", "addr", "show", "docker0"); !strings.Contains(addrs, "192.0.2.1/25") {
			t.Fatalf("docker0 in %s: %s", e.NetNS, addrs)
		}
		if err := exec.Command("ip", "link", "show", "docker0").Run(); err == nil {
			t.Log("note: the host namespace has its own docker0")
		}
		v, err := e.Client(t).ServerVersion(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if v.APIVersion == "" {
			t.Fatalf("no API version in %+v", v)
		}
		e.Docker(t, "run", "-d", "--name", "survivor", img, "sleep", "600")
		e.Restart(t)
		if names := e.Docker(t, "ps", "-a", "--format", "{{.Names}}"); strings.TrimSpace(names) != "survivor" {
			t.Fatalf("after restart: containers %q", names)
		}
		e.mu.Lock()
		pid = e.cmd.Process.Pid
		e.mu.Unlock()
	})
	if _, err := os.Stat(e.Dir); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", e.Dir, err)
	}
	if _, err := os.Stat("/run/netns/" + e.NetNS); !os.IsNotExist(err) {
		t.Errorf("netns %s left behind: %v", e.NetNS, err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Errorf("dockerd %d still running", pid)
	}
}

func TestLogspamImage(t *testing.T) {
	e := Start(t, Options{})
	img := e.ImportLogspam(t)
	out := e.Docker(t, "run", "--rm", img, "logspam", "-n", "3", "-size", "12")
	if out != "out 0 xxxxxx\nout 1 xxxxxx\nout 2 xxxxxx\n" {
		t.Fatalf("logspam output %q", out)
	}
}

func TestEngineIPv6(t *testing.T) {
	e := Start(t, Options{IPv6: true, UserlandProxy: true})
	if addrs := e.Exec(t, "ip", "-6", "addr", "show", "docker0"); !strings.Contains(addrs, "2001:db8:d0c::1/64") {
		t.Fatalf("docker0 has no IPv6 address: %s", addrs)
	}
	img := e.ImportBusybox(t)
	out := e.Docker(t, "run", "--rm", img, "sh", "-c", "ip -6 addr show eth0 | grep -o '2001:db8:d0c::[0-9a-f:]*' | head -1")
	if !strings.HasPrefix(out, "2001:db8:d0c::") {
		t.Fatalf("container IPv6 address %q", out)
	}
}

func TestKillRestart(t *testing.T) {
	e := Start(t, Options{LiveRestore: true})
	img := e.ImportBusybox(t)
	id := strings.TrimSpace(e.Docker(t, "run", "-d", img, "sleep", "600"))
	for i := 0; i < 2; i++ {
		e.Restart(t)
		e.Kill(t)
		e.Restart(t)
	}
	if st := strings.TrimSpace(e.Docker(t, "inspect", "-f", "{{.State.Running}}", id)); st != "true" {
		t.Fatalf("container running = %s after dockerd was killed and restarted", st)
	}
}
