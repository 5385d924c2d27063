package main

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/internal/mailugen"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/jail/parse"
	"github.com/bansd/bansd/sources"
)

// lineMerge is the oracle for feed: every line of every stream, merged by
// its own time (else the previous line's) with a greedy k-way merge, fed
// one by one to one engine that parses it itself.
func lineMerge(t *testing.T, cfg *configs.Config, streams [][]sources.Line, ref time.Time) ([]string, parse.ParserStats) {
	t.Helper()
	eng, err := jail.NewEngine(cfg, jail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	keys := make([][]int64, len(streams))
	for i, s := range streams {
		var last int64
		for _, l := range s {
			if tm, ok := parse.LineTime(l, ref); ok {
				last = tm.UnixNano()
			}
			keys[i] = append(keys[i], last)
		}
	}
	pos := make([]int, len(streams))
	var got []string
	for {
		best := -1
		for i := range streams {
			if pos[i] < len(streams[i]) && (best < 0 || keys[i][pos[i]] < keys[best][pos[best]]) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		got = append(got, outputs(eng.Process(streams[best][pos[best]]))...)
		pos[best]++
	}
	for _, a := range eng.FlushAlarms() {
		got = append(got, fmt.Sprintf("alarm %s %d", a.Addr, a.Count))
	}
	return got, eng.Stats().Parser
}

func outputs(o jail.Output) []string {
	var s []string
	for _, d := range o.Decisions {
		s = append(s, fmt.Sprintf("ban %s %s %d %s %q", d.Target, d.Jail, d.Events, d.Time.UTC().Format(time.RFC3339Nano), d.Evidence))
	}
	for _, a := range o.Alarms {
		s = append(s, fmt.Sprintf("alarm %s %d", a.Addr, a.Count))
	}
	return s
}

func sliceSource(name string, lines []sources.Line) replaySource {
	return replaySource{name: name, read: func(ctx context.Context, fn func(sources.Line) error) (int64, error) {
		for _, l := range lines {
			if err := fn(l); err != nil {
				return 0, err
			}
		}
		return 0, nil
	}}
}

// feed, which parses each stream on its own and merges only the events,
// decides exactly what a line-by-line merge through one engine decides:
// on generated logs as they are, without Docker's prefix (merged by the
// lines' own times, which go back and forth between pieces of a stream),
// and with each file's blocks shuffled so that streams go back in time.
func TestFeedMatchesLineMerge(t *testing.T) {
	cfg, err := configs.Default()
	if err != nil {
		t.Fatal(err)
	}
	ref := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	variants := map[string]func([]string) []string{
		"as-is": func(s []string) []string { return s },
		"no-docker-prefix": func(s []string) []string {
			out := make([]string, len(s))
			for i, l := range s {
				_, out[i], _ = strings.Cut(l, " ")
			}
			return out
		},
		"blocks-shuffled": func(s []string) []string {
			var blocks [][]string
			for len(s) > 0 {
				n := min(len(s), 700)
				blocks, s = append(blocks, s[:n]), s[n:]
			}
			var out []string
			for i := range blocks {
				// Every third block swapped with its successor.
				if i%3 == 0 && i+1 < len(blocks) {
					blocks[i], blocks[i+1] = blocks[i+1], blocks[i]
				}
			}
			for _, b := range blocks {
				out = append(out, b...)
			}
			return out
		},
	}
	// An admin file that goes back in time: its first line (a minute
	// later than front's failures) holds its "Login attempt" line back in
	// a line-by-line merge, so front's 12 failures count before admin's
	// latch and ban 203.0.113.9. Merging the events by their own times
	// would latch first and ban nobody.
	var front, admin strings.Builder
	admin.WriteString("2026-11-20T00:01:00.000000000Z [2026-11-20 00:01:00,000] INFO in base: a benign admin line\n")
	admin.WriteString("2026-11-20T00:00:00.000000000Z [2026-11-20 00:00:00,000] INFO in nginx: Login attempt for: x@example.com/imap/993 from: 203.0.113.7/4000: failed: badauth: 000001\n")
	for i := range 12 {
		fmt.Fprintf(&front, "2026-11-20T00:00:%02d.000000000Z Nov 20 00:00:%02d imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<u%d@example.com>, method=PLAIN, rip=203.0.113.9, rport=%d, lip=192.168.203.5, lport=993, TLS\n", 10+i, 10+i, i, 4000+i)
	}
	backFiles := map[string]string{"front": front.String(), "admin": admin.String()}
	t.Run("admin-goes-back", func(t *testing.T) {
		var streams [][]sources.Line
		var srcs []replaySource
		for _, svc := range []string{"admin", "front"} {
			var lines []sources.Line
			if err := sources.ReadFile(context.Background(), strings.NewReader(backFiles[svc]), svc, cfg.Docker.MaxLine, func(l sources.Line) error {
				lines = append(lines, l)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			streams = append(streams, lines)
			srcs = append(srcs, sliceSource(svc, lines))
		}
		want, _ := lineMerge(t, cfg, streams, ref)
		if len(want) == 0 || !strings.HasPrefix(want[0], "ban 203.0.113.9/32 ") {
			t.Fatalf("oracle: %v, want a ban of 203.0.113.9", want)
		}
		eng, err := jail.NewEngine(cfg, jail.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		if _, err := feed(context.Background(), srcs, eng, ref, nil, replayOptions{printLimit: 1}, func(_ int, _ int32, o jail.Output) { got = append(got, outputs(o)...) }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
	for _, version := range []string{mailugen.V2024, mailugen.V20} {
		tr, err := mailugen.Generate(mailugen.Options{Dir: t.TempDir(), Lines: 40000, Attackers: 20, Seed: 7, Version: version})
		if err != nil {
			t.Fatal(err)
		}
		for name, change := range variants {
			t.Run(version+"/"+name, func(t *testing.T) {
				var streams [][]sources.Line
				var srcs, files []replaySource
				for _, svc := range mailugen.Services {
					b, err := os.ReadFile(tr.Files[svc])
					if err != nil {
						t.Fatal(err)
					}
					text := strings.Join(change(strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")), "\n") + "\n"
					// The same text read in place (ReadFileTransient), as replay reads files.
					files = append(files, fileSource(replayInput{service: svc, path: svc}, strings.NewReader(text), cfg.Docker.MaxLine))
					var lines []sources.Line
					err = sources.ReadFile(context.Background(), strings.NewReader(text), svc, cfg.Docker.MaxLine, func(l sources.Line) error {
						lines = append(lines, l)
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
					streams = append(streams, lines)
					srcs = append(srcs, sliceSource(svc, lines))
				}
				want, wantStats := lineMerge(t, cfg, streams, ref)
				eng, err := jail.NewEngine(cfg, jail.Options{})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				res, err := feed(context.Background(), srcs, eng, ref, nil, replayOptions{printLimit: 1}, func(_ int, _ int32, o jail.Output) { got = append(got, outputs(o)...) })
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range eng.FlushAlarms() {
					got = append(got, fmt.Sprintf("alarm %s %d", a.Addr, a.Count))
				}
				bans := 0
				for _, s := range want {
					if strings.HasPrefix(s, "ban ") {
						bans++
					}
				}
				if bans == 0 {
					t.Fatal("the oracle banned nobody: the input tests nothing")
				}
				if !slices.Equal(got, want) {
					t.Fatalf("feed decided differently from a line-by-line merge\n got %d: %v\nwant %d: %v", len(got), got, len(want), want)
				}
				if res.parser.Lines != wantStats.Lines || res.parser.Matched != wantStats.Matched || !mapsEqual(res.parser.Forged, wantStats.Forged) {
					t.Fatalf("parser stats %+v, want %+v", res.parser, wantStats)
				}
				eng, err = jail.NewEngine(cfg, jail.Options{})
				if err != nil {
					t.Fatal(err)
				}
				var fromFiles []string
				if _, err := feed(context.Background(), files, eng, ref, nil, replayOptions{printLimit: 1}, func(_ int, _ int32, o jail.Output) { fromFiles = append(fromFiles, outputs(o)...) }); err != nil {
					t.Fatal(err)
				}
				for _, a := range eng.FlushAlarms() {
					fromFiles = append(fromFiles, fmt.Sprintf("alarm %s %d", a.Addr, a.Count))
				}
				if !slices.Equal(fromFiles, want) {
					t.Fatalf("feed from files read in place decided differently\n got %v\nwant %v", fromFiles, want)
				}
			})
		}
	}
}

func mapsEqual(a, b map[string]uint64) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// ownEvent copies Line, User and PassHash out of a transient line. If
// parse.Event grows another field that can point into the line, this
// fails, so that ownEvent learns to copy it too.
func TestOwnEventCoversEvent(t *testing.T) {
	et := reflect.TypeFor[parse.Event]()
	for i := range et.NumField() {
		f := et.Field(i)
		switch f.Type.Kind() {
		case reflect.String:
			if f.Name != "Line" && f.Name != "User" && f.Name != "PassHash" {
				t.Errorf("parse.Event.%s is a string ownEvent does not copy", f.Name)
			}
		case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Interface, reflect.Array, reflect.Func, reflect.Chan, reflect.UnsafePointer:
			t.Errorf("parse.Event.%s (%s) may share memory with the line: teach ownEvent", f.Name, f.Type)
		}
	}
	const orig = "2026/11/20 00:00:01 login failed user=<bob> hash=abc123"
	buf := []byte(orig)
	text := unsafe.String(&buf[0], len(buf)) // as ReadFileTransient gives it
	u, h := strings.Index(orig, "bob"), strings.Index(orig, "abc123")
	ev := ownEvent(parse.Event{Line: text, User: text[u : u+3], PassHash: text[h:], Kind: parse.KindAuthFailure}, text)
	for i := range buf {
		buf[i] = 'x' // the reader's next fill
	}
	if ev.Line != orig || ev.User != "bob" || ev.PassHash != "abc123" ||
		unsafe.StringData(ev.User) != unsafe.StringData(ev.Line[u:]) {
		t.Fatalf("ownEvent: %+v", ev)
	}
	other := strings.Repeat("u", 3)
	if got := rebase(other, text, ev.Line); got != "uuu" || unsafe.StringData(got) == unsafe.StringData(other) {
		t.Fatal("a string outside the line was not copied")
	}
}
