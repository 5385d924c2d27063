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
	"syscall"

	"github.com/bansd/bansd/configs"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("bansd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (TOML), overlaid on the embedded default; none: the default alone")
	check := fs.Bool("check", false, "check the config and exit")
	printDefault := fs.Bool("print-default-config", false, "print the embedded default config and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bansd: unexpected arguments %q\n", fs.Args())
		return 2
	}
	switch {
	case *showVersion:
		fmt.Fprintln(os.Stdout, "bansd", version)
		return 0
	case *printDefault:
		os.Stdout.Write(configs.DefaultTOML())
		return 0
	}
	cfg, err := configs.Load(*cfgPath)
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

	d, err := newDaemon(cfg, *cfgPath, logger, level)
	if err != nil {
		logger.Error("start", "err", err)
		return 1
	}
	if err := d.run(ctx, hup); err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("stopped", "err", err)
		return 1
	}
	return 0
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
