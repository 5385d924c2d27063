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
		if jobs[i].unban != nil {
			m.doUnban(jobs[i])
			i++
			continue
		}
		k := i
		for k < len(jobs) && jobs[k].unban == nil {
			k++
		}
		m.doBans(jobs[i:k])
		i = k
	}
}

func (m *Manager) doBans(jobs []*job) {
	now := m.now()
	// Keep the longest ban per target, against the index and within the batch.
	best := map[netip.Prefix]store.Ban{}
	uid := map[netip.Prefix]int{}
	m.mu.Lock()
	for _, j := range jobs {
		for _, b := range j.bans {
			cur, ok := best[b.Target]
			if !ok {
				cur, ok = m.index[b.Target]
				ok = ok && cur.Until.After(now)
			}
			if !ok || cur.Until.Before(b.Until) {
				cur = b
				uid[b.Target] = j.uid
			}
			best[b.Target] = cur
		}
	}
	var write []store.Ban
	refresh := map[netip.Prefix]bool{}
	for _, b := range best {
		old, ok := m.index[b.Target]
		if !ok || old.Until.Before(b.Until) || !old.Until.After(now) {
			write = append(write, b)
			if ok && old.Until.After(now) {
				refresh[b.Target] = true
			}
		}
	}
	m.mu.Unlock()

	answer := func(err error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, j := range jobs {
			res := result{err: err, effective: make([]store.Ban, len(j.bans))}
			for k, b := range j.bans {
				eff := best[b.Target]
				if cur, ok := m.index[b.Target]; ok && err == nil {
					eff = cur
				}
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
		m.index[b.Target] = b
	}
	m.mu.Unlock()
	answer(m.apply(write))
}

// apply puts bans in the kernel, one transaction per batch. A failure
// gets one repair (the table may have been flushed under us) and a retry.
func (m *Manager) apply(bans []store.Ban) error {
	for part := range slices.Chunk(bans, m.batch) {
		// Remaining time as of this flush, so that the kernel expires the
		// ban at its Until however long the store write took.
		now := m.now()
		chunk := make([]Element, len(part))
		for i, b := range part {
			chunk[i] = Element{Target: b.Target, Timeout: b.Until.Sub(now)}
		}
		err := m.flush(chunk)
		if err != nil {
			m.log.Warn("adding bans failed; repairing the table", "err", err)
			if rerr := m.repair(); rerr != nil {
				return errors.Join(err, rerr)
			}
			if err = m.flush(chunk); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *Manager) flush(els []Element) error {
	start := time.Now()
	err := m.own(func() error { return m.fw.Add(els) })
	d := time.Since(start)
	m.mu.Lock()
	s := &m.stats
	s.flushes++
	s.lastFlush = d
	s.maxFlush = max(s.maxFlush, d)
	s.totalFlush += d
	if err == nil {
		s.flushedElements += uint64(len(els))
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
	for t := range m.index {
		if c := ClassOf(t); !seen[c] {
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
		if b, ok := m.index[t]; ok {
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
		delete(m.index, t)
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
