package crowdsec

import (
	"net/netip"
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
	benchPulls(b, clientFor(b, l, l.BouncerKey), n)
}
