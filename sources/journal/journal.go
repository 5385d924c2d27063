// Package journal reads container lines out of journald's serializations:
// `journalctl -o export` (the binary-safe Journal Export Format) and
// `journalctl -o json` (one JSON object per entry), as written for
// containers under Docker's journald log driver (the setup Mailu's FAQ had
// admins use for Fail2Ban). Both are streams: memory stays bounded by the
// line limit, whatever a record claims.
package journal

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/bansd/bansd/sources"
)

// Options configure Read.
type Options struct {
	// MaxLine cuts longer messages (bytes); it must be positive.
	MaxLine int
	// Services are the compose services to keep (front, admin, ...); an
	// entry of another container or unit is counted in Counts.Other.
	Services []string
}

// Counts say what Read read.
type Counts struct {
	// Records is every entry in the input; Lines the lines delivered.
	Records, Lines int64
	// Cut is how many lines were longer than MaxLine and were cut.
	Cut int64
	// Omitted counts container entries whose MESSAGE journalctl left out
	// (JSON null: over 4096 bytes without --all): those lines are lost.
	Omitted int64
	// Other counts the entries of no wanted service, by their tag or
	// container name (or syslog identifier), for the first few names;
	// the rest are under "…".
	Other map[string]int64
}

// maxOtherNames bounds Counts.Other.
const maxOtherNames = 16

// maxPartial bounds how many containers may have an unfinished partial
// message at once.
const maxPartial = 256

// Read parses an export or JSON stream (told apart by its first byte) and
// calls fn for each container line of a wanted service, in input order
// (journalctl prints entries in time order). A line's Time is the entry's
// __REALTIME_TIMESTAMP, its Service taken from CONTAINER_TAG, else
// CONTAINER_NAME ("mailu-front", "mailu-front-1", "mailu_front_1" are all
// front). Messages Docker split (CONTAINER_PARTIAL_MESSAGE=true) are
// joined again.
func Read(ctx context.Context, r io.Reader, opt Options, fn func(sources.Line) error) (Counts, error) {
	c := Counts{Other: map[string]int64{}}
	if opt.MaxLine < 1 {
		return c, fmt.Errorf("journal: max line %d must be positive", opt.MaxLine)
	}
	d := &decoder{opt: opt, fn: fn, c: &c, known: map[string]bool{}, partial: map[string]*partial{}}
	for _, s := range opt.Services {
		d.known[s] = true
	}
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := firstByte(br)
	if err == io.EOF {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("journal: %w", err)
	}
	if first == '{' {
		err = readJSON(ctx, br, d)
	} else {
		err = readExport(ctx, br, d)
	}
	if err == nil {
		err = d.drain()
	}
	return c, err
}

// firstByte skips leading white space and peeks at the first byte after it.
func firstByte(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.Peek(1)
		if err != nil {
			return 0, err
		}
		if b[0] != ' ' && b[0] != '\t' && b[0] != '\r' && b[0] != '\n' {
			return b[0], nil
		}
		if _, err := br.Discard(1); err != nil {
			return 0, err
		}
	}
}

// entry is what one record holds of interest; the rest is skipped.
type entry struct {
	message     []byte
	messageSet  bool
	omitted     bool
	cut         bool
	realtime    []byte
	tag, name   []byte
	ident       []byte
	containerID []byte
	partial     bool
}

func (e *entry) reset() {
	msg := e.message[:0]
	*e = entry{message: msg, realtime: e.realtime[:0], tag: e.tag[:0], name: e.name[:0], ident: e.ident[:0], containerID: e.containerID[:0]}
}

// smallField bounds the fields kept besides MESSAGE (names, ids, times):
// longer values are cut, as no real one is.
const smallField = 256

// field returns where a record field goes and its limit, or nil to skip it.
func (e *entry) field(name string, maxLine int) (*[]byte, int) {
	switch name {
	case "MESSAGE":
		e.messageSet, e.message, e.omitted = true, e.message[:0], false
		return &e.message, maxLine
	case "__REALTIME_TIMESTAMP":
		return &e.realtime, smallField
	case "CONTAINER_TAG":
		return &e.tag, smallField
	case "CONTAINER_NAME":
		return &e.name, smallField
	case "SYSLOG_IDENTIFIER":
		return &e.ident, smallField
	case "CONTAINER_ID_FULL", "CONTAINER_ID":
		// The full id wins over the short one, whichever comes first.
		if name == "CONTAINER_ID" && len(e.containerID) > 12 {
			return nil, 0
		}
		e.containerID = e.containerID[:0]
		return &e.containerID, smallField
	case "CONTAINER_PARTIAL_MESSAGE":
		e.partial = true
		return nil, 0
	}
	return nil, 0
}

// partial is a container's message Docker split, waiting for its end.
type partial struct {
	line sources.Line
	text []byte
	cut  bool
}

