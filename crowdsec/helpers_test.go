package crowdsec

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// memEnforcer is the ban side as the tests see it: what is enforced now.
type memEnforcer struct {
	mu       sync.Mutex
	bans     map[netip.Prefix]Pulled
	applied  map[netip.Prefix]time.Time
	lifted   []netip.Prefix
	resynced int
	now      func() time.Time
}

func newMemEnforcer() *memEnforcer {
	return &memEnforcer{bans: map[netip.Prefix]Pulled{}, applied: map[netip.Prefix]time.Time{}, now: time.Now}
}

func (m *memEnforcer) Apply(_ context.Context, bans []Pulled) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range bans {
		m.bans[b.Target] = b
		m.applied[b.Target] = m.now()
	}
	return nil
}

func (m *memEnforcer) Lift(_ context.Context, ts []netip.Prefix) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range ts {
		delete(m.bans, t)
		m.lifted = append(m.lifted, t)
	}
	return nil
}

func (m *memEnforcer) Resynced(_ context.Context, since time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resynced++
	for t, at := range m.applied {
		if at.Before(since) {
			delete(m.bans, t)
			delete(m.applied, t)
		}
	}
	return nil
}

func (m *memEnforcer) get(p netip.Prefix) (Pulled, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.bans[p]
	return b, ok
}

func (m *memEnforcer) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.bans)
}

// memQueue is a Queue in memory, for tests where persistence is not the point.
type memQueue struct {
	mu   sync.Mutex
	seq  uint64
	max  int
	data map[uint64][]byte
}

func newMemQueue(max int) *memQueue { return &memQueue{max: max, data: map[uint64][]byte{}} }

func (q *memQueue) Append(d []byte) (uint64, []uint64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	q.data[q.seq] = append([]byte(nil), d...)
	var dropped []uint64
	for s := uint64(1); len(q.data) > q.max && s < q.seq; s++ {
		if _, ok := q.data[s]; ok {
			delete(q.data, s)
			dropped = append(dropped, s)
		}
	}
	return q.seq, dropped, nil
}

func (q *memQueue) Replace(s uint64, d []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.data[s] = append([]byte(nil), d...)
	return nil
}

func (q *memQueue) Delete(s uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.data, s)
	return nil
}

func (q *memQueue) Scan(fn func(uint64, []byte) error) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for s := uint64(1); s <= q.seq; s++ {
		if d, ok := q.data[s]; ok {
			if err := fn(s, d); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool, show ...*Syncer) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			for _, s := range show {
				t.Logf("syncer status: %+v", s.Status())
			}
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func allowAll(netip.Prefix) (bool, string) { return true, "" }
