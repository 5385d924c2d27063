// Package proctest reads what benchmarks report of processes they started:
// CPU time from /proc/PID/stat, resident memory from /proc/PID/status.
package proctest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// CPU is the user plus system time pid has used so far (its own threads,
// not its waited-for children), at the kernel's 10 ms granularity.
func CPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	d, err := cpu(pid)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func cpu(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields are counted from its closing one.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')' in %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name, want at least 13", pid, len(f))
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: utime/stime %q: %w", pid, v, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// KiB is a memory field of /proc/PID/status ("VmRSS", "VmHWM", ...) in KiB.
func KiB(tb testing.TB, pid int, field string) int64 {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				tb.Fatalf("/proc/%d/status %s %q: %v", pid, field, v, err)
			}
			return kb
		}
	}
	tb.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// ResetPeak restarts pid's VmHWM at its current RSS (clear_refs 5).
func ResetPeak(tb testing.TB, pid int) {
	tb.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		tb.Fatal(err)
	}
}

// MiB converts KiB for ReportMetric.
func MiB(kib int64) float64 { return float64(kib) / 1024 }

// Reads is how many read system calls pid has made so far (syscr of
// /proc/PID/io): how finely a process takes its input.
func Reads(tb testing.TB, pid int) int64 {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "syscr:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				tb.Fatalf("/proc/%d/io syscr %q: %v", pid, v, err)
			}
			return n
		}
	}
	tb.Fatalf("no syscr in /proc/%d/io", pid)
	return 0
}
