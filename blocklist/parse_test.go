package blocklist

import (
	"bytes"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// Excerpts in the shapes the lists have (addresses from the documentation
// ranges).
const (
	spamhausDROP = `; Spamhaus DROP List 2026/12/01 - (c) 2026 The Spamhaus Project SLU
; https://www.spamhaus.org/drop/drop.txt
; Last-Modified: Tue, 01 Dec 2026 10:05:11 GMT
; Expires: Tue, 01 Dec 2026 11:26:35 GMT
192.0.2.0/24 ; SBL123
198.51.100.0/25 ; SBL456
`
	spamhausDROPv6 = "; Spamhaus DROPv6\r\n2001:db8:1::/48 ; SBL789\r\n2001:db8:2::/48 ; SBL790\r\n"
	fireholNetset  = `#
# firehol_level1
#
# ipv4 hash:net ipset
#
# Maintainer      : FireHOL
# This File Date  : Tue Dec  1 09:12:03 UTC 2026
#
203.0.113.0/26
203.0.113.77
198.51.100.128/25
`
	plainList = "\xef\xbb\xbf# my list\n203.0.113.9   # the scanner\n\n  2001:db8::7\t\n198.51.100.200/32\n"
)

func targets(p Parsed) []string {
	var out []string
	for _, e := range p.Entries {
		out = append(out, e.Target.String())
	}
	return out
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name    string
		in      string
		want    []string
		lines   []int    // the lines of want, when checked
		bad     []int    // lines of the bad ones
		badText []string // a piece of each bad line's reason
	}{
		{name: "spamhaus drop", in: spamhausDROP, want: []string{"192.0.2.0/24", "198.51.100.0/25"}, lines: []int{5, 6}},
		{name: "spamhaus dropv6 crlf", in: spamhausDROPv6, want: []string{"2001:db8:1::/48", "2001:db8:2::/48"}},
		{name: "firehol netset", in: fireholNetset, want: []string{"198.51.100.128/25", "203.0.113.0/26", "203.0.113.77/32"}, lines: []int{11, 9, 10}},
		{name: "plain with bom, blanks, inline comments", in: plainList,
			want: []string{"198.51.100.200/32", "203.0.113.9/32", "2001:db8::7/128"}},
		{name: "no final newline", in: "203.0.113.1\n203.0.113.2", want: []string{"203.0.113.1/32", "203.0.113.2/32"}},
		{name: "host bits dropped, mapped unmapped", in: "203.0.113.77/24\n::ffff:198.51.100.1\n", want: []string{"198.51.100.1/32", "203.0.113.0/24"}},
		{name: "duplicates once, first line kept", in: "203.0.113.5\n203.0.113.5/32\n203.0.113.5 ; again\n", want: []string{"203.0.113.5/32"}, lines: []int{1}},
		{name: "empty", in: "", want: nil},
		{name: "comments only", in: "# a\n; b\n\n", want: nil},
		{name: "bad lines named", in: "203.0.113.1\nnot-an-ip\n203.0.113.2 203.0.113.3\n192.0.2.1-192.0.2.9\n203.0.113.0/33\nfe80::1%eth0\n",
			want: []string{"203.0.113.1/32"}, bad: []int{2, 3, 4, 5, 6},
			badText: []string{"bad address", "one address or CIDR per line", "ranges", "bad CIDR", "zones"}},
		{name: "html error page", in: "<html>\n<body>503</body>\n</html>\n", bad: []int{1, 2, 3}},
		{name: "long line", in: "203.0.113.1\n" + strings.Repeat("9", MaxLine+10) + "\n203.0.113.2\n",
			want: []string{"203.0.113.1/32", "203.0.113.2/32"}, bad: []int{2}, badText: []string{"longer than"}},
		{name: "line of exactly MaxLine is read", in: strings.Repeat(" ", MaxLine-len("203.0.113.3")) + "203.0.113.3\n", want: []string{"203.0.113.3/32"}},
		{name: "not utf-8", in: "\xff\xfe\n", bad: []int{1}, badText: []string{"not text"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse(strings.NewReader(c.in), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if got := targets(p); strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("targets = %v, want %v", got, c.want)
			}
			for i, l := range c.lines {
				if p.Entries[i].Line != l {
					t.Errorf("entry %s from line %d, want %d", p.Entries[i].Target, p.Entries[i].Line, l)
				}
			}
			if p.BadCount != len(c.bad) || len(p.Bad) != len(c.bad) {
				t.Fatalf("bad = %d (%v), want lines %v", p.BadCount, p.Bad, c.bad)
			}
			for i, l := range c.bad {
				if p.Bad[i].Line != l {
					t.Errorf("bad %d at line %d, want %d", i, p.Bad[i].Line, l)
				}
				if i < len(c.badText) && !strings.Contains(p.Bad[i].Err.Error(), c.badText[i]) {
					t.Errorf("line %d: %v, want it to say %q", l, p.Bad[i].Err, c.badText[i])
				}
			}
			if len(c.bad) > 0 {
				rep := p.BadReport("list.txt")
				if !strings.Contains(rep, "list.txt:"+strconv.Itoa(c.bad[0])+":") {
					t.Errorf("report does not name list.txt:%d:\n%s", c.bad[0], rep)
				}
			}
		})
	}
}

