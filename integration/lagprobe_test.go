package integration

import (
	"bufio"
	"context"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/dockertest"
)

// dockerLogsFollower is the baseline consumer of a container's log: the
// docker CLI following it (`docker logs -f -t`), its lines read as they
// come. Its lag is measured as bansd's is: when a line arrives, how far
// behind dockerd's timestamp for it.
type dockerLogsFollower struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	n    uint64
	lag  time.Duration // of the last line read
	err  error
	done chan struct{}
}

// followDockerLogs starts `docker logs -f -t --since since` of container.
func followDockerLogs(tb testing.TB, e *dockertest.Engine, container string, since time.Time) *dockerLogsFollower {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "docker", "logs", "-f", "-t", "--since", since.UTC().Format(time.RFC3339Nano), container)
	cmd.Env = e.Env()
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	f := &dockerLogsFollower{cmd: cmd, done: make(chan struct{})}
	tb.Cleanup(func() { cancel(); <-f.done })
	go func() {
		defer close(f.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			now := time.Now()
			stamp, _, _ := strings.Cut(sc.Text(), " ")
			t, err := time.Parse(time.RFC3339Nano, stamp)
			f.mu.Lock()
			if err != nil && f.err == nil {
				f.err = err
			}
			f.n++
			f.lag = now.Sub(t)
			f.mu.Unlock()
		}
		_ = cmd.Wait()
	}()
	return f
}

// state is how many lines the follower has read and the lag of the last.
func (f *dockerLogsFollower) state() (uint64, time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n, f.lag, f.err
}

// socketBacklog returns the largest receive queue, in bytes, of pid's
// unix sockets in e's namespace: what dockerd has written to bansd's log
// streams (and its API answers) that bansd has not read yet.
func socketBacklog(tb testing.TB, e *dockertest.Engine, pid int) int {
	tb.Helper()
	out, err := exec.Command("nsenter", "--net=/run/netns/"+e.NetNS, "ss", "-xnp").Output()
	if err != nil {
		tb.Fatalf("ss -xnp: %v", err)
	}
	owner := "pid=" + strconv.Itoa(pid) + ","
	most := 0
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, owner) {
			continue
		}
		// Netid State Recv-Q Send-Q Local Peer ...
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		q, err := strconv.Atoi(f[2])
		if err != nil {
			tb.Fatalf("ss -xnp: Recv-Q %q in %q", f[2], line)
		}
		most = max(most, q)
	}
	return most
}
