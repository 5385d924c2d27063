package integration

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bansd/bansd/integration/mailclient"
	"github.com/bansd/bansd/internal/dockertest"
)

// BenchmarkBanLatency measures, end to end, the time from the failed
// attempt that crosses a jail's threshold (the client has nginx's answer)
// to the first SYN of that client that the kernel drops: Docker's log
// stream, bansd's parsing, jail, store and nftables write together. Each
// iteration is a fresh attacker address doing maxretry AUTHs on port 25.
//
//	go test -run '^$' -bench BanLatency -benchtime 20x ./integration/
//
// It reports p50-ms, p99-ms and max-ms (ns/op is a whole attack).
func BenchmarkBanLatency(b *testing.B) {
	e := dockertest.Start(b, dockertest.Options{})
	startStack(b, e, "2024.06")
	legit := newLegit(b, e)
	attacker := newAttacker(b, e, 200)
	waitReady(b, legit)
	startBansd(b, e, testJails)
	if b.N > len(attacker.addrs) {
		b.Fatalf("b.N %d: at most %d attacker addresses", b.N, len(attacker.addrs))
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		src := attacker.addrs[i]
		for k := 1; k <= 3; k++ {
			if k > 1 {
				time.Sleep(internetRTT)
			}
			if r := attacker.login(src, mailclient.SMTP, fmt.Sprintf("bot%d@example.com", k), "x"); r.Outcome != mailclient.Failure {
				b.Fatalf("%s attempt %d: %+v", src, k, r)
			}
		}
		t0 := time.Now()
		t1, err := firstDropped(attacker, src, 25)
		if err != nil {
			b.Fatalf("%s: %v", src, err)
		}
		lat = append(lat, t1.Sub(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[(len(lat)*99+99)/100-1]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.Logf("ban latency over %d runs: %v", len(lat), lat)
}

// firstDropped sends a SYN to port every 2 ms from src and returns when the
// first one that went unanswered was sent.
func firstDropped(p *peer, src netip.Addr, port int) (time.Time, error) {
	const (
		every   = 2 * time.Millisecond
		timeout = 300 * time.Millisecond
	)
	var (
		mu    sync.Mutex
		first time.Time
		wg    sync.WaitGroup
	)
	defer wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for range tick.C {
		mu.Lock()
		done := !first.IsZero()
		mu.Unlock()
		if done {
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			return first, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("no SYN to port %d dropped within 10s", port)
		}
		sent := time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := p.probe(src, port, timeout); r.Outcome == mailclient.Timeout {
				mu.Lock()
				if first.IsZero() || sent.Before(first) {
					first = sent
				}
				mu.Unlock()
			}
		}()
	}
	panic("unreachable: a ticker channel is never closed")
}
