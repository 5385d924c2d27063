package main

import (
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
)

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show sources (and how each rebuilt its windows at start), jails, the firewall, notify channels, alarms and the config",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := g.client().Status(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			return printStatus(cmd.OutOrStdout(), st)
		},
	}
}

func printStatus(w io.Writer, st control.Status) error {
	now := time.Now()
	fmt.Fprintf(w, "bansd %s, pid %d, up %s\n", st.Version, st.PID, human(now.Sub(st.Started)))
	file := st.Config.File
	if file == "" {
		file = "(embedded default)"
	}
	fmt.Fprintf(w, "config: %s, loaded %s\n", file, stamp(st.Config.LoadedAt))
	if r := st.Config.LastReload; r != nil {
		if r.OK {
			fmt.Fprintf(w, "last reload: ok at %s\n", stamp(r.Time))
		} else {
			fmt.Fprintf(w, "last reload: REFUSED at %s: %s (the previous config keeps running)\n", stamp(r.Time), clean(r.Error))
		}
	}

	fmt.Fprintf(w, "\nDocker: %s", st.Docker.State)
	if st.Docker.Project != "" {
		fmt.Fprintf(w, ", project %s", st.Docker.Project)
	}
	if st.Docker.Error != "" {
		fmt.Fprintf(w, " (%s)", clean(st.Docker.Error))
	}
	fmt.Fprintln(w)
	if len(st.Sources) > 0 {
		t := &table{}
		t.add("SERVICE", "STATE", "LINES", "LAG", "RECONNECTS", "LAST ERROR")
		for _, s := range st.Sources {
			lastErr := "-"
			if s.LastError != "" {
				lastErr = cut(clean(s.LastError), 60)
			}
			t.add(s.Service, s.State, strconv.FormatUint(s.Lines, 10), human(time.Duration(s.LagSeconds*float64(time.Second))), strconv.FormatUint(s.Reconnects, 10), lastErr)
		}
		if err := t.write(w); err != nil {
			return err
		}
		if err := printWarmup(w, st.Sources); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "\nJails:")
	t := &table{}
	t.add("JAIL", "ENABLED", "EVENTS", "DECISIONS", "ACTIVE BANS")
	for _, j := range st.Jails {
		t.add(j.Name, strconv.FormatBool(j.Enabled), strconv.FormatUint(j.Events, 10), strconv.FormatUint(j.Decisions, 10), strconv.Itoa(j.ActiveBans))
	}
	if err := t.write(w); err != nil {
		return err
	}
	if st.PermanentBans > 0 {
		fmt.Fprintf(w, "Permanent bans (no end, until unban): %d\n", st.PermanentBans)
	}

	fw := st.Firewall
	fmt.Fprintf(w, "\nFirewall: table %s ", fw.Table)
	if fw.Present {
		fmt.Fprintf(w, "present, hook %s priority %d, %d elements, dropped %d packets (%d bytes)\n", fw.Hook, fw.Priority, fw.Elements, fw.DroppedPackets, fw.DroppedBytes)
	} else {
		fmt.Fprintln(w, "MISSING")
	}
	if fw.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", clean(fw.Error))
	}

	at := st.Attribution
	switch at.Mode {
	case "kernel":
		fmt.Fprintf(w, "\nAttribution: kernel (a line counts only for a connection the kernel saw), ports %v, %d corroborated\n", at.Ports, at.Witnessed)
	default:
		fmt.Fprintf(w, "\nAttribution: TEXT RULES ONLY (bans uncorroborated): %s\n", clean(at.Why))
	}
	if len(at.Uncorroborated) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(at.Uncorroborated)) {
			if n := at.Uncorroborated[k]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", k, n))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "  not counted: %s\n", strings.Join(parts, ", "))
		}
	}
	if len(at.WarmupUncorroborated) > 0 || at.WarmupWitnessed > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(at.WarmupUncorroborated)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, at.WarmupUncorroborated[k]))
		}
		fmt.Fprintf(w, "  warm-up: %d corroborated", at.WarmupWitnessed)
		if len(parts) > 0 {
			fmt.Fprintf(w, ", not counted: %s", strings.Join(parts, ", "))
		}
		fmt.Fprintln(w)
	}
	if at.Problem != "" {
		fmt.Fprintf(w, "  problem: %s\n", clean(at.Problem))
	}

	printCrowdSec(w, st.CrowdSec)
	printBlocklists(w, st.Blocklists)
	if err := printNotify(w, st.Notify); err != nil {
		return err
	}
	printShield(w, st.Shield)

	if len(st.Alarms) == 0 {
		fmt.Fprintln(w, "\nAlarms: none")
		return nil
	}
	fmt.Fprintln(w, "\nAlarms:")
	for _, a := range st.Alarms {
		what := a.Kind
		if a.Addr != "" {
			what += " " + a.Addr
		}
		fmt.Fprintf(w, "  %s: %d time(s), last %s\n", what, a.Count, stamp(a.Last))
		if a.Line != "" {
			fmt.Fprintf(w, "    line: %s\n", cut(clean(a.Line), 200))
		}
		if a.Fix != "" {
			fmt.Fprintf(w, "    fix:  %s\n", a.Fix)
		}
	}
	return nil
}

func newWhyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "why ADDRESS",
		Short: "Explain an address: its ban and evidence, window counts, history, or what protects it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := netip.ParseAddr(args[0])
			if err != nil {
				return usagef("bad address %q", args[0])
			}
			why, err := g.client().Why(cmd.Context(), a.Unmap())
			if err != nil {
				return err
			}
			if g.json {
				return writeJSON(cmd.OutOrStdout(), why)
			}
			printWhy(cmd.OutOrStdout(), why)
			return printRecentHistory(cmd, g, a.Unmap())
		},
	}
}

func printWhy(w io.Writer, why control.Why) {
	now := time.Now()
	fmt.Fprintf(w, "%s\n", why.Addr)
	if why.Protected != "" {
		fmt.Fprintf(w, "  never banned: %s\n", why.Protected)
	}
	if len(why.Bans) == 0 {
		fmt.Fprintln(w, "  not banned")
	}
	for _, b := range why.Bans {
		how := "by jail " + b.Jail
		if strings.HasPrefix(b.Jail, configs.BlocklistJailPrefix) {
			how = "by " + strings.Replace(b.Jail, ":", " ", 1)
		} else if b.Manual {
			how = "manually"
		}
		left := remaining(b, now)
		if !b.Permanent {
			left += " left"
		}
		fmt.Fprintf(w, "  BANNED %s %s (origin %s), level %d, since %s, %s\n", b.Target, how, clean(originOf(b)), b.Level, stamp(b.Since), left)
		if b.Reason != "" {
			fmt.Fprintf(w, "    reason: %s\n", clean(b.Reason))
		}
		for _, e := range b.Evidence {
			fmt.Fprintf(w, "    | %s\n", clean(e))
		}
	}
	if len(why.Windows) > 0 {
		fmt.Fprintln(w, "  counting:")
		for _, win := range why.Windows {
			fmt.Fprintf(w, "    %-16s %-22s %d/%d in %s", win.Jail, win.Target, win.Count, win.MaxRetry, win.FindTime)
			if win.Addresses > 0 {
				fmt.Fprintf(w, " from %d address(es)", win.Addresses)
			}
			fmt.Fprintln(w)
		}
	} else {
		fmt.Fprintln(w, "  no recent events")
	}
	if why.Offences > 0 {
		fmt.Fprintf(w, "  history: %d offence(s), last ban %s\n", why.Offences, stamp(why.LastBan))
	}
}

// printWarmup shows how each service's windows were rebuilt at start.
func printWarmup(w io.Writer, srcs []control.SourceStatus) error {
	t := &table{}
	t.add("SERVICE", "WARM-UP", "LINES", "LOG SPAN", "TOOK", "WHY")
	n := 0
	for _, s := range srcs {
		wu := s.Warmup
		if wu == nil {
			continue
		}
		n++
		why := "-"
		if wu.Why != "" {
			why = clean(wu.Why)
		}
		lines := strconv.Itoa(wu.Lines)
		if wu.Skipped > 0 {
			lines += fmt.Sprintf(" (+%d skipped)", wu.Skipped)
		}
		t.add(s.Service, wu.State, lines, human(wu.Until.Sub(wu.From)), fmt.Sprintf("%.2fs", wu.Seconds), why)
	}
	if n == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nWarm-up (windows rebuilt from the log before each cursor):")
	return t.write(w)
}
