package jail

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/mailugen"
	"github.com/bansd/bansd/sources"
)

// decided is one decision and the line that caused it.
type decided struct {
	line         int
	target, jail string
}

func (d decided) String() string { return fmt.Sprintf("line %d: %s %s", d.line, d.jail, d.target) }

// runLines feeds lines[from:] to e live and returns its decisions.
func runLines(t *testing.T, e *Engine, lines []sources.Line, from int) []decided {
	t.Helper()
	var out []decided
	for i := from; i < len(lines); i++ {
		for _, d := range e.Process(lines[i]).Decisions {
			out = append(out, decided{i, d.Target.String(), d.Jail})
		}
	}
	return out
}

// restartAt is a daemon killed after line k-1 and started again: a new
// engine warms up on the lines of the lookback before line k (from the
// second the follower asks Docker for) and goes on live from line k.
func restartAt(t *testing.T, lines []sources.Line, k int, lookback time.Duration) []decided {
	t.Helper()
	e, err := NewEngine(testConfig(t, ""), Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	since := lines[k].Time.Add(-lookback).Truncate(time.Second)
	for _, l := range lines[:k] {
		if !l.Time.Before(since) {
			e.Warm(l)
		}
	}
	if s := e.Stats(); s.Lines != 0 || s.Matched != 0 || s.Alarms != 0 || len(e.FlushAlarms()) != 0 {
		t.Fatalf("warm-up moved the live counters: %+v", s)
	}
	return runLines(t, e, lines, k)
}

// Property: a daemon killed at any line and warmed up from the lookback
// decides exactly what an uninterrupted one decides from that line on.
func TestWarmRestartEqualsStraightRun(t *testing.T) {
	cases := []struct {
		name    string
		version string
		seed    uint64
	}{
		{"2024.06", mailugen.V2024, 7},
		{"2.0", mailugen.V20, 11},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lines := mailuMix(t, mailugen.Options{Lines: 40000, Attackers: 30, Seed: tc.seed, Version: tc.version, Span: 4 * time.Hour})
			cfg := testConfig(t, "")
			e, err := NewEngine(cfg, Options{Now: func() time.Time { return t0 }})
			if err != nil {
				t.Fatal(err)
			}
			lookback := e.Lookback()
			straight := runLines(t, e, lines, 0)
			if len(straight) < 10 {
				t.Fatalf("the mix decides only %d bans: too few to compare", len(straight))
			}
			rng := rand.New(rand.NewPCG(tc.seed, 1))
			// Kill points: random lines, and just before each decision
			// (the line a window reaches maxretry on is the first live one).
			var kills []int
			for range 30 {
				kills = append(kills, 1+rng.IntN(len(lines)-1))
			}
			for _, d := range straight[:min(10, len(straight))] {
				kills = append(kills, d.line, d.line-1)
			}
			for _, k := range kills {
				var want []decided
				if i := slices.IndexFunc(straight, func(d decided) bool { return d.line >= k }); i >= 0 {
					want = straight[i:]
				}
				got := restartAt(t, lines, k, lookback)
				if !slices.Equal(got, want) {
					t.Fatalf("killed before line %d: decisions differ\n got %v\nwant %v", k, got, want)
				}
			}
		})
	}
}

// Without the warm-up (what bansd did before), a kill loses counts: the
// property above is not trivially true.
func TestWarmNeeded(t *testing.T) {
	e, _ := newTestEngine(t, "")
	var lines []sources.Line
	for i := range 10 {
		ts := t0.Add(time.Duration(i) * time.Second)
		lines = append(lines, sources.Line{Service: "admin", Time: ts, Text: fmt.Sprintf(
			"[%s] INFO in nginx: Login attempt for: alice@example.com/imap/993 from: 203.0.113.7/5154%d: failed: badauth: 3fa9c%d",
			ts.Format("2006-01-02 15:04:05,000"), i, i)})
	}
	straight := runLines(t, e.Engine, lines, 0)
	if len(straight) != 1 || straight[0].line != 9 {
		t.Fatalf("straight run: %v", straight)
	}
	cold, _ := newTestEngine(t, "")
	if got := runLines(t, cold.Engine, lines, 5); len(got) != 0 {
		t.Fatalf("a cold restart after 5 failures banned: %v", got)
	}
	if got := restartAt(t, lines, 5, time.Hour); !slices.Equal(got, straight) {
		t.Fatalf("warm restart: %v, want %v", got, straight)
	}
	w := e.WarmStats()
	if w.Lines != 0 {
		t.Fatalf("live engine has warm lines: %+v", w)
	}
}
