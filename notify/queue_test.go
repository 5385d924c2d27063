package notify

import "testing"

// TestQueueOrderBoundBlocks: events come out in order across blocks, the
// bound refuses the excess, and a drained queue keeps one block at most.
func TestQueueOrderBoundBlocks(t *testing.T) {
	const max = 3*blockLen + 7
	q := newQueue(max)
	for i := range max + 10 {
		if ok := q.put(Event{Level: i}); ok != (i < max) {
			t.Fatalf("put #%d = %v with a bound of %d", i, ok, max)
		}
	}
	if len(q.blocks) != 4 {
		t.Fatalf("%d events in %d blocks, want 4", max, len(q.blocks))
	}
	next := 0
	q.drain(func(e Event) {
		if e.Level != next {
			t.Fatalf("event %d came out as #%d", e.Level, next)
		}
		next++
	})
	if next != max {
		t.Fatalf("drained %d events, want %d", next, max)
	}
	if q.blocks != nil || q.n != 0 || cap(q.spare) != blockLen || len(q.spare) != 0 {
		t.Fatalf("drained queue holds %d blocks, n %d, spare %d/%d", len(q.blocks), q.n, len(q.spare), cap(q.spare))
	}
	// The bound counts again from an empty queue; the spare is reused.
	spare := &q.spare[:1][0]
	if !q.put(Event{Level: -1}) || &q.blocks[0][0] != spare {
		t.Fatal("the first put after a drain does not reuse the spare block")
	}
}
