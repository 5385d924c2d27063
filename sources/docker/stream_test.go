package docker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var dkT0 = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)

func dkTS(i int) time.Time { return dkT0.Add(time.Duration(i) * time.Millisecond) }

// dkFrame is one multiplexed message as dockerd writes it.
func dkFrame(stream byte, t time.Time, text string) []byte {
	payload := t.Format("2006-01-02T15:04:05.000000000Z07:00") + " " + text
	h := []byte{stream, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[4:], uint32(len(payload)))
	return append(h, payload...)
}

type dkLine struct {
	stream byte
	time   time.Time
	text   string
	cut    bool
	msgs   int
}

// dkRead runs the demuxer and the assembler over a whole stream.
func dkRead(t *testing.T, in []byte, tty bool, maxLine int) ([]dkLine, error) {
	t.Helper()
	dm := newDemux(bytes.NewReader(in), tty, maxLine+64)
	asm := assembler{max: maxLine}
	var got []dkLine
	var stream byte
	emit := func(a assembled) {
		n := 0
		for _, r := range a.runs {
			n += r.n
		}
		got = append(got, dkLine{stream, a.time, a.text, a.cut, n})
	}
	for {
		m, err := dm.next()
		if err == io.EOF {
			asm.drain(emit)
			return got, nil
		}
		if err != nil {
			return got, err
		}
		stream = m.stream
		asm.add(m, emit)
	}
}

func TestDemuxMultiplexed(t *testing.T) {
	long := strings.Repeat("a", 16384) + strings.Repeat("b", 16384) + "ccc"
	var in []byte
	in = append(in, dkFrame(1, dkTS(0), "out one\n")...)
	in = append(in, dkFrame(2, dkTS(1), "err one\n")...)
	// A 32 KiB line in three chunks, each with its own timestamp, with a
	// stderr line in between.
	in = append(in, dkFrame(1, dkTS(2), long[:16384])...)
	in = append(in, dkFrame(2, dkTS(3), "err two\n")...)
	in = append(in, dkFrame(1, dkTS(4), long[16384:32768])...)
	in = append(in, dkFrame(1, dkTS(5), long[32768:]+"\n")...)
	in = append(in, dkFrame(1, dkTS(6), "\n")...)
	in = append(in, dkFrame(1, dkTS(7), "two\nlines\n")...)
	in = append(in, dkFrame(2, dkTS(8), "unterminated")...)
	got, err := dkRead(t, in, false, 65536)
	if err != nil {
		t.Fatal(err)
	}
	want := []dkLine{
		{1, dkTS(0), "out one", false, 1},
		{2, dkTS(1), "err one", false, 1},
		{2, dkTS(3), "err two", false, 1},
		{1, dkTS(2), long, false, 3},
		{1, dkTS(6), "", false, 1},
		{1, dkTS(7), "two", false, 0},
		{1, dkTS(7), "lines", false, 1},
		{2, dkTS(8), "unterminated", false, 1},
	}
	dkCompare(t, got, want)
}

func dkCompare(t *testing.T, got, want []dkLine) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.stream != w.stream || !g.time.Equal(w.time) || g.text != w.text || g.cut != w.cut || g.msgs != w.msgs {
			t.Errorf("line %d: got {%d %v %.40q(%d) cut=%v msgs=%d}, want {%d %v %.40q(%d) cut=%v msgs=%d}",
				i, g.stream, g.time, g.text, len(g.text), g.cut, g.msgs, w.stream, w.time, w.text, len(w.text), w.cut, w.msgs)
		}
	}
}

