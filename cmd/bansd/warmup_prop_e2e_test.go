package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/internal/dockertest"
	"github.com/bansd/bansd/internal/mailugen"
)

// TestWarmupKillsEqualStraightRun is the warm-up's property with real
// processes: two bansd follow the same generated admin log (mailugen,
// printed at about 2500 lines a second by a real container), each with its
// own store; one runs straight through, the other is killed with SIGKILL
// at random moments and started again each time. At the end both must
// hold the same decisions (target, jail). One service, so that the order
// of the lines is the log's own in both (two services interleave as they
// come). Many more kill points are in jail's TestWarmRestartEqualsStraightRun.
func TestWarmupKillsEqualStraightRun(t *testing.T) {
	e := dockertest.Start(t, dockertest.Options{})
	tr, err := mailugen.Generate(mailugen.Options{Dir: t.TempDir(), Lines: 60000, Attackers: 40, Seed: 5, Span: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))

	straight := newInstance(t, e.Host())
	killed := newInstance(t, e.Host())
	straight.run(t)
	killed.run(t)
	// The log is printed while both follow it, 250 lines each 100 ms.
	printed := make(chan map[string]int, 1)
	go func() {
		printed <- runMailuLogs(t, e, map[string]string{"admin": tr.Files["admin"]},
			`n=$(wc -l < /log); i=1; while [ $i -le $n ]; do sed -n "${i},$((i+249))s/^[^ ]* //p" /log; i=$((i+250)); sleep 0.1; done`)
	}()
	kills := 0
	for done := false; !done; {
		select {
		case want := <-printed:
			done = true
			printed <- want
		// Each run lives past its first cursor flush (every second), so
		// that each start has a cursor to warm up from.
		case <-time.After(time.Duration(1100+rng.IntN(1200)) * time.Millisecond):
			killed.kill()
			kills++
			killed.run(t)
		}
	}
	want := <-printed
	if kills < 2 {
		t.Fatalf("only %d kills while the log was printed", kills)
	}
	sc, kc := control.NewClient(straight.socket), control.NewClient(killed.socket)
	// The straight one has every line; the killed one reaches its last.
	var last time.Time
	deadline := time.Now().Add(time.Minute)
	for {
		f := adminSource(t, sc)
		if f.Lines >= uint64(want["admin"]) {
			last = f.LastLine
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the straight bansd read %d of %d lines", f.Lines, want["admin"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	for !adminSource(t, kc).LastLine.Equal(last) {
		if time.Now().After(deadline) {
			t.Fatalf("the killed bansd never reached the last line: %+v", adminSource(t, kc))
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // the last decisions reach the store
	a, b := decisionSet(t, sc), decisionSet(t, kc)
	if len(a) < 10 {
		m := scrape(t, sc)
		t.Fatalf("the straight run decided %d bans: too few to compare\n%s\n%s", len(a), grepLines(m, "decisions_total"), grepLines(m, "events_total"))
	}
	if !slices.Equal(a, b) {
		t.Fatalf("after %d kills the decisions differ:\nstraight %v\nkilled   %v", kills, a, b)
	}
	w := adminSource(t, kc).Warmup
	if w == nil || w.State != "complete" {
		t.Fatalf("the last start's warm-up %+v, want complete", w)
	}
	t.Logf("%d lines, %d kills, %d decisions equal; last warm-up %d lines in %.3fs", want["admin"], kills, len(a), w.Lines, w.Seconds)
}

func adminSource(t *testing.T, c *control.Client) control.SourceStatus {
	t.Helper()
	for _, s := range mustStatus(t, c).Sources {
		if s.Service == "admin" {
			return s
		}
	}
	t.Fatal("no admin source")
	return control.SourceStatus{}
}

// decisionSet is every ban the daemon decided (history), as "jail target",
// sorted, each once: a kill -9 within the cursor's last second has the
// lines after the saved cursor read again live, and their decision made
// again.
func decisionSet(t *testing.T, c *control.Client) []string {
	t.Helper()
	evs, err := c.History(context.Background(), control.HistoryQuery{Kinds: []string{"ban"}, Limit: control.HistoryLimitMax})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		out = append(out, fmt.Sprintf("%s %s", ev.Jail, ev.Target))
	}
	slices.Sort(out)
	return slices.Compact(out)
}
