package crowdsec

import (
	"context"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/crowdsectest"
)

// BenchmarkLAPIStartupPull100k: the real LAPI's startup stream of 100,000
// decisions (imported with cscli) through the Syncer. Peak RSS is bansd's
// side only: LAPI is another process.
func BenchmarkLAPIStartupPull100k(b *testing.B) {
	const n = 100_000
	l := crowdsectest.Start(b)
	addrs := make([]netip.Addr, n)
	for i := range addrs {
		addrs[i] = docAddr(i + 1)
	}
	t0 := time.Now()
	l.ImportIPs(b, "4h", addrs)
	b.Logf("cscli imported %d decisions in %s", n, time.Since(t0).Round(time.Millisecond))
	c := clientFor(b, l, l.BouncerKey)
	enf := &countingEnforcer{}
	s, err := NewSyncer(Config{Client: c, Enforcer: enf, NeverBan: allowAll, Pull: true})
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	resetPeak()
	base := peakRSS()
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
	b.ReportMetric(float64(peakRSS())/1024, "peakRSS-MiB")
	b.ReportMetric(float64(base)/1024, "RSSbefore-MiB")
}
