package crowdsec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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
	var csv strings.Builder
	csv.WriteString("duration,scope,value\n")
	for i := range n {
		fmt.Fprintf(&csv, "4h,ip,%s\n", docAddr(i+1))
	}
	file := filepath.Join(l.Dir, "import.csv")
	if err := os.WriteFile(file, []byte(csv.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	l.Cscli(b, "decisions", "import", "-i", file)
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
