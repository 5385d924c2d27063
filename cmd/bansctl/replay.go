package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/bansd/bansd/jail/parse"

	"github.com/spf13/cobra"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/sources"
)

func newReplayCmd() *cobra.Command {
	var cfgPath, printArg string
	var asJSON bool
	var printLimit int
	cmd := &cobra.Command{
		Use:   "replay [--config FILE] [--json] [--print CLASS] [SERVICE=]FILE ...",
		Short: "Run the jail engine over saved container logs and report what it would ban, and why",
		Long: `replay runs bansd's real jail engine over container logs saved with
'docker logs -t' (or without timestamps), for example:

  docker logs -t mailu-front-1 > front.log 2>&1
  docker logs -t mailu-admin-1 > admin.log 2>&1
  bansctl replay front=front.log admin=admin.log

Lines of all files are merged in time order (Docker's timestamp, else the
line's own), so admin and front are judged together as bansd does live.
FILE "-" is standard input. A FILE without SERVICE= gets the service its
first lines look like (the report says it was guessed). Nothing is banned:
replay only reports.

The report gives, per file and per service, how many lines were matched
(by event kind), ignored (a known program's line with no signal), set aside
as forged or uncorroborated (by reason) and unparsable; per jail the events
it counted and its decisions; each ban with its duration, level (earlier
bans of the target in this replay) and evidence lines. Warnings (also on
standard error) flag input that is probably wrong: a file under the wrong
service, an unknown service, a file with no line bansd reads, a Mailu
2024.06 front file without its admin file.

--print matched|missed|set-aside|all (or a comma-separated list) prints
the lines of those classes with what the parser made of each: missed is
ignored and unparsable, set-aside is forged and uncorroborated.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inputs, err := parseReplayArgs(args)
			if err != nil {
				return err
			}
			ps, err := parsePrint(printArg)
			if err != nil {
				return err
			}
			if printLimit < 1 {
				return usagef("--print-limit: want a positive number of lines, got %d", printLimit)
			}
			cfg, err := configs.Load(cfgPath)
			if err != nil {
				return err
			}
			rep, err := replay(cmd.Context(), cfg, inputs, cmd.InOrStdin(), replayOptions{print: ps, printLimit: printLimit})
			if err != nil {
				return err
			}
			for _, w := range rep.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			return printReplay(cmd.OutOrStdout(), rep)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "bansd configuration file (default: the built-in configuration)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	cmd.Flags().StringVar(&printArg, "print", "", "print the lines of a class: matched, missed, set-aside or all")
	cmd.Flags().IntVar(&printLimit, "print-limit", 50, "print at most this many lines of each class")
	return cmd
}

type replayInput struct {
	service, path string
	// guessed: no SERVICE= was given; service comes from the content.
	guessed bool
}

// String is the input as the operator would write it.
func (in replayInput) String() string {
	if in.guessed {
		return in.path
	}
	return in.service + "=" + in.path
}

// replayOptions are the report's switches.
type replayOptions struct {
	print      printSet
	printLimit int
}

func parseReplayArgs(args []string) ([]replayInput, error) {
	var out []replayInput
	stdin := false
	for _, a := range args {
		svc, path, ok := strings.Cut(a, "=")
		guessed := false
		if !ok {
			// A path holding "=" needs SERVICE= before it.
			svc, path, guessed = "", a, true
		}
		if (ok && svc == "") || path == "" {
			return nil, usagef("%q: want [SERVICE=]FILE, e.g. front=front.log", a)
		}
		if strings.ContainsAny(svc, " /\t") {
			return nil, usagef("%q: bad service name %q", a, svc)
		}
		if path == "-" {
			if stdin {
				return nil, usagef("standard input (-) given twice")
			}
			stdin = true
		}
		out = append(out, replayInput{service: svc, path: path, guessed: guessed})
	}
	return out, nil
}

// replayBatch is how many lines a reader hands over at once: one channel
// operation per line would cost more than the engine.
const replayBatch = 4096

type stampedLine struct {
	l sources.Line
	t int64 // merge key: unix ns
}

type replayStream struct {
	ch chan []stampedLine
	// free returns consumed batches to the reader, so a long replay does
	// not allocate (and collect) a batch per 4096 lines.
	free  chan []stampedLine
	buf   []stampedLine
	pos   int
	done  bool
	err   error
	cut   int64
	close func() error
}

func replay(ctx context.Context, cfg *configs.Config, inputs []replayInput, stdin io.Reader, opt replayOptions) (*replayReport, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	streams := make([]*replayStream, 0, len(inputs))
	defer func() {
		for _, s := range streams {
			_ = s.close()
		}
	}()
	var readers []io.Reader
	var warnings []string
	for i, in := range inputs {
		s := &replayStream{ch: make(chan []stampedLine, 4), free: make(chan []stampedLine, 8), close: func() error { return nil }}
		var r io.Reader
		if in.path == "-" {
			r = stdin
		} else {
			f, err := os.Open(in.path)
			if err != nil {
				return nil, fmt.Errorf("replay %s: %w", in, err)
			}
			if st, err := f.Stat(); err == nil && st.IsDir() {
				f.Close()
				return nil, fmt.Errorf("replay %s: %s is a directory", in, in.path)
			}
			s.close = f.Close
			r = f
		}
		streams = append(streams, s)
		r, head, err := peekHead(r)
		if err != nil {
			return nil, fmt.Errorf("replay %s: %w", in, err)
		}
		w, err := guessInput(&inputs[i], head)
		if err != nil {
			return nil, err
		}
		warnings = append(warnings, w...)
		readers = append(readers, r)
	}

	rb := newReportBuilder(cfg, inputs, opt.print, opt.printLimit)
	rb.rep.Warnings = append(rb.rep.Warnings, warnings...)
	eng, err := jail.NewEngine(cfg, jail.Options{})
	if err != nil {
		return nil, err
	}

	start := time.Now()
	var wg sync.WaitGroup
	for i, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(s.ch)
			s.cut, s.err = readStream(ctx, readers[i], inputs[i].service, cfg.Docker.MaxLine, start, s.ch, s.free)
		}()
	}
	// k-way merge by line time; ties keep the order of the arguments. k is
	// small, so a linear scan beats a heap.
	for {
		best := -1
		var bestT int64
		for i, s := range streams {
			if s.pos == len(s.buf) {
				if s.done {
					continue
				}
				if s.buf != nil {
					select {
					case s.free <- s.buf[:0]:
					default:
					}
					s.buf, s.pos = nil, 0
				}
				b, ok := <-s.ch
				if !ok {
					s.done = true
					continue
				}
				s.buf, s.pos = b, 0
			}
			if t := s.buf[s.pos].t; best < 0 || t < bestT {
				best, bestT = i, t
			}
		}
		if best < 0 {
			break
		}
		s := streams[best]
		l := &s.buf[s.pos].l
		out := eng.Process(*l)
		rb.line(best, l, &out)
		s.pos++
	}
	wg.Wait()
	var cut int64
	for i, s := range streams {
		if s.err != nil {
			return nil, fmt.Errorf("replay %s: %w", inputs[i], s.err)
		}
		cut += s.cut
	}
	return rb.finish(eng, time.Since(start).Seconds(), cut), nil
}

// guessBytes is how much of a file's start the service guess reads.
const guessBytes = 64 << 10

// peekHead returns the first guessBytes of r, and a reader that still
// starts at the beginning: a regular file is read in place (no second
// buffer in the way of replay's reading), anything else through a buffer.
func peekHead(r io.Reader) (io.Reader, []byte, error) {
	if f, ok := r.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			head := make([]byte, guessBytes)
			n, err := f.ReadAt(head, 0)
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, nil, err
			}
			return f, head[:n], nil
		}
	}
	br := bufio.NewReaderSize(r, guessBytes)
	head, err := br.Peek(guessBytes)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, nil, err
	}
	return br, head, nil
}

// guessInput looks at the first lines of an input: it picks the service of
// one given without SERVICE=, and warns of one given under a service its
// lines do not look like.
func guessInput(in *replayInput, head []byte) ([]string, error) {
	g := guessHead(head)
	if in.guessed {
		best, _ := g.Best()
		if best == "" {
			return nil, usagef("%s: no line of its first %d looks like front, admin, smtp or antispam: give the service, e.g. front=%s", in.path, g.Lines, in.path)
		}
		in.service = best
		return nil, nil
	}
	if w := guessWarning(*in, g); w != "" {
		return []string{w}, nil
	}
	return nil, nil
}

// guessHead tallies the service guess over the complete lines of head.
func guessHead(head []byte) parse.ServiceGuess {
	var g parse.ServiceGuess
	var ts sources.TimestampParser
	for len(head) > 0 {
		i := bytes.IndexByte(head, '\n')
		if i < 0 {
			break
		}
		_, text := ts.Split(strings.TrimSuffix(string(head[:i]), "\r"))
		g.Add(text)
		head = head[i+1:]
	}
	return g
}

// readStream reads one file into batches stamped with their merge time:
// Docker's timestamp, else the line's own, else the previous line's (so a
// line without any time keeps its place in its file).
func readStream(ctx context.Context, r io.Reader, service string, maxLine int, ref time.Time, ch chan<- []stampedLine, free <-chan []stampedLine) (int64, error) {
	batch := make([]stampedLine, 0, replayBatch)
	var last int64
	counts, err := sources.ReadFileCounted(ctx, r, service, maxLine, func(l sources.Line) error {
		if t, ok := parse.LineTime(l, ref); ok {
			last = t.UnixNano()
		}
		batch = append(batch, stampedLine{l: l, t: last})
		if len(batch) == replayBatch {
			select {
			case ch <- batch:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case batch = <-free:
			default:
				batch = make([]stampedLine, 0, replayBatch)
			}
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		select {
		case ch <- batch:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	return counts.Cut, err
}
