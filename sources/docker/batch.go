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

// next starts an empty batch in lines (from spares.get); the consumer owns
// the slices of the one sent.
func (b *batch) next(lines []sources.Line) { *b = batch{lines: lines} }

// reset drops lines that were never sent (the stream broke): the
// position does not count them, so they are read again. It returns their
// slice.
func (b *batch) reset() []sources.Line {
	l := b.lines
	*b = batch{}
	return l
}

// spares recycles the line slices of the batches the consumer is done
// with (Docker.Done). Under a flood a fresh slice per batch was a third
// of the source's allocations by size, every one of them pointers for
// the GC to scan. The list is bounded, and a slice in it holds no line.
type spares chan []sources.Line

// maxSpares bounds what an idle source keeps: at most 16 slices of up to
// a full batch (20 KiB).
const maxSpares = 16

// get returns an empty slice: a spare, or a new one with room for size
// lines (the last batch's size is a fair guess of the next).
func (s spares) get(size int) []sources.Line {
	select {
	case l := <-s:
		return l
	default:
		return make([]sources.Line, 0, min(maxBatch, max(16, 2*size)))
	}
}

// put takes back a batch's slice; its lines are dropped, so that a spare
// keeps none of their text alive.
func (s spares) put(l []sources.Line) {
	if cap(l) == 0 || cap(l) > maxBatch {
		return
	}
	clear(l)
	select {
	case s <- l[:0]:
	default:
	}
}
