package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
)

func newAllowCmd(g *globals) *cobra.Command {
	var dur, reason string
	c := &cobra.Command{
		Use:   "allow ADDR|CIDR [--for D] [--reason TEXT] | allow list | allow remove ADDR|CIDR",
		Short: "Never ban an address or network at run time, and lift the bans that cover it",
		Long: `bansctl allow puts an address or network on bansd's run-time allow-list,
kept in its state file (it survives restarts): the jails stop counting its
attempts (an allowed-client alarm says when it keeps failing), and manual bans
of it are refused unless --force. With --for the entry ends on its own.

Every ban that covers part of it is lifted at once: a ban of the same range or
a narrower one is lifted; a ban of a wider network is split around it (the rest
of the network stays banned, with the same jail, reason and end, with no moment
unenforced). The output says which, per ban; "bansctl history --kind
allow-list,unban" keeps it.`,
		Example: `  bansctl allow 203.0.113.7 --for 1d --reason "office NAT"
  bansctl allow list
  bansctl allow remove 203.0.113.7`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := configs.ParsePrefix(args[0])
			if err != nil {
				return usagef("%v", err)
			}
			req := control.AllowRequest{Target: p, Reason: reason}
			if cmd.Flags().Changed("for") {
				if d, err := configs.ParseDuration(dur); err != nil || d <= 0 {
					return usagef("bad --for %q: want e.g. 30m, 12h, 7d", dur)
				}
				req.Duration = dur
			}
			res, err := g.client().Allow(cmd.Context(), req)
			if err != nil {
				return err
			}
			if g.json {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			printAllowed(cmd.OutOrStdout(), res)
			return nil
		},
	}
	c.Flags().StringVar(&dur, "for", "", "how long the entry lasts (30m, 12h, 7d; default: until removed)")
	c.Flags().StringVar(&reason, "reason", "", "why, for the list and the history")
	c.AddCommand(newAllowListCmd(g), newAllowRemoveCmd(g))
	return c
}

func printAllowed(w io.Writer, res control.AllowResult) {
	e := res.Entry
	until := "until removed"
	if !e.Until.IsZero() {
		until = "until " + stamp(e.Until)
	}
	fmt.Fprintf(w, "allowed %s %s\n", e.Target, until)
	for _, l := range res.Lifts {
		if l.Action == "split" {
			rest := make([]string, len(l.Remaining))
			for i, p := range l.Remaining {
				rest[i] = p.String()
			}
			fmt.Fprintf(w, "  split  %s (jail %s) around it: still banned %s\n", l.Target, clean(l.Jail), strings.Join(rest, " "))
			continue
		}
		fmt.Fprintf(w, "  lifted %s (jail %s)\n", l.Target, clean(l.Jail))
	}
	if len(res.Lifts) == 0 {
		fmt.Fprintln(w, "  no ban covered it")
	}
}

func newAllowListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the run-time allow-list",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.client().AllowList(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return writeJSON(cmd.OutOrStdout(), l)
			}
			if len(l.Entries) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no allow-list entries")
				return nil
			}
			return printAllowList(cmd.OutOrStdout(), l.Entries, time.Now())
		},
	}
}

func printAllowList(w io.Writer, entries []control.AllowEntry, now time.Time) error {
	t := &table{rows: make([][]string, 0, len(entries)+1)}
	t.add("TARGET", "SINCE", "REMAINING", "BY", "REASON")
	for _, e := range entries {
		left := "permanent"
		if !e.Until.IsZero() {
			left = human(e.Until.Sub(now))
		}
		by := "-"
		if e.UID >= 0 {
			by = fmt.Sprintf("uid %d", e.UID)
		}
		t.add(e.Target.String(), stamp(e.Since), left, by, clean(e.Reason))
	}
	return t.write(w)
}

func newAllowRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove ADDR|CIDR",
		Short: "Take an entry off the run-time allow-list (counting starts again from zero)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := configs.ParsePrefix(args[0])
			if err != nil {
				return usagef("%v", err)
			}
			e, err := g.client().AllowRemove(cmd.Context(), control.AllowRemoveRequest{Target: p})
			if err != nil {
				return err
			}
			if g.json {
				return writeJSON(cmd.OutOrStdout(), e)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s from the allow-list\n", e.Target)
			return nil
		},
	}
}
