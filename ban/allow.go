package ban

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/bansd/bansd/prefix"
	"github.com/bansd/bansd/store"
)

// Lift is what an allow entry did to one live ban that overlapped it.
type Lift struct {
	// Ban is the ban as it was.
	Ban store.Ban
	// Split are the ranges still banned in its place, around the entry
	// (same jail, reason, level and end); empty when the ban was lifted
	// (it lay inside the entry).
	Split []netip.Prefix
}

// Allow writes allow entry a (normalized) and lifts every live ban that
// covers any of it: a ban of a's range or narrower is lifted; a wider one
// is split around a. The entry, the lifted bans and the pieces are one
// store transaction and one kernel transaction, so the rest of a wider ban
// is enforced throughout. The caller makes the engine's never-ban verdict
// hold a first, so that no new ban lands inside it afterwards.
func (m *Manager) Allow(ctx context.Context, a store.Allow) ([]Lift, error) {
	t, err := prefix.Normalize(a.Target)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	a.Target = t
	a.Reason = bound(a.Reason, 1024)
	if a.Since.IsZero() {
		a.Since = m.now()
	}
	return m.lift(ctx, &lifting{entry: &a, hole: t, rule: "allow-list entry " + t.String()})
}

// LiftCovered lifts (or splits around p) every live ban that covers any of
// p, as Allow does, without an allow entry: for a never-ban rule added
// elsewhere (an ignoreip added by a reload). rule names it in the history.
func (m *Manager) LiftCovered(ctx context.Context, p netip.Prefix, rule string) ([]Lift, error) {
	t, err := prefix.Normalize(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	return m.lift(ctx, &lifting{hole: t, rule: rule})
}

// lifting is the work of Allow and LiftCovered.
type lifting struct {
	entry *store.Allow // nil: no entry to write
	hole  netip.Prefix
	rule  string
}

func (m *Manager) lift(ctx context.Context, l *lifting) ([]Lift, error) {
	res, err := m.submit(ctx, &job{allow: l, uid: callerFrom(ctx)})
	if err != nil {
		return nil, err
	}
	return res.lifts, res.err
}

// doAllow is lift in the actor.
func (m *Manager) doAllow(j *job) {
	// Bans checked before now are checked again (recheck): one that
	// waited in the queue must not land inside the new rule.
	m.allowGen.Add(1)
	w := j.allow
	hole := w.hole
	now := m.now()
	m.mu.Lock()
	var lifts []Lift
	for b := range m.index.all() {
		if b.Until.After(now) && b.Target.Overlaps(hole) {
			lifts = append(lifts, Lift{Ban: b})
		}
	}
	m.mu.Unlock()
	slices.SortFunc(lifts, func(x, y Lift) int { return x.Ban.Target.Compare(y.Ban.Target) })
	// A split ban's pieces keep its evidence, from the store: the index
	// does not hold it. The index cannot change meanwhile: the actor is
	// its only writer.
	var wide []*store.Ban
	for i := range lifts {
		if lifts[i].Ban.Target.Bits() < hole.Bits() {
			wide = append(wide, &lifts[i].Ban)
		}
	}
	if err := m.db.WithEvidence(wide); err != nil {
		j.done <- result{err: fmt.Errorf("ban: lift bans for %s: read the evidence of the bans split: %w", w.rule, err)}
		return
	}
	m.mu.Lock()
	var remove []netip.Prefix
	// Nested wide bans (a /16 and a /24 around one hole) give some pieces
	// twice: the longer one is kept, as for any target.
	pieces := map[netip.Prefix]store.Ban{}
	for i := range lifts {
		l := &lifts[i]
		remove = append(remove, l.Ban.Target)
		if l.Ban.Target.Bits() >= hole.Bits() {
			continue
		}
		l.Split = prefix.Exclude(l.Ban.Target, hole)
		for _, p := range l.Split {
			if cur, ok := m.index.get(p); ok && cur.Until.After(now) && !cur.Until.Before(l.Ban.Until) {
				continue // a ban of its own that lasts longer stays as it is
			}
			if cur, ok := pieces[p]; ok && !cur.Until.Before(l.Ban.Until) {
				continue
			}
			nb := l.Ban
			nb.Target = p
			pieces[p] = nb
		}
	}
	m.mu.Unlock()
	split := make([]store.Ban, 0, len(pieces))
	for _, b := range pieces {
		split = append(split, b)
	}

	evs := allowEvents(w, lifts, j.uid, now)
	if err := m.db.PutAllowLifting(w.entry, remove, split, evs...); err != nil {
		j.done <- result{err: fmt.Errorf("ban: lift bans for %s in store: %w", w.rule, err)}
		return
	}
	m.logEvents(evs)
	m.replaceIndex(remove, split)
	// In the store: if the kernel part fails, the next reconcile makes
	// the kernel match it.
	j.done <- result{lifts: lifts, n: len(lifts), err: m.swap(remove, split)}
}

// swap replaces remove by add in the kernel in one transaction, with one
// repair and retry like apply.
func (m *Manager) swap(remove []netip.Prefix, add []store.Ban) error {
	if len(remove) == 0 && len(add) == 0 {
		return nil
	}
	if len(remove)+len(add) > maxBatch {
		// Far beyond one entry's pieces (at most 128 per ban); keep the
		// transaction bounded and let the parts follow each other.
		return errors.Join(m.apply(add), m.own(func() error { return m.fw.Remove(remove) }))
	}
	if remove == nil {
		remove = []netip.Prefix{}
	}
	return m.flushRepaired(add, remove)
}

// allowEvents is the history of one lifting: the allow entry, if any, then
// each lifted ban (an unban) or split one.
func allowEvents(w *lifting, lifts []Lift, uid int, now time.Time) []store.Event {
	var evs []store.Event
	if a := w.entry; a != nil {
		detail := "added"
		if !a.Until.IsZero() {
			detail += fmt.Sprintf(" for %s (until %s)", a.Until.Sub(a.Since).Round(time.Second), a.Until.UTC().Format(time.RFC3339))
		}
		evs = append(evs, store.Event{Time: now, Kind: store.EventAllow, Target: a.Target, Reason: a.Reason, Detail: detail, UID: uid})
	}
	for _, l := range lifts {
		b := l.Ban
		if len(l.Split) == 0 {
			evs = append(evs, store.Event{Time: now, Kind: store.EventUnban, Target: b.Target, Jail: b.Jail, Level: b.Level, UID: uid,
				Detail: "lifted: inside " + w.rule})
			continue
		}
		pieces := make([]string, len(l.Split))
		for i, p := range l.Split {
			pieces[i] = p.String()
		}
		evs = append(evs, store.Event{Time: now, Kind: store.EventAllow, Target: b.Target, Jail: b.Jail, Level: b.Level, UID: uid,
			Detail: fmt.Sprintf("split around %s: still banned %s", w.rule, strings.Join(pieces, " "))})
	}
	return evs
}

// recheck asks the never-ban verdict again for the bans of jobs prepared
// before a lifting (an allow entry, a reloaded ignoreip): a decision that
// waited in the queue while the operator allowed its target is dropped, as
// it would have been refused a moment later.
func (m *Manager) recheck(jobs []*job) {
	gen := m.allowGen.Load()
	for _, j := range jobs {
		if j.gen == gen {
			continue
		}
		keep, base := j.bans[:0:0], j.base[:0:0]
		for i, b := range j.bans {
			if !j.forced[b.Target] {
				if rule, _, hit := m.opt.NeverBan(b.Target, false); hit {
					m.log.Warn("ban dropped: its target was allowed while it waited", "target", b.Target, "jail", b.Jail, "rule", rule)
					continue
				}
			}
			keep = append(keep, b)
			if i < len(j.base) {
				base = append(base, j.base[i])
			}
		}
		if len(keep) < len(j.bans) {
			j.dropped = len(j.bans) - len(keep)
			j.bans, j.base = keep, base
		}
		j.gen = gen
	}
}
