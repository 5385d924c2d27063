package ban

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/bansd/bansd/store"
)

// historyPurgeEvery spaces the full scans of the offence history.
const historyPurgeEvery = time.Hour

// timeoutSlack is how far the kernel's expiry may drift from the store's
// before reconcile re-asserts it (millisecond and jiffy rounding).
const timeoutSlack = 2 * time.Second

// genState is what the actor knows of the kernel between reconciles:
// when ok, the kernel matched the index at generation id, and every
// transaction committed since was the actor's own, so it still does. It
// makes the periodic reconcile one GETGEN round trip instead of a listing
// of every element (seconds at 100k); anyone else's commit, a failed
// transaction of ours or an unreadable generation clears ok, and the next
// reconcile lists in full.
type genState struct {
	id uint32
	ok bool
}

// kernelUnchanged is the periodic reconcile's cheap check. When it says
// no, the generation it read becomes the base for the full listing about
// to start: a commit by someone else during the listing breaks the chain
// again, so the reconcile after lists once more.
func (m *Manager) kernelUnchanged() bool {
	g, err := m.fw.Generation()
	if err != nil {
		m.log.Warn("reading the ruleset generation failed; listing the table", "err", err)
		m.gen.ok = false
		return false
	}
	if m.gen.ok && g == m.gen.id {
		return true
	}
	m.gen = genState{id: g, ok: true}
	return false
}

// own runs one of the actor's kernel transactions (a single commit, or
// none if the batch was empty or aborted) and carries m.gen across it: the
// generation may move by that one commit only, anything more is someone
// else's.
func (m *Manager) own(tx func() error) error {
	if !m.gen.ok {
		return tx()
	}
	before, err := m.fw.Generation()
	if err != nil || before != m.gen.id {
		m.gen.ok = false
		return tx()
	}
	if err := tx(); err != nil {
		// What reached the kernel is unknown: the next reconcile lists.
		m.gen.ok = false
		return err
	}
	after, err := m.fw.Generation()
	m.gen = genState{id: after, ok: err == nil && after-before <= 1}
	return nil
}

// listing is a read of the kernel's state for reconcile.
type listing struct {
	// unchanged: the cheap check found no commit but ours since the
	// kernel last matched the index; nothing was read.
	unchanged bool
	health    Health
	elems     []Element
	// The remaining times were read between start and start+took.
	start time.Time
	took  time.Duration
	err   error
}

// listBeside lists the kernel on a goroutine of its own, so that the
// actor goes on applying bans during a listing of seconds.
func (m *Manager) listBeside() chan listing {
	ch := make(chan listing, 1)
	go func() { ch <- m.list() }()
	return ch
}

func (m *Manager) list() listing {
	l := listing{start: m.now()}
	t0 := time.Now()
	l.health, l.err = m.fw.Check()
	if l.err == nil && l.health.OK {
		l.elems, l.err = m.fw.List()
	}
	l.took = time.Since(t0)
	return l
}

// restore is Run's first reconcile: the full scan of the store for what
// expired while bansd was down, the table made whole, and every live ban
// put back in the kernel.
func (m *Manager) restore() (err error) {
	start := time.Now()
	var repaired []string
	defer func() {
		m.reconciled(time.Since(start), repaired, err)
		if err != nil {
			m.gen.ok = false
		}
	}()
	m.kernelUnchanged() // the base generation for the listing below
	now := m.now()
	m.dropExpired(now) // the full scan below deletes and records them
	if err := m.purgeExpiredLogged(now); err != nil {
		return err
	}
	if err := m.purgeHistory(now); err != nil {
		return err
	}
	l, err := m.ensureListed()
	if err != nil {
		return err
	}
	fix, err := m.converge(l, now)
	if err != nil {
		return err
	}
	if fix.restored > 0 && len(l.elems) == 0 {
		m.log.Info("restored bans from the store", "count", fix.restored)
		fix.restored = 0
	}
	repaired = append(repaired, fix.said()...)
	return nil
}