func TestDemuxCut(t *testing.T) {
	const max = 1000
	huge := strings.Repeat("x", 5*max)
	utf := strings.Repeat("a", max-1) + "é" // the cut falls inside "é"
	var in []byte
	in = append(in, dkFrame(1, dkTS(0), huge+"\n")...) // one frame beyond the demuxer's limit
	in = append(in, dkFrame(1, dkTS(1), huge[:600])...)
	in = append(in, dkFrame(1, dkTS(2), huge[:600]+"\n")...) // chunks beyond the line limit
	in = append(in, dkFrame(1, dkTS(3), utf+"\n")...)
	in = append(in, dkFrame(1, dkTS(4), "after\n")...)
	got, err := dkRead(t, in, false, max)
	if err != nil {
		t.Fatal(err)
	}
	dkCompare(t, got, []dkLine{
		{1, dkTS(0), huge[:max], true, 1},
		{1, dkTS(1), huge[:max], true, 2},
		{1, dkTS(3), utf[:max-1], true, 1},
		{1, dkTS(4), "after", false, 1},
	})
}

func TestDemuxRaw(t *testing.T) {
	ts := func(i int) string { return dkTS(i).Format(time.RFC3339Nano) + " " }
	in := ts(0) + "tty one\r\n" + ts(1) + "tty two\r\n" + ts(2) + strings.Repeat("y", 3000) + "\r\n" + ts(3) + "last"
	got, err := dkRead(t, []byte(in), true, 1000)
	if err != nil {
		t.Fatal(err)
	}
	dkCompare(t, got, []dkLine{
		{1, dkTS(0), "tty one", false, 1},
		{1, dkTS(1), "tty two", false, 1},
		{1, dkTS(2), strings.Repeat("y", 1000), true, 1},
		{1, dkTS(3), "last", false, 1},
	})
}

func TestDemuxErrors(t *testing.T) {
	good := dkFrame(1, dkTS(0), "ok\n")
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"bad header", append(append([]byte{}, good...), 9, 9, 9, 9, 0, 0, 0, 1, 'x'), nil},
		{"cut in header", append(append([]byte{}, good...), 1, 0, 0), io.ErrUnexpectedEOF},
		{"cut in payload", good[:len(good)-2], io.ErrUnexpectedEOF},
		{"cut in a huge frame", append(append([]byte{}, good...), 1, 0, 0, 0, 0x7f, 0, 0, 0, 'x'), io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dkRead(t, tc.in, false, 1000)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestPositionResume(t *testing.T) {
	at := func(sec int64) []secRun { return []secRun{{sec, 1}} }
	tests := []struct {
		name      string
		floor     int64
		add       [][]secRun
		since     int64
		skip      int
		container string
	}{
		{"empty from start", 0, nil, 0, 0, "c"},
		{"empty with backlog", 500, nil, 500, 0, "c"},
		{"one second", 0, [][]secRun{at(100), at(100)}, 99, 2, "c"},
		{"two seconds", 0, [][]secRun{at(100), at(101), at(101)}, 100, 3, "c"},
		{"a gap forgets", 0, [][]secRun{at(100), at(103)}, 102, 1, "c"},
		{"late message inside the window", 0, [][]secRun{at(101), at(100)}, 100, 2, "c"},
		{"late message outside the window", 0, [][]secRun{at(105), at(100)}, 104, 1, "c"},
		{"floor cuts the window", 101, [][]secRun{at(101), at(101)}, 101, 2, "c"},
		{"runs", 0, [][]secRun{{{100, 3}, {101, 2}}}, 100, 5, "c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := position{container: tc.container, floor: tc.floor}
			for _, r := range tc.add {
				p.add(r)
			}
			since, skip := p.resume()
			if since != tc.since || skip != tc.skip {
				t.Fatalf("resume = %d, %d; want %d, %d", since, skip, tc.since, tc.skip)
			}
			c := p.cursor()
			if c.ContainerID != tc.container || c.Time.Unix() != tc.since || c.Count != tc.skip {
				t.Fatalf("cursor = %+v", c)
			}
		})
	}
}

