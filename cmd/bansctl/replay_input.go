package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/jail"
)

// replayFlags are replay's inputs besides SERVICE=FILE arguments.
type replayFlags struct {
	journals      []string
	docker        bool
	host, project string
	since, until  string
}

func (f *replayFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.journals, "journal", nil, "journalctl -o export or -o json output (FILE or -); repeatable")
	fl.BoolVar(&f.docker, "docker", false, "read the Mailu compose project's logs from the Docker engine")
	fl.StringVar(&f.host, "host", "", "with --docker: the engine's address (default: docker.host, else $DOCKER_HOST, else the local socket)")
	fl.StringVar(&f.project, "project", "", "with --docker: the compose project (default: docker.project, else the one with front and admin)")
	fl.StringVar(&f.since, "since", "", "with --docker: from this time: a duration back from now (7d, 36h) or a time (2026-11-20, RFC 3339)")
	fl.StringVar(&f.until, "until", "", "with --docker: up to this time, in the same forms")
}

// replayFrom opens every input, replays them together and writes what was
// left out of them to stderr.
func replayFrom(ctx context.Context, cfg *configs.Config, files []replayInput, f replayFlags, stdin io.Reader, stderr io.Writer) (*replayReport, error) {
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
	for _, in := range files {
		r, err := open(in.path)
		if err != nil {
			return nil, fmt.Errorf("replay %s: %w", in.service, err)
		}
		srcs = append(srcs, fileSource(in.service+"="+in.path, r, in.service, cfg.Docker.MaxLine))
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
	rep, err := replaySources(ctx, cfg, srcs, prot, prog)
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
