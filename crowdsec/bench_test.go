package crowdsec

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// writeDecisions streams n decisions without building the body in memory,
// so the server side adds little to the process's peak.
func writeDecisions(w http.ResponseWriter, n int) {
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString(`{"deleted":null,"new":[`)
	for i := range n {
		if i > 0 {
			bw.WriteByte(',')
		}
		a := docAddr(i)
		fmt.Fprintf(bw, `{"duration":"3h59m58.123456789s","id":%d,"origin":"lists","scenario":"firehol_level1","scope":"Ip","type":"ban","value":"%s"}`, i+1, a)
	}
	bw.WriteString(`]}`)
	bw.Flush()
}

// docAddr is the i-th address of 2001:db8::/32 (documentation space).
func docAddr(i int) netip.Addr {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
}

// countingEnforcer takes batches and keeps nothing, like a ban side that
// writes straight through to the kernel.
type countingEnforcer struct{ n int }

func (c *countingEnforcer) Apply(_ context.Context, b []Pulled) error  { c.n += len(b); return nil }
func (c *countingEnforcer) Lift(context.Context, []netip.Prefix) error { return nil }
func (c *countingEnforcer) Resynced(context.Context, time.Time) error  { return nil }

// peakRSS is VmHWM in KiB; resetPeak restarts it (clear_refs 5).
func peakRSS() int64 {
	data, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

func resetPeak() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// BenchmarkStartupPull: a startup stream of 100,000 (and 1,000,000)
// decisions through the Syncer to the Enforcer, in batches. Peak RSS
// includes the in-process server writing the stream.
func BenchmarkStartupPull(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) { benchStartup(b, n) })
	}
}

func benchStartup(b *testing.B, n int) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeDecisions(w, n) }))
	defer srv.Close()
	c, err := NewClient(ClientConfig{URL: srv.URL, BouncerKey: "k"})
	if err != nil {
		b.Fatal(err)
	}
	benchPulls(b, c, n)
}

// benchPulls times startup pulls of n decisions through a Syncer into a
// counting enforcer, with this process's peak RSS and allocation per pull.
func benchPulls(b *testing.B, c *Client, n int) {
	b.Helper()
	enf := &countingEnforcer{}
	s, err := NewSyncer(Config{Client: c, Enforcer: enf, NeverBan: allowAll, Pull: true})
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	resetPeak()
	base := peakRSS()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	for b.Loop() {
		enf.n = 0
		if err := s.PullOnce(context.Background(), true); err != nil {
			b.Fatal(err)
		}
		if enf.n != n {
			b.Fatalf("enforced %d of %d", enf.n, n)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(peakRSS())/1024, "peakRSS-MiB")
	b.ReportMetric(float64(base)/1024, "RSSbefore-MiB")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(b.N)/(1<<20), "alloc-MiB/op")
}
