package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/stats"
)

func newStatsCmd(g *globals) *cobra.Command {
	var (
		since string
		top   int
	)
	c := &cobra.Command{
		Use:   "stats",
		Short: "Failed attempts, bans and alarms per hour, top jails, networks and repeat offenders",
		Long: `Failed attempts, bans and alarms per hour from bansd's history, as a bar
chart on a terminal (plain columns otherwise, --json for scripts), then the
jails and networks (/24 for IPv4, /64 for IPv6) with the most bans and the
repeat offenders (banned more than once in the period, or escalated).

Failed attempts are the events the jails saw in Mailu's logs (failed logins,
unknown users, AUTH on port 25, rate-limited attempts, relay denials, invalid
API tokens, unknown recipients, scans), counted the way bansd_events_total
counts them: every one, whether or not it led to a ban, corroborated or not.
bansd writes them to its store once a minute per hour and kind, so an attempt
may land in the hour after its own, and attempts are kept as long as the
history (history.max_age). Bans count the jails' bans, the operator's, imports
and lengthened live bans. The period is cut to a year.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if top <= 0 {
				return usagef("bad --top %d: a positive number", top)
			}
			from, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			s, err := g.client().Stats(cmd.Context(), control.StatsQuery{Since: from, Top: top})
			if err != nil {
				return err
			}
			if g.json {
				return writeJSON(cmd.OutOrStdout(), s)
			}
			out := cmd.OutOrStdout()
			return printStats(out, s, isTerminal(out), time.Local)
		},
	}
	c.Flags().StringVar(&since, "since", "7d", "the last period summed up (24h, 7d)")
	c.Flags().IntVar(&top, "top", 10, "how many jails, networks and offenders to list")
	return c
}

// isTerminal: stdout is a terminal, so the chart may use block characters.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Bar widths of the chart's columns, in character cells.
const (
	attemptsBar = 30
	bansBar     = 20
	alarmsBar   = 10
)

// printStats writes s: on a terminal a bar per hour and series, else the
// same rows as plain numbers.
func printStats(w io.Writer, s stats.Summary, tty bool, loc *time.Location) error {
	const hourFmt = "2006-01-02 15:04"
	t := s.Totals
	fmt.Fprintf(w, "from %s to %s\n", s.Since.In(loc).Format(hourFmt), s.Until.In(loc).Format(hourFmt))
	fmt.Fprintf(w, "attempts %d, bans %d (%d lengthened), alarms %d, unbans %d, expiries %d\n",
		t.Attempts, t.Bans, t.Refreshes, t.Alarms, t.Unbans, t.Expiries)
	if len(t.AttemptsByKind) > 0 {
		kinds := make([]string, 0, len(t.AttemptsByKind))
		for k := range t.AttemptsByKind {
			kinds = append(kinds, k)
		}
		sort.Slice(kinds, func(i, j int) bool {
			a, b := t.AttemptsByKind[kinds[i]], t.AttemptsByKind[kinds[j]]
			return a > b || a == b && kinds[i] < kinds[j]
		})
		parts := make([]string, len(kinds))
		for i, k := range kinds {
			parts[i] = clean(k) + " " + strconv.FormatUint(t.AttemptsByKind[k], 10)
		}
		fmt.Fprintf(w, "attempts by kind: %s\n", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)

	var maxA, maxB, maxL uint64
	for _, h := range s.Hours {
		maxA, maxB, maxL = max(maxA, h.Attempts), max(maxB, h.Bans), max(maxL, h.Alarms)
	}
	tb := &table{rows: make([][]string, 0, len(s.Hours)+1)}
	tb.add("HOUR", "ATTEMPTS", "BANS", "ALARMS")
	for _, h := range s.Hours {
		a, b, l := strconv.FormatUint(h.Attempts, 10), strconv.FormatUint(h.Bans, 10), strconv.FormatUint(h.Alarms, 10)
		if tty {
			a = bar(h.Attempts, maxA, attemptsBar) + " " + a
			b = bar(h.Bans, maxB, bansBar) + " " + b
			l = bar(h.Alarms, maxL, alarmsBar) + " " + l
		}
		tb.add(h.Start.In(loc).Format(hourFmt), a, b, l)
	}
	if err := tb.write(w); err != nil {
		return err
	}

	lists := []struct {
		title string
		cs    []stats.Count
	}{{"TOP JAILS", s.Jails}, {"TOP NETWORKS", s.Networks}}
	for _, l := range lists {
		fmt.Fprintln(w)
		if len(l.cs) == 0 {
			fmt.Fprintln(w, strings.ToLower(l.title)+": none")
			continue
		}
		tb := &table{}
		tb.add(l.title, "BANS")
		for _, c := range l.cs {
			tb.add(orDash(c.Name), strconv.FormatUint(c.Bans, 10))
		}
		if err := tb.write(w); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	if len(s.Offenders) == 0 {
		fmt.Fprintln(w, "repeat offenders: none")
		return nil
	}
	tb = &table{}
	tb.add("REPEAT OFFENDERS", "BANS", "LEVEL", "LAST")
	for _, o := range s.Offenders {
		tb.add(o.Target.String(), strconv.FormatUint(o.Bans, 10), strconv.Itoa(o.MaxLevel), o.Last.In(loc).Format(hourFmt))
	}
	return tb.write(w)
}

// eighths are the partial blocks a bar ends with, in eighths of a cell.
var eighths = []string{"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"}

// bar draws v against top in at most width cells, padded to width; any
// v > 0 shows at least an eighth, so a quiet hour is not mistaken for none.
func bar(v, top uint64, width int) string {
	n := 0
	if top > 0 {
		n = int(v * uint64(width*8) / top)
	}
	if v > 0 && n == 0 {
		n = 1
	}
	s := strings.Repeat("█", n/8) + eighths[n%8]
	cells := n / 8
	if n%8 != 0 {
		cells++
	}
	return s + strings.Repeat(" ", width-cells)
}
