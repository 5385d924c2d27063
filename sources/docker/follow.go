package docker

import (
	"context"
	"fmt"
	"github.com/bansd/bansd/sources"
	"io"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
)

// follower reads one service's container logs, one container at a time,
// in order.
type follower struct {
	d   *Docker
	svc *service
	out chan<- []sources.Line

	// batch holds the lines read since the last send: they go on together
	// once the stream has nothing more buffered (batch.go).
	batch batch

	// pos is how far the delivered lines reach in the current container.
	pos position
	// stored is the cursor from the store while its skip is not yet done.
	stored *Cursor
	loaded bool // the store was asked
	seen   bool // some container was already followed in this run
	// warmed: the stored cursor's warm-up was started. Once only: lines it
	// delivered are in the windows, so a stream that breaks during it is
	// not replayed again (the rest is missing, and status says so).
	warmed bool
}

// end is how a log stream ended.
type end int

const (
	endStopped end = iota // the container is not running: its log was read to the end
	endRunning            // the stream ended but the container still runs
)

func (f *follower) run(ctx context.Context) {
	var bo backoff
	var last target
	for {
		t, err := f.d.waitTarget(ctx, f.svc, last)
		if err != nil {
			return
		}
		last = t
		if t.id == "" {
			f.svc.set(func(s *service) { s.state, s.container = StateWaiting, "" })
			continue
		}
		began := time.Now()
		how, err := f.attach(ctx, t.id)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > backoffMax {
			// A stream that lasted is a success: start the backoff over.
			bo.reset()
		}
		if err != nil {
			f.d.log.Warn("log stream broken, retrying", "service", f.svc.name, "container", short(t.id), "err", err)
			f.svc.set(func(s *service) { s.state, s.lastErr = StateReconnecting, err.Error(); s.reconnects++ })
			if bo.wait(ctx) != nil {
				return
			}
			last = target{} // try the current target again
			continue
		}
		switch how {
		case endStopped:
			bo.reset()
			f.svc.set(func(s *service) { s.state = StateStopped })
			// wait for a change from last: a new container, or a start
		case endRunning:
			if bo.wait(ctx) != nil {
				return
			}
			last = target{}
		}
	}
}

// attach follows container id until its log stream ends.
func (f *follower) attach(ctx context.Context, id string) (end, error) {
	cli, s := f.d.cli, f.svc
	insp, err := cli.ContainerInspect(ctx, id)
	if cerrdefs.IsNotFound(err) {
		// Removed before we came: wait for the next target.
		return endStopped, nil
	}
	if err != nil {
		return 0, fmt.Errorf("inspect %s: %w", short(id), err)
	}
	began := f.d.now()
	since, skip, rebuild, stored, err := f.resumePoint(id)
	if err != nil {
		return 0, err
	}
	tty := insp.Config != nil && insp.Config.Tty
	from := "" // the stream's since: from the container's start
	if since > 0 {
		from = strconv.FormatInt(since, 10)
	}
	// A warm-up replays what the stored cursor covers, in the same stream
	// (dockerd scans the log from its start for any since: one request
	// scans it once): the messages stamped before the cursor's second,
	// then its skip messages. With nothing to skip, nothing was processed
	// in this container since that second: there is nothing to replay.
	var warm *warmer
	if stored && skip > 0 && f.d.opt.Warmup > 0 && since > 0 && !f.warmed {
		f.warmed = true
		warm = f.newWarmer(id, since, began, insp.Created)
		from = strconv.FormatInt(warm.st.Want.Unix(), 10)
		defer func() {
			if !warm.done && ctx.Err() == nil {
				warm.partial("the log stream broke during the warm-up: the rest was not read again")
				warm.end()
			}
		}()
	}
	rc, err := f.d.followLogs(ctx, id, from)
	if err != nil {
		return 0, fmt.Errorf("logs %s: %w", short(id), err)
	}
	defer rc.Close()
	f.d.log.Debug("attached", "service", s.name, "container", short(id), "since", since, "skip", skip, "tty", tty)
	s.set(func(s *service) { s.state, s.container = StateAttached, id })

	dm := newDemux(rc.body, tty, f.d.opt.MaxLine+64)
	asm := assembler{max: f.d.opt.MaxLine}
	emit := func(a assembled) {
		f.batch.add(sources.Line{Service: s.name, Container: id, Time: a.time, Text: a.text}, a)
	}
	f.batch.next(f.d.spares.get(0))
	defer func() { f.d.spares.put(f.batch.reset()) }()
	for {
		if f.batch.due(dm.buffered()) {
			// The next read may wait for dockerd: what was read goes on first.
			if err := f.send(ctx, id); err != nil {
				return 0, err
			}
		}
		m, err := dm.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if serr := f.send(ctx, id); serr != nil {
				return 0, serr
			}
			return 0, fmt.Errorf("read log of %s: %w", short(id), err)
		}
		if m.stream == streamSystem {
			msg := string(m.text)
			f.d.log.Warn("docker could not read the log", "service", s.name, "container", short(id), "err", msg)
			s.set(func(s *service) { s.lastErr = msg })
			continue
		}
		if warm != nil && m.time.Unix() < since {
			// Before the cursor's second: processed before the restart.
			// (After the warm-up, as before a since of that second.)
			if !warm.done {
				warm.add(m)
			}
			continue
		}
		if skip > 0 && m.time.Unix() > since+1 {
			// The messages a cursor counts are stamped in its second or
			// the next (position): the rest of them were rotated away,
			// and this one is new.
			missing := skip
			skip = 0
			f.d.log.Warn("the log was rotated under the cursor: its last lines are gone, reading on from the first newer one", "service", s.name, "container", short(id), "missing", missing)
			if rebuild != nil {
				f.resumed(*rebuild)
			}
			if warm != nil {
				warm.partial(fmt.Sprintf("Docker's log no longer holds the cursor's last lines (rotated away): %d were missing", missing))
				warm.end()
			}
		}
		if skip > 0 {
			skip--
			if warm != nil {
				warm.add(m)
			}
			if rebuild != nil {
				rebuild.add([]secRun{{m.time.Unix(), 1}})
				if skip == 0 {
					f.resumed(*rebuild)
					if warm != nil {
						warm.end()
					}
				}
			}
			continue
		}
		asm.add(m, emit)
	}
	if err := f.send(ctx, id); err != nil {
		return 0, err
	}
	// The stream ended cleanly: the container stopped, or the engine is
	// going away.
	insp, err = cli.ContainerInspect(ctx, id)
	switch {
	case cerrdefs.IsNotFound(err):
	case err != nil:
		return 0, fmt.Errorf("inspect %s: %w", short(id), err)
	case insp.State != nil && insp.State.Running:
		return endRunning, nil
	}
	if skip > 0 {
		if warm != nil {
			warm.end()
		}
		return endStopped, nil
	}
	// A stopped container never finishes its last, unterminated line.
	asm.drain(emit)
	return endStopped, f.send(ctx, id)
}

