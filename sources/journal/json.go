package journal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The Journal JSON Format: one object per entry and line. A value is a
// string; an array of byte values when it is not valid UTF-8 text; null
// when journalctl left it out (over 4096 bytes, without --all); an array
// of those when the entry has the field more than once (the last wins, as
// in the export reader).

// jsonEntry holds the wanted fields undecoded; encoding/json skips the
// others without building them.
type jsonEntry struct {
	Message  json.RawMessage `json:"MESSAGE"`
	Realtime json.RawMessage `json:"__REALTIME_TIMESTAMP"`
	Tag      json.RawMessage `json:"CONTAINER_TAG"`
	Name     json.RawMessage `json:"CONTAINER_NAME"`
	Ident    json.RawMessage `json:"SYSLOG_IDENTIFIER"`
	ID       json.RawMessage `json:"CONTAINER_ID"`
	IDFull   json.RawMessage `json:"CONTAINER_ID_FULL"`
	Partial  json.RawMessage `json:"CONTAINER_PARTIAL_MESSAGE"`
}

// jsonRecordLimit is the longest JSON line read: a MESSAGE of MaxLine
// bytes escaped at worst (\u00XX, 6 bytes a byte) and 1 MiB for the rest.
func jsonRecordLimit(maxLine int) int { return 6*maxLine + 1<<20 }

// oversize names, in Counts.Other, the records skipped for their size:
// Docker's driver splits container lines at 16 KiB, so such a record is
// not a container line (a core dump printed with --all, say).
const oversize = "(JSON record over the size limit, skipped)"

func readJSON(ctx context.Context, br *bufio.Reader, d *decoder) error {
	limit := jsonRecordLimit(d.opt.MaxLine)
	var buf []byte
	var e entry
	for rec := int64(1); ; {
		buf = buf[:0]
		over := false
		var err error
		for {
			var frag []byte
			frag, err = br.ReadSlice('\n')
			if len(buf)+len(frag) > limit {
				over = true
			} else {
				buf = append(buf, frag...)
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("journal json: record %d: %w", rec, err)
		}
		line := bytes.TrimSpace(buf)
		switch {
		case over:
			d.c.Records++
			d.c.Other[oversize]++
			rec++
		case len(line) > 0:
			if err := jsonRecord(line, &e, d.opt.MaxLine); err != nil {
				return fmt.Errorf("journal json: record %d: %w", rec, err)
			}
			if err := d.entry(rec, &e); err != nil {
				return err
			}
			rec++
		}
		if err != nil { // io.EOF
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

func jsonRecord(line []byte, e *entry, maxLine int) error {
	e.reset()
	if line[0] != '{' {
		return fmt.Errorf("want a JSON object, got %q (is this `journalctl -o json` output?)", head(line))
	}
	var j jsonEntry
	if err := json.Unmarshal(line, &j); err != nil {
		return fmt.Errorf("bad JSON: %w", err)
	}
	var err error
	set := func(name string, raw json.RawMessage, dst *[]byte, limit int) (present bool) {
		if err != nil || len(raw) == 0 {
			return false
		}
		v, null, verr := jsonValue(raw)
		if verr != nil {
			err = fmt.Errorf("field %s: %w", name, verr)
			return false
		}
		if null {
			if name == "MESSAGE" {
				e.messageSet, e.omitted = true, true
			}
			return false
		}
		var cut bool
		*dst = appendCut((*dst)[:0], v, limit, &cut)
		if name == "MESSAGE" {
			e.messageSet, e.cut = true, cut
		}
		return true
	}
	set("MESSAGE", j.Message, &e.message, maxLine)
	set("__REALTIME_TIMESTAMP", j.Realtime, &e.realtime, smallField)
	set("CONTAINER_TAG", j.Tag, &e.tag, smallField)
	set("CONTAINER_NAME", j.Name, &e.name, smallField)
	set("SYSLOG_IDENTIFIER", j.Ident, &e.ident, smallField)
	if !set("CONTAINER_ID_FULL", j.IDFull, &e.containerID, smallField) {
		set("CONTAINER_ID", j.ID, &e.containerID, smallField)
	}
	var partial []byte
	if set("CONTAINER_PARTIAL_MESSAGE", j.Partial, &partial, smallField) {
		e.partial = string(partial) == "true"
	}
	return err
}

// jsonValue decodes one field's value: its bytes, or null.
func jsonValue(raw json.RawMessage) (v []byte, null bool, err error) {
	switch raw[0] {
	case 'n':
		return nil, true, nil
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, false, err
		}
		return []byte(s), false, nil
	case '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return nil, false, err
		}
		if len(elems) == 0 {
			return nil, false, errors.New("empty array")
		}
		if c := elems[0][0]; c == '"' || c == '[' || c == 'n' {
			// The field more than once: the last value wins.
			return jsonValue(elems[len(elems)-1])
		}
		var bs []uint8
		if err := json.Unmarshal(raw, &bs); err != nil {
			return nil, false, fmt.Errorf("want a string, an array of bytes or null: %w", err)
		}
		return bs, false, nil
	}
	return nil, false, fmt.Errorf("want a string, an array of bytes or null, got %q", head(raw))
}

func head(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}
