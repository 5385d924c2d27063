package main

import (
	"context"
	"net/netip"
	"time"

	"github.com/bansd/bansd/ban"
	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/store"
)

// withCaller passes the control socket's peer uid to the ban manager, for
// the history of manual bans and unbans.
func withCaller(ctx context.Context) (context.Context, int) {
	uid, ok := control.CallerUID(ctx)
	if !ok {
		return ctx, store.NoUID
	}
	return ban.WithCaller(ctx, uid), uid
}

// event records an action that has no store change of its own (start,
// stop, reload, alarm). A failure is logged: the action itself happened.
func (d *daemon) event(e store.Event) {
	if d.db == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if err := d.db.AddEvents([]store.Event{e}); err != nil {
		d.log.Error("history: write event", "kind", e.Kind, "err", err)
	}
}

func alarmEvent(a jail.Alarm) store.Event {
	e := store.Event{Kind: store.EventAlarm, Reason: a.Kind, Detail: a.Hint, UID: store.NoUID}
	if a.Addr.IsValid() {
		a := a.Addr.Unmap()
		e.Target = netip.PrefixFrom(a, a.BitLen())
	}
	if a.Line != "" {
		e.Evidence = []string{a.Line}
	}
	return e
}

// History answers GET /v1/history from the store.
func (d *daemon) History(ctx context.Context, q control.HistoryQuery) ([]control.HistoryEvent, error) {
	evs, err := d.db.Events(store.EventFilter{Target: q.Target, Since: q.Since, Jail: q.Jail, Kinds: q.Kinds, Limit: q.Limit})
	if err != nil {
		return nil, err
	}
	out := make([]control.HistoryEvent, len(evs))
	for i, e := range evs {
		out[i] = control.HistoryEvent{Seq: e.Seq, Time: e.Time, Kind: e.Kind, Target: e.Target, Jail: e.Jail, Reason: e.Reason,
			Duration: control.Duration(e.Duration), Level: e.Level, UID: e.UID, Evidence: e.Evidence, Detail: e.Detail}
		if e.Duration == store.PermanentDuration {
			out[i].Duration, out[i].Permanent = 0, true
		}
	}
	return out, nil
}
