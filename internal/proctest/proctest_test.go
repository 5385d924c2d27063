package proctest

import (
	"os"
	"testing"
	"time"
)

// TestCPUAndMemoryOfSelf: this process's CPU grows with a busy loop, its
// read calls with file reads, and
// its resident set is a positive number below its peak.
func TestCPUAndMemoryOfSelf(t *testing.T) {
	pid := os.Getpid()
	// Busy until 100 ms of CPU show, however loaded the machine is.
	c0 := CPU(t, pid)
	for start := time.Now(); CPU(t, pid)-c0 < 100*time.Millisecond; {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("20 s of busy loop counted as %s of CPU", CPU(t, pid)-c0)
		}
	}
	rss, hwm := KiB(t, pid, "VmRSS"), KiB(t, pid, "VmHWM")
	if rss <= 0 || hwm < rss {
		t.Errorf("VmRSS %d kB, VmHWM %d kB", rss, hwm)
	}
	r0 := Reads(t, pid)
	for range 10 {
		if _, err := os.ReadFile("/proc/self/stat"); err != nil {
			t.Fatal(err)
		}
	}
	if d := Reads(t, pid) - r0; d < 10 {
		t.Errorf("10 file reads counted as %d read calls", d)
	}
	if _, err := cpu(-1); err == nil {
		t.Error("no error for a process that cannot exist")
	}
}
