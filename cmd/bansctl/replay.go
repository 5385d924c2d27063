package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/sources"
)

func newReplayCmd() *cobra.Command {
	var cfgPath string
	var asJSON bool
	var in replayFlags
	cmd := &cobra.Command{
		Use:   "replay [--config FILE] [--json] [--print CLASS] [[SERVICE=]FILE ...] [--journal FILE ...] [--docker [--project P] [--since T] [--until T]]",
		Short: "Run the jail engine over saved container logs and report what it would ban, and why",
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
bansd does live. FILE "-" is standard input. A FILE without SERVICE= gets
the service its first lines look like (the report says it was guessed).
Nothing is banned: replay only reports.

The report gives, per input and per service, how many lines were matched
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
		RunE: func(cmd *cobra.Command, args []string) error {
			inputs, err := parseReplayArgs(args)
			if err != nil {
				return err
			}
			opt, err := in.options()
			if err != nil {
				return err
			}
			cfg, err := configs.Load(cfgPath)
			if err != nil {
				return err
			}
			rep, err := replayFrom(cmd.Context(), cfg, inputs, in, opt, cmd.InOrStdin(), cmd.ErrOrStderr())
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
	in.register(cmd)
	return cmd
}

type replayInput struct {
	service, path string
	// guessed: no SERVICE= was given; service comes from the content.
	guessed bool
	// mixed: a journal, whose entries name their own services.
	mixed bool
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

// replay replays files (tests and benchmarks call it directly).
func replay(ctx context.Context, cfg *configs.Config, inputs []replayInput, stdin io.Reader, opt replayOptions) (*replayReport, error) {
	return replayFrom(ctx, cfg, inputs, replayFlags{}, opt, stdin, io.Discard)
}

// fileSource is a file of one service's raw container output.
func fileSource(in replayInput, r io.Reader, maxLine int) replaySource {
	name, service := in.String(), in.service
	return replaySource{name: name, in: in, transient: true, read: func(ctx context.Context, fn func(sources.Line) error) (int64, error) {
		c, err := sources.ReadFileTransient(ctx, r, service, maxLine, fn)
		return c.Cut, err
	}}
}
