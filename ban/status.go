package ban

import (
	"context"
	"time"
)

// FirewallStatus is what `bansctl status` shows about enforcement.
type FirewallStatus struct {
	TableShape
	Sets []SetStatus

	LastReconcile         time.Time
	LastReconcileDuration time.Duration
	// LastReconcileError is empty when the last reconcile succeeded.
	LastReconcileError string
	// LastReconcileRepair says what the last reconcile had to fix.
	LastReconcileRepair string

	Flushes         uint64
	FlushedElements uint64
	LastFlush       time.Duration
	MaxFlush        time.Duration
	MeanFlush       time.Duration
	// Queued is how many requests wait for the actor.
	Queued int
}

// SetStatus is one set: its live bans (from the index) and what its rule
// dropped (from its named counter).
type SetStatus struct {
	Name     string
	Family   string // "ipv4" or "ipv6"
	Bits     int
	Elements int
	Packets  uint64
	Bytes    uint64
}

// Status reads the kernel side (reads never disturb the actor's batches)
// and the manager's own counters.
func (m *Manager) Status(ctx context.Context) (FirewallStatus, error) {
	// The netlink read cannot be cancelled: a caller that gives up gets
	// its answer now, and the read finishes on its own.
	type result struct {
		ts  TableStatus
		err error
	}
	done := make(chan result, 1)
	go func() {
		ts, err := m.fw.Status()
		done <- result{ts, err}
	}()
	var ts TableStatus
	select {
	case <-ctx.Done():
		return FirewallStatus{}, ctx.Err()
	case r := <-done:
		if r.err != nil {
			return FirewallStatus{}, r.err
		}
		ts = r.ts
	}
	st := FirewallStatus{TableShape: ts.TableShape, Queued: len(m.jobs)}
	count := map[SetClass]int{}
	now := m.now()
	m.mu.Lock()
	for b := range m.index.all() {
		if b.Until.After(now) {
			count[ClassOf(b.Target)]++
		}
	}
	s := m.stats
	m.mu.Unlock()
	classes := map[SetClass]bool{}
	for c := range count {
		classes[c] = true
	}
	for name := range ts.Counters {
		if c, ok := parseClass(name); ok {
			classes[c] = true
		}
	}
	cs := make([]SetClass, 0, len(classes))
	for c := range classes {
		cs = append(cs, c)
	}
	sortClasses(cs)
	for _, c := range cs {
		fam := "ipv4"
		if c.V6 {
			fam = "ipv6"
		}
		ctr := ts.Counters[c.Name()]
		st.Sets = append(st.Sets, SetStatus{Name: c.Name(), Family: fam, Bits: c.Bits, Elements: count[c], Packets: ctr.Packets, Bytes: ctr.Bytes})
	}
	st.LastReconcile, st.LastReconcileDuration = s.lastReconcile, s.reconcileDuration
	st.LastReconcileError, st.LastReconcileRepair = s.reconcileErr, s.reconcileRepair
	st.Flushes, st.FlushedElements, st.LastFlush, st.MaxFlush = s.flushes, s.flushedElements, s.lastFlush, s.maxFlush
	if s.flushes > 0 {
		st.MeanFlush = s.totalFlush / time.Duration(s.flushes)
	}
	return st, nil
}
