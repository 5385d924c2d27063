package docker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/bansd/bansd/sources"
	"io"
	"time"
	"unicode/utf8"
)

// Docker's log endpoint, asked for timestamps, writes every log message as
// "<RFC3339Nano> <text>". A message is one line ending in "\n", or one
// chunk of a line longer than the log driver's buffer (16 KiB for
// json-file), without "\n"; each chunk carries its own timestamp. Without a
// TTY the stream is multiplexed: each message is one frame
// [stream, 0, 0, 0, size(4, big endian)] + payload, which tells where a
// chunk ends. With a TTY it is raw: chunks of an overlong line cannot be
// told apart and the text keeps the later chunks' timestamps.

const (
	streamStdout = 1
	streamStderr = 2
	streamSystem = 3 // dockerd's own errors ("Error grabbing logs: ...")
)

// message is one log message of the stream, its text cut to the demuxer's
// limit.
type message struct {
	stream   byte
	time     time.Time
	text     []byte // without the timestamp and the final "\n"; valid until the next call
	complete bool   // the message ended with "\n"
	cut      bool   // text was longer than the limit; the rest was dropped
}

// demux reads messages from a log stream with bounded memory: at most limit
// bytes of text per message are kept, whatever the frame size says.
type demux struct {
	r     *bufio.Reader
	tty   bool
	limit int
	buf   []byte
	ts    sources.TimestampParser
	last  time.Time // used for the rare message without a parsable timestamp
}

func newDemux(r io.Reader, tty bool, limit int) *demux {
	return &demux{r: bufio.NewReaderSize(r, 64<<10), tty: tty, limit: limit, buf: make([]byte, 0, min(limit, 64<<10))}
}

// buffered is how many bytes of the stream are read but not yet taken:
// with none, the next message may have to wait for dockerd.
func (d *demux) buffered() int { return d.r.Buffered() }

// next returns the next message. io.EOF means the stream ended cleanly
// between messages; io.ErrUnexpectedEOF that it was cut inside one.
func (d *demux) next() (message, error) {
	if d.tty {
		return d.nextRaw()
	}
	return d.nextFrame()
}

func (d *demux) nextFrame() (message, error) {
	var h [8]byte
	if _, err := io.ReadFull(d.r, h[:]); err != nil {
		return message{}, err
	}
	m := message{stream: h[0]}
	if m.stream > streamSystem || h[1] != 0 || h[2] != 0 || h[3] != 0 {
		return message{}, fmt.Errorf("log stream: bad frame header % x", h)
	}
	n := int(binary.BigEndian.Uint32(h[4:]))
	// The timestamp: fixed width, but accept any RFC 3339 form.
	head, err := d.r.Peek(min(n, 48))
	if err != nil {
		return message{}, unexpected(err)
	}
	t, skip := d.timestamp(head)
	m.time = t
	if _, err := d.r.Discard(skip); err != nil {
		return message{}, unexpected(err)
	}
	n -= skip
	d.buf = d.buf[:0]
	keep := min(n, d.limit)
	for len(d.buf) < keep {
		p, err := d.r.Peek(min(keep-len(d.buf), d.r.Size()))
		d.buf = append(d.buf, p...)
		if _, derr := d.r.Discard(len(p)); derr != nil {
			return message{}, unexpected(derr)
		}
		if err != nil && len(d.buf) < keep {
			return message{}, unexpected(err)
		}
	}
	rest := n - keep
	if rest > 0 {
		// The last byte decides completeness, so look at it before dropping.
		if _, err := d.r.Discard(rest - 1); err != nil {
			return message{}, unexpected(err)
		}
		b, err := d.r.ReadByte()
		if err != nil {
			return message{}, unexpected(err)
		}
		m.cut, m.complete = true, b == '\n'
	}
	m.text = d.buf
	if k := len(m.text); rest == 0 && k > 0 && m.text[k-1] == '\n' {
		m.text, m.complete = m.text[:k-1], true
	}
	d.stamp(&m)
	return m, nil
}

