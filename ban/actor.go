package ban

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/bansd/bansd/store"
)

// gather coalesces: everything already queued, up to one batch, goes into
// the same store transaction and kernel flush.
func (m *Manager) gather(first *job) []*job {
	jobs := []*job{first}
	n := len(first.bans) + len(first.unban)
	for n < m.batch {
		select {
		case j := <-m.jobs:
			jobs = append(jobs, j)
			n += len(j.bans) + len(j.unban)
		default:
			return jobs
		}
	}
	return jobs
}

// process applies jobs in order, runs of ban jobs together.
func (m *Manager) process(jobs []*job) {
	for i := 0; i < len(jobs); {
		if jobs[i].replace != "" {
			m.doReplace(jobs[i])
			i++
			continue
		}
		if jobs[i].allow != nil {
			m.doAllow(jobs[i])
			i++
			continue
		}
		if jobs[i].unban != nil {
			m.doUnban(jobs[i])
			i++
			continue
		}
		k := i
		for k < len(jobs) && jobs[k].unban == nil && jobs[k].allow == nil && jobs[k].replace == "" {
			k++
		}
		m.doBans(jobs[i:k])
		i = k
	}
}

// pick keeps the longest ban per target, against the index and within
// jobs: write are the bans that change the index (new, longer, or in place
// of an expired one), refresh those that replace a live ban, uid the
// caller of each. With episodes, a jail's ban of a target already banned
// is the same offence (episodeLocked): covered holds the bans that
// already enforce such a request. m.mu is held.
func (m *Manager) pick(jobs []*job, now time.Time, episodes bool) (best map[netip.Prefix]store.Ban, write []store.Ban, refresh map[netip.Prefix]bool, uid map[netip.Prefix]int, covered map[netip.Prefix]store.Ban) {
	best = map[netip.Prefix]store.Ban{}
	uid = map[netip.Prefix]int{}
	covered = map[netip.Prefix]store.Ban{}
	for _, j := range jobs {
		for k, b := range j.bans {
			if episodes && !b.Manual && !b.Pulled {
				var cover store.Ban
				var ok bool
				if b, cover, ok = m.episodeLocked(b, j.base[k], now); ok {
					covered[b.Target] = cover
					continue
				}
				j.bans[k] = b
			}
			cur, ok := best[b.Target]
			if !ok {
				cur, ok = m.index.get(b.Target)
				ok = ok && cur.Until.After(now)
			}
			if !ok || cur.Until.Before(b.Until) {
				cur = b
				uid[b.Target] = j.uid
			}
			best[b.Target] = cur
		}
	}
	refresh = map[netip.Prefix]bool{}
	for _, b := range best {
		old, ok := m.index.get(b.Target)
		if !ok || old.Until.Before(b.Until) || !old.Until.After(now) {
			write = append(write, b)
			if ok && old.Until.After(now) {
				refresh[b.Target] = true
			}
		}
	}
	return best, write, refresh, uid, covered
}

func (m *Manager) doBans(jobs []*job) {
	m.recheck(jobs)
	now := m.now()
	m.mu.Lock()
	best, write, refresh, uid, covered := m.pick(jobs, now, true)
	m.mu.Unlock()

	answer := func(err error) {
		for _, j := range jobs {
			res := result{err: err, effective: make([]store.Ban, len(j.bans))}
			if len(j.bans) == 0 && j.dropped > 0 && err == nil {
				res.err = fmt.Errorf("%w: allowed while the ban waited", ErrRefused)
			}
			for k, b := range j.bans {
				if c, ok := covered[b.Target]; ok && !b.Manual && !b.Pulled {
					if _, own := best[b.Target]; !own {
						res.effective[k] = c
						continue
					}
				}
				// best is what the index now holds for the target (the
				// actor is its only writer), with the evidence of a ban
				// just written, which the index does not keep.
				eff := best[b.Target]
				res.effective[k] = eff
				if eff.Since.Equal(b.Since) && eff.Until.Equal(b.Until) && eff.Jail == b.Jail && err == nil {
					res.n++
				}
			}
			j.done <- res
		}
	}
	if len(write) == 0 {
		answer(nil)
		return
	}
	// The store first: a crash between the two is repaired by the next
	// reconcile, which restores from the store.
	evs := banEvents(write, refresh, uid, now)
	if err := m.db.PutBans(write, evs...); err != nil {
		answer(fmt.Errorf("ban: write store: %w", err))
		return
	}
	m.logEvents(evs)
	m.mu.Lock()
	for _, b := range write {
		m.index.put(b)
	}
	m.mu.Unlock()
	answer(m.apply(write))
}

