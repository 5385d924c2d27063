package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/bansd/bansd/ban"
	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/crowdsec"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/prefix"
	"github.com/bansd/bansd/store"
)

// pulledJail is the jail every ban pulled from CrowdSec is kept under.
const pulledJail = "crowdsec"

// alarmCrowdSecRefused: LAPI asked to ban a never-ban address.
const alarmCrowdSecRefused = "crowdsec-refused"

// originLocal is the origin of a ban this host decided.
const originLocal = "local"

// crowdsecLink is the daemon's side of the CrowdSec LAPI link.
type crowdsecLink struct {
	syncer *crowdsec.Syncer
	cfg    configs.CrowdSec
	enf    *pulledEnforcer
	log    *slog.Logger

	// pushed remembers the end of the last ban pushed per target, so an
	// engine decision the ban manager left alone (already banned as long)
	// is not pushed again. Expired entries are pruned as it grows.
	mu        sync.Mutex
	pushed    map[netip.Prefix]time.Time
	pruneAt   int
	alarmFunc func(crowdsec.Refusal)
}

// startCrowdSec starts the LAPI link when configured; stop ends it and
// waits. d.crowdsec stays nil when the link is off. hc is the HTTP client
// (nil: the default; tests dial into another network namespace).
func (d *daemon) startCrowdSec(ctx context.Context, cfg *configs.Config, hc *http.Client) (stop func(), err error) {
	cs := cfg.CrowdSec
	if !cs.Enabled() {
		return func() {}, nil
	}
	log := d.log.With("part", "crowdsec")
	client, err := crowdsec.NewClient(crowdsec.ClientConfig{
		URL: cs.URL, MachineID: cs.MachineID, Password: cs.Password.Reveal(), BouncerKey: cs.BouncerKey.Reveal(),
		MaxDuration: cs.MaxDuration, HTTP: hc,
	})
	if err != nil {
		return nil, err
	}
	l := &crowdsecLink{cfg: cs, log: log, pushed: map[netip.Prefix]time.Time{}, pruneAt: 1024,
		enf: &pulledEnforcer{mgr: d.mgr, log: log, applied: map[netip.Prefix]time.Time{}}}
	l.syncer, err = crowdsec.NewSyncer(crowdsec.Config{
		Client: client, Queue: d.db.CrowdSecQueue(0), Enforcer: l.enf,
		NeverBan: d.pulledNeverBan, OnRefusal: d.onCrowdSecRefusal,
		Push: cs.Push, Pull: cs.Pull, PullInterval: cs.PullInterval,
		Origins: cs.Origins, Scenarios: cs.Scenarios, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if err := l.syncer.Load(); err != nil {
		return nil, err
	}
	d.metrics.alarms.WithLabelValues(alarmCrowdSecRefused)
	d.metrics.addCrowdSec(l.syncer)
	d.crowdsec = l
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := l.syncer.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("crowdsec link stopped", "err", err)
		}
	}()
	log.Info("crowdsec link", "url", cs.URL, "push", cs.Push, "pull", cs.Pull, "pull_interval", cs.PullInterval)
	return func() { cancel(); <-done }, nil
}

// pulledNeverBan is the engine's never-ban verdict for a pulled decision.
func (d *daemon) pulledNeverBan(p netip.Prefix) (bool, string) {
	t, err := prefix.Normalize(p)
	if err != nil {
		return false, err.Error()
	}
	if rule, _, hit := d.engine.NeverBan(t, false); hit {
		return false, "never-ban " + rule
	}
	return true, ""
}

func (d *daemon) onCrowdSecRefusal(r crowdsec.Refusal) {
	d.metrics.alarms.WithLabelValues(alarmCrowdSecRefused).Inc()
	d.alarms.add(jail.Alarm{Kind: alarmCrowdSecRefused, Addr: r.Target.Addr(), Time: time.Now(), Count: 1,
		Hint: fmt.Sprintf("CrowdSec decision %s on %s refused (%s).", r.Label, r.Target, r.Reason)}, time.Now())
}

// shareDecisions pushes the engine's decisions the ban manager committed.
func (d *daemon) shareDecisions(decs []jail.Decision) {
	if d.crowdsec == nil {
		return
	}
	for _, dec := range decs {
		d.crowdsec.share(d.mgr, dec.Target, dec.Jail, false, dec.Events, dec.Reason)
	}
}

// shareManual pushes manual bans the ban manager committed.
func (d *daemon) shareManual(reqs []ban.Request) {
	if d.crowdsec == nil || !d.crowdsec.cfg.PushManual {
		return
	}
	for _, r := range reqs {
		d.crowdsec.share(d.mgr, r.Target, r.Jail, true, 1, r.Reason)
	}
}

// shareUnbans withdraws this host's pushed decisions on targets.
func (d *daemon) shareUnbans(targets []netip.Prefix) {
	if d.crowdsec == nil {
		return
	}
	for _, t := range targets {
		if err := d.crowdsec.syncer.Unban(t); err != nil {
			d.crowdsec.log.Error("crowdsec: queue unban", "target", t, "err", err)
		}
	}
}

