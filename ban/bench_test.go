package ban

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/netnstest"
	"github.com/bansd/bansd/store"
)

// Benchmarks run as root, each in a fresh network namespace:
//
//	go test -run '^$' -bench . -benchtime 3x ./ban
//
// (-benchtime counts iterations: each one restores or bans 100,000, or
// measures 500 idle bans, or 3 s of bans at 1,000/s.)

// mixed returns n targets: 90% IPv4 addresses, 10% IPv6 /64s, offset so
// that different calls do not collide.
func mixed(n, offset int) []netip.Prefix {
	out := make([]netip.Prefix, n)
	for i := range out {
		k := i + offset
		if i%10 == 9 {
			out[i] = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}), 64)
		} else {
			out[i] = v4(k)
		}
	}
	return out
}

// BenchmarkRestore100k: a manager starting on a store of 100,000 live bans
// and an empty kernel table (after a reboot): load, ensure, restore.
func BenchmarkRestore100k(b *testing.B) {
	ns := netnstest.New(b)
	cfg := testConfig(b)
	db := openStore(b, "")
	now := time.Now()
	targets := mixed(100_000, 0)
	bans := make([]store.Ban, len(targets))
	for i, t := range targets {
		bans[i] = store.Ban{Target: t, Jail: "auth", Reason: "10 failures", Since: now, Until: now.Add(time.Hour), Evidence: []string{"a log line"}}
	}
	if err := db.PutBans(bans); err != nil {
		b.Fatal(err)
	}
	fw := newNFT(b, ns, cfg)
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		ns.Run(b, "nft", "flush", "ruleset")
		m, err := NewManager(withConfig(b, Options{Firewall: fw, Store: db}, cfg))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { done <- m.Run(ctx) }()
		select {
		case <-m.Ready():
		case err := <-done:
			b.Fatal(err)
		}
		total += time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if got := len(kernel(b, fw)); got != len(bans) {
			b.Fatalf("restored %d, want %d", got, len(bans))
		}
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/restore")
	b.ReportMetric(float64(len(bans))*float64(b.N)/total.Seconds(), "bans/s")
}

