package integration

import (
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/dockertest"
)

// Bounds of the loaded condition: it lasts at most loadFor, and the flood
// prints at most floodRate lines a second on each of its two streams.
const (
	loadFor   = 4 * time.Minute
	floodRate = 4000
)

// startLoad keeps every core busy and floods the Docker log path until the
// test ends (at most loadFor): one shell busy loop per CPU, each in its own
// process group, and a logspam container that bansd follows as Mailu's
// antispam service (its lines reach bansd's parser and match nothing).
func startLoad(t testing.TB, e *dockertest.Engine) {
	t.Helper()
	secs := fmt.Sprint(int(loadFor.Seconds()))
	for range runtime.NumCPU() {
		cmd := exec.Command("timeout", secs, "sh", "-c", "while :; do :; done")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("busy loop: %v", err)
		}
		pgid := cmd.Process.Pid
		t.Cleanup(func() {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			_ = cmd.Wait()
		})
	}
	img := e.ImportLogspam(t)
	n := fmt.Sprint(floodRate * int(loadFor.Seconds()))
	e.Docker(t, "run", "-d", "--name", "mailu_antispam_1", "--network", "none",
		"--label", "com.docker.compose.project=mailu", "--label", "com.docker.compose.service=antispam",
		img, "/bin/logspam", "-n", n, "-rate", fmt.Sprint(floodRate), "-size", "160", "-streams", "both")
	t.Cleanup(func() {
		cmd := exec.Command("docker", "-H", e.Host(), "rm", "-f", "mailu_antispam_1")
		cmd.Env = e.Env()
		_ = cmd.Run()
	})
}
