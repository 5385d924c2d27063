package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/proctest"
)

// writeBlocklist writes n distinct IPv6 addresses (2001:db8::/32, documentation
// space) with a comment line every 1000 entries.
func writeBlocklist(tb testing.TB, dir string, n int) string {
	tb.Helper()
	var b strings.Builder
	for i := range n {
		if i%1000 == 0 {
			fmt.Fprintf(&b, "# block %d\n", i/1000)
		}
		fmt.Fprintf(&b, "2001:db8:%x:%x::1\n", i>>16, i&0xffff)
	}
	path := filepath.Join(dir, "blocklist.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// kernelElements counts the elements of a set in the instance's namespace.
func (in *instance) kernelElements(tb testing.TB, set string) int {
	tb.Helper()
	out := in.ns.Run(tb, "nft", "-j", "list", "set", "inet", "bansd", set)
	var doc struct {
		Nftables []struct {
			Set *struct {
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		tb.Fatalf("nft -j: %v", err)
	}
	for _, o := range doc.Nftables {
		if o.Set != nil {
			return len(o.Set.Elem)
		}
	}
	return 0
}

// BenchmarkBanFromFile100k: `bansctl ban --from-file` of 100,000 entries,
// timed until bansctl returns, which is after the elements are in the
// kernel (the daemon answers once the ban manager flushed them).
// Run as root: go test -run '^$' -bench BanFromFile -benchtime 3x ./cmd/bansd
func BenchmarkBanFromFile100k(b *testing.B) {
	const n = 100_000
	in := start(b)
	file := writeBlocklist(b, in.dir, n)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		in.mustCtl(b, 0, "unban", "--all", "--yes")
		b.StartTimer()
		in.mustCtl(b, 0, "ban", "--for", "1h", "--from-file", file)
		b.StopTimer()
		if got := in.kernelElements(b, "v6_128"); got != n {
			b.Fatalf("kernel holds %d elements, want %d", got, n)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n), "bans/op")
}

// BenchmarkList100k: `bansctl list` (table) and `bansctl list --json` with
// 100,000 active bans, output discarded.
// Run as root: go test -run '^$' -bench List100k -benchtime 5x ./cmd/bansd
func BenchmarkList100k(b *testing.B) {
	const n = 100_000
	in := start(b)
	in.mustCtl(b, 0, "ban", "--for", "1h", "--from-file", writeBlocklist(b, in.dir, n))
	for _, mode := range [][]string{{"list"}, {"list", "--json"}} {
		b.Run(strings.Join(mode, "_"), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				cmd := exec.Command(filepath.Join(binDir, "bansctl"), mode...)
				cmd.Env = append(os.Environ(), "BANSD_SOCKET="+in.socket)
				cmd.Stdout = io.Discard
				if err := cmd.Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// restartedWith bans n addresses through the control API, stops bansd,
// deletes its table (a reboot) and starts it again. It returns the time
// from exec to the daemon's own "restored" record (logged once the last
// batch is in the kernel), checked against the kernel's set.
func restartedWith(b *testing.B, n int) (*instance, time.Duration) {
	b.Helper()
	in := start(b)
	in.mustCtl(b, 0, "ban", "--for", "2h", "--from-file", writeBlocklist(b, in.dir, n))
	in.stop(b)
	in.ns.Run(b, "nft", "delete", "table", "inet", "bansd")
	execAt := time.Now()
	in.run(b)
	restored := regexp.MustCompile(`(?m)^time=(\S+) level=INFO msg="restored bans from the store" .*\bcount=(\d+)\b`)
	var m []string
	for deadline := time.Now().Add(60 * time.Second); m == nil; time.Sleep(10 * time.Millisecond) {
		if m = restored.FindStringSubmatch(in.log.String()); m == nil && time.Now().After(deadline) {
			b.Fatalf("no %q in bansd's log after 60 s:\n%s", restored, in.log.String())
		}
	}
	at, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		b.Fatal(err)
	}
	if m[2] != strconv.Itoa(n) {
		b.Fatalf("bansd restored %s bans, want %d", m[2], n)
	}
	if got := in.kernelElements(b, "v6_128"); got != n {
		b.Fatalf("kernel holds %d elements after the restore, want %d", got, n)
	}
	return in, at.Sub(execAt)
}

// settle lets a started daemon's start-up garbage be collected before its
// idle figures are read.
const settle = 10 * time.Second

// BenchmarkDaemonIdle10k: the resident set of a bansd started on a store
// of 10,000 bans, idle (rss-MiB; peak-MiB is its high-water mark since
// exec, the restore included).
//
//	go test -run '^$' -bench DaemonIdle10k -benchtime 1x ./cmd/bansd
func BenchmarkDaemonIdle10k(b *testing.B) {
	for b.Loop() {
		in, _ := restartedWith(b, 10_000)
		time.Sleep(settle)
		pid := in.cmd.Process.Pid
		reportRSS(b, pid)
		b.ReportMetric(proctest.MiB(proctest.KiB(b, pid, "VmHWM")), "peak-MiB")
	}
}

// BenchmarkDaemon100k: a bansd started on a store of 100,000 bans after a
// reboot (no table): exec to every ban in the kernel (start-s), then its
// idle resident set (rss-MiB) and its CPU over a minute of idling with the
// default 30 s reconcile, in percent of one core (idle-%core).
//
//	go test -run '^$' -bench Daemon100k -benchtime 1x ./cmd/bansd
func BenchmarkDaemon100k(b *testing.B) {
	const window = time.Minute
	for b.Loop() {
		in, took := restartedWith(b, 100_000)
		time.Sleep(settle)
		pid := in.cmd.Process.Pid
		reportRSS(b, pid)
		c0 := proctest.CPU(b, pid)
		time.Sleep(window)
		cpu := proctest.CPU(b, pid) - c0
		b.ReportMetric(took.Seconds(), "start-s")
		b.ReportMetric(100*cpu.Seconds()/window.Seconds(), "idle-%core")
	}
}

// reportRSS reports pid's resident set and its two parts: anonymous (the
// Go heap and runtime) and file-backed (the binary, the store's mmap pages
// that were touched).
func reportRSS(b *testing.B, pid int) {
	b.Helper()
	b.ReportMetric(proctest.MiB(proctest.KiB(b, pid, "VmRSS")), "rss-MiB")
	b.ReportMetric(proctest.MiB(proctest.KiB(b, pid, "RssAnon")), "anon-MiB")
	b.ReportMetric(proctest.MiB(proctest.KiB(b, pid, "RssFile")), "file-MiB")
}
