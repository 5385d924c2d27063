package control

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/stats"
)

// Stats sums up nothing but echoes the query in the summary, so the test
// sees what crossed the wire.
func (m *memBackend) Stats(_ context.Context, q StatsQuery) (stats.Summary, error) {
	a := stats.New(q.Since, q.Since.Add(time.Hour))
	a.Add(stats.Event{Time: q.Since, Kind: stats.Ban, Jail: "auth", Target: m.protec})
	s := a.Summary(q.Top)
	s.Totals.Unbans = uint64(q.Top)
	return s, nil
}

func TestStatsOverTheSocket(t *testing.T) {
	c, _ := serve(t, newMem())
	tests := []struct {
		q     StatsQuery
		since time.Time
		top   uint64
	}{
		{StatsQuery{Since: histT0, Top: 3}, histT0, 3},
		{StatsQuery{Since: histT0}, histT0, 10},                     // the default
		{StatsQuery{Since: histT0, Top: 5000}, histT0, StatsTopMax}, // capped
	}
	for _, tt := range tests {
		s, err := c.Stats(t.Context(), tt.q)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Since.Equal(tt.since) || s.Totals.Unbans != tt.top || s.Totals.Bans != 1 || len(s.Hours) != 2 || len(s.Jails) != 1 || s.Jails[0].Name != "auth" {
			t.Errorf("query %+v: summary %+v", tt.q, s)
		}
	}
	for _, path := range []string{"since=yesterday", "top=0", "top=x"} {
		var out stats.Summary
		err := c.do(t.Context(), "GET", APIVersion+"/stats?"+path, nil, &out)
		if err == nil || !strings.Contains(err.Error(), "bad") {
			t.Errorf("%s: err %v, want a clear refusal", path, err)
		}
	}
}