// apply puts bans in the kernel, one transaction per batch. A failure
// gets one repair (the table may have been flushed under us) and a retry.
func (m *Manager) apply(bans []store.Ban) error {
	for part := range slices.Chunk(bans, m.batch) {
		if err := m.flushRepaired(part, nil); err != nil {
			return err
		}
	}
	return nil
}

// flushRepaired is one kernel transaction of bans and removals; a failure
// gets one repair (the table may have been flushed under us) and a retry.
func (m *Manager) flushRepaired(bans []store.Ban, remove []netip.Prefix) error {
	err := m.flush(bans, remove)
	if err != nil {
		m.log.Warn("kernel transaction failed; repairing the table", "err", err)
		if rerr := m.repair(); rerr != nil {
			return errors.Join(err, rerr)
		}
		err = m.flush(bans, remove)
	}
	return err
}

// flush is one kernel transaction; the timeouts are the time left as of
// now, so that the kernel expires each ban at its Until however long the
// store write took.
func (m *Manager) flush(bans []store.Ban, remove []netip.Prefix) error {
	now := m.now()
	els := make([]Element, len(bans))
	for i, b := range bans {
		els[i] = Element{Target: b.Target, Timeout: b.Until.Sub(now), Permanent: b.Permanent()}
	}
	start := time.Now()
	err := m.own(func() error {
		if remove == nil {
			return m.fw.Add(els)
		}
		return m.fw.Swap(remove, els)
	})
	d := time.Since(start)
	m.mu.Lock()
	s := &m.stats
	s.flushes++
	s.lastFlush = d
	s.maxFlush = max(s.maxFlush, d)
	s.totalFlush += d
	if err == nil {
		s.flushedElements += uint64(len(els) + len(remove))
	}
	m.mu.Unlock()
	return err
}

// repair re-creates the table if a structural check finds it damaged.
func (m *Manager) repair() error {
	h, err := m.fw.Check()
	if err != nil {
		return err
	}
	if h.OK {
		return nil
	}
	m.log.Warn("nftables table damaged; re-creating it", "problem", h.Problem)
	return m.own(func() error { return m.fw.Ensure(m.classes()) })
}

func (m *Manager) classes() []SetClass {
	seen := map[SetClass]bool{}
	cs := DefaultClasses()
	for _, c := range cs {
		seen[c] = true
	}
	m.mu.Lock()
	for b := range m.index.all() {
		if c := ClassOf(b.Target); !seen[c] {
			seen[c] = true
			cs = append(cs, c)
		}
	}
	m.mu.Unlock()
	return cs
}

func (m *Manager) doUnban(j *job) {
	now := m.now()
	m.mu.Lock()
	n := 0
	var evs []store.Event
	for _, t := range j.unban {
		if b, ok := m.index.get(t); ok {
			n++
			evs = append(evs, store.Event{Time: now, Kind: store.EventUnban, Target: t, Jail: b.Jail, Level: b.Level, UID: j.uid})
		}
	}
	m.mu.Unlock()
	if err := m.db.DeleteBans(j.unban, evs...); err != nil {
		j.done <- result{err: fmt.Errorf("ban: unban in store: %w", err)}
		return
	}
	m.logEvents(evs)
	m.mu.Lock()
	for _, t := range j.unban {
		m.index.delete(t)
	}
	m.mu.Unlock()
	// Unbanned in the store: if the kernel part fails, the next reconcile
	// removes what the store no longer holds.
	for chunk := range slices.Chunk(j.unban, m.batch) {
		if err := m.own(func() error { return m.fw.Remove(chunk) }); err != nil {
			j.done <- result{n: n, err: fmt.Errorf("ban: unban in kernel: %w", err)}
			return
		}
	}
	j.done <- result{n: n}
}
