package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/bansd/bansd/ban"
	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/prefix"
	"github.com/bansd/bansd/store"
)

// allowBook is the daemon's side of the run-time allow-list (bansctl
// allow). The store holds the entries; the engine's never-ban rules hold
// the live ones (loadAllowed), so the jails and manual bans honour them
// through the one never-ban verdict.
type allowBook struct {
	// mu serialises changes: the engine's list, the store and the bans
	// move together.
	mu sync.Mutex
	// wake tells the expiry loop the entries changed.
	wake chan struct{}
}

// liftTimeout bounds how long a change of the allow-list waits for the ban
// manager (a big batch ahead of it).
const liftTimeout = 30 * time.Second

// startAllow gives the engine the stored allow-list and expires its
// entries on time, until ctx ends or stop is called.
func (d *daemon) startAllow(ctx context.Context) (stop func(), err error) {
	d.allow.wake = make(chan struct{}, 1)
	if _, err := d.loadAllowed(time.Now()); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.expireAllows(ctx)
	}()
	return func() { cancel(); <-done }, nil
}

// loadAllowed hands the engine the entries of the store live at now, and
// returns all it read.
func (d *daemon) loadAllowed(now time.Time) ([]store.Allow, error) {
	entries, err := d.db.Allows()
	if err != nil {
		return nil, fmt.Errorf("allow-list: %w", err)
	}
	d.engine.SetAllowed(engineAllowed(entries, now))
	return entries, nil
}

// engineAllowed is the engine's list: the entries live at now, extra first
// (an entry being added, which replaces a stored one of its target).
func engineAllowed(entries []store.Allow, now time.Time, extra ...store.Allow) []jail.Allowed {
	list := make([]jail.Allowed, 0, len(entries)+len(extra))
	for _, a := range extra {
		list = append(list, jail.Allowed{Target: a.Target, Until: a.Until, Reason: a.Reason})
	}
	for _, a := range entries {
		if a.Live(now) && !slices.ContainsFunc(extra, func(x store.Allow) bool { return x.Target == a.Target }) {
			list = append(list, jail.Allowed{Target: a.Target, Until: a.Until, Reason: a.Reason})
		}
	}
	return list
}

// expireAllows removes each entry when it ends, with its history event.
func (d *daemon) expireAllows(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		// A minute at most, so that a failed purge is retried.
		next := time.Minute
		select {
		case <-ctx.Done():
			return
		case <-d.allow.wake:
			// An entry was added: its end may come first. Fire now, and
			// the tick computes the next end from the store it reads.
			next = 0
		case <-timer.C:
			// One now for the engine, the purge and the next end.
			now := time.Now()
			d.allow.mu.Lock()
			// The engine first (loadAllowed keeps only live entries): once
			// the store no longer lists an entry, nothing honours it.
			entries, err := d.loadAllowed(now)
			var gone []store.Allow
			if err == nil {
				gone, err = d.db.PurgeExpiredAllows(now, func(a store.Allow) store.Event {
					return store.Event{Time: now, Kind: store.EventAllow, Target: a.Target, Reason: a.Reason, Detail: "expired", UID: store.NoUID}
				})
			}
			d.allow.mu.Unlock()
			if err == nil {
				next = nextAllowEnd(entries, now)
			}
			if err != nil {
				d.log.Error("allow-list: expire entries", "err", err)
			}
			for _, a := range gone {
				d.log.Info("allow-list entry expired", "target", a.Target, "reason", a.Reason)
			}
		}
		timer.Reset(next)
	}
}

// nextAllowEnd is the time until the earliest of entries ends after now
// (a minute at most, so a failed purge is retried).
func nextAllowEnd(entries []store.Allow, now time.Time) time.Duration {
	wait := time.Minute
	for _, a := range entries {
		// Ended ones were purged just now (or the minute retries them).
		if a.Until.After(now) {
			wait = min(wait, a.Until.Sub(now))
		}
	}
	return wait
}

func (d *daemon) wakeAllow() {
	select {
	case d.allow.wake <- struct{}{}:
	default:
	}
}

func allowToAPI(a store.Allow) control.AllowEntry {
	e := control.AllowEntry{Target: a.Target, Reason: a.Reason, Since: a.Since.UTC().Truncate(time.Second), UID: a.UID}
	if !a.Until.IsZero() {
		e.Until = a.Until.UTC().Truncate(time.Second)
	}
	return e
}

// AllowList answers GET /v1/allow: the entries in force.
func (d *daemon) AllowList(context.Context) (control.AllowList, error) {
	entries, err := d.db.Allows()
	if err != nil {
		return control.AllowList{}, err
	}
	now := time.Now()
	out := control.AllowList{Entries: make([]control.AllowEntry, 0, len(entries))}
	for _, a := range entries {
		if a.Live(now) {
			out.Entries = append(out.Entries, allowToAPI(a))
		}
	}
	return out, nil
}

