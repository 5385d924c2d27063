package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/jail/parse"
	"github.com/bansd/bansd/sources"
)

// replaySource is one ordered stream of lines for replay: a file of one
// service, a journal export holding several, a service's Docker history.
type replaySource struct {
	// name says which input an error is about: "front=front.log".
	name string
	// in is the input as the report lists it.
	in replayInput
	// read calls fn for each line, in the stream's order, and says how many
	// lines were cut at docker.max_line.
	read func(ctx context.Context, fn func(sources.Line) error) (cut int64, err error)
	// transient: a line's text is valid only while read's fn runs
	// (sources.ReadFileTransient); events are copied out of it.
	transient bool
	// notes, when set, says after the replay what of the input was not
	// replayed (for standard error).
	notes func() []string
}

// A stream hands over its events in batches of up to replayBatch, and at
// least every replayFlush lines read: one channel operation per line would
// cost more than the parsing, and a batch pins the chunks its lines were
// cut from.
const (
	replayBatch = 1024
	replayFlush = 4096
)

// stampedEvent is a parsed event and its merge key; printed is its line's
// index in the stream's tally of printed lines, -1 when not printed.
type stampedEvent struct {
	ev      parse.Event
	t       int64
	printed int32
}

type feedStream struct {
	ch chan []stampedEvent
	// free returns consumed batches to the reader, so a long replay does
	// not allocate (and collect) a batch per 4096 events.
	free chan []stampedEvent
	buf  []stampedEvent
	pos  int
	done bool

	// Set by the reader before ch is closed.
	cut    int64
	parsed parse.ParserStats
	tally  lineTally
	err    error
}

// feedResult is what the sources held besides their events: per source,
// its lines' tally.
type feedResult struct {
	cut     int64
	parser  parse.ParserStats
	tallies []lineTally
}

// lineTally is what one source's lines were, as the parser judged them,
// and the lines --print asked for (at most the limit per class).
type lineTally struct {
	lines, recognised, dovecot uint64
	printed                    []printedLine
	shown                      [parse.ClassUncorroborated + 1]int
}

// note tallies the line just parsed (v, and ev when it matched); it
// returns the index of the printed line, -1 when it is not printed.
func (t *lineTally) note(l *sources.Line, in replayInput, v parse.Verdict, ev *parse.Event, key int64, opt replayOptions) int32 {
	t.lines++
	if v.Class != parse.ClassUnparsable {
		t.recognised++
		if (v.Class == parse.ClassMatched && ev.Origin == parse.OriginDovecot) || v.Class == parse.ClassIgnored && v.Reason() == parse.IgnoreDovecotOther {
			t.dovecot++
		}
	}
	if !opt.print[v.Class] || t.shown[v.Class] >= opt.printLimit {
		return -1
	}
	t.shown[v.Class]++
	p := printedLine{Service: l.Service, Path: in.path, Class: v.Class.String(), Reason: v.Reason(), Line: strings.Clone(l.Text), t: key}
	if v.Class == parse.ClassMatched {
		e := ownEvent(*ev, l.Text)
		p.Event = eventOf(e)
	}
	t.printed = append(t.printed, p)
	return int32(len(t.printed) - 1)
}

// replayProgress is read by the progress line while the readers run.
type replayProgress struct {
	lines  atomic.Int64
	latest atomic.Int64 // newest merge key seen by any reader, unix ns
}

func (p *replayProgress) note(lines, t int64) {
	if p == nil {
		return
	}
	p.lines.Add(lines)
	for {
		old := p.latest.Load()
		if t <= old || p.latest.CompareAndSwap(old, t) {
			return
		}
	}
}

// feed parses each source on a goroutine of its own, with one parser per
// service met in it (the parsers' state is per service, so this is what a
// single parser over the merged lines would decide), and hands the events
// to eng in log-time order, calling out with what each produced. Only the
// engine's counting is serial: reading, splitting, timestamps and parsing
// of the sources run side by side.
//
// The merge is a k-way merge by line time (Docker's timestamp, else the
// line's own, else the previous line's) with ties in source order. The key
// of each event is the running maximum of its stream's line times: the
// greedy merge of the raw times of every line makes exactly the same
// choices as a merge by these keys (a line older than its stream's newest
// waits for nothing the newest did not already wait for), and with
// non-decreasing keys dropping the unmatched lines does not change the
// order of the rest. So bans are those of a line-by-line merge, also for
// streams that go back in time.
func feed(ctx context.Context, srcs []replaySource, eng *jail.Engine, ref time.Time, prog *replayProgress, opt replayOptions, out func(stream int, printed int32, o jail.Output)) (feedResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	streams := make([]*feedStream, len(srcs))
	var wg sync.WaitGroup
	for i, src := range srcs {
		s := &feedStream{ch: make(chan []stampedEvent, 4), free: make(chan []stampedEvent, 4)}
		streams[i] = s
		wg.Go(func() {
			defer close(s.ch)
			s.cut, s.parsed, s.tally, s.err = parseSource(ctx, src, ref, s.ch, s.free, prog, opt)
			if s.err != nil {
				cancel()
			}
		})
	}
	// k is small: a linear scan beats a heap.
	for {
		best := -1
		var bestT int64
		for i, s := range streams {
			if s.pos == len(s.buf) {
				if s.done {
					continue
				}
				if s.buf != nil {
					select {
					case s.free <- s.buf[:0]:
					default:
					}
					s.buf, s.pos = nil, 0
				}
				b, ok := <-s.ch
				if !ok {
					s.done = true
					continue
				}
				s.buf = b
			}
			if t := s.buf[s.pos].t; best < 0 || t < bestT {
				best, bestT = i, t
			}
		}
		if best < 0 {
			break
		}
		s := streams[best]
		se := &s.buf[s.pos]
		out(best, se.printed, eng.ProcessEvent(se.ev))
		s.pos++
	}
	wg.Wait()
	res := feedResult{parser: parse.ParserStats{Forged: map[string]uint64{}}, tallies: make([]lineTally, len(streams))}
	var firstErr error
	for i, s := range streams {
		// A source that failed cancels the others: name it, not them.
		if s.err != nil && (firstErr == nil || errors.Is(firstErr, context.Canceled) && !errors.Is(s.err, context.Canceled)) {
			firstErr = fmt.Errorf("replay %s: %w", srcs[i].name, s.err)
		}
		res.cut += s.cut
		res.parser = res.parser.Add(s.parsed)
		res.tallies[i] = s.tally
	}
	return res, firstErr
}

