package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/internal/dockertest"
)

// TestImage builds configs/Dockerfile (FROM scratch, static binaries) on a
// real dockerd and runs it with configs/compose.yml's settings: host
// network (the engine's namespace), only NET_ADMIN, read-only root, the
// Docker socket read-only, a bind for the control socket.
func TestImage(t *testing.T) {
	e := dockertest.Start(t, dockertest.Options{})
	ctxDir := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(ctxDir, "bin")+"/", "github.com/bansd/bansd/cmd/bansd", "github.com/bansd/bansd/cmd/bansctl")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	df, err := os.ReadFile("../../configs/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), df, 0o644); err != nil {
		t.Fatal(err)
	}
	e.Docker(t, "build", "-q", "-t", "bansd:test", ctxDir)
	if out := e.Docker(t, "run", "--rm", "bansd:test", "--version"); !strings.HasPrefix(out, "bansd ") {
		t.Errorf("--version: %q", out)
	}

	run := filepath.Join(t.TempDir(), "run")
	e.Docker(t, "run", "-d", "--name", "bansd", "--network", "host", "--cap-drop", "ALL", "--cap-add", "NET_ADMIN",
		"--security-opt", "no-new-privileges:true", "--read-only",
		"-v", e.Socket+":/var/run/docker.sock:ro", "-v", "bansd-state:/var/lib/bansd", "-v", run+":/run/bansd", "bansd:test")
	c := control.NewClient(filepath.Join(run, "bansd.sock"))
	var st control.Status
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err = c.Status(t.Context())
		if err == nil && st.Firewall.Present && strings.Contains(st.Docker.State, "waiting for the Mailu project") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerised bansd: %v %+v", err, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The table is in the host (here: the engine's) namespace.
	if out := e.Exec(t, "nft", "list", "chain", "inet", "bansd", "prerouting"); !strings.Contains(out, "priority raw - 10") && !strings.Contains(out, "priority -310") {
		t.Errorf("chain in the engine's namespace:\n%s", out)
	}
	e.Docker(t, "stop", "bansd")
	if code := strings.TrimSpace(e.Docker(t, "inspect", "-f", "{{.State.ExitCode}}", "bansd")); code != "0" {
		t.Errorf("bansd exit code after docker stop: %s", code)
	}
}