// send hands the batch read so far on: a place in the cursor's pending
// list first (when cursors are kept and it holds live lines), then the
// lines, then the service's counters.
func (f *follower) send(ctx context.Context, id string) error {
	b := &f.batch
	if len(b.lines) == 0 {
		return nil
	}
	s := f.svc
	if b.live > 0 && f.d.opt.Cursors != nil {
		if err := send(ctx, s.room, struct{}{}); err != nil {
			return err
		}
		s.mu.Lock()
		s.pending = append(s.pending, pendingBatch{container: id, floor: f.pos.floor, last: b.last, runs: b.runs})
		s.mu.Unlock()
	}
	if err := send(ctx, f.out, b.lines); err != nil {
		return err
	}
	f.pos.add(b.runs)
	if b.live > 0 {
		now := f.d.now()
		s.mu.Lock()
		s.lines += uint64(b.live)
		s.truncated += uint64(b.cut)
		s.lastLine, s.lag = b.last, now.Sub(b.last)
		s.mu.Unlock()
	}
	b.next(f.d.spares.get(len(b.lines)))
	return nil
}

// resumePoint decides where to start reading container id: since (unix
// seconds, 0: from its start) and how many messages to skip. stored: the
// point is the store's cursor (the first attach of this run); rebuild is
// then non-nil when there are messages to skip, to rebuild the position.
func (f *follower) resumePoint(id string) (since int64, skip int, rebuild *position, stored bool, err error) {
	if f.stored != nil && f.stored.ContainerID == id {
		since = max(f.stored.Time.Unix(), 0)
		p := &position{container: id, floor: since}
		if f.stored.Count <= 0 {
			f.resumed(*p)
			return since, 0, nil, true, nil
		}
		return since, f.stored.Count, p, true, nil
	}
	if f.pos.container == id {
		since, skip = f.pos.resume()
		return since, skip, nil, false, nil
	}
	var c Cursor
	var found bool
	if !f.loaded && f.d.opt.Cursors != nil {
		key := f.d.project() + "/" + f.svc.name
		c, found, err = f.d.opt.Cursors.Cursor(key)
		if err != nil {
			return 0, 0, nil, false, fmt.Errorf("load cursor %s: %w", key, err)
		}
	}
	f.loaded = true
	switch {
	case found && c.ContainerID == id:
		f.stored = &c
		return f.resumePoint(id)
	case found || f.seen:
		// A container created since the cursor (or since the last one in
		// this run): all of it is new.
		since = 0
		if found && f.d.opt.Warmup > 0 {
			f.svc.set(func(s *service) {
				s.warmup = WarmupStatus{State: WarmupPartial, Until: c.Time,
					Why: "the service's container was replaced since the cursor (" + short(c.ContainerID) + "): its lines before were not read again"}
			})
			f.d.log.Warn("warm-up: the container was replaced since the cursor, its counts are not rebuilt", "service", f.svc.name, "cursor_container", short(c.ContainerID), "container", short(id))
		}
	default:
		since = f.d.now().Add(-f.d.opt.Backlog).Unix()
	}
	f.seen, f.stored = true, nil
	f.pos = position{container: id, floor: since}
	return since, 0, nil, false, nil
}

// resumed takes the position rebuilt by skipping a stored cursor's
// messages as the read and the processed position.
func (f *follower) resumed(p position) {
	f.stored, f.pos, f.seen = nil, p, true
	f.svc.set(func(s *service) {
		if s.done.container != p.container {
			s.done = p
		}
	})
}

// send blocks until ch takes v or ctx ends; the first try skips the
// select, which costs more than the rest of a line's handling.
func send[T any](ctx context.Context, ch chan<- T, v T) error {
	select {
	case ch <- v:
		return nil
	default:
	}
	select {
	case ch <- v:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