func (l *crowdsecLink) share(mgr *ban.Manager, target netip.Prefix, jailName string, manual bool, events int, reason string) {
	t, err := prefix.Normalize(target)
	if err != nil {
		return
	}
	b, ok := mgr.Lookup(t)
	if !ok || b.Pulled || b.Jail != jailName {
		// Not committed, or another ban holds the target: nothing of ours to share.
		return
	}
	l.mu.Lock()
	if !b.Until.After(l.pushed[t]) {
		l.mu.Unlock()
		return
	}
	l.pushed[t] = b.Until
	if len(l.pushed) >= l.pruneAt {
		now := time.Now()
		for k, until := range l.pushed {
			if !until.After(now) {
				delete(l.pushed, k)
			}
		}
		l.pruneAt = max(1024, 2*len(l.pushed))
	}
	l.mu.Unlock()
	if err := l.syncer.Push(crowdsec.Local{Target: t, Jail: jailName, Manual: manual || b.Manual, Until: b.Until, Events: events, Reason: reason}); err != nil {
		l.log.Error("crowdsec: queue push", "target", t, "err", err)
	}
}

// origin is where a ban came from, as list and why show it: a pulled
// decision's label, a blocklist's name and source, or local.
func origin(b store.Ban) string {
	if _, ok := listOfJail(b.Jail); b.Pulled || ok {
		return b.Reason
	}
	return originLocal
}

func (d *daemon) crowdsecStatus() *control.CrowdSecStatus {
	if d.crowdsec == nil {
		return nil
	}
	st := d.crowdsec.syncer.Status()
	return &control.CrowdSecStatus{
		URL: d.crowdsec.cfg.URL, Push: d.crowdsec.cfg.Push, Pull: d.crowdsec.cfg.Pull,
		LastPush: st.LastPush, LastPull: st.LastPull, LastError: st.LastError, LastErrorAt: st.LastErrorAt,
		PendingPushes: st.PendingPushes, PendingUnbans: st.PendingUnbans, Shared: st.Shared,
		Pushed: st.Pushed, Pulls: st.Pulls, PullErrors: st.PullErrors, Applied: st.Applied, Lifted: st.Lifted,
		Refused: st.Refused, QueueDropped: st.QueueDropped, Rejected: d.crowdsec.enf.rejected(),
	}
}

// pulledEnforcer enforces pulled decisions through the ban manager.
type pulledEnforcer struct {
	mgr *ban.Manager
	log *slog.Logger

	mu sync.Mutex
	// applied is when each pulled target was last applied: Resynced lifts
	// the pulled bans a complete pull no longer named. Bounded by the
	// number of live pulled decisions (entries go with their ban).
	applied map[netip.Prefix]time.Time
	refused uint64
}

// Apply bans each target for its remaining duration under the crowdsec
// jail. A local ban on the same target stays as it is: its evidence and
// its escalation are this host's.
func (e *pulledEnforcer) Apply(ctx context.Context, bans []crowdsec.Pulled) error {
	now := time.Now()
	reqs := make([]ban.Request, 0, len(bans))
	e.mu.Lock()
	for _, p := range bans {
		t, err := prefix.Normalize(p.Target)
		if err != nil {
			e.refused++
			e.log.Warn("crowdsec: pulled decision refused", "target", p.Target, "label", p.Label, "err", err)
			continue
		}
		e.applied[t] = now
		if cur, ok := e.mgr.Lookup(t); ok && !cur.Pulled {
			continue
		}
		reqs = append(reqs, ban.Request{Target: t, Jail: pulledJail, Reason: p.Label, Duration: p.Duration, Time: now, Pulled: true})
	}
	e.mu.Unlock()
	if len(reqs) == 0 {
		return nil
	}
	_, err := e.mgr.BanMany(ctx, reqs)
	return e.keepRefusals(err)
}

// keepRefusals counts and logs the requests the ban manager refused (too
// wide, special addresses): LAPI will send them again, retrying cannot
// help. Any other failure is returned, so the pull is retried.
func (e *pulledEnforcer) keepRefusals(err error) error {
	if err == nil {
		return nil
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var other []error
	for _, x := range errs {
		switch {
		case x == nil:
		case errors.Is(x, ban.ErrRefused):
			e.mu.Lock()
			e.refused++
			e.mu.Unlock()
			e.log.Warn("crowdsec: pulled decision refused", "err", x)
		case errors.Is(x, ban.ErrSomeRefused):
		default:
			other = append(other, x)
		}
	}
	return errors.Join(other...)
}

func (e *pulledEnforcer) rejected() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.refused
}

// Lift removes pulled bans; a local ban on the target stays.
func (e *pulledEnforcer) Lift(ctx context.Context, targets []netip.Prefix) error {
	var lift []netip.Prefix
	e.mu.Lock()
	for _, p := range targets {
		t, err := prefix.Normalize(p)
		if err != nil {
			continue
		}
		delete(e.applied, t)
		if cur, ok := e.mgr.Lookup(t); ok && cur.Pulled {
			lift = append(lift, t)
		}
	}
	e.mu.Unlock()
	if len(lift) == 0 {
		return nil
	}
	_, err := e.mgr.Unban(ctx, lift)
	return err
}

// Resynced lifts the pulled bans a complete pull begun at since did not
// name: LAPI no longer has them (deleted while this host was away).
func (e *pulledEnforcer) Resynced(ctx context.Context, since time.Time) error {
	var lift []netip.Prefix
	e.mu.Lock()
	stale := func(b store.Ban) bool { return b.Pulled && e.applied[b.Target].Before(since) }
	for _, b := range e.mgr.BansWhere(stale) {
		lift = append(lift, b.Target)
	}
	for t, at := range e.applied {
		if at.Before(since) {
			delete(e.applied, t)
		}
	}
	e.mu.Unlock()
	if len(lift) == 0 {
		return nil
	}
	e.log.Info("crowdsec: lifting pulled bans LAPI no longer has", "count", len(lift))
	_, err := e.mgr.Unban(ctx, lift)
	return err
}
