package main

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/stats"
	"github.com/bansd/bansd/store"
)

// attemptBook moves the engine's event counters (bansd_events_total) into
// the store's hourly attempts, as deltas: the counters live as long as the
// process, the store's hours outlive it.
type attemptBook struct {
	mu   sync.Mutex
	last map[string]uint64
}

// flushAttempts writes what the engine counted since the last flush to the
// hour of now. Called every minute, before each stats answer and at stop,
// so an attempt lands at most a minute off its hour.
func (d *daemon) flushAttempts(now time.Time) {
	if d.db == nil {
		return
	}
	d.attempts.mu.Lock()
	defer d.attempts.mu.Unlock()
	cur := d.engine.Stats().Events
	delta := make(map[string]uint64, len(cur))
	for k, n := range cur {
		if n > d.attempts.last[k] {
			delta[k] = n - d.attempts.last[k]
		}
	}
	if err := d.db.AddAttempts(now, delta); err != nil {
		// Kept in the delta: the next flush tries again.
		d.log.Error("history: write attempts", "err", err)
		return
	}
	d.attempts.last = maps.Clone(cur)
}

// statsKinds maps the store's event kinds onto what the sums count.
var statsKinds = map[string]stats.Kind{
	store.EventBan: stats.Ban, store.EventManual: stats.Ban, store.EventImport: stats.Ban,
	store.EventRefresh: stats.Refresh, store.EventUnban: stats.Unban, store.EventExpire: stats.Expire,
	store.EventAlarm: stats.Alarm,
}

// Stats answers GET /v1/stats: the store's history and hourly attempts
// summed up in one pass each, without holding the events.
func (d *daemon) Stats(ctx context.Context, q control.StatsQuery) (stats.Summary, error) {
	now := time.Now()
	d.flushAttempts(now)
	a := stats.New(q.Since, now)
	err := d.db.EachEvent(a.Since(), func(e *store.Event) bool {
		if k, ok := statsKinds[e.Kind]; ok {
			a.Add(stats.Event{Time: e.Time, Kind: k, Target: e.Target, Jail: e.Jail, Level: e.Level})
		}
		return ctx.Err() == nil
	})
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = d.db.EachAttemptHour(a.Since(), a.Attempts)
	}
	if err != nil {
		return stats.Summary{}, fmt.Errorf("stats: %w", err)
	}
	return a.Summary(q.Top), nil
}
