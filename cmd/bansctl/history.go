package main

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
)

// historyKinds are the kinds --kind accepts (store's event kinds).
var historyKinds = []string{"ban", "manual", "import", "refresh", "unban", "expire", "alarm", "alarm-cleared", "reload", "refused", "start", "stop", "shield", "allow-list"}

func newHistoryCmd(g *globals) *cobra.Command {
	var (
		since, jail, kinds string
		limit              int
	)
	c := &cobra.Command{
		Use:   "history [TARGET|CIDR]",
		Short: "What bansd did: bans, unbans, expiries, alarms, reloads (newest last)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := control.HistoryQuery{Jail: jail, Limit: limit}
			if len(args) == 1 {
				p, err := parseTarget(args[0])
				if err != nil {
					return err
				}
				q.Target = p
			}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				q.Since = t
			}
			if kinds != "" {
				for _, k := range strings.Split(kinds, ",") {
					k = strings.TrimSpace(k)
					if !slices.Contains(historyKinds, k) {
						return usagef("bad --kind %q: one of %s", k, strings.Join(historyKinds, ","))
					}
					q.Kinds = append(q.Kinds, k)
				}
			}
			cl := g.client()
			if g.json {
				bw := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
				if err := cl.HistoryRaw(cmd.Context(), q, bw); err != nil {
					return err
				}
				return bw.Flush()
			}
			evs, err := cl.History(cmd.Context(), q)
			if err != nil {
				return err
			}
			if len(evs) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no events")
				return nil
			}
			return printHistory(cmd.OutOrStdout(), evs)
		},
	}
	c.Flags().StringVar(&since, "since", "", "only events of this last period (24h, 7d)")
	c.Flags().StringVar(&jail, "jail", "", "only events of this jail")
	c.Flags().StringVar(&kinds, "kind", "", "only these kinds, comma-separated: "+strings.Join(historyKinds, ","))
	c.Flags().IntVar(&limit, "limit", 10000, "at most this many (the newest)")
	return c
}

// parseSince reads --since (history, stats): a duration back from now, in
// the config's syntax (24h, 7d, 1w).
func parseSince(s string, now time.Time) (time.Time, error) {
	d, err := configs.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, usagef("bad --since %q: a duration such as 24h or 7d", s)
	}
	return now.Add(-d), nil
}

// parseTarget takes an address or a CIDR.
func parseTarget(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, usagef("bad target %q: an address or a CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func printHistory(w io.Writer, evs []control.HistoryEvent) error {
	t := &table{rows: make([][]string, 0, len(evs)+1)}
	t.add("TIME", "KIND", "TARGET", "JAIL", "DURATION", "LEVEL", "UID", "REASON")
	for _, e := range evs {
		target, dur, level, uid := "-", "-", "-", "-"
		if e.Target.IsValid() {
			target = e.Target.String()
		}
		switch {
		case e.Permanent:
			dur, level = "permanent", strconv.Itoa(e.Level)
		case e.Duration != 0:
			dur = human(time.Duration(e.Duration))
			level = strconv.Itoa(e.Level)
		}
		if e.UID >= 0 {
			uid = strconv.Itoa(e.UID)
		}
		why := e.Reason
		if e.Detail != "" {
			if why != "" {
				why += ": "
			}
			why += e.Detail
		}
		t.add(stamp(e.Time), e.Kind, target, orDash(e.Jail), dur, level, uid, cut(clean(why), 60))
	}
	return t.write(w)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return clean(s)
}

// whyHistory is how many of a target's events `why` ends with.
const whyHistory = 10

// printRecentHistory ends `why` with the address's latest events (its own
// and those of networks that hold it).
func printRecentHistory(cmd *cobra.Command, g *globals, a netip.Addr) error {
	evs, err := g.client().History(cmd.Context(), control.HistoryQuery{Target: netip.PrefixFrom(a, a.BitLen()), Limit: whyHistory})
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	w := cmd.OutOrStdout()
	if len(evs) == 0 {
		fmt.Fprintln(w, "recent history: none")
		return nil
	}
	fmt.Fprintf(w, "recent history (last %d):\n", len(evs))
	return printHistory(w, evs)
}
