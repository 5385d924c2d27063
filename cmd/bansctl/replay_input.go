package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/jail/parse"
	"github.com/bansd/bansd/sources"
)

// replayFlags are replay's inputs besides SERVICE=FILE arguments.
type replayFlags struct {
	journals      []string
	docker        bool
	host, project string
	since, until  string
	print         string
	printLimit    int
}

func (f *replayFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.journals, "journal", nil, "journalctl -o export or -o json output (FILE or -); repeatable")
	fl.BoolVar(&f.docker, "docker", false, "read the Mailu compose project's logs from the Docker engine")
	fl.StringVar(&f.host, "host", "", "with --docker: the engine's address (default: docker.host, else $DOCKER_HOST, else the local socket)")
	fl.StringVar(&f.project, "project", "", "with --docker: the compose project (default: docker.project, else the one with front and admin)")
	fl.StringVar(&f.since, "since", "", "with --docker: from this time: a duration back from now (7d, 36h) or a time (2026-11-20, RFC 3339)")
	fl.StringVar(&f.until, "until", "", "with --docker: up to this time, in the same forms")
	fl.StringVar(&f.print, "print", "", "print the lines of a class: matched, missed, set-aside or all")
	fl.IntVar(&f.printLimit, "print-limit", 50, "print at most this many lines of each class")
}

// options checks the report's flags.
func (f *replayFlags) options() (replayOptions, error) {
	ps, err := parsePrint(f.print)
	if err != nil {
		return replayOptions{}, err
	}
	if f.printLimit < 1 {
		return replayOptions{}, usagef("--print-limit: want a positive number of lines, got %d", f.printLimit)
	}
	return replayOptions{print: ps, printLimit: f.printLimit}, nil
}

// replayFrom opens every input, replays them together and writes what was
// left out of them to stderr.
func replayFrom(ctx context.Context, cfg *configs.Config, files []replayInput, f replayFlags, opt replayOptions, stdin io.Reader, stderr io.Writer) (*replayReport, error) {
	if len(files) == 0 && len(f.journals) == 0 && !f.docker {
		return nil, usagef("nothing to replay: give SERVICE=FILE arguments, --journal FILE or --docker")
	}
	if !f.docker && (f.host != "" || f.project != "" || f.since != "" || f.until != "") {
		return nil, usagef("--host, --project, --since and --until go with --docker")
	}
	stdinUsed := false
	for _, in := range files {
		stdinUsed = stdinUsed || in.path == "-"
	}
	var srcs []replaySource
	var notes []string
	open := func(path string) (io.Reader, error) {
		if path == "-" {
			return stdin, nil
		}
		fh, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		if st, err := fh.Stat(); err == nil && st.IsDir() {
			fh.Close()
			return nil, fmt.Errorf("%s is a directory", path)
		}
		ctxClose(ctx, fh)
		return fh, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var warnings []string
	for _, in := range files {
		r, err := open(in.path)
		if err != nil {
			return nil, fmt.Errorf("replay %s: %w", in, err)
		}
		r, head, err := peekHead(r)
		if err != nil {
			return nil, fmt.Errorf("replay %s: %w", in, err)
		}
		w, err := guessInput(&in, head)
		if err != nil {
			return nil, err
		}
		warnings = append(warnings, w...)
		srcs = append(srcs, fileSource(in, r, cfg.Docker.MaxLine))
	}
	for _, path := range f.journals {
		if path == "-" {
			if stdinUsed {
				return nil, usagef("standard input (-) given twice")
			}
			stdinUsed = true
		}
		r, err := open(path)
		if err != nil {
			return nil, fmt.Errorf("replay --journal: %w", err)
		}
		srcs = append(srcs, journalSource(path, r, cfg.Docker.MaxLine, cfg.Docker.Services))
	}
	var prog *replayProgress
	var prot *jail.Protected
	stopProgress := func() {}
	if f.docker {
		now := time.Now()
		d := dockerReplay{host: f.host, project: f.project}
		if d.host == "" {
			d.host = cfg.Docker.Host
		}
		if d.project == "" {
			d.project = cfg.Docker.Project
		}
		var err error
		if d.since, err = parseWhen("since", f.since, now); err != nil {
			return nil, err
		}
		if d.until, err = parseWhen("until", f.until, now); err != nil {
			return nil, err
		}
		ds, p, dn, closeDocker, err := dockerSources(ctx, cfg, d)
		if err != nil {
			return nil, err
		}
		prot = &p
		defer closeDocker()
		srcs, notes = append(srcs, ds...), append(notes, dn...)
		if isTerminal(stderr) {
			prog = &replayProgress{}
			stop, done := make(chan struct{}), make(chan struct{})
			go showProgress(stderr, prog, 250*time.Millisecond, stop, done)
			stopProgress = func() { close(stop); <-done }
			defer func() { stopProgress() }()
		}
	}
	rep, err := replaySources(ctx, cfg, srcs, prot, prog, opt)
	if rep != nil {
		rep.Warnings = append(warnings, rep.Warnings...)
	}
	// The line is erased before anything else is written under it.
	stopProgress()
	stopProgress = func() {}
	for _, s := range srcs {
		if s.notes != nil {
			notes = append(notes, s.notes()...)
		}
	}
	for _, n := range notes {
		fmt.Fprintln(stderr, "bansctl replay:", n)
	}
	return rep, err
}

// ctxClose closes c when ctx ends.
func ctxClose(ctx context.Context, c io.Closer) {
	context.AfterFunc(ctx, func() { c.Close() })
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