// TestPositionExact checks the resume rule against streams whose two
// halves are up to 50 ms out of order: for every stopping point, reading
// from since and skipping gives exactly the rest of the stream.
func TestPositionExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 100; round++ {
		n := 1 + rng.IntN(200)
		times := make([]time.Time, n)
		at := dkT0.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
		for i := range times {
			at = at.Add(time.Duration(rng.IntN(20)) * time.Millisecond)
			times[i] = at.Add(-time.Duration(rng.IntN(50)) * time.Millisecond)
		}
		floor := int64(0)
		if rng.IntN(2) == 0 {
			floor = times[0].Unix()
		}
		var stream []int // indexes of the messages the engine returns for since=floor
		for i, tm := range times {
			if tm.Unix() >= floor {
				stream = append(stream, i)
			}
		}
		for k := 0; k <= len(stream); k++ {
			p := position{container: "c", floor: floor}
			for _, i := range stream[:k] {
				p.add([]secRun{{times[i].Unix(), 1}})
			}
			since, skip := p.resume()
			var rest []int
			for _, i := range stream {
				if times[i].Unix() >= since {
					if skip > 0 {
						skip--
						continue
					}
					rest = append(rest, i)
				}
			}
			if fmt.Sprint(rest) != fmt.Sprint(stream[k:]) {
				t.Fatalf("round %d, stop after %d: resumed with %v, want %v", round, k, rest, stream[k:])
			}
		}
	}
}

func FuzzDemux(f *testing.F) {
	f.Add(dkFrame(1, dkTS(0), "a line\n"), false)
	f.Add(append(dkFrame(2, dkTS(0), strings.Repeat("z", 300)), dkFrame(2, dkTS(1), "end\n")...), false)
	f.Add([]byte(dkTS(0).Format(time.RFC3339Nano)+" raw\r\n"), true)
	f.Fuzz(func(t *testing.T, in []byte, tty bool) {
		const max = 256
		dm := newDemux(bytes.NewReader(in), tty, max+64)
		asm := assembler{max: max}
		emit := func(a assembled) {
			if len(a.text) > max {
				t.Fatalf("line of %d bytes, max %d", len(a.text), max)
			}
			if strings.Contains(a.text, "\n") {
				t.Fatalf("newline inside a line: %q", a.text)
			}
		}
		for {
			m, err := dm.next()
			if err != nil {
				return
			}
			if len(m.text) > max+64 {
				t.Fatalf("message of %d bytes", len(m.text))
			}
			asm.add(m, emit)
		}
	})
}

// BenchmarkDemux measures the per-line cost of demultiplexing and
// assembling a json-file log stream (no engine involved).
func BenchmarkDemux(b *testing.B) {
	var in []byte
	const lines = 10000
	for i := 0; i < lines; i++ {
		in = append(in, dkFrame(byte(1+i%2), dkTS(i), fmt.Sprintf("out %d %s\n", i, strings.Repeat("x", 100)))...)
	}
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dm := newDemux(bytes.NewReader(in), false, 65536+64)
		asm := assembler{max: 65536}
		n := 0
		for {
			m, err := dm.next()
			if err != nil {
				break
			}
			asm.add(m, func(assembled) { n++ })
		}
		if n != lines {
			b.Fatalf("%d lines", n)
		}
	}
	b.ReportMetric(float64(b.N*lines)/b.Elapsed().Seconds(), "lines/s")
}

func TestLogsPath(t *testing.T) {
	for _, c := range []struct{ base, version, id, want string }{
		{"", "1.47", "abc", "/v1.47/containers/abc/logs"},
		{"", "v1.47", "abc", "/v1.47/containers/abc/logs"},
		{"", "", "abc", "/containers/abc/logs"},
		{"/proxy/docker", "1.43", "abc", "/proxy/docker/v1.43/containers/abc/logs"},
		{"/proxy/", "", "mailu_front_1", "/proxy/containers/mailu_front_1/logs"},
		{"", "1.47", "a/b", "/v1.47/containers/a%2Fb/logs"},
	} {
		if got := logsPath(c.base, c.version, c.id); got != c.want {
			t.Errorf("logsPath(%q, %q, %q) = %q, want %q", c.base, c.version, c.id, got, c.want)
		}
	}
}
