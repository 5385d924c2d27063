// Package blocklist reads the address lists admins already have (Spamhaus
// DROP/EDROP, FireHOL .netset, plain lists with comments) and fetches them
// from a URL or a file, bounded in size, with conditional GETs. It knows
// nothing of bans: the daemon turns a list into the bans of one jail.
package blocklist

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/bansd/bansd/prefix"
)

// MaxLine is the longest line read; a longer one is a bad line (the rest
// of it is skipped, not read into memory).
const MaxLine = 4096

// defaultBadKept bounds the bad lines a Parsed keeps for the report: a
// garbage body of millions of lines must not be held in memory twice.
const defaultBadKept = 100

// Limits bound what Parse holds.
type Limits struct {
	// Entries > 0 bounds the entries read (duplicates included): beyond
	// it Parse stops with ErrTooManyEntries.
	Entries int
	// Bad is how many bad lines are kept for the report (0: 100); all are
	// counted.
	Bad int
}

// ErrTooManyEntries: the list holds more entries than the limit allows.
var ErrTooManyEntries = errors.New("too many entries")

// Entry is one target of a list and the line it was read from.
type Entry struct {
	Target netip.Prefix
	Line   int
}

// LineError is a line that is not an address, a CIDR, a comment or blank.
type LineError struct {
	Line int
	// Text is the line as read, cut and made printable.
	Text string
	Err  error
}

func (e LineError) Error() string { return fmt.Sprintf("%d: %q: %v", e.Line, e.Text, e.Err) }

// Parsed is a list read in full.
type Parsed struct {
	// Entries are normalized and sorted, each target once (the line of its
	// first occurrence).
	Entries []Entry
	// Bad are the first bad lines; BadCount counts all of them.
	Bad      []LineError
	BadCount int
	// Lines is how many lines were read.
	Lines int

	keepBad int
}

// Targets returns the entries' targets.
func (p Parsed) Targets() []netip.Prefix {
	out := make([]netip.Prefix, len(p.Entries))
	for i, e := range p.Entries {
		out[i] = e.Target
	}
	return out
}

// BadReport names the bad lines as name:line: why, one per line, and how
// many more there were.
func (p Parsed) BadReport(name string) string {
	var b strings.Builder
	for _, e := range p.Bad {
		fmt.Fprintf(&b, "%s:%d: %q: %v\n", name, e.Line, e.Text, e.Err)
	}
	if more := p.BadCount - len(p.Bad); more > 0 {
		fmt.Fprintf(&b, "%s: ... and %d more bad line(s)\n", name, more)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Parse reads one address or CIDR per line. '#' (FireHOL, plain lists) and
// ';' (Spamhaus: "192.0.2.0/24 ; SBL123") start a comment; blank lines,
// CRLF endings and a leading UTF-8 byte order mark are fine. Bad lines are
// collected, not fatal: the caller decides whether to refuse the list.
// The error is ErrTooManyEntries or a read error, with the line.
func Parse(r io.Reader, lim Limits) (Parsed, error) {
	p := Parsed{keepBad: lim.Bad}
	if p.keepBad <= 0 {
		p.keepBad = defaultBadKept
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		raw, read, long, err := readLine(br)
		if read {
			p.Lines++
			if long {
				p.bad(raw, fmt.Errorf("line longer than %d bytes", MaxLine))
			} else if t, perr := parseLine(raw, p.Lines == 1); perr != nil {
				p.bad(raw, perr)
			} else if t.IsValid() {
				if lim.Entries > 0 && len(p.Entries) >= lim.Entries {
					return p, fmt.Errorf("line %d: %w: more than %d", p.Lines, ErrTooManyEntries, lim.Entries)
				}
				p.Entries = append(p.Entries, Entry{Target: t, Line: p.Lines})
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return p, fmt.Errorf("line %d: %w", p.Lines+1, err)
		}
	}
	p.Entries = dedup(p.Entries)
	return p, nil
}

func (p *Parsed) bad(raw []byte, err error) {
	p.BadCount++
	if len(p.Bad) < p.keepBad {
		p.Bad = append(p.Bad, LineError{Line: p.Lines, Text: printable(raw), Err: err})
	}
}

// readLine returns the next line without its end, and whether there was
// one (at the end of the input there is none). A line longer than MaxLine
// is returned cut, with long set, and its rest is skipped.
func readLine(br *bufio.Reader) (line []byte, read, long bool, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		read = read || len(chunk) > 0
		if !long {
			if len(buf)+len(chunk) > MaxLine+2 { // +2: the line's own \r\n
				buf = append(buf, chunk[:max(0, MaxLine-len(buf))]...)
				long = true
			} else {
				buf = append(buf, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if long {
			return buf, read, true, err
		}
		buf = bytes.TrimSuffix(buf, []byte("\n"))
		buf = bytes.TrimSuffix(buf, []byte("\r"))
		if len(buf) > MaxLine {
			return buf[:MaxLine], read, true, err
		}
		return buf, read, false, err
	}
}

var bom = []byte("\xef\xbb\xbf")

// parseLine returns the line's target, the zero Prefix for a comment or a
// blank line, or why the line is bad.
func parseLine(raw []byte, first bool) (netip.Prefix, error) {
	if first {
		raw = bytes.TrimPrefix(raw, bom)
	}
	if i := bytes.IndexAny(raw, "#;"); i >= 0 {
		raw = raw[:i]
	}
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return netip.Prefix{}, nil
	}
	if !utf8.ValidString(s) {
		return netip.Prefix{}, errors.New("not text")
	}
	if strings.ContainsAny(s, " \t") {
		return netip.Prefix{}, errors.New("want one address or CIDR per line (comments start with '#' or ';')")
	}
	if a, b, ok := strings.Cut(s, "-"); ok && isAddr(a) && isAddr(b) {
		return netip.Prefix{}, errors.New("address ranges (a-b) are not supported: give CIDRs")
	}
	t, err := prefix.Parse(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return t, nil
}

func isAddr(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// dedup sorts entries by target and keeps each target's first line.
func dedup(es []Entry) []Entry {
	slices.SortFunc(es, func(a, b Entry) int {
		return cmp.Or(a.Target.Compare(b.Target), cmp.Compare(a.Line, b.Line))
	})
	return slices.CompactFunc(es, func(a, b Entry) bool { return a.Target == b.Target })
}

// printable cuts a bad line for a report to at most 80 bytes of valid
// UTF-8 (the caller prints it with %q, so nothing reaches a terminal raw).
func printable(raw []byte) string {
	const limit = 80
	s := strings.ToValidUTF8(string(raw[:min(len(raw), 4*limit)]), "\uFFFD")
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