func TestParseBounds(t *testing.T) {
	t.Run("entries cap", func(t *testing.T) {
		_, err := Parse(strings.NewReader(strings.Repeat("203.0.113.1\n", 11)), Limits{Entries: 10})
		if !errors.Is(err, ErrTooManyEntries) || !strings.Contains(err.Error(), "line 11") {
			t.Fatalf("err = %v, want ErrTooManyEntries at line 11", err)
		}
	})
	t.Run("bad lines kept bounded, all counted", func(t *testing.T) {
		p, err := Parse(strings.NewReader(strings.Repeat("garbage\n", 5000)), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if p.BadCount != 5000 || len(p.Bad) != defaultBadKept {
			t.Fatalf("BadCount %d, kept %d; want 5000, %d", p.BadCount, len(p.Bad), defaultBadKept)
		}
		if p, _ := Parse(strings.NewReader(strings.Repeat("garbage\n", 5000)), Limits{Bad: 1000}); len(p.Bad) != 1000 {
			t.Errorf("kept %d bad lines with Limits.Bad 1000", len(p.Bad))
		}
		if rep := p.BadReport("x"); !strings.Contains(rep, "and 4900 more") {
			t.Errorf("report does not say how many more:\n%s", rep)
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{spamhausDROP, spamhausDROPv6, fireholNetset, plainList, "203.0.113.1/24;x#y\n", strings.Repeat("a", MaxLine+1), "\r\n\r\n", "::ffff:0:0/95\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(bytes.NewReader(data), Limits{})
		if err != nil {
			t.Fatalf("Parse of an in-memory reader failed: %v", err)
		}
		lines := bytes.Count(data, []byte("\n"))
		if len(data) > 0 && data[len(data)-1] != '\n' {
			lines++
		}
		if p.Lines != lines {
			t.Fatalf("Lines = %d, want %d", p.Lines, lines)
		}
		if len(p.Entries)+p.BadCount > p.Lines {
			t.Fatalf("%d entries + %d bad > %d lines", len(p.Entries), p.BadCount, p.Lines)
		}
		for i, e := range p.Entries {
			// Every entry is normalized, came from a line of the input, and
			// the list is sorted without duplicates.
			if e.Target != e.Target.Masked() || e.Target.Addr().Is4In6() || e.Target.Addr().Zone() != "" {
				t.Fatalf("entry %s not normalized", e.Target)
			}
			if e.Line < 1 || e.Line > p.Lines {
				t.Fatalf("entry %s from line %d of %d", e.Target, e.Line, p.Lines)
			}
			if i > 0 && !lessPrefix(p.Entries[i-1].Target, e.Target) {
				t.Fatalf("entries not sorted and unique: %s then %s", p.Entries[i-1].Target, e.Target)
			}
		}
		for _, b := range p.Bad {
			if !utf8.ValidString(b.Text) || len(b.Text) > 80 {
				t.Fatalf("bad line text %q not bounded, valid UTF-8", b.Text)
			}
		}
	})
}

func lessPrefix(a, b netip.Prefix) bool {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c < 0
	}
	return a.Bits() < b.Bits()
}