func (d *demux) nextRaw() (message, error) {
	m := message{stream: streamStdout}
	d.buf = d.buf[:0]
	for {
		p, err := d.r.ReadSlice('\n')
		if room := d.limit - len(d.buf); len(p) > room {
			d.buf, m.cut = append(d.buf, p[:room]...), true
		} else {
			d.buf = append(d.buf, p...)
		}
		if err == nil {
			m.complete = true
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF && len(d.buf) > 0 {
			// A last line without "\n" at a clean end of stream.
			break
		}
		return message{}, err
	}
	text := d.buf
	if m.complete && !m.cut {
		text = text[:len(text)-1]
	}
	t, skip := d.timestamp(text[:min(len(text), 48)])
	m.time, text = t, text[skip:]
	// A TTY turns "\n" into "\r\n".
	m.text = bytes.TrimSuffix(text, []byte{'\r'})
	d.stamp(&m)
	return m, nil
}

// timestamp parses the "<RFC3339Nano> " prefix at the start of head; n is
// its length with the space, 0 when there is none.
func (d *demux) timestamp(head []byte) (t time.Time, n int) {
	sp := bytes.IndexByte(head, ' ')
	if sp <= 0 {
		return time.Time{}, 0
	}
	// The whole head up to the space: Split leaves nothing when it parses.
	if t, rest := d.ts.Split(string(head[:sp+1])); rest == "" {
		return t, sp + 1
	}
	return time.Time{}, 0
}

func (d *demux) stamp(m *message) {
	if m.time.IsZero() {
		m.time = d.last
		return
	}
	d.last = m.time
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// secRun is n messages whose timestamps fall in one second.
type secRun struct {
	sec int64
	n   int
}

// addRun counts n more messages of second sec at the end of runs.
func addRun(runs []secRun, sec int64, n int) []secRun {
	if k := len(runs); k > 0 && runs[k-1].sec == sec {
		runs[k-1].n += n
		return runs
	}
	return append(runs, secRun{sec, n})
}

// assembly joins the chunks of one stream's line.
type assembly struct {
	open bool
	time time.Time
	text []byte
	cut  bool
	runs []secRun // messages consumed for this line, for the cursor
}

// assembled is a complete line and the messages it consumed.
type assembled struct {
	time time.Time
	text string
	cut  bool
	runs []secRun
}

// assembler turns messages into lines, per stream, cutting lines at max
// bytes.
type assembler struct {
	max int
	s   [3]assembly
}

// add feeds one message and calls emit for each line it completes.
// Messages are counted with the line they end in, so that a resume which
// skips whole messages never skips part of an unfinished line.
func (a *assembler) add(m message, emit func(assembled)) {
	as := &a.s[m.stream%3]
	text := m.text
	for {
		i := bytes.IndexByte(text, '\n')
		seg := text
		if i >= 0 {
			seg = text[:i]
		}
		if !as.open {
			as.open, as.time, as.text, as.cut = true, m.time, as.text[:0], false
		}
		as.append(seg, a.max)
		if i < 0 {
			break
		}
		a.flush(as, emit)
		text = text[i+1:]
	}
	as.cut = as.cut || m.cut
	as.runs = addRun(as.runs, m.time.Unix(), 1)
	if m.complete {
		a.flush(as, emit)
	}
}

func (as *assembly) append(seg []byte, limit int) {
	room := limit - len(as.text)
	if len(seg) <= room {
		as.text = append(as.text, seg...)
		return
	}
	as.cut = true
	if room > 0 {
		as.text = append(as.text, cutRune(seg[:room])...)
	}
}

// cutRune drops an incomplete UTF-8 sequence left at the end of b by a cut.
func cutRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

func (a *assembler) flush(as *assembly, emit func(assembled)) {
	emit(assembled{time: as.time, text: string(as.text), cut: as.cut, runs: as.runs})
	// emit copies the runs it keeps: the slice is reused.
	as.open, as.runs = false, as.runs[:0]
	if cap(as.text) > 64<<10 {
		as.text = nil
	}
}

// drain emits the unfinished lines (a container that stopped in the middle
// of a line will never finish it).
func (a *assembler) drain(emit func(assembled)) {
	for i := range a.s {
		if a.s[i].open {
			a.flush(&a.s[i], emit)
		}
	}
}

// position is how far a container's log has been read (or processed), as
// a resume point for since=<second>: messages are counted per second for
// the newest two seconds seen. Resuming with since=(newest-1) and skipping
// the counted messages is exact as long as stdout and stderr are never
// more than a second out of order in the log (dockerd stamps each message
// as it reads it, microseconds before writing it), and it needs no more
// than second resolution from the engine.
type position struct {
	container string
	// floor is the since (unix seconds) of the first read of this
	// container; 0 means from its start.
	floor int64
	sec   int64 // second of the newest message; 0: none yet
	prev  int   // messages in second sec-1
	cur   int   // messages in second sec
}

func (p *position) add(runs []secRun) {
	for _, r := range runs {
		switch {
		case r.sec < p.floor:
		case p.sec == 0 || r.sec > p.sec:
			if r.sec == p.sec+1 {
				p.prev = p.cur
			} else {
				p.prev = 0
			}
			p.sec, p.cur = r.sec, r.n
		case r.sec == p.sec:
			p.cur += r.n
		case r.sec == p.sec-1:
			p.prev += r.n
		}
		// Older messages are outside every future resume window.
	}
}

// resume returns the since (unix seconds, 0: from the start) and how many
// messages of that stream to skip.
func (p *position) resume() (since int64, skip int) {
	if p.sec == 0 {
		return p.floor, 0
	}
	since, skip = p.sec-1, p.prev+p.cur
	if p.floor > since {
		since, skip = p.floor, p.cur
	}
	return since, skip
}

// cursor is the position as stored.
func (p *position) cursor() Cursor {
	since, skip := p.resume()
	return Cursor{ContainerID: p.container, Time: time.Unix(since, 0).UTC(), Count: skip}
}
