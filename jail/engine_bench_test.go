package jail

import (
	"context"
	"net/netip"
	"os"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/bansd/bansd/jail/parse"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/internal/mailugen"
	"github.com/bansd/bansd/sources"
)

// engineBenchMix generates a realistic Mailu 2024.06 mix and returns it merged
// in time order, as replay feeds it.
func engineBenchMix(b testing.TB, n int) []sources.Line {
	return mailuMix(b, mailugen.Options{Lines: n, Seed: 1})
}

// mailuMix generates opt's logs (into a temporary directory) merged in
// time order.
func mailuMix(b testing.TB, opt mailugen.Options) []sources.Line {
	b.Helper()
	opt.Dir = b.TempDir()
	tr, err := mailugen.Generate(opt)
	if err != nil {
		b.Fatal(err)
	}
	var lines []sources.Line
	for _, svc := range mailugen.Services {
		f, err := os.Open(tr.Files[svc])
		if err != nil {
			b.Fatal(err)
		}
		err = sources.ReadFile(context.Background(), f, svc, 65536, func(l sources.Line) error {
			lines = append(lines, l)
			return nil
		})
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].Time.Before(lines[j].Time) })
	return lines
}

// BenchmarkEngineProcess is the hot path: parser and engine over a
// realistic mix; lines/s is the number to watch (>= 1M on 2 cores).
func BenchmarkEngineProcess(b *testing.B) {
	lines := engineBenchMix(b, 200000)
	cfg, err := configs.Default()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		e, err := NewEngine(cfg, Options{})
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range lines {
			e.Process(l)
		}
	}
	b.ReportMetric(float64(len(lines))*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkParserOnly separates the matchers' share from the engine's.
func BenchmarkParserOnly(b *testing.B) {
	lines := engineBenchMix(b, 200000)
	b.ResetTimer()
	for b.Loop() {
		p := parse.NewParser(parse.ParserOptions{})
		for _, l := range lines {
			p.Parse(l)
		}
	}
	b.ReportMetric(float64(len(lines))*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkMillionDistinct feeds one million distinct attacking addresses
// (one bad API token each, every one in its own /64) and reports the live
// heap after a collection: max_tracked must bound it.
func BenchmarkMillionDistinct(b *testing.B) {
	cfg, err := configs.Default()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		ng, err := NewEngine(cfg, Options{})
		if err != nil {
			b.Fatal(err)
		}
		e := testEngine{ng, &recorder{}}
		line := "[2026-11-20 00:00:00,000] WARNING in common: Invalid API token provided by 2001:db8:ffff:ffff::1."
		for i := range 1_000_000 {
			var a [16]byte
			a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
			a[4], a[5], a[6], a[7] = byte(i>>12), byte(i>>4), 0, byte(i&0xf)
			a[15] = 1
			e.feed(parse.Event{Kind: parse.KindTokenInvalid, Origin: parse.OriginAdmin, Time: t0.Add(time.Duration(i) * time.Millisecond), Addr: netip.AddrFrom16(a), Count: 1, Line: line})
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(e.Stats().Tracked), "tracked")
		benchSink = e.Engine
	}
}

var benchSink *Engine
