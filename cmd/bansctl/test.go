package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/jail/parse"
	"github.com/bansd/bansd/sources"
)

// Exit codes of bansctl test beyond the usual: a line bansd makes nothing of
// is not a failure of the command, but a script wants to tell it apart.
const exitNoEvent = exitFailed

func newTestCmd(g *globals) *cobra.Command {
	var cfgPath, service string
	cmd := &cobra.Command{
		Use:   "test [--service S] [--config FILE] [--json] LINE [LINE ...]",
		Short: "Show what bansd makes of log lines: event, client, user, port, count, or why not",
		Long: `test runs log lines through bansd's real parser and jail engine, in
order, and says what each one is: the event kind, its client, user, port
and count, and whether a jail counted it; or why it is ignored, set aside
as forged, or not understood. LINE "-" reads lines from standard input.
A line may keep the timestamp prefix of 'docker logs -t'.

Without --service, each line's service is guessed from its content (the
same guess replay uses) and the output says so.

Lines are judged as replay judges them (no kernel record: the text
rules). An nginx failure counts only on a connection its "connected" line
opened, so give that line first:

  bansctl test '2024/09/02 20:46:21 [info] 23#23: *341375 client 203.0.113.9:4711 connected to 0.0.0.0:25' \
               '2024/09/02 20:46:22 [info] 23#23: *341375 client login failed: "AUTH not supported" while in http auth state, client: 203.0.113.9, server: 0.0.0.0:25, login: "x"'

Exit status: 0 when at least one line produced an event, 1 when none did
(ignored, set aside or not understood), 2 for a usage error.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if service != "" && !parse.KnownService(service) {
				return usagef("--service: want front, admin, smtp or antispam, got %q", service)
			}
			cfg, err := configs.Load(cfgPath)
			if err != nil {
				return err
			}
			lines, err := testLines(cmd.Context(), args, cmd.InOrStdin(), cfg.Docker.MaxLine)
			if err != nil {
				return err
			}
			if len(lines) == 0 {
				return usagef("no line to test: give a LINE, or - with lines on standard input")
			}
			res, err := testRun(cfg, lines, service)
			if err != nil {
				return err
			}
			if g.json {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else if err := printTest(cmd.OutOrStdout(), res); err != nil {
				return err
			}
			if !res.AnyEvent {
				return exitError{exitNoEvent}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&service, "service", "", "the service that wrote the lines: front, admin, smtp or antispam (default: guessed from each line)")
	cmd.Flags().StringVar(&cfgPath, "config", "", "bansd configuration file (default: the built-in configuration)")
	return cmd
}

// testLines are the arguments, with "-" replaced by standard input's
// lines, read as replay reads a file: Docker's prefix split off, lines cut
// at docker.max_line.
func testLines(ctx context.Context, args []string, stdin io.Reader, maxLine int) ([]sources.Line, error) {
	var out []sources.Line
	stdinUsed := false
	for _, a := range args {
		r := io.Reader(strings.NewReader(a))
		if a == "-" {
			if stdinUsed {
				return nil, usagef("standard input (-) given twice")
			}
			stdinUsed, r = true, stdin
		} else if strings.ContainsAny(a, "\r\n") {
			return nil, usagef("%q: one line per argument (use - to read several from standard input)", a)
		}
		err := sources.ReadFile(ctx, r, "", maxLine, func(l sources.Line) error {
			l.Text = strings.Clone(l.Text)
			out = append(out, l)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("test: read lines: %w", err)
		}
	}
	return out, nil
}

// testResult is bansctl test's answer; its JSON is the --json output.
type testResult struct {
	Lines []testLine `json:"lines"`
	// AnyEvent: at least one line produced an event (exit status 0).
	AnyEvent bool `json:"any_event"`
}

type testLine struct {
	Line    string `json:"line"`
	Service string `json:"service"`
	// Guessed: the service was guessed from the line's content.
	Guessed bool   `json:"guessed"`
	Class   string `json:"class"`
	// Reason is why the line is not an event (empty when it is one).
	Reason string        `json:"reason,omitempty"`
	Hint   string        `json:"hint,omitempty"`
	Event  *printedEvent `json:"event,omitempty"`
	// Counted: a jail counted the event; NotCounted says why none did.
	Counted    bool         `json:"counted"`
	NotCounted string       `json:"not_counted,omitempty"`
	Decisions  []testDecide `json:"decisions,omitempty"`
}

type testDecide struct {
	Target string `json:"target"`
	Jail   string `json:"jail"`
	Reason string `json:"reason"`
}

func testRun(cfg *configs.Config, lines []sources.Line, service string) (*testResult, error) {
	eng, err := jail.NewEngine(cfg, jail.Options{})
	if err != nil {
		return nil, err
	}
	res := &testResult{Lines: []testLine{}}
	for _, l := range lines {
		tl := testLine{Line: l.Text, Service: service}
		if service == "" {
			tl.Service, tl.Guessed = parse.GuessService(l.Text), true
		}
		if tl.Service == "" {
			tl.Class = parse.ClassUnparsable.String()
			tl.Reason = "no line of front, admin, smtp or antispam: give --service to see how that service reads it"
			if r := readBy(l); r != "" {
				tl.Class = parse.ClassIgnored.String()
				tl.Reason = "service not guessed (" + r + ")"
			}
			res.Lines = append(res.Lines, tl)
			continue
		}
		l.Service = tl.Service
		ev, out := eng.Inspect(l)
		tl.Class, tl.Reason = out.Verdict.Class.String(), out.Verdict.Reason()
		if out.Verdict.Class == parse.ClassForged && tl.Reason == parse.ForgeUnopened {
			tl.Hint = `an nginx failure counts only on a connection its "connected" line opened (same *CONNID and worker): give that line before it`
		}
		if out.Matched {
			res.AnyEvent = true
			tl.Event = eventOf(ev)
			tl.NotCounted = out.NotCounted
			tl.Counted = out.NotCounted == ""
		}
		for _, d := range out.Decisions {
			tl.Decisions = append(tl.Decisions, testDecide{Target: d.Target.String(), Jail: d.Jail, Reason: d.Reason})
		}
		res.Lines = append(res.Lines, tl)
	}
	return res, nil
}

func printTest(w io.Writer, res *testResult) error {
	for i, l := range res.Lines {
		if len(res.Lines) > 1 {
			fmt.Fprintf(w, "line %d: %s\n", i+1, clean(l.Line))
		}
		svc := l.Service
		switch {
		case svc == "":
			svc = "unknown (not guessed from content)"
		case l.Guessed:
			svc += " (guessed from content)"
		}
		fmt.Fprintf(w, "  service: %s\n", svc)
		fmt.Fprintf(w, "  verdict: %s", classWords(l.Class))
		if l.Reason != "" {
			fmt.Fprintf(w, ": %s", l.Reason)
		}
		fmt.Fprintln(w)
		if l.Hint != "" {
			fmt.Fprintf(w, "  hint:    %s\n", l.Hint)
		}
		if e := l.Event; e != nil {
			fmt.Fprintf(w, "  event:   %s (from %s)\n  client:  %s\n", e.Kind, e.Origin, e.Client)
			if e.User != "" {
				fmt.Fprintf(w, "  user:    %s\n", strconv.QuoteToGraphic(e.User))
			}
			if e.Port != 0 {
				fmt.Fprintf(w, "  port:    %d\n", e.Port)
			}
			fmt.Fprintf(w, "  count:   %d\n", e.Count)
			if l.Counted {
				fmt.Fprintln(w, "  counted: yes")
			} else {
				fmt.Fprintf(w, "  counted: no, %s\n", l.NotCounted)
			}
		}
		for _, d := range l.Decisions {
			fmt.Fprintf(w, "  ban:     %s (jail %s): %s\n", d.Target, d.Jail, d.Reason)
		}
	}
	return nil
}

// classWords is a verdict class as the report's words say it.
func classWords(class string) string {
	switch class {
	case parse.ClassForged.String():
		return "set aside as forged"
	case parse.ClassUncorroborated.String():
		return "set aside, uncorroborated by the kernel"
	}
	return class
}

// readBy says what each service's parser makes of a line whose service
// could not be guessed (an access-log line, which front and admin both
// write): "as front: REASON; as admin: REASON", or "" if none reads it.
func readBy(l sources.Line) string {
	var out []string
	for _, svc := range []string{"front", "admin", "smtp", "antispam"} {
		p := parse.NewParser(parse.ParserOptions{MaxConnections: 1})
		l.Service = svc
		switch ev, ok := p.Parse(l); {
		case ok:
			out = append(out, "as "+svc+": "+ev.Kind.String())
		case p.Last().Class != parse.ClassUnparsable:
			out = append(out, "as "+svc+": "+p.Last().Reason())
		}
	}
	return strings.Join(out, "; ")
}
