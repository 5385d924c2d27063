package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
)

func newUnbanCmd(g *globals) *cobra.Command {
	var (
		jail               string
		all, yes, covering bool
	)
	c := &cobra.Command{
		Use:   "unban TARGET... [--covering] | --jail J | --all --yes",
		Short: "Lift bans (kernel and store) and forget the targets' counts",
		Long: `Lift bans (kernel and store) and forget the targets' counts.
A target inside a banned network stays dropped: unban names the covering
ban(s) and exits 1, or lifts them too with --covering.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			modes := 0
			for _, on := range []bool{len(args) > 0, jail != "", all} {
				if on {
					modes++
				}
			}
			if modes != 1 {
				return usagef("give targets, --jail or --all (exactly one)")
			}
			if all && !yes {
				return usagef("--all lifts every ban: add --yes to confirm")
			}
			if covering && len(args) == 0 {
				return usagef("--covering goes with targets")
			}
			req := control.UnbanRequest{Jail: jail, All: all, Covering: covering}
			for _, a := range args {
				p, err := configs.ParsePrefix(a)
				if err != nil {
					return usagef("%v", err)
				}
				req.Targets = append(req.Targets, p)
			}
			if jail != "" {
				if err := checkJail(cmd.Context(), g.client(), jail); err != nil {
					return err
				}
			}
			res, err := g.client().Unban(cmd.Context(), req)
			if err != nil {
				return err
			}
			stillDropped := len(res.Covering) > 0 && !res.CoveringLifted
			if g.json {
				if err := writeJSON(cmd.OutOrStdout(), res); err != nil || !stillDropped {
					return err
				}
				return errStillBanned
			}
			fmt.Fprintf(cmd.OutOrStdout(), "unbanned %d target(s)\n", res.Unbanned)
			for _, b := range res.Covering {
				if res.CoveringLifted {
					fmt.Fprintf(cmd.OutOrStdout(), "lifted covering ban %s (%s)\n", b.Target, b.Jail)
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "still dropped: covered by the ban of %s (%s, %s)\n", b.Target, b.Jail, remaining(b, time.Now()))
				}
			}
			if stillDropped {
				fmt.Fprintln(cmd.ErrOrStderr(), "add --covering to lift the covering ban(s) too")
				return errStillBanned
			}
			if len(args) > 0 && res.Unbanned < len(args) {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d target(s) had no ban\n", len(args)-res.Unbanned)
			}
			return nil
		},
	}
	c.Flags().StringVar(&jail, "jail", "", "lift every ban of this jail")
	c.Flags().BoolVar(&all, "all", false, "lift every ban")
	c.Flags().BoolVar(&yes, "yes", false, "confirm --all")
	c.Flags().BoolVar(&covering, "covering", false, "also lift the bans of wider networks that hold a target")
	return c
}

// errStillBanned: a target is still dropped by a covering ban (exit 1;
// what covers it has been printed).
var errStillBanned = errors.New("a target is still banned by a covering network ban")

// checkJail refuses a jail name bansd does not know, naming those it
// does: the configured jails and any jail that holds bans (an import's).
func checkJail(ctx context.Context, c *control.Client, jail string) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, j := range st.Jails {
		known[j.Name] = true
	}
	if !known[jail] {
		bans, err := c.Bans(ctx, "")
		if err != nil {
			return err
		}
		for _, b := range bans.Bans {
			known[b.Jail] = true
		}
	}
	if known[jail] {
		return nil
	}
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	sort.Strings(names)
	return usagef("no jail %q; the jails are: %s", jail, strings.Join(names, ", "))
}