// Allow answers POST /v1/allow: the entry is written and every ban that
// covers part of it lifted, or split around it when wider.
func (d *daemon) Allow(ctx context.Context, req control.AllowRequest) (control.AllowResult, error) {
	ctx, uid := withCaller(ctx)
	t, err := prefix.Normalize(req.Target)
	if err != nil {
		return control.AllowResult{}, &control.HTTPError{Code: http.StatusBadRequest, Message: err.Error()}
	}
	if t.Addr().Is4() && t.Bits() < 8 || t.Addr().Is6() && t.Bits() < 16 {
		return control.AllowResult{}, &control.HTTPError{Code: http.StatusBadRequest,
			Message: fmt.Sprintf("%s is wider than /8 (IPv4) or /16 (IPv6): bansd would stop protecting against most of the Internet; use engine.ignoreip if you mean it", t)}
	}
	now := time.Now()
	a := store.Allow{Target: t, Reason: req.Reason, Since: now, UID: uid}
	if req.Duration != "" {
		dur, err := configs.ParseDuration(req.Duration)
		if err != nil || dur <= 0 {
			return control.AllowResult{}, &control.HTTPError{Code: http.StatusBadRequest, Message: fmt.Sprintf("bad duration %q: want e.g. 30m, 12h, 7d", req.Duration)}
		}
		a.Until = now.Add(dur)
	}
	d.allow.mu.Lock()
	defer d.allow.mu.Unlock()
	// The engine first: no decision or manual ban lands inside the entry
	// once the manager has lifted what was there.
	entries, err := d.db.Allows()
	if err != nil {
		return control.AllowResult{}, err
	}
	d.engine.SetAllowed(engineAllowed(entries, now, a))
	d.engine.Forget(t)
	lctx, cancel := context.WithTimeout(ctx, liftTimeout)
	lifts, err := d.mgr.Allow(lctx, a)
	cancel()
	if err != nil && len(lifts) == 0 {
		// A kernel failure comes with the lifts (the store holds them).
		// Without them the change is not stored, unless the wait timed
		// out: then it may still be, and the engine keeps the entry (the
		// stricter side) until the next load from the store.
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			d.wakeAllow()
			return control.AllowResult{}, fmt.Errorf("allow %s: the ban manager did not answer in time (%w); see \"bansctl allow list\"", t, err)
		}
		if _, lerr := d.loadAllowed(time.Now()); lerr != nil {
			d.log.Error("allow-list: restore the engine's list", "err", lerr)
		}
		if errors.Is(err, store.ErrAllowFull) {
			return control.AllowResult{}, &control.HTTPError{Code: http.StatusConflict, Message: store.ErrAllowFull.Error()}
		}
		return control.AllowResult{}, err
	}
	d.wakeAllow()
	res := control.AllowResult{Entry: allowToAPI(a), Lifts: d.lifted(lifts, "allow-list entry "+t.String(), uid)}
	until := "removed"
	if !a.Until.IsZero() {
		until = a.Until.UTC().Format(time.RFC3339)
	}
	d.log.Info("allow-list entry added", "target", t, "until", until, "reason", a.Reason, "lifted", len(lifts), "uid", uid)
	// err here is the kernel's: the store holds the change, the next
	// reconcile enforces it.
	return res, err
}

// lifted logs and shares what lifting did to each ban, and says it for
// the API.
func (d *daemon) lifted(lifts []ban.Lift, rule string, uid int) []control.AllowLift {
	out := make([]control.AllowLift, 0, len(lifts))
	var withdrawn []netip.Prefix
	for _, l := range lifts {
		al := control.AllowLift{Target: l.Ban.Target, Jail: l.Ban.Jail, Action: "lifted", Remaining: l.Split}
		if len(l.Split) > 0 {
			// The rest stays banned: only the hole's windows go (the caller).
			al.Action = "split"
			d.log.Info("ban split", "target", l.Ban.Target, "jail", l.Ban.Jail, "around", rule, "still_banned", len(l.Split), "uid", uid)
		} else {
			d.log.Info("ban lifted", "target", l.Ban.Target, "jail", l.Ban.Jail, "inside", rule, "uid", uid)
			d.engine.Forget(l.Ban.Target)
		}
		withdrawn = append(withdrawn, l.Ban.Target)
		out = append(out, al)
	}
	// CrowdSec learns the whole ban is gone; the pieces stay local.
	d.shareUnbans(withdrawn)
	return out
}

// AllowRemove answers DELETE /v1/allow.
func (d *daemon) AllowRemove(ctx context.Context, req control.AllowRemoveRequest) (control.AllowEntry, error) {
	_, uid := withCaller(ctx)
	t, err := prefix.Normalize(req.Target)
	if err != nil {
		return control.AllowEntry{}, &control.HTTPError{Code: http.StatusBadRequest, Message: err.Error()}
	}
	d.allow.mu.Lock()
	defer d.allow.mu.Unlock()
	gone, err := d.db.DeleteAllows([]netip.Prefix{t}, func(a store.Allow) store.Event {
		return store.Event{Kind: store.EventAllow, Target: a.Target, Reason: a.Reason, Detail: "removed", UID: uid}
	})
	if err != nil {
		return control.AllowEntry{}, err
	}
	if len(gone) == 0 {
		return control.AllowEntry{}, &control.HTTPError{Code: http.StatusNotFound, Message: "no allow-list entry for " + t.String() + ` (see "bansctl allow list")`}
	}
	if _, err := d.loadAllowed(time.Now()); err != nil {
		return control.AllowEntry{}, err
	}
	d.wakeAllow()
	d.log.Info("allow-list entry removed", "target", t, "uid", uid)
	return allowToAPI(gone[0]), nil
}

// liftIgnored lifts the bans that an ignoreip added by a reload now
// covers (the engine already holds the new list).
func (d *daemon) liftIgnored(old, cur []netip.Prefix, uid int) {
	for _, p := range cur {
		if slices.Contains(old, p) {
			continue
		}
		d.engine.Forget(p)
		ctx, cancel := context.WithTimeout(ban.WithCaller(context.Background(), uid), liftTimeout)
		lifts, err := d.mgr.LiftCovered(ctx, p, "ignoreip "+p.String())
		cancel()
		if err != nil {
			d.log.Error("lift the bans a new ignoreip covers", "ignoreip", p, "err", err)
		}
		d.lifted(lifts, "ignoreip "+p.String(), uid)
	}
}
