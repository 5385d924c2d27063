package journal

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The Journal Export Format (systemd.io/JOURNAL_EXPORT_FORMATS): an entry
// is a run of fields ended by an empty line. A field is "NAME=value\n" when
// the value is text without line feeds, else "NAME\n", the value's length
// as a 64-bit little-endian integer, the value's bytes and "\n".

// maxFieldName bounds a field name (journald's own limit is 64 bytes).
const maxFieldName = 64

func readExport(ctx context.Context, br *bufio.Reader, d *decoder) error {
	var e entry
	rec := int64(1)
	open := false // some field of record rec was read
	for {
		name, sep, err := readName(br)
		if errors.Is(err, io.EOF) && name == "" {
			// The last entry may lack its empty line.
			if open {
				return d.entry(rec, &e)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("journal export: record %d: %w", rec, err)
		}
		if name == "" {
			// The empty line that ends an entry (or a stray one between entries).
			if open {
				if err := d.entry(rec, &e); err != nil {
					return err
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				rec++
				e.reset()
				open = false
			}
			continue
		}
		open = true
		dst, limit := e.field(name, d.opt.MaxLine)
		var cut bool
		if sep == '=' {
			cut, err = readText(br, dst, limit)
		} else {
			cut, err = readBinary(br, dst, limit)
		}
		if err != nil {
			return fmt.Errorf("journal export: record %d: field %s: %w", rec, name, err)
		}
		if cut && name == "MESSAGE" {
			e.cut = true
		}
	}
}

// readName reads a field name up to "=" (a text value follows) or "\n" (a
// binary one follows); an empty name with sep "\n" is an entry's end.
func readName(br *bufio.Reader) (name string, sep byte, err error) {
	var buf [maxFieldName]byte
	n := 0
	for {
		b, err := br.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && n > 0 {
				return string(buf[:n]), 0, fmt.Errorf("input ends inside field name %q", buf[:n])
			}
			return "", 0, err
		}
		if b == '=' || b == '\n' {
			if b == '=' && n == 0 {
				return "", 0, errors.New(`a field without a name ("=" at the start of a line)`)
			}
			return string(buf[:n]), b, nil
		}
		ok := b >= 'A' && b <= 'Z' || b == '_' || b >= '0' && b <= '9' && n > 0
		if !ok {
			return "", 0, fmt.Errorf("bad byte %q in field name %q (want A-Z, 0-9, _: is this `journalctl -o export` output?)", b, buf[:n])
		}
		if n == maxFieldName {
			return "", 0, fmt.Errorf("field name %q... longer than %d bytes", buf[:n], maxFieldName)
		}
		buf[n] = b
		n++
	}
}

// readText reads a text value up to its "\n", keeping at most limit bytes
// of it in *dst (nil: skip it); cut says bytes were dropped.
func readText(br *bufio.Reader, dst *[]byte, limit int) (cut bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		if err == nil {
			frag = frag[:len(frag)-1]
		}
		if dst != nil {
			*dst = appendCut(*dst, frag, limit, &cut)
		}
		switch {
		case err == nil:
			return cut, nil
		case errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return cut, errors.New("input ends before the value's line feed")
		default:
			return cut, err
		}
	}
}

// maxBinary is more than any journal holds; a larger length is garbage.
const maxBinary = 1 << 40

// readBinary reads a length-prefixed value and its "\n", keeping at most
// limit bytes of it in *dst (nil: skip it) and never more in memory.
func readBinary(br *bufio.Reader, dst *[]byte, limit int) (cut bool, err error) {
	var h [8]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return false, fmt.Errorf("input ends inside the 8-byte length of a binary value: %w", unexpected(err))
	}
	n := binary.LittleEndian.Uint64(h[:])
	if n > maxBinary {
		return false, fmt.Errorf("binary value claims %d bytes (at most %d; is this `journalctl -o export` output?)", n, uint64(maxBinary))
	}
	for left := n; left > 0; {
		p, perr := br.Peek(int(min(left, uint64(br.Size()))))
		if len(p) == 0 && perr != nil {
			return cut, fmt.Errorf("input ends after %d of the value's %d bytes", n-left, n)
		}
		if dst != nil {
			*dst = appendCut(*dst, p, limit, &cut)
		}
		if _, err := br.Discard(len(p)); err != nil {
			return cut, err
		}
		left -= uint64(len(p))
	}
	b, err := br.ReadByte()
	if err != nil {
		return cut, fmt.Errorf("input ends before the line feed after a %d-byte value", n)
	}
	if b != '\n' {
		return cut, fmt.Errorf("byte %q after a %d-byte binary value, want a line feed (wrong length?)", b, n)
	}
	return cut, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