// BenchmarkBanMany100k: 100,000 new bans in one BanMany (store + kernel).
func BenchmarkBanMany100k(b *testing.B) {
	ns := netnstest.New(b)
	cfg := testConfig(b)
	fw := newNFT(b, ns, cfg)
	m := startManager(b, withConfig(b, Options{Firewall: fw, Store: openStore(b, "")}, cfg))
	var total time.Duration
	round := 0
	for b.Loop() {
		b.StopTimer()
		targets := mixed(100_000, round*100_000)
		round++
		rs := make([]Request, len(targets))
		for i, t := range targets {
			rs[i] = Request{Target: t, Jail: "auth", Duration: time.Hour, Evidence: []string{"a log line"}}
		}
		b.StartTimer()
		start := time.Now()
		n, err := m.BanMany(b.Context(), rs)
		total += time.Since(start)
		if err != nil || n != len(rs) {
			b.Fatalf("BanMany = %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(100_000*b.N)/total.Seconds(), "bans/s")
	b.ReportMetric(total.Seconds()/float64(b.N), "s/100k")
}

// BenchmarkLatencyIdle: 500 bans per iteration, one at a time, from Ban() to the element in
// the kernel (Ban returns after the store write and the kernel flush).
func BenchmarkLatencyIdle(b *testing.B) {
	ns := netnstest.New(b)
	cfg := testConfig(b)
	m := startManager(b, withConfig(b, Options{Firewall: newNFT(b, ns, cfg), Store: openStore(b, "")}, cfg))
	var lat []time.Duration
	i := 0
	for b.Loop() {
		for range 500 {
			start := time.Now()
			if _, err := m.Ban(b.Context(), Request{Target: v4(i), Jail: "auth", Duration: time.Hour}); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
			i++
			// Idle: the next decision arrives after this one is done.
			time.Sleep(time.Millisecond)
		}
	}
	reportLatency(b, lat)
	st, _ := m.Status(context.Background())
	b.ReportMetric(float64(st.MeanFlush)/1e6, "kernel-flush-ms")
}

// BenchmarkLatencyAt1000PerSecond: bans arriving at 1,000/s for 3 s, each
// from its own goroutine, as the jails deliver them under attack.
func BenchmarkLatencyAt1000PerSecond(b *testing.B) {
	ns := netnstest.New(b)
	cfg := testConfig(b)
	m := startManager(b, withConfig(b, Options{Firewall: newNFT(b, ns, cfg), Store: openStore(b, "")}, cfg))
	var (
		mu  sync.Mutex
		lat []time.Duration
	)
	round := 0
	for b.Loop() {
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Millisecond)
		for i := range 3000 {
			<-tick.C
			target := v4(round*3000 + i)
			wg.Go(func() {
				start := time.Now()
				if _, err := m.Ban(context.Background(), Request{Target: target, Jail: "auth", Duration: time.Hour}); err != nil {
					b.Error(err)
				}
				d := time.Since(start)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			})
		}
		tick.Stop()
		wg.Wait()
		round++
	}
	reportLatency(b, lat)
	st, _ := m.Status(context.Background())
	b.ReportMetric(float64(st.FlushedElements)/float64(max(st.Flushes, 1)), "bans/flush")
	b.ReportMetric(float64(st.MeanFlush)/1e6, "kernel-flush-ms")
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/1e6, "max-ms")
}

// BenchmarkReconcile100k: the periodic reconcile of an intact table of
// 100,000 bans: the structural check and full listing (beside the actor)
// and the diff (in the actor, which holds up bans meanwhile).
func BenchmarkReconcile100k(b *testing.B) {
	ns := netnstest.New(b)
	cfg := testConfig(b)
	fw := newNFT(b, ns, cfg)
	db := openStore(b, "")
	m, err := NewManager(withConfig(b, Options{Firewall: fw, Store: db}, cfg))
	if err != nil {
		b.Fatal(err)
	}
	targets := mixed(100_000, 0)
	rs := make([]Request, len(targets))
	for i, t := range targets {
		rs[i] = Request{Target: t, Jail: "auth", Duration: time.Hour}
	}
	prep, err := m.prepare(rs)
	if err != nil {
		b.Fatal(err)
	}
	bans := make([]store.Ban, len(prep))
	for i, p := range prep {
		bans[i] = p.ban
	}
	if err := db.PutBans(bans); err != nil {
		b.Fatal(err)
	}
	if err := m.load(); err != nil {
		b.Fatal(err)
	}
	if err := m.restore(); err != nil {
		b.Fatal(err)
	}
	var listing, actor time.Duration
	for b.Loop() {
		t0 := time.Now()
		l := m.list()
		t1 := time.Now()
		confirm, err := m.reconcile(l)
		if err != nil {
			b.Fatal(err)
		}
		if confirm {
			b.Fatalf("an intact table's listing found elements out of place: %+v", m.suspect)
		}
		listing += t1.Sub(t0)
		actor += time.Since(t1)
	}
	b.ReportMetric(listing.Seconds()/float64(b.N), "list-s")
	b.ReportMetric(float64(actor)/1e6/float64(b.N), "actor-ms")
	if st := m.stats; st.reconcileRepair != "" {
		b.Fatalf("an intact table needed repairs: %s", st.reconcileRepair)
	}
}

// BenchmarkReplaceJail100k: a blocklist of 100,000 entries replaced by a
// version with 10% of it changed (10,000 out, 10,000 in, every other entry
// extended), with ReplaceJail; the baseline does the same change as Unban
// then BanMany (two steps, with the entries in both versions re-banned).
func BenchmarkReplaceJail100k(b *testing.B) {
	const n, churn = 100_000, 10_000
	for _, mode := range []string{"ReplaceJail", "baseline-Unban+BanMany"} {
		b.Run(mode, func(b *testing.B) {
			ns := netnstest.New(b)
			cfg := testConfig(b)
			fw := newNFT(b, ns, cfg)
			m := startManager(b, withConfig(b, Options{Firewall: fw, Store: openStore(b, "")}, cfg))
			ctx := b.Context()
			const jail = "blocklist:bench"
			reqs := func(ts []netip.Prefix) []Request {
				rs := make([]Request, len(ts))
				for i, t := range ts {
					rs[i] = Request{Target: t, Jail: jail, Reason: "list", Duration: time.Hour, Manual: true}
				}
				return rs
			}
			cur := mixed(n, 0)
			if _, _, err := m.ReplaceJail(ctx, jail, reqs(cur), nil, nil); err != nil {
				b.Fatal(err)
			}
			var total time.Duration
			round := 0
			for b.Loop() {
				round++
				next := slices.Concat(cur[churn:], mixed(churn, n*round))
				start := time.Now()
				if mode == "ReplaceJail" {
					if _, _, err := m.ReplaceJail(ctx, jail, reqs(next), cur, nil); err != nil {
						b.Fatal(err)
					}
				} else {
					if _, err := m.Unban(ctx, cur[:churn]); err != nil {
						b.Fatal(err)
					}
					if _, err := m.BanMany(ctx, reqs(next)); err != nil {
						b.Fatal(err)
					}
				}
				total += time.Since(start)
				cur = next
			}
			if got := len(kernel(b, fw)); got != n {
				b.Fatalf("%d elements in the kernel, want %d", got, n)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/swap")
		})
	}
}

// BenchmarkIdle100k: the CPU this process spends over a minute of idling
// with 100,000 live bans and the default 30 s reconcile period (listing
// the kernel, the structural check, the store's purge), in percent of one
// core. User and system time both count: the kernel's netlink dump runs in
// the caller's syscalls. Run with -benchtime 1x.
func BenchmarkIdle100k(b *testing.B) {
	const window = 60 * time.Second
	ns := netnstest.New(b)
	cfg := testConfig(b)
	cfg.Firewall.Reconcile = 30 * time.Second
	db := openStore(b, "")
	now := time.Now()
	targets := mixed(100_000, 0)
	bans := make([]store.Ban, len(targets))
	for i, t := range targets {
		bans[i] = store.Ban{Target: t, Jail: "auth", Reason: "10 failures", Since: now, Until: now.Add(2 * time.Hour)}
	}
	if err := db.PutBans(bans); err != nil {
		b.Fatal(err)
	}
	m := startManager(b, withConfig(b, Options{Firewall: newNFT(b, ns, cfg), Store: db}, cfg))
	var cpu time.Duration
	for b.Loop() {
		// Let the start's garbage go before the window opens.
		time.Sleep(2 * time.Second)
		c0 := processCPU(b)
		time.Sleep(window)
		cpu += processCPU(b) - c0
	}
	b.ReportMetric(100*cpu.Seconds()/(window.Seconds()*float64(b.N)), "%core")
	st, err := m.Status(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if st.LastReconcileError != "" || st.LastReconcileRepair != "" {
		b.Fatalf("reconcile of an intact table: error %q, repaired %q", st.LastReconcileError, st.LastReconcileRepair)
	}
	if got := len(kernel(b, m.fw.(*NFT))); got != len(bans) {
		b.Fatalf("kernel holds %d bans, want %d", got, len(bans))
	}
}

// processCPU is this process's user+system time so far.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
