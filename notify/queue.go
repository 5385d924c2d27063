package notify

import "sync"

// blockLen is the events of one block of the queue: a burst (an import of
// 10,000 bans hands over 10,000 events at once) adds blocks, never copies
// what is already queued.
const blockLen = 256

// queue is the hand-off from the store's writers to Run: bounded at max
// events, beyond which put refuses, and sized by what is waiting, not by
// the bound (a channel of the bound, 16384 events of about 140 bytes, was
// 2 MiB kept from start to stop in every daemon, mostly idle). Drained
// blocks go back to the runtime, but one, kept for the steady trickle.
type queue struct {
	mu     sync.Mutex
	blocks [][]Event // the last one is being filled
	n, max int
	spare  []Event // a drained block (length 0), or nil
	// wake holds one token while events may be waiting.
	wake chan struct{}
}

func newQueue(max int) *queue {
	return &queue{max: max, wake: make(chan struct{}, 1)}
}

// put appends e unless max events are waiting; it never blocks.
func (q *queue) put(e Event) bool {
	q.mu.Lock()
	if q.n >= q.max {
		q.mu.Unlock()
		return false
	}
	last := len(q.blocks) - 1
	if last < 0 || len(q.blocks[last]) == blockLen {
		b := q.spare
		q.spare = nil
		if b == nil {
			b = make([]Event, 0, blockLen)
		}
		q.blocks = append(q.blocks, b)
		last++
	}
	q.blocks[last] = append(q.blocks[last], e)
	q.n++
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// drain hands every waiting event to fn, in order, and empties the queue.
// fn runs outside the lock: put goes on meanwhile, into new blocks.
func (q *queue) drain(fn func(Event)) {
	q.mu.Lock()
	blocks := q.blocks
	q.blocks, q.n = nil, 0
	q.mu.Unlock()
	for _, b := range blocks {
		for _, e := range b {
			fn(e)
		}
	}
	if len(blocks) == 0 {
		return
	}
	// The first block is kept as the spare, emptied so that it holds on
	// to no event's strings.
	b := blocks[0]
	clear(b)
	q.mu.Lock()
	if q.spare == nil {
		q.spare = b[:0]
	}
	q.mu.Unlock()
}
