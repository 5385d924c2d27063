package docker

import (
	"time"

	"github.com/bansd/bansd/sources"
)

// A batch is the lines of one service that were read before the stream ran
// dry: they go to the consumer in one send. Nothing waits for a batch to
// fill, so a line is never later than it would be on its own, but when
// dockerd delivers faster than lines are handed on one at a time, the
// channel operations, wake-ups and cursor bookkeeping are paid once per
// batch instead of once per line.
type batch struct {
	lines []sources.Line
	runs  []secRun  // the messages of the live lines, for the cursor
	live  int       // lines not Warm
	cut   int       // live lines cut at the line limit
	last  time.Time // Docker time of the last live line
}

// maxBatch bounds a batch, so that a consumer never waits on a long read
// for the first of its lines.
const maxBatch = 256

// add appends a live line and the messages it consumed.
func (b *batch) add(l sources.Line, a assembled) {
	b.lines = append(b.lines, l)
	for _, r := range a.runs {
		b.runs = addRun(b.runs, r.sec, r.n)
	}
	b.live++
	if a.cut {
		b.cut++
	}
	b.last = l.Time
}

// addWarm appends a line read again to rebuild the windows: it is never
// Done and moves no cursor.
func (b *batch) addWarm(l sources.Line) { b.lines = append(b.lines, l) }

// due reports whether the batch must go on before the next read: the
// stream has nothing more buffered (the read may wait), or it is full.
func (b *batch) due(buffered int) bool {
	return len(b.lines) > 0 && (buffered == 0 || len(b.lines) >= maxBatch)
}

// next starts an empty batch; the consumer owns the slices of the one
// sent. Its room follows the last batch's size.
func (b *batch) next() {
	n := min(maxBatch, max(4, 2*len(b.lines)))
	*b = batch{lines: make([]sources.Line, 0, n)}
}

// reset drops lines that were never sent (the stream broke): the
// position does not count them, so they are read again.
func (b *batch) reset() { *b = batch{} }