// reconcile is the periodic run: it deletes what is over and makes the
// kernel match the store (the table's shape, every live ban with its
// remaining time, nothing else in our sets), from l, a listing taken
// beside the actor.
//
// A listing is not a snapshot. The actor's own commits while it runs
// (bans and unbans during its seconds at 100k), and the kernel moving a
// set's elements (a hash set's resize after growth, the garbage
// collection of expired elements) between the parts of its netlink dump,
// make it miss elements or show ones already gone. So what a listing
// finds out of place is only suspect: each suspect is looked up in the
// kernel (confirm), and a repair, with the alarm it raises, is what the
// lookups confirm. More suspects than lookupMax are first narrowed by a
// second listing (confirm asks for it): those two agree on, and damage
// that large (a set flushed) is no walk's artefact. Damage to the
// table's shape is repaired at once: that check reads the chain and its
// rules, not a walk of a set.
func (m *Manager) reconcile(l listing) (confirm bool, err error) {
	start := time.Now()
	var repaired []string
	defer func() {
		if err != nil {
			m.gen.ok = false
			m.suspect = nil
		}
		if confirm {
			return // the next listing decides what to say
		}
		m.reconciled(time.Since(start)+l.took, repaired, err)
		// Only the periodic run: the start's restore of every ban is
		// routine, not a repair.
		if m.opt.OnReconcile != nil {
			m.opt.OnReconcile(repaired, err)
		}
	}()
	now := m.now()
	if expired, evs := m.dropExpired(now); len(expired) > 0 {
		if err := m.db.DeleteBans(expired, evs...); err != nil {
			return false, err
		}
		m.logEvents(evs)
	}
	if err := m.purgeHistory(now); err != nil {
		return false, err
	}
	if l.unchanged {
		// The bans that ended above left the kernel on their own timeouts.
		return false, nil
	}
	if l.err != nil {
		return false, l.err
	}
	if !l.health.OK {
		m.suspect = nil
		repaired = append(repaired, l.health.Problem)
		if l, err = m.ensureListed(); err != nil {
			return false, err
		}
		fix, err := m.converge(l, now)
		repaired = append(repaired, fix.said()...)
		return false, err
	}
	d := m.drift(l, now)
	if m.suspect != nil {
		d = d.within(*m.suspect)
		m.suspect = nil
	} else if d.size() > lookupMax {
		m.suspect = &d
		return true, nil
	}
	fix, err := m.settle(d)
	repaired = append(repaired, fix.said()...)
	return false, err
}

// lookupMax bounds the kernel lookups of one reconcile, which hold up the
// actor: 256 took 13 to 19 ms (a round trip each).
const lookupMax = 256

// confirm keeps of d what exact lookups in the kernel confirm: extra
// elements that are there, missing bans that are not (or are, with a
// wrong timeout). It runs in the actor, so none of its own commits falls
// between the index and the lookups.
func (m *Manager) confirm(d drift) (drift, error) {
	targets := slices.Clone(d.extra)
	for _, b := range d.missing {
		targets = append(targets, b.Target)
	}
	start := m.now()
	t0 := time.Now()
	found, err := m.fw.Lookup(targets)
	if err != nil {
		return drift{}, err
	}
	took := time.Since(t0)
	have := byTarget(found)
	out := drift{wrong: map[netip.Prefix]bool{}}
	for _, p := range d.extra {
		if _, ok := have[p]; ok {
			out.extra = append(out.extra, p)
		}
	}
	for _, b := range d.missing {
		out.compare(b, have, start, took)
	}
	return out, nil
}

// reconciled records a reconcile's outcome for Status and the log.
func (m *Manager) reconciled(took time.Duration, repaired []string, err error) {
	m.mu.Lock()
	m.stats.lastReconcile = m.now()
	m.stats.reconcileDuration = took
	m.stats.reconcileErr = ""
	if err != nil {
		m.stats.reconcileErr = err.Error()
	}
	m.stats.reconcileRepair = strings.Join(repaired, "; ")
	m.mu.Unlock()
	if len(repaired) > 0 {
		m.log.Warn("reconciled the firewall", "repaired", repaired, "took", took)
	}
}

// dropExpired takes the bans that are over out of the index, which
// mirrors the store's live bans: the periodic purge deletes only these,
// and the full scans of every record run at start and (history) hourly.
func (m *Manager) dropExpired(now time.Time) ([]netip.Prefix, []store.Event) {
	var expired []netip.Prefix
	var evs []store.Event
	m.mu.Lock()
	defer m.mu.Unlock()
	for b := range m.index.all() {
		if !b.Until.After(now) {
			m.index.delete(b.Target)
			expired = append(expired, b.Target)
			evs = append(evs, expireEvent(b, now))
		}
	}
	return expired, evs
}

// purgeHistory bounds the offence history and the event log.
func (m *Manager) purgeHistory(now time.Time) error {
	m.pruneEvents(now)
	if age := m.opt.HistoryMaxAge; age > 0 && now.Sub(m.historyPurged) >= historyPurgeEvery {
		if _, err := m.db.PurgeHistory(now.Add(-age)); err != nil {
			return err
		}
		m.historyPurged = now
		// The purge read every history record: those pages would stay
		// in bansd's resident set until the store closes.
		if err := m.db.ReleasePages(); err != nil {
			m.log.Warn("releasing the store's pages", "err", err)
		}
	}
	return nil
}

