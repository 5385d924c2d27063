package ban

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/bansd/bansd/store"
)

// callerKey carries the uid of the local user who asked for an action
// (the control socket's peer credentials) down to its history event.
type callerKey struct{}

// WithCaller marks ctx as a request of local user uid.
func WithCaller(ctx context.Context, uid int) context.Context {
	return context.WithValue(ctx, callerKey{}, uid)
}

func callerFrom(ctx context.Context) int {
	if uid, ok := ctx.Value(callerKey{}).(int); ok {
		return uid
	}
	return store.NoUID
}

// eventPruneEvery spaces the age pruning of the audit history.
const eventPruneEvery = time.Hour

// logEventsMax bounds the log lines of one batch (an import of 100,000
// bans); the rest are summed up in one line, the history has them all.
const logEventsMax = 100

// banEvents is the history of the bans about to be written: prev holds the
// live ban each replaces (a refresh), uid the caller of each.
func banEvents(write []store.Ban, prev map[netip.Prefix]bool, uid map[netip.Prefix]int, now time.Time) []store.Event {
	evs := make([]store.Event, len(write))
	for i, b := range write {
		kind := store.EventBan
		switch {
		case prev[b.Target]:
			kind = store.EventRefresh
		case b.Manual && b.Jail != "manual":
			kind = store.EventImport
		case b.Manual:
			kind = store.EventManual
		}
		u, ok := uid[b.Target]
		if !ok {
			u = store.NoUID
		}
		evs[i] = store.Event{Time: now, Kind: kind, Target: b.Target, Jail: b.Jail, Reason: b.Reason,
			Duration: b.Term(), Level: b.Level, UID: u, Evidence: b.Evidence}
	}
	return evs
}

// logEvents writes the daemon's log line of each event, with the same fields
// as the history.
func (m *Manager) logEvents(evs []store.Event) {
	for i, e := range evs {
		if i == logEventsMax {
			m.log.Info("more actions", "count", len(evs)-i, "see", "bansctl history")
			return
		}
		attrs := []any{"kind", e.Kind, "target", e.Target, "jail", e.Jail}
		switch e.Duration {
		case 0:
		case store.PermanentDuration:
			attrs = append(attrs, "duration", "permanent", "level", e.Level)
		default:
			attrs = append(attrs, "duration", e.Duration, "level", e.Level)
		}
		if e.UID != store.NoUID {
			attrs = append(attrs, "uid", e.UID)
		}
		if e.Reason != "" {
			attrs = append(attrs, "reason", e.Reason)
		}
		m.log.LogAttrs(context.Background(), slog.LevelInfo, e.Kind, slogAttrs(attrs)...)
	}
}

func slogAttrs(kv []any) []slog.Attr {
	out := make([]slog.Attr, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, slog.Any(kv[i].(string), kv[i+1]))
	}
	return out
}

// pruneEvents drops the history past its age bound, hourly.
func (m *Manager) pruneEvents(now time.Time) {
	if now.Sub(m.eventsPruned) < eventPruneEvery {
		return
	}
	m.eventsPruned = now
	n, err := m.db.PruneEvents(now)
	if err != nil {
		m.log.Error("pruning the history", "err", err)
		return
	}
	if n > 0 {
		m.log.Info("dropped old history events", "count", n)
	}
}

// expireEvent is the history of b's end, seen at now. The event's time is
// when it was seen (the history stays in time order); the ban's end is in
// the detail.
func expireEvent(b store.Ban, now time.Time) store.Event {
	return store.Event{Time: now, Kind: store.EventExpire, Target: b.Target, Jail: b.Jail,
		Duration: b.Term(), Level: b.Level, UID: store.NoUID,
		Detail: "ended " + b.Until.UTC().Format(time.RFC3339)}
}

// purgeExpiredLogged deletes, at start, the bans that ended while bansd was
// not running, with their expiry events in the same transaction.
func (m *Manager) purgeExpiredLogged(now time.Time) error {
	bans, err := m.db.Bans()
	if err != nil {
		return err
	}
	var (
		ts  []netip.Prefix
		evs []store.Event
	)
	for _, b := range bans {
		if !b.Until.After(now) {
			ts = append(ts, b.Target)
			evs = append(evs, expireEvent(b, now))
		}
	}
	if len(ts) == 0 {
		return nil
	}
	if err := m.db.DeleteBans(ts, evs...); err != nil {
		return err
	}
	m.logEvents(evs)
	return nil
}
