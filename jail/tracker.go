package jail

// tracker holds every window of every jail, bounded by max, evicting the
// least recently updated.
type tracker struct {
	ix *keyIndex
	// chunks hold the windows; fixed-size chunks never move, so growing
	// to max_tracked copies nothing.
	chunks     []*[chunkSize]window
	nslots     int32
	free       []int32
	head, tail int32 // most / least recently used; -1 when empty
	max        int
	evicted    uint64
}

const chunkSize = 1024

func (t *tracker) at(i int32) *window { return &t.chunks[i/chunkSize][i%chunkSize] }

func newTracker(max int) *tracker {
	return &tracker{ix: newKeyIndex(), head: -1, tail: -1, max: max}
}

func (t *tracker) len() int { return t.ix.n }

// get returns the window of k, creating it (and evicting the oldest) when
// needed, and marks it most recently used.
func (t *tracker) get(k wkey) *window {
	if i, ok := t.ix.find(k, t); ok {
		t.touch(i)
		return t.at(i)
	}
	if t.ix.n >= t.max && t.tail >= 0 {
		t.remove(t.tail)
		t.evicted++
	}
	var i int32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		if t.nslots%chunkSize == 0 {
			t.chunks = append(t.chunks, new([chunkSize]window))
		}
		i = t.nslots
		t.nslots++
	}
	w := t.at(i)
	w.key = k
	t.ix.insert(k, i)
	t.pushFront(i)
	return w
}

func (t *tracker) lookup(k wkey) *window {
	if i, ok := t.ix.find(k, t); ok {
		return t.at(i)
	}
	return nil
}

// remove drops the window. Small slices are kept for the slot's next
// window; larger ones are released, or every slot would end up holding the
// largest window it ever had.
func (t *tracker) remove(i int32) {
	w := t.at(i)
	t.ix.remove(w.key, t)
	t.unlink(i)
	clear(w.ev) // evidence strings must not outlive the window
	*w = window{ent: keepSmall(w.ent), addrs: keepSmall(w.addrs), ev: keepSmall(w.ev)}
	t.free = append(t.free, i)
}

func keepSmall[S ~[]E, E any](s S) S {
	if cap(s) > 2 {
		return nil
	}
	return s[:0]
}

func (t *tracker) removeKey(k wkey) {
	if i, ok := t.ix.find(k, t); ok {
		t.remove(i)
	}
}

// each calls fn for every window, most recently used first. fn may not
// add or remove windows.
func (t *tracker) each(fn func(i int32, w *window)) {
	for i := t.head; i >= 0; i = t.at(i).next {
		fn(i, t.at(i))
	}
}

// rekey changes every window's key (or drops it when keep says so) and
// rebuilds the index.
func (t *tracker) rekey(fn func(k wkey) (wkey, bool)) {
	var drop []int32
	t.each(func(i int32, w *window) {
		if nk, ok := fn(w.key); ok {
			w.key = nk
		} else {
			drop = append(drop, i)
		}
	})
	for _, i := range drop {
		t.unlink(i)
		clear(t.at(i).ev)
		*t.at(i) = window{}
		t.free = append(t.free, i)
	}
	t.ix.reset()
	t.each(func(i int32, w *window) { t.ix.insert(w.key, i) })
}

func (t *tracker) touch(i int32) {
	if t.head == i {
		return
	}
	t.unlink(i)
	t.pushFront(i)
}

func (t *tracker) pushFront(i int32) {
	w := t.at(i)
	w.prev, w.next = -1, t.head
	if t.head >= 0 {
		t.at(t.head).prev = i
	}
	t.head = i
	if t.tail < 0 {
		t.tail = i
	}
}

func (t *tracker) unlink(i int32) {
	w := t.at(i)
	if w.prev >= 0 {
		t.at(w.prev).next = w.next
	} else if t.head == i {
		t.head = w.next
	}
	if w.next >= 0 {
		t.at(w.next).prev = w.prev
	} else if t.tail == i {
		t.tail = w.prev
	}
	w.prev, w.next = -1, -1
}