// parseSource reads one source, parses its lines and sends the events in
// batches. A batch is also sent after every replayFlush lines read, even
// with few events in it: an event's Line points into the chunk it was read
// from, and so a batch holds on to the chunks of at most that many lines.
func parseSource(ctx context.Context, src replaySource, ref time.Time, ch chan<- []stampedEvent, free <-chan []stampedEvent, prog *replayProgress, opt replayOptions) (int64, parse.ParserStats, lineTally, error) {
	var tally lineTally
	parsers := map[string]*parse.Parser{}
	var (
		svc     string
		p       *parse.Parser
		last    int64 // the line's time, else the previous line's
		key     int64 // running maximum of last: the merge key
		started bool
		read    int64 // lines since the last batch
	)
	batch := make([]stampedEvent, 0, replayBatch)
	send := func() error {
		prog.note(read, key)
		read = 0
		if len(batch) == 0 {
			return nil
		}
		select {
		case ch <- batch:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case batch = <-free:
		default:
			batch = make([]stampedEvent, 0, replayBatch)
		}
		return nil
	}
	cut, err := src.read(ctx, func(l sources.Line) error {
		if t, ok := parse.LineTime(l, ref); ok {
			last = t.UnixNano()
		}
		if !started || last > key {
			key, started = last, true
		}
		if p == nil || l.Service != svc {
			svc, p = l.Service, parsers[l.Service]
			if p == nil {
				var opt parse.ParserOptions
				if svc != "front" {
					// Only front's nginx lines use the connection table,
					// which is allocated whole: do not pay for it thrice.
					opt.MaxConnections = 1
				}
				p = parse.NewParser(opt)
				parsers[svc] = p
			}
		}
		read++
		ev, ok := p.Parse(l)
		printed := tally.note(&l, src.in, p.Last(), &ev, key, opt)
		if ok {
			if src.transient {
				ev = ownEvent(ev, l.Text)
			}
			batch = append(batch, stampedEvent{ev: ev, t: key, printed: printed})
		}
		if len(batch) == replayBatch || read == replayFlush {
			return send()
		}
		return nil
	})
	if err == nil {
		err = send()
	}
	var st parse.ParserStats
	for _, p := range parsers {
		st = st.Add(p.Stats())
	}
	return cut, st, tally, err
}

// ownEvent copies the strings of ev that point into text (a transient
// line) into memory of its own: one copy of the line, the others cut
// from it.
func ownEvent(ev parse.Event, text string) parse.Event {
	line := strings.Clone(text)
	ev.Line = rebase(ev.Line, text, line)
	ev.User = rebase(ev.User, text, line)
	ev.PassHash = rebase(ev.PassHash, text, line)
	return ev
}

// rebase returns s, if it is a piece of old, as the same piece of cp (a
// copy of old); any other non-empty s is copied, since it may point into
// the same transient buffer.
func rebase(s, old, cp string) string {
	if s == "" {
		return ""
	}
	base := uintptr(unsafe.Pointer(unsafe.StringData(old)))
	p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	if p >= base && p+uintptr(len(s)) <= base+uintptr(len(old)) {
		off := int(p - base)
		return cp[off : off+len(s)]
	}
	return strings.Clone(s)
}

// replaySources runs the engine over srcs and builds the report; prot,
// when set, is what the live engine would protect besides the
// configuration.
func replaySources(ctx context.Context, cfg *configs.Config, srcs []replaySource, prot *jail.Protected, prog *replayProgress, opt replayOptions) (*replayReport, error) {
	inputs := make([]replayInput, len(srcs))
	for i, s := range srcs {
		inputs[i] = s.in
	}
	rb := newReportBuilder(cfg, inputs, opt.printLimit)
	eng, err := jail.NewEngine(cfg, jail.Options{})
	if err != nil {
		return nil, err
	}
	if prot != nil {
		eng.SetProtected(*prot)
	}
	// The engine's word on each printed matched line, by source: the
	// tallies belong to their readers until feed returns.
	reasons := make([]map[int32]string, len(srcs))
	start := time.Now()
	fed, err := feed(ctx, srcs, eng, start, prog, opt, func(stream int, printed int32, out jail.Output) {
		rb.event(&out)
		if printed >= 0 && out.NotCounted != "" {
			if reasons[stream] == nil {
				reasons[stream] = map[int32]string{}
			}
			reasons[stream][printed] = out.NotCounted
		}
	})
	if err != nil {
		return nil, err
	}
	return rb.finish(eng, fed, reasons, time.Since(start).Seconds()), nil
}
