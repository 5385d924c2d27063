package sources

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unsafe"
)

// FileCounts says what ReadFileCounted read.
type FileCounts struct {
	Lines int64
	// Cut is how many lines were longer than maxLine and were cut.
	Cut int64
}

// ReadFile reads raw container output (with or without the RFC3339Nano
// prefix `docker logs -t` adds) and calls fn for each line, in order. Lines
// longer than maxLine are cut (and counted, not fatal). service is set on
// each Line.
func ReadFile(ctx context.Context, r io.Reader, service string, maxLine int, fn func(Line) error) error {
	_, err := ReadFileCounted(ctx, r, service, maxLine, fn)
	return err
}

// ReadFileCounted is ReadFile that also reports how many lines it read and cut.
//
// Lines are cut out of one string per chunk of input rather than allocated
// one by one: a Line.Text kept after fn returns holds on to its neighbours
// (up to 8 KiB); clone it if you keep many.
func ReadFileCounted(ctx context.Context, r io.Reader, service string, maxLine int, fn func(Line) error) (FileCounts, error) {
	return readFile(ctx, r, service, maxLine, false, fn)
}

// ReadFileTransient is ReadFileCounted without a copy of the input: a
// Line.Text (and every string cut from it) points into the reader's
// buffer and is valid only until fn returns; fn must copy what it keeps.
// Replay, which keeps only the few lines that carry an event, reads its
// files so.
func ReadFileTransient(ctx context.Context, r io.Reader, service string, maxLine int, fn func(Line) error) (FileCounts, error) {
	return readFile(ctx, r, service, maxLine, true, fn)
}

func readFile(ctx context.Context, r io.Reader, service string, maxLine int, transient bool, fn func(Line) error) (FileCounts, error) {
	var c FileCounts
	if maxLine < 1 {
		return c, fmt.Errorf("read %s: max line %d must be positive", service, maxLine)
	}
	// chunkSize stays a small-object allocation: bigger strings go to the
	// page allocator and cost more than they save.
	const bufSize, chunkSize = 64 << 10, 8 << 10
	br := bufio.NewReaderSize(r, bufSize)
	var ts TimestampParser
	emit := func(line string, cut bool) error {
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) > maxLine {
			line, cut = line[:maxLine], true
		}
		if cut {
			c.Cut++
		}
		c.Lines++
		t, text := ts.Split(line)
		return fn(Line{Service: service, Time: t, Text: text})
	}
	for {
		if err := ctx.Err(); err != nil {
			return c, err
		}
		// Make sure something is buffered, then take every complete line
		// in the buffer at once.
		_, err := br.Peek(1)
		if errors.Is(err, io.EOF) {
			return c, nil
		}
		if err != nil {
			return c, fmt.Errorf("read %s: %w", service, err)
		}
		limit := chunkSize
		if transient {
			limit = bufSize // nothing is allocated per chunk
		}
		data, _ := br.Peek(min(br.Buffered(), limit))
		if k := bytes.LastIndexByte(data, '\n'); k >= 0 {
			var chunk string
			if transient {
				// The buffer is not written before the next read from br,
				// which comes after the lines' fn calls.
				chunk = unsafe.String(&data[0], k+1)
			} else {
				chunk = string(data[:k+1])
			}
			for len(chunk) > 0 {
				i := strings.IndexByte(chunk, '\n')
				if err := emit(chunk[:i], false); err != nil {
					return c, err
				}
				chunk = chunk[i+1:]
			}
			if _, err := br.Discard(k + 1); err != nil {
				return c, fmt.Errorf("read %s: %w", service, err)
			}
			continue
		}
		// No line end in the first chunk: a long line, or the last line
		// of the input. Read it alone, keeping at most maxLine of it.
		var buf []byte
		cut := false
		for {
			frag, err := br.ReadSlice('\n')
			buf = appendBounded(buf, frag, maxLine, &cut)
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return c, fmt.Errorf("read %s: %w", service, err)
			}
			break
		}
		if err := emit(string(bytes.TrimSuffix(buf, []byte("\n"))), cut); err != nil {
			return c, err
		}
	}
}

// appendBounded appends frag to buf without letting buf exceed limit (plus
// the line end, which trimEOL removes); it notes when bytes were dropped.
func appendBounded(buf, frag []byte, limit int, cut *bool) []byte {
	room := limit + 2 - len(buf)
	if room <= 0 {
		if len(trimEOL(frag)) > 0 {
			*cut = true
		}
		return buf
	}
	if len(frag) > room {
		*cut = true
		frag = frag[:room]
	}
	return append(buf, frag...)
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

// TimestampParser splits Docker's RFC3339Nano prefix off a line. It caches
// the last second it converted, since consecutive lines nearly always share
// it. The zero value is ready to use; it is not safe for concurrent use.
type TimestampParser struct {
	lastKey  [19]byte
	lastBase time.Time
	valid    bool
}

var pow10 = [10]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// Split returns the prefix's time and the rest of the line, or the zero
// time and the whole line when it has no Docker prefix.
func (p *TimestampParser) Split(b string) (time.Time, string) {
	// 2006-01-02T15:04:05[.fraction](Z|±07:00) followed by one space.
	if len(b) < 21 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, b
	}
	i := 19
	var nsec int64
	if b[i] == '.' {
		i++
		start, n := i, 0
		// Digits past nanoseconds are dropped; no division per digit
		// (this runs for every line replay reads).
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if n < 9 {
				nsec = nsec*10 + int64(b[i]-'0')
				n++
			}
			i++
		}
		if i == start {
			return time.Time{}, b
		}
		nsec *= pow10[9-n]
	}
	offset := 0
	switch {
	case i < len(b) && b[i] == 'Z':
		i++
	case i+6 <= len(b) && (b[i] == '+' || b[i] == '-') && b[i+3] == ':':
		hh, ok1 := digits(b[i+1 : i+3])
		mm, ok2 := digits(b[i+4 : i+6])
		if !ok1 || !ok2 {
			return time.Time{}, b
		}
		offset = (hh*60 + mm) * 60
		if b[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return time.Time{}, b
	}
	if i >= len(b) || b[i] != ' ' {
		return time.Time{}, b
	}
	var base time.Time
	if p.valid && string(p.lastKey[:]) == b[:19] {
		base = p.lastBase
	} else {
		y, ok1 := digits(b[0:4])
		mo, ok2 := digits(b[5:7])
		d, ok3 := digits(b[8:10])
		h, ok4 := digits(b[11:13])
		mi, ok5 := digits(b[14:16])
		s, ok6 := digits(b[17:19])
		if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60 {
			return time.Time{}, b
		}
		base = time.Date(y, time.Month(mo), d, h, mi, s, 0, time.UTC)
		copy(p.lastKey[:], b[:19])
		p.lastBase, p.valid = base, true
	}
	t := base.Add(time.Duration(nsec) - time.Duration(offset)*time.Second)
	return t, b[i+1:]
}

func digits(b string) (int, bool) {
	n := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