// ensureListed makes the table whole (Ensure is cheap and idempotent) and
// lists what survived.
func (m *Manager) ensureListed() (listing, error) {
	if err := m.own(func() error { return m.fw.Ensure(m.classes()) }); err != nil {
		return listing{}, err
	}
	l := m.list()
	if l.err != nil {
		return l, l.err
	}
	if !l.health.OK {
		return l, fmt.Errorf("nftables table still damaged after ensure: %s", l.health.Problem)
	}
	return l, nil
}

// fixes counts what converge changed in the kernel.
type fixes struct{ removed, restored, wrong int }

func (f fixes) said() []string {
	var out []string
	if f.removed > 0 {
		out = append(out, fmt.Sprintf("removed %d elements the store does not hold", f.removed))
	}
	if f.restored > 0 {
		out = append(out, fmt.Sprintf("restored %d bans (%d with a wrong timeout)", f.restored-f.wrong, f.wrong))
	}
	return out
}

// drift is how a listing differs from the index.
type drift struct {
	// extra: elements the index does not hold (or holds as over).
	extra []netip.Prefix
	// missing: bans the kernel lacks, or holds with a wrong timeout
	// (those are in wrong too).
	missing []store.Ban
	wrong   map[netip.Prefix]bool
}

func (d drift) empty() bool { return d.size() == 0 }

func (d drift) size() int { return len(d.extra) + len(d.missing) }

// within keeps what earlier found too, with d's bans (the newer times).
func (d drift) within(earlier drift) drift {
	extra := make(map[netip.Prefix]bool, len(earlier.extra))
	for _, p := range earlier.extra {
		extra[p] = true
	}
	missing := make(map[netip.Prefix]bool, len(earlier.missing))
	for _, b := range earlier.missing {
		missing[b.Target] = true
	}
	out := drift{wrong: map[netip.Prefix]bool{}}
	for _, p := range d.extra {
		if extra[p] {
			out.extra = append(out.extra, p)
		}
	}
	for _, b := range d.missing {
		if missing[b.Target] {
			out.missing = append(out.missing, b)
			if d.wrong[b.Target] {
				out.wrong[b.Target] = true
			}
		}
	}
	return out
}

// drift compares a listing with the index.
func (m *Manager) drift(l listing, now time.Time) drift {
	have := byTarget(l.elems)
	d := drift{wrong: map[netip.Prefix]bool{}}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range l.elems {
		if b, ok := m.index.get(e.Target); !ok || !b.Until.After(now) {
			d.extra = append(d.extra, e.Target)
		}
	}
	for b := range m.index.all() {
		d.compare(b, have, l.start, l.took)
	}
	return d
}

func byTarget(els []Element) map[netip.Prefix]Element {
	have := make(map[netip.Prefix]Element, len(els))
	for _, e := range els {
		have[e.Target] = e
	}
	return have
}

// compare counts b as missing when have, read between start and
// start+took, lacks it or holds it with a timeout that does not end when
// b does.
func (d *drift) compare(b store.Ban, have map[netip.Prefix]Element, start time.Time, took time.Duration) {
	e, ok := have[b.Target]
	switch {
	case !ok:
		d.missing = append(d.missing, b)
	case b.Permanent() || e.Permanent:
		// Neither expires on its own: each must be the other.
		if b.Permanent() != e.Permanent {
			d.missing = append(d.missing, b)
			d.wrong[b.Target] = true
		}
	// Its kernel expiry lies in [start+t, start+took+t].
	case b.Until.Before(start.Add(e.Timeout-timeoutSlack)) || b.Until.After(start.Add(took+e.Timeout+timeoutSlack)):
		d.missing = append(d.missing, b)
		d.wrong[b.Target] = true
	}
}

// converge makes the kernel match the index from one listing, as the
// start's restore and the repair of a damaged table do.
func (m *Manager) converge(l listing, now time.Time) (fixes, error) {
	return m.settle(m.drift(l, now))
}

// settle corrects d, after lookups have confirmed it when it is small
// enough to look up.
func (m *Manager) settle(d drift) (fixes, error) {
	if d.size() <= lookupMax {
		var err error
		if d, err = m.confirm(d); err != nil {
			return fixes{}, err
		}
	}
	return m.correct(d)
}

// correct removes d's extra elements and (re)adds its missing bans.
func (m *Manager) correct(d drift) (fixes, error) {
	var f fixes
	for chunk := range slices.Chunk(d.extra, m.batch) {
		if err := m.own(func() error { return m.fw.Remove(chunk) }); err != nil {
			return f, err
		}
		f.removed += len(chunk)
	}
	if len(d.missing) > 0 {
		if err := m.apply(d.missing); err != nil {
			return f, err
		}
		f.restored = len(d.missing)
		f.wrong = len(d.wrong)
	}
	return f, nil
}
