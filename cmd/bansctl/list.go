package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/bansd/bansd/control"
)

func newListCmd(g *globals) *cobra.Command {
	var jail string
	c := &cobra.Command{
		Use:   "list",
		Short: "List active bans",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl := g.client()
			if g.json {
				// The daemon already streams the exact contract shape.
				bw := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
				if err := cl.BansRaw(cmd.Context(), jail, bw); err != nil {
					return err
				}
				return bw.Flush()
			}
			l, err := cl.Bans(cmd.Context(), jail)
			if err != nil {
				return err
			}
			if len(l.Bans) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no active bans")
				return nil
			}
			return printBans(cmd.OutOrStdout(), l.Bans, time.Now())
		},
	}
	c.Flags().StringVar(&jail, "jail", "", "only the bans of this jail")
	return c
}

// originOf is "local" for daemons that predate the field.
func originOf(b control.Ban) string {
	if b.Origin == "" {
		return "local"
	}
	return b.Origin
}

// remaining is how long b still holds: "permanent" for a ban without end.
func remaining(b control.Ban, now time.Time) string {
	if b.Permanent {
		return "permanent"
	}
	return human(b.Until.Sub(now))
}

func printBans(w io.Writer, bans []control.Ban, now time.Time) error {
	t := &table{rows: make([][]string, 0, len(bans)+1)}
	t.add("TARGET", "JAIL", "ORIGIN", "REASON", "SINCE", "REMAINING", "LEVEL", "MANUAL")
	for _, b := range bans {
		manual := "no"
		if b.Manual {
			manual = "yes"
		}
		t.add(b.Target.String(), b.Jail, cut(clean(originOf(b)), 48), cut(clean(b.Reason), 48), stamp(b.Since), remaining(b, now), strconv.Itoa(b.Level), manual)
	}
	return t.write(w)
}
