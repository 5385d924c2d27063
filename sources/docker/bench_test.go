package docker

import (
	"context"
	"fmt"
	"github.com/bansd/bansd/sources"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/dockertest"
	"github.com/bansd/bansd/internal/proctest"
)

// BenchmarkDockerSource compares the Docker source with `docker logs` on
// the same container of the same engine:
//   - live: logspam prints 50,000 lines/s; the source and `docker logs -f`
//     follow it from the start; live_ratio is docker logs' time over the
//     source's time to get every line (1: the source keeps up as well);
//   - replay: the finished log read again in full; ratio is the source's
//     lines/s over docker logs' lines/s (docker logs to /dev/null), best
//     of three each.
//
// Run: go test ./sources -run '^$' -bench BenchmarkDockerSource -benchtime 1x
func BenchmarkDockerSource(b *testing.B) {
	const (
		rate = 50000
		n    = 10 * rate
	)
	e := dockertest.Start(b, dockertest.Options{})
	img := e.ImportLogspam(b)
	for i := 0; i < b.N; i++ {
		id := strings.TrimSpace(e.Docker(b, "create", "-l", "com.docker.compose.project=bench", "-l", "com.docker.compose.service=front",
			img, "logspam", "-n", fmt.Sprint(n), "-rate", fmt.Sprint(rate), "-size", "120"))
		cli := exec.Command("docker", "-H", e.Host(), "logs", "-f", id)
		cli.Env = e.Env()
		live := make(chan time.Time, 1)
		go func() { live <- benchSource(b, e, n).last }()
		cpu0, reads0 := proctest.CPU(b, os.Getpid()), proctest.Reads(b, os.Getpid())
		start := time.Now()
		e.Docker(b, "start", id)
		if err := cli.Start(); err != nil {
			b.Fatal(err)
		}
		if err := cli.Wait(); err != nil {
			b.Fatal(err)
		}
		cliLive := time.Since(start)
		srcLive := (<-live).Sub(start)
		// This process is the source and a consumer that only marks lines
		// done: its CPU is the source's cost of following a live stream.
		b.ReportMetric((proctest.CPU(b, os.Getpid())-cpu0).Seconds()/(float64(n)/1e6), "live_src_cpu_s/Mline")
		b.ReportMetric(float64(proctest.Reads(b, os.Getpid())-reads0)/float64(n), "live_src_reads/line")
		b.ReportMetric(float64(n)/srcLive.Seconds(), "live_src_lines/s")
		b.ReportMetric(cliLive.Seconds()/srcLive.Seconds(), "live_ratio")

		var srcBest, cliBest time.Duration
		for k := 0; k < 3; k++ {
			r := benchSource(b, e, n)
			if d := r.elapsed; srcBest == 0 || d < srcBest {
				srcBest = d
			}
			cmd := exec.Command("docker", "-H", e.Host(), "logs", id)
			cmd.Env = e.Env()
			t0 := time.Now()
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
			if d := time.Since(t0); cliBest == 0 || d < cliBest {
				cliBest = d
			}
		}
		srcRate, cliRate := float64(n)/srcBest.Seconds(), float64(n)/cliBest.Seconds()
		b.ReportMetric(srcRate, "src_lines/s")
		b.ReportMetric(cliRate, "cli_lines/s")
		b.ReportMetric(srcRate/cliRate, "ratio")
		e.Docker(b, "rm", "-f", id)
	}
}

type benchResult struct {
	last    time.Time     // when the last line came
	elapsed time.Duration // from Run to the last line
}

// benchSource reads n lines of project bench with a fresh source, a real
// store and a consumer that marks every line Done.
func benchSource(b *testing.B, e *dockertest.Engine, n int) benchResult {
	st := dkOpenStore(b, filepath.Join(b.TempDir(), "bansd.db"))
	d, err := NewDocker(DockerOptions{Host: e.Host(), Project: "bench", Cursors: st, Backlog: 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan []sources.Line, 64)
	ran := make(chan error, 1)
	start := time.Now()
	go func() { ran <- d.Run(ctx, out) }()
	var r benchResult
	for got := 0; got < n; {
		lines := <-out
		got += len(lines)
		d.Done(lines)
	}
	r.last = time.Now()
	r.elapsed = r.last.Sub(start)
	cancel()
	<-ran
	return r
}
