package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Values are a compact binary encoding: a format byte, then fixed and
// uvarint-prefixed fields. Decoding checks every length so that a damaged
// record is an error, never a panic or a silently wrong ban.

const banFormat = 1

// Bounds that keep a damaged length field from allocating wildly.
const (
	maxString   = 1 << 20
	maxEvidence = 1 << 10
)

var errShort = errors.New("record too short")

func encodeBan(dst []byte, b *Ban) []byte {
	dst = append(dst, banFormat)
	dst = appendTime(dst, b.Since)
	dst = appendTime(dst, b.Until)
	dst = binary.AppendUvarint(dst, uint64(max(b.Level, 0)))
	var flags byte
	if b.Manual {
		flags |= 1
	}
	if b.Pulled {
		flags |= 2
	}
	dst = append(dst, flags)
	dst = appendString(dst, b.Jail)
	dst = appendString(dst, b.Reason)
	dst = binary.AppendUvarint(dst, uint64(len(b.Evidence)))
	for _, e := range b.Evidence {
		dst = appendString(dst, e)
	}
	return dst
}

func decodeBan(v []byte, in interner) (Ban, error) {
	var b Ban
	d := decoder{buf: v}
	if f := d.byte(); f != banFormat {
		if d.err != nil {
			return b, d.err
		}
		return b, fmt.Errorf("unknown ban format %d", f)
	}
	b.Since = d.time()
	b.Until = d.time()
	b.Level = int(d.uvarint(1 << 16))
	flags := d.byte()
	b.Manual, b.Pulled = flags&1 != 0, flags&2 != 0
	b.Jail = in.string(d.bytes())
	b.Reason = in.string(d.bytes())
	if n := int(d.uvarint(maxEvidence)); n > 0 && d.err == nil {
		b.Evidence = make([]string, 0, n)
		for range n {
			b.Evidence = append(b.Evidence, d.string())
		}
	}
	return b, d.finish()
}

// eventFormat starts a binary event; events written before it are JSON,
// which starts with '{'.
const eventFormat = 1

// encodeEvent writes e without its Seq, which is the record's key.
func encodeEvent(dst []byte, e *Event) []byte {
	dst = append(dst, eventFormat)
	dst = appendTime(dst, e.Time)
	dst = appendString(dst, e.Kind)
	var target string
	if e.Target.IsValid() {
		target = e.Target.String()
	}
	dst = appendString(dst, target)
	dst = appendString(dst, e.Jail)
	dst = appendString(dst, e.Reason)
	dst = binary.AppendVarint(dst, int64(e.Duration))
	dst = binary.AppendVarint(dst, int64(e.Level))
	dst = binary.AppendVarint(dst, int64(e.UID))
	dst = binary.AppendUvarint(dst, uint64(len(e.Evidence)))
	for _, l := range e.Evidence {
		dst = appendString(dst, l)
	}
	return appendString(dst, e.Detail)
}

// decodeEvent reads the event stored under key, in either format.
func decodeEvent(key, v []byte) (Event, error) {
	var e Event
	if len(v) > 0 && v[0] == '{' {
		err := json.Unmarshal(v, &e)
		return e, err
	}
	if len(key) != 8 {
		return e, fmt.Errorf("event key of %d bytes", len(key))
	}
	d := decoder{buf: v}
	if f := d.byte(); f != eventFormat {
		if d.err != nil {
			return e, d.err
		}
		return e, fmt.Errorf("unknown event format %d", f)
	}
	e.Seq = binary.BigEndian.Uint64(key)
	e.Time = d.time()
	e.Kind = d.string()
	if t := d.string(); t != "" && d.err == nil {
		p, err := netip.ParsePrefix(t)
		if err != nil {
			return e, fmt.Errorf("event target: %w", err)
		}
		e.Target = p
	}
	e.Jail = d.string()
	e.Reason = d.string()
	e.Duration = time.Duration(d.varint())
	e.Level = int(d.varint())
	e.UID = int(d.varint())
	if n := int(d.uvarint(maxEvidence)); n > 0 && d.err == nil {
		e.Evidence = make([]string, 0, n)
		for range n {
			e.Evidence = append(e.Evidence, d.string())
		}
	}
	e.Detail = d.string()
	return e, d.finish()
}

// banUntil reads only the end of a ban, for purging.
func banUntil(v []byte) (time.Time, error) {
	d := decoder{buf: v}
	if f := d.byte(); f != banFormat && d.err == nil {
		return time.Time{}, fmt.Errorf("unknown ban format %d", f)
	}
	d.time()
	t := d.time()
	return t, d.err
}

func encodeHistory(dst []byte, h History) []byte {
	dst = binary.AppendUvarint(dst, uint64(max(h.Offences, 0)))
	return appendTime(dst, h.LastBan)
}

func decodeHistory(v []byte) (History, error) {
	d := decoder{buf: v}
	h := History{Offences: int(d.uvarint(1 << 31)), LastBan: d.time()}
	return h, d.finish()
}

func encodeCursor(dst []byte, c Cursor) []byte {
	dst = appendString(dst, c.ContainerID)
	dst = appendTime(dst, c.Time)
	return binary.AppendUvarint(dst, uint64(max(c.Count, 0)))
}

func decodeCursor(v []byte) (Cursor, error) {
	d := decoder{buf: v}
	c := Cursor{ContainerID: d.string(), Time: d.time(), Count: int(d.uvarint(1 << 40))}
	return c, d.finish()
}

// Times are Unix nanoseconds, with 0 for the zero time (which is outside
// the int64 nanosecond range).
func appendTime(dst []byte, t time.Time) []byte {
	var n int64
	if !t.IsZero() {
		n = t.UnixNano()
	}
	return binary.BigEndian.AppendUint64(dst, uint64(n))
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.buf = nil
}

func (d *decoder) byte() byte {
	if len(d.buf) < 1 {
		d.fail(errShort)
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

func (d *decoder) uvarint(limit uint64) uint64 {
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	if v > limit {
		d.fail(fmt.Errorf("value %d above %d", v, limit))
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) time() time.Time {
	if len(d.buf) < 8 {
		d.fail(errShort)
		return time.Time{}
	}
	n := int64(binary.BigEndian.Uint64(d.buf))
	d.buf = d.buf[8:]
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func (d *decoder) string() string { return string(d.bytes()) }

// bytes is a string field's bytes, in the buffer.
func (d *decoder) bytes() []byte {
	n := d.uvarint(maxString)
	if d.err != nil {
		return nil
	}
	if uint64(len(d.buf)) < n {
		d.fail(errShort)
		return nil
	}
	b := d.buf[:n]
	d.buf = d.buf[n:]
	return b
}

// maxInterned bounds an interner's table: a store whose every ban has
// its own reason keeps each one, as without it.
const maxInterned = 4096

// interner shares one string among the equal jail names and reasons of a
// read of many bans (a blocklist's or an import's thousands carry the same
// two): the ban manager keeps them all, and one small string per ban,
// allocated among the read's garbage, pins a page of the heap each. The
// zero interner (nil) copies every string.
type interner map[string]string

func (in interner) string(b []byte) string {
	if in == nil {
		return string(b)
	}
	// The lookup by string(b) does not allocate.
	if s, ok := in[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(in) < maxInterned {
		in[s] = s
	}
	return s
}

func (d *decoder) finish() error {
	if d.err == nil && len(d.buf) != 0 {
		return fmt.Errorf("%d trailing bytes", len(d.buf))
	}
	return d.err
}
