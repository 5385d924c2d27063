package proctest

import (
	"os"
	"testing"
	"time"
)

// TestCPUAndMemoryOfSelf: this process's CPU grows with a busy loop, and
// its resident set is a positive number below its peak.
func TestCPUAndMemoryOfSelf(t *testing.T) {
	pid := os.Getpid()
	c0 := CPU(t, pid)
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
	}
	if d := CPU(t, pid) - c0; d < 100*time.Millisecond {
		t.Errorf("300 ms of busy loop counted as %s of CPU", d)
	}
	rss, hwm := KiB(t, pid, "VmRSS"), KiB(t, pid, "VmHWM")
	if rss <= 0 || hwm < rss {
		t.Errorf("VmRSS %d kB, VmHWM %d kB", rss, hwm)
	}
	if _, err := cpu(-1); err == nil {
		t.Error("no error for a process that cannot exist")
	}
}
