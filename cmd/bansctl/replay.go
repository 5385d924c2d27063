package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/sources"
)

func newReplayCmd() *cobra.Command {
	var cfgPath string
	var asJSON bool
	var in replayFlags
	cmd := &cobra.Command{
		Use:   "replay [--config FILE] [--json] [SERVICE=FILE ...] [--journal FILE ...] [--docker [--project P] [--since T] [--until T]]",
		Short: "Run the jail engine over saved container logs and report what it would ban",
		Long: `replay runs bansd's real jail engine over container logs saved with
'docker logs -t' (or without timestamps), for example:

  docker logs -t mailu-front-1 > front.log 2>&1
  docker logs -t mailu-admin-1 > admin.log 2>&1
  bansctl replay front=front.log admin=admin.log

or straight from the Docker engine (every container of the Mailu compose
project, replaced ones too; a progress line on a terminal):

  bansctl replay --docker --since 7d

or from journald, for containers under Docker's journald log driver (the
service is taken from CONTAINER_TAG, e.g. tag: mailu-front, else from
CONTAINER_NAME, e.g. mailu-front-1):

  journalctl -o export CONTAINER_TAG=mailu-front CONTAINER_TAG=mailu-admin > mailu.export
  bansctl replay --journal mailu.export
  journalctl -o json --since -7d | bansctl replay --journal -

Lines of all inputs are merged in time order (Docker's or journald's
timestamp, else the line's own), so admin and front are judged together as
bansd does live. FILE "-" is standard input. Nothing is banned: replay only
reports.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			inputs, err := parseReplayArgs(args)
			if err != nil {
				return err
			}
			cfg, err := configs.Load(cfgPath)
			if err != nil {
				return err
			}
			rep, err := replayFrom(cmd.Context(), cfg, inputs, in, cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return err
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
	in.register(cmd)
	return cmd
}

type replayInput struct {
	service, path string
}

func parseReplayArgs(args []string) ([]replayInput, error) {
	var out []replayInput
	stdin := false
	for _, a := range args {
		svc, path, ok := strings.Cut(a, "=")
		if !ok || svc == "" || path == "" {
			return nil, usagef("%q: want SERVICE=FILE, e.g. front=front.log", a)
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
		out = append(out, replayInput{service: svc, path: path})
	}
	return out, nil
}

// replayReport is replay's result; its JSON is the --json output.
type replayReport struct {
	Lines   uint64        `json:"lines"`
	Matched uint64        `json:"matched"`
	Seconds float64       `json:"seconds"`
	Bans    []replayBan   `json:"bans"`
	Alarms  []replayAlarm `json:"alarms"`
	// Attribution is "text": offline there is no kernel record of who
	// connected, so the text rules judge and no ban is corroborated.
	Attribution string `json:"attribution"`
	// Forged counts lines the text rules set aside, by reason.
	Forged map[string]uint64 `json:"forged"`

	jails map[string]uint64
	cut   int64
}

type replayBan struct {
	Target       string `json:"target"`
	Jail         string `json:"jail"`
	Events       int    `json:"events"`
	First        string `json:"first"`
	Reason       string `json:"reason"`
	Corroborated bool   `json:"corroborated"`
}

type replayAlarm struct {
	Kind    string `json:"kind"`
	Address string `json:"address"`
	Count   int    `json:"count"`
	Hint    string `json:"hint"`
}

// replay replays files (tests and benchmarks call it directly).
func replay(ctx context.Context, cfg *configs.Config, inputs []replayInput, stdin io.Reader) (*replayReport, error) {
	return replayFrom(ctx, cfg, inputs, replayFlags{}, stdin, io.Discard)
}

// fileSource is a file of one service's raw container output.
func fileSource(name string, r io.Reader, service string, maxLine int) replaySource {
	return replaySource{name: name, transient: true, read: func(ctx context.Context, fn func(sources.Line) error) (int64, error) {
		c, err := sources.ReadFileTransient(ctx, r, service, maxLine, fn)
		return c.Cut, err
	}}
}

// replaySources runs the engine over srcs and builds the report; prot,
// when set, is what the live engine would protect besides the
// configuration.
func replaySources(ctx context.Context, cfg *configs.Config, srcs []replaySource, prot *jail.Protected, prog *replayProgress) (*replayReport, error) {
	rep := &replayReport{Bans: []replayBan{}, Alarms: []replayAlarm{}, Attribution: "text"}
	banned := map[string]bool{}
	type alarmKey struct{ kind, addr string }
	alarms := map[alarmKey]*replayAlarm{}
	onDecision := func(d jail.Decision) {
		t := d.Target.String()
		if banned[t] {
			return
		}
		banned[t] = true
		rep.Bans = append(rep.Bans, replayBan{Target: t, Jail: d.Jail, Events: d.Events, First: d.Time.UTC().Format(time.RFC3339), Reason: d.Reason})
	}
	onAlarm := func(a jail.Alarm) {
		k := alarmKey{a.Kind, a.Addr.String()}
		if x, ok := alarms[k]; ok {
			x.Count += a.Count
			return
		}
		alarms[k] = &replayAlarm{Kind: a.Kind, Address: k.addr, Count: a.Count, Hint: a.Hint}
	}
	eng, err := jail.NewEngine(cfg, jail.Options{})
	if err != nil {
		return nil, err
	}
	if prot != nil {
		eng.SetProtected(*prot)
	}

	start := time.Now()
	fed, err := feed(ctx, srcs, eng, start, prog, func(out jail.Output) {
		for _, a := range out.Alarms {
			onAlarm(a)
		}
		for _, d := range out.Decisions {
			onDecision(d)
		}
	})
	if err != nil {
		return nil, err
	}
	rep.cut = fed.cut
	for _, a := range eng.FlushAlarms() {
		onAlarm(a)
	}
	rep.Seconds = time.Since(start).Seconds()
	st := eng.Stats()
	// The lines were parsed by feed's parsers, not the engine's.
	rep.Lines, rep.Matched, rep.jails = fed.parser.Lines, fed.parser.Matched, st.Decisions
	rep.Forged = fed.parser.Forged
	for _, a := range alarms {
		rep.Alarms = append(rep.Alarms, *a)
	}
	sort.Slice(rep.Alarms, func(i, j int) bool {
		if rep.Alarms[i].Count != rep.Alarms[j].Count {
			return rep.Alarms[i].Count > rep.Alarms[j].Count
		}
		return rep.Alarms[i].Address < rep.Alarms[j].Address
	})
	return rep, nil
}

func printReplay(w io.Writer, rep *replayReport) error {
	rate := 0.0
	if rep.Seconds > 0 {
		rate = float64(rep.Lines) / rep.Seconds
	}
	fmt.Fprintf(w, "Replayed %d lines (%d matched) in %.2fs: %.0f lines/s\n", rep.Lines, rep.Matched, rep.Seconds, rate)
	fmt.Fprintln(w, "No kernel record offline: the text rules judged every line, and the bans below are uncorroborated.")
	if rep.cut > 0 {
		fmt.Fprintf(w, "%d lines longer than docker.max_line were cut\n", rep.cut)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nJAIL\tDECISIONS")
	names := make([]string, 0, len(rep.jails))
	for n := range rep.jails {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t%d\n", n, rep.jails[n])
	}
	fmt.Fprintf(tw, "\nBANS (%d targets, first ban each)\n", len(rep.Bans))
	if len(rep.Bans) > 0 {
		fmt.Fprintln(tw, "TARGET\tJAIL\tEVENTS\tFIRST\tREASON")
		for _, b := range rep.Bans {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", b.Target, b.Jail, b.Events, b.First, b.Reason)
		}
	}
	fmt.Fprintf(tw, "\nALARMS (%d addresses)\n", len(rep.Alarms))
	if len(rep.Alarms) > 0 {
		fmt.Fprintln(tw, "KIND\tADDRESS\tCOUNT")
		for _, a := range rep.Alarms {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", a.Kind, a.Address, a.Count)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Alarms) > 0 {
		_, err := fmt.Fprintf(w, "\nWhy the alarms matter: %s\n", rep.Alarms[0].Hint)
		return err
	}
	return nil
}
