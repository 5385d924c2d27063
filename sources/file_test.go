package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func readAll(t *testing.T, in string, maxLine int) ([]Line, FileCounts) {
	t.Helper()
	var got []Line
	c, err := ReadFileCounted(context.Background(), strings.NewReader(in), "front", maxLine, func(l Line) error {
		got = append(got, l)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadFileCounted: %v", err)
	}
	return got, c
}

func TestReadFile(t *testing.T) {
	ts := time.Date(2026, 11, 20, 0, 1, 2, 123456789, time.UTC)
	tests := []struct {
		name  string
		in    string
		max   int
		texts []string
		times []time.Time
		cut   int64
	}{
		{"docker prefix", "2026-11-20T00:01:02.123456789Z hello\n2026-11-20T00:01:02.123456789Z world\n", 100,
			[]string{"hello", "world"}, []time.Time{ts, ts}, 0},
		{"no prefix, CRLF, no final newline", "a line\r\nlast", 100,
			[]string{"a line", "last"}, []time.Time{{}, {}}, 0},
		{"offset and short fraction", "2026-11-20T01:01:02.5+01:00 x\n", 100,
			[]string{"x"}, []time.Time{time.Date(2026, 11, 20, 0, 1, 2, 5e8, time.UTC)}, 0},
		{"not a prefix", "2026-11-20T00:01:02 no zone\n2026/11/20 00:01:02 [info]\n", 100,
			[]string{"2026-11-20T00:01:02 no zone", "2026/11/20 00:01:02 [info]"}, []time.Time{{}, {}}, 0},
		{"invalid utf8 kept", "bad \xff\xfe byte\n", 100, []string{"bad \xff\xfe byte"}, []time.Time{{}}, 0},
		{"empty lines", "\n\r\n", 100, []string{"", ""}, []time.Time{{}, {}}, 0},
		{"cut", "0123456789abcdef\nshort\n", 8, []string{"01234567", "short"}, []time.Time{{}, {}}, 1},
		{"bad month", "2026-13-20T00:01:02Z x\n", 100, []string{"2026-13-20T00:01:02Z x"}, []time.Time{{}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, c := readAll(t, tc.in, tc.max)
			if len(got) != len(tc.texts) {
				t.Fatalf("got %d lines %+v, want %d", len(got), got, len(tc.texts))
			}
			for i, l := range got {
				if l.Text != tc.texts[i] || !l.Time.Equal(tc.times[i]) || l.Service != "front" {
					t.Errorf("line %d = %+v, want text %q time %v", i, l, tc.texts[i], tc.times[i])
				}
			}
			if c.Cut != tc.cut || c.Lines != int64(len(tc.texts)) {
				t.Errorf("counts = %+v, want cut %d lines %d", c, tc.cut, len(tc.texts))
			}
		})
	}
}

// A line of many MiB is read in bounded memory: the reader must not hold
// more than maxLine of it.
func TestReadFileHugeLine(t *testing.T) {
	const huge = 64 << 20
	r := io.MultiReader(strings.NewReader("2026-11-20T00:01:02Z "), &repeatReader{n: huge}, strings.NewReader("\nnext\n"))
	var got []Line
	c, err := ReadFileCounted(context.Background(), r, "front", 4096, func(l Line) error {
		got = append(got, l)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Text != "next" || c.Cut != 1 {
		t.Fatalf("got %d lines, cut %d", len(got), c.Cut)
	}
	// The prefix is split after the cut: the text is what remains of maxLine.
	if len(got[0].Text) != 4096-len("2026-11-20T00:01:02Z ") || got[0].Time.IsZero() {
		t.Fatalf("first line: len %d time %v", len(got[0].Text), got[0].Time)
	}
}

type repeatReader struct{ n int }

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	if len(p) > r.n {
		p = p[:r.n]
	}
	for i := range p {
		p[i] = 'x'
	}
	r.n -= len(p)
	return len(p), nil
}

func TestReadFileStops(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := ReadFile(context.Background(), strings.NewReader("a\nb\nc\n"), "admin", 100, func(Line) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Fatalf("err %v after %d lines", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ReadFile(ctx, strings.NewReader("a\n"), "admin", 100, func(Line) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if err := ReadFile(context.Background(), strings.NewReader("a\n"), "admin", 0, func(Line) error { return nil }); err == nil {
		t.Fatal("maxLine 0 accepted")
	}
}

func FuzzTimestampSplit(f *testing.F) {
	f.Add("2026-11-20T00:01:02.123456789Z hello")
	f.Add("2026-11-20T00:01:02+05:30 x")
	f.Add("2026-11-20T00:01:02.")
	f.Fuzz(func(t *testing.T, b string) {
		var p TimestampParser
		tm, rest := p.Split(b)
		if tm.IsZero() && len(rest) != len(b) {
			t.Fatalf("no time but text cut: %q", b)
		}
		if !tm.IsZero() {
			want, err := time.Parse(time.RFC3339Nano, b[:len(b)-len(rest)-1])
			if err == nil && !want.Equal(tm) {
				t.Fatalf("%q: got %v, time.Parse %v", b, tm, want)
			}
		}
	})
}

func BenchmarkReadFile(b *testing.B) {
	line := "2026-11-20T00:01:02.123456789Z Nov 20 00:01:02 imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<a@example.com>, method=PLAIN, rip=203.0.113.7, rport=1, lip=192.168.203.5, lport=993, TLS\n"
	in := strings.Repeat(line, 10000)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		_ = ReadFile(context.Background(), strings.NewReader(in), "front", 65536, func(Line) error { return nil })
	}
}

// Lines of every length around the chunk and buffer sizes come out whole
// and in order.
func TestReadFileChunkBoundaries(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var in strings.Builder
	var want []string
	for i := range 3000 {
		n := rng.IntN(20000)
		if i%3 == 0 {
			n = rng.IntN(200)
		}
		l := strings.Repeat(string(rune('a'+i%26)), n)
		want = append(want, l)
		in.WriteString(l)
		if i%7 == 0 {
			in.WriteString("\r")
		}
		in.WriteString("\n")
	}
	got, c := readAll(t, in.String(), 100000)
	if len(got) != len(want) || c.Cut != 0 {
		t.Fatalf("got %d lines (cut %d), want %d", len(got), c.Cut, len(want))
	}
	for i := range want {
		if got[i].Text != want[i] {
			t.Fatalf("line %d: got %d bytes, want %d", i, len(got[i].Text), len(want[i]))
		}
	}
}

// ReadFileTransient gives the lines, times and counts ReadFileCounted
// gives, when fn copies what it keeps: lines around the chunk and buffer
// sizes, over max_line, with and without Docker's prefix.
func TestReadFileTransient(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	var in strings.Builder
	for i := range 3000 {
		n := rng.IntN(70000)
		if i%3 == 0 {
			n = rng.IntN(300)
		}
		if i%2 == 0 {
			fmt.Fprintf(&in, "2026-11-20T00:01:%02d.%09dZ ", i%60, i)
		}
		in.WriteString(strings.Repeat(string(rune('a'+i%26)), n))
		in.WriteString("\n")
	}
	in.WriteString("last line without a line feed")
	read := func(f func(context.Context, io.Reader, string, int, func(Line) error) (FileCounts, error)) ([]Line, FileCounts) {
		var out []Line
		c, err := f(context.Background(), strings.NewReader(in.String()), "front", 50000, func(l Line) error {
			l.Text = strings.Clone(l.Text)
			out = append(out, l)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out, c
	}
	want, wc := read(ReadFileCounted)
	got, gc := read(ReadFileTransient)
	if gc != wc || len(got) != len(want) || wc.Cut == 0 {
		t.Fatalf("counts %+v, %d lines; want %+v, %d lines (and some cut)", gc, len(got), wc, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("line %d: got %q at %v, want %q at %v", i, cutText(got[i].Text), got[i].Time, cutText(want[i].Text), want[i].Time)
		}
	}
}

func cutText(s string) string { return s[:min(len(s), 40)] }
