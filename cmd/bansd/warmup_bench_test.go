package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/internal/dockertest"
	"github.com/bansd/bansd/internal/mailugen"
)

// busyHour is an hour of a busy stack: about 40 lines a second across
// front, admin and smtp (mailugen's mix; its default is about 1 a second).
const busyHour = 150_000

// BenchmarkWarmupStartup: a real bansd whose cursors stand at the end of an
// hour of a busy stack's logs (mailugen, in three containers of a real
// dockerd) is started; the time is from its exec to the first live line of
// every service, i.e. after each service's warm-up read the hour again.
// The goal is under 2 s on the 2-core test machine; the baseline is
// `docker logs` of the same three logs at once (ratio: bansd's time over
// it; the best run of each). Each run starts from the same state file, so
// each warms up the same lines.
//
// Run: go test ./cmd/bansd -run '^$' -bench BenchmarkWarmupStartup -benchtime 3x
func BenchmarkWarmupStartup(b *testing.B) {
	e := dockertest.Start(b, dockertest.Options{})
	tr, err := mailugen.Generate(mailugen.Options{Dir: b.TempDir(), Lines: busyHour, Attackers: 30, Seed: 1, Span: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	// mailugen writes docker logs -t output: the container prints it without the prefix.
	want := runMailuLogs(b, e, tr.Files, "cut -d' ' -f2- /log")

	in := newInstance(b, e.Host())
	in.run(b)
	c := control.NewClient(in.socket)
	// The first run reads the whole log live and saves its cursors.
	waitSources(b, c, func(s control.SourceStatus) bool { return s.Lines >= uint64(want[s.Service]) }, 5*time.Minute)
	time.Sleep(2 * time.Second)
	in.stop(b)
	state := filepath.Join(in.dir, "state", "bansd.db")
	primed, err := os.ReadFile(state)
	if err != nil {
		b.Fatal(err)
	}
	// One line after the cursors in each log: the first live one.
	for svc := range want {
		e.Docker(b, "exec", "mailu-"+svc+"-1", "touch", "/live")
	}
	time.Sleep(time.Second)

	// Baseline: `docker logs` of the same hour of the three containers at
	// once, to /dev/null (what dockerd's reading costs alone), best of 3.
	var base time.Duration
	for range 3 {
		t0 := time.Now()
		var wg sync.WaitGroup
		for svc := range want {
			wg.Go(func() {
				cmd := exec.Command("docker", "-H", e.Host(), "logs", "-t", "--since", "1h", "mailu-"+svc+"-1")
				cmd.Env = e.Env()
				if err := cmd.Run(); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		if d := time.Since(t0); base == 0 || d < base {
			base = d
		}
	}

	var warmed int
	var took, best time.Duration
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		if err := os.WriteFile(state, primed, 0o600); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		in.run(b)
		srcs := waitSources(b, c, func(s control.SourceStatus) bool { return s.Lines >= 1 }, time.Minute)
		elapsed := time.Since(start)
		b.StopTimer()
		lines, longest := 0, time.Duration(0)
		for _, s := range srcs {
			if s.Warmup == nil || s.Warmup.State != "complete" {
				b.Fatalf("%s: warm-up %+v, want complete", s.Service, s.Warmup)
			}
			lines += s.Warmup.Lines
			longest = max(longest, time.Duration(s.Warmup.Seconds*float64(time.Second)))
		}
		if lines < busyHour*9/10 {
			b.Fatalf("warmed up %d lines, want the hour's %d", lines, busyHour)
		}
		if best == 0 || elapsed < best {
			best, warmed, took = elapsed, lines, longest
		}
		in.stop(b)
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(best.Seconds(), "s_to_first_live_line")
	b.ReportMetric(base.Seconds(), "s_docker_logs_baseline")
	b.ReportMetric(best.Seconds()/base.Seconds(), "ratio")
	// Of the best run: its lines, and its slowest service's warm-up.
	b.ReportMetric(float64(warmed), "warm_lines")
	b.ReportMetric(took.Seconds(), "s_warmup_longest_service")
	b.ReportMetric(float64(warmed)/took.Seconds(), "warm_lines/s")
}

// runMailuLogs runs logs (service: file) as a Mailu project, front and
// admin always (discovery needs both; one without a log sleeps): each
// container runs print with its file at /log, then prints a line each time
// /live appears. It waits until print is done and returns each service's
// line count.
func runMailuLogs(tb testing.TB, e *dockertest.Engine, logs map[string]string, print string) map[string]int {
	tb.Helper()
	img := e.ImportBusybox(tb)
	e.Docker(tb, "network", "create", "--subnet", "192.0.2.240/28", "--gateway", "192.0.2.241",
		"--label", "com.docker.compose.project=mailu", "mailu_default")
	want := map[string]int{}
	svcs := []string{"front", "admin"}
	for svc := range logs {
		if !slices.Contains(svcs, svc) {
			svcs = append(svcs, svc)
		}
	}
	for _, svc := range svcs {
		args := []string{"run", "-d", "--name", "mailu-" + svc + "-1", "--network", "mailu_default",
			"-l", "com.docker.compose.project=mailu", "-l", "com.docker.compose.service=" + svc, "-e", "SUBNET=192.0.2.240/28"}
		script := "exec sleep 3600"
		if f, ok := logs[svc]; ok {
			data, err := os.ReadFile(f)
			if err != nil {
				tb.Fatal(err)
			}
			want[svc] = strings.Count(string(data), "\n")
			args = append(args, "-v", f+":/log:ro")
			script = print + `; touch /written; while :; do if [ -e /live ]; then rm -f /live; echo "live line"; fi; sleep 0.05; done`
		}
		e.Docker(tb, append(args, img, "sh", "-c", script)...)
	}
	for svc := range logs {
		deadline := time.Now().Add(2 * time.Minute)
		for !strings.Contains(e.Docker(tb, "exec", "mailu-"+svc+"-1", "ls", "/"), "written") {
			if time.Now().After(deadline) {
				tb.Fatalf("%s did not write its log", svc)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return want
}

// waitSources polls status until ok holds for every followed service that
// has a container, and returns them.
func waitSources(b testing.TB, c *control.Client, ok func(control.SourceStatus) bool, within time.Duration) []control.SourceStatus {
	b.Helper()
	deadline := time.Now().Add(within)
	for {
		st, err := c.Status(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		var srcs []control.SourceStatus
		all := true
		for _, s := range st.Sources {
			if s.Container == "" {
				continue
			}
			srcs = append(srcs, s)
			all = all && ok(s)
		}
		if all && len(srcs) == len(mailugen.Services) {
			return srcs
		}
		if time.Now().After(deadline) {
			b.Fatalf("sources not there after %s: %+v", within, st.Sources)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
