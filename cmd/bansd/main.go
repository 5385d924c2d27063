// Command bansd is the ban daemon for Mailu on Docker: it follows Mailu's
// container logs, counts failures in jails and bans offenders in nftables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/bansd/bansd/configs"
	buildinfo "github.com/bansd/bansd/internal/version"
)

// version is the release this binary is (stamped by the Makefile).
var version = buildinfo.Version

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	if os.Getenv("BANSD_MEMPROFILE") != "" {
		// Every allocation sampled, from the first: the profile is of a
		// few MB, where the default rate (one per 512 KiB) is too coarse.
		runtime.MemProfileRate = 1
	}
	fs := flag.NewFlagSet("bansd", flag.ContinueOnError)
	// The flag package's own messages are replaced by argError's.
	fs.SetOutput(io.Discard)
	cfgPath := fs.String("config", "", "config file (TOML), overlaid on the embedded default; none: the default alone")
	check := fs.Bool("check", false, "check the config and exit")
	printDefault := fs.Bool("print-default-config", false, "print the embedded default config and exit")
	showVersion := fs.Bool("version", false, "print the version, commit and Go version and exit")
	genMan := manFlag(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(os.Stdout, fs)
			return 0
		}
		fmt.Fprintf(stderr, "bansd: %s\nRun 'bansd --help' for usage.\n", argError(err))
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bansd: takes no arguments, only flags (got %q); see bansd --help\n", fs.Args())
		return 2
	}
	switch {
	case *showVersion:
		fmt.Fprintln(os.Stdout, buildinfo.Get().String("bansd"))
		return 0
	case *printDefault:
		os.Stdout.Write(configs.DefaultTOML())
		return 0
	}
	if wrote, err := genMan(); err != nil {
		fmt.Fprintln(stderr, "bansd:", err)
		return 1
	} else if wrote {
		return 0
	}
	cfg, err := configs.Load(*cfgPath)
	if err == nil {
		err = configs.CheckHost(cfg)
	}
	if err != nil {
		fmt.Fprintln(stderr, "bansd: config:", err)
		return 2
	}
	if *check {
		fmt.Fprintln(os.Stdout, "config ok")
		return 0
	}

	level := new(slog.LevelVar)
	level.Set(parseLevel(cfg.Daemon.LogLevel))
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// A CPU profile of the whole run, for `go tool pprof`: the live path's
	// cost (Docker stream, demux, cursors, metrics) is seen only here.
	if path := os.Getenv("BANSD_CPUPROFILE"); path != "" {
		stopProfile, err := startCPUProfile(path)
		if err != nil {
			logger.Error("start", "err", err)
			return 1
		}
		defer stopProfile()
	}
	d, err := newDaemon(cfg, *cfgPath, logger, level)
	if err != nil {
		logger.Error("start", "err", err)
		return 1
	}
	// A heap profile (in-use memory after a GC) written when SIGTERM
	// arrives, before anything is torn down: what a running bansd keeps
	// alive, for its resident set.
	d.memProfile = os.Getenv("BANSD_MEMPROFILE")
	// One P once started, unless GOMAXPROCS says otherwise: every line goes
	// through one chain of goroutines (Docker source, engine, bans), and on
	// one P each hand-off is a switch on the same thread instead of a
	// thread wake-up and an idle P spinning to find the work, which cost a
	// fifth of a followed line's CPU (BenchmarkLiveDaemon). A flood then
	// also never takes more than one of the mail server's cores. The
	// start's restore of the store into the kernel still has them all
	// (100k bans: 0.56 s against 0.72 s on one).
	if os.Getenv("GOMAXPROCS") == "" {
		d.procsAfterStart = 1
	}
	if err := d.run(ctx, hup); err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("stopped", "err", err)
		return 1
	}
	return 0
}

// startCPUProfile writes a CPU profile to path until the returned stop.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("BANSD_CPUPROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("BANSD_CPUPROFILE: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// writeHeapProfile writes the in-use heap to path. The collection first
// makes the profile current: in-use figures are those of the last GC.
func writeHeapProfile(path string, logger *slog.Logger) {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		logger.Error("BANSD_MEMPROFILE", "err", err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		logger.Error("BANSD_MEMPROFILE", "err", fmt.Errorf("write %s: %w", path, err))
	}
}

func parseLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