type decoder struct {
	opt     Options
	fn      func(sources.Line) error
	c       *Counts
	known   map[string]bool
	partial map[string]*partial
	order   []string // containers with a partial message, oldest first
}

// entry delivers one parsed record; rec is its number, for errors.
func (d *decoder) entry(rec int64, e *entry) error {
	d.c.Records++
	if e.partial && !e.messageSet {
		e.partial = false
	}
	svc, ok := serviceOf(d.known, string(e.tag), string(e.name))
	if !ok {
		name := string(e.tag)
		if name == "" {
			name = string(e.name)
		}
		if name == "" {
			name = string(e.ident)
		}
		if name == "" {
			name = "(no name)"
		}
		if _, seen := d.c.Other[name]; !seen && len(d.c.Other) >= maxOtherNames {
			name = "…"
		}
		d.c.Other[name]++
		return nil
	}
	if e.omitted {
		d.c.Omitted++
		return nil
	}
	if !e.messageSet {
		return fmt.Errorf("record %d (%s): no MESSAGE field", rec, svc)
	}
	var t time.Time
	if len(e.realtime) > 0 {
		us, err := strconv.ParseInt(string(e.realtime), 10, 64)
		if err != nil || us < 0 {
			return fmt.Errorf("record %d (%s): __REALTIME_TIMESTAMP %q: want microseconds since 1970", rec, svc, e.realtime)
		}
		t = time.UnixMicro(us).UTC()
	}
	l := sources.Line{Service: svc, Container: string(e.containerID), Time: t}
	id := l.Container
	if p := d.partial[id]; p != nil {
		// The continuation of a split message: it keeps the first piece's time.
		p.text = appendCut(p.text, e.message, d.opt.MaxLine, &p.cut)
		p.cut = p.cut || e.cut
		if e.partial {
			return nil
		}
		d.forget(id)
		return d.emit(p.line, p.text, p.cut)
	}
	if e.partial {
		if len(d.order) >= maxPartial {
			if err := d.flushOldest(); err != nil {
				return err
			}
		}
		p := &partial{line: l, cut: e.cut}
		p.text = appendCut(nil, e.message, d.opt.MaxLine, &p.cut)
		d.partial[id] = p
		d.order = append(d.order, id)
		return nil
	}
	return d.emit(l, e.message, e.cut)
}

func (d *decoder) forget(id string) {
	delete(d.partial, id)
	for i, o := range d.order {
		if o == id {
			d.order = append(d.order[:i], d.order[i+1:]...)
			break
		}
	}
}

func (d *decoder) flushOldest() error {
	id := d.order[0]
	p := d.partial[id]
	d.forget(id)
	return d.emit(p.line, p.text, p.cut)
}

// drain delivers the split messages whose end never came.
func (d *decoder) drain() error {
	for len(d.order) > 0 {
		if err := d.flushOldest(); err != nil {
			return err
		}
	}
	return nil
}

// emit delivers a message as lines: Docker's driver writes one line per
// entry, but a message with line feeds (another writer) is split as the
// file reader would split it.
func (d *decoder) emit(l sources.Line, msg []byte, cut bool) error {
	msg = bytes.TrimSuffix(msg, []byte{'\n'})
	for {
		line, rest, more := bytes.Cut(msg, []byte{'\n'})
		line = bytes.TrimSuffix(line, []byte{'\r'})
		c := cut && !more
		if len(line) > d.opt.MaxLine {
			line, c = line[:d.opt.MaxLine], true
		}
		if c {
			d.c.Cut++
		}
		d.c.Lines++
		l.Text = string(line)
		if err := d.fn(l); err != nil {
			return err
		}
		if !more {
			return nil
		}
		msg = rest
	}
}

// appendCut appends b to dst without letting dst exceed limit.
func appendCut(dst, b []byte, limit int, cut *bool) []byte {
	room := limit - len(dst)
	if len(b) > room {
		*cut = true
		b = b[:max(room, 0)]
	}
	return append(dst, b...)
}

// serviceOf finds the compose service in a journald tag or a container
// name: the last part that is not a replica number, with "-", "_" and "."
// as separators ("mailu-front", "mailu-front-1", "mailu_front_1"). The tag
// is tried first (Mailu's FAQ set tag: mailu-front); Docker's default tag
// is the short container id, so the container name is the fallback.
func serviceOf(known map[string]bool, tag, name string) (string, bool) {
	for _, s := range []string{tag, strings.TrimPrefix(name, "/")} {
		parts := strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == '_' || r == '.' })
		for len(parts) > 0 && allDigits(parts[len(parts)-1]) {
			parts = parts[:len(parts)-1]
		}
		if len(parts) > 0 && known[parts[len(parts)-1]] {
			return parts[len(parts)-1], true
		}
	}
	return "", false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
