package main

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bansd/bansd/blocklist"
	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
)

func newBanCmd(g *globals) *cobra.Command {
	var (
		dur, reason, file       string
		force, yes, skipInvalid bool
	)
	c := &cobra.Command{
		Use:   "ban [flags] TARGET... | --from-file FILE|-",
		Short: "Ban addresses or CIDRs (or import a blocklist file)",
		Long: `Ban addresses and CIDRs now, in the kernel and in bansd's store, for
--for (default: the daemon's [ban] manual_bantime, 24h) or, with
--for permanent, until an unban: the kernel element then has no timeout.
Never banned, with or without --force: loopback, this host's addresses,
Docker networks and gateways, Mailu's SUBNET/SUBNET6 and REAL_IP_FROM.
Banned only with --force: ignoreip, AUTH_RATELIMIT_EXEMPTION and
bansctl allow entries. A target wider than /16 (IPv4) or /32 (IPv6) needs
--yes (in a list: skipped and listed without it).
--from-file reads a list ('-': stdin): Spamhaus DROP/EDROP/DROPv6
("192.0.2.0/24 ; SBL123"), FireHOL .netset or a plain list, one address or
CIDR per line, '#' and ';' starting comments. A bad line stops the import
before anything is banned, and every bad line is named FILE:LINE; with
--skip-invalid the good lines are banned and the bad ones listed. Entries a
never-ban rule protects (or too wide to ban) are skipped and listed, never
banned.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (file == "") == (len(args) == 0) {
				return usagef("give targets or --from-file, not both and not neither")
			}
			if file != "" && force {
				return usagef("--force does not apply to --from-file: a list's protected entries are skipped; ban one by name with --force")
			}
			if file == "" && skipInvalid {
				return usagef("--skip-invalid goes with --from-file")
			}
			if dur != "" && dur != "permanent" {
				d, err := configs.ParseDuration(dur)
				if err != nil {
					return usagef("--for: %v", err)
				}
				if d <= 0 {
					return usagef("--for: want a positive duration such as \"1h\", \"1d\" or \"1w\", or \"permanent\", got %q", dur)
				}
			}
			if file != "" {
				return banFile(cmd, g, file, skipInvalid, control.BanRequest{Duration: dur, Reason: reason, Yes: yes, SkipProtected: true})
			}
			var targets []netip.Prefix
			for _, a := range args {
				p, err := configs.ParsePrefix(a)
				if err != nil {
					return usagef("%v", err)
				}
				targets = append(targets, p)
			}
			res, err := g.client().Ban(cmd.Context(), control.BanRequest{Targets: targets, Duration: dur, Reason: reason, Force: force, Yes: yes})
			if err != nil {
				return err
			}
			if g.json {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "banned %d target(s)\n", res.Banned)
			return nil
		},
	}
	c.Flags().StringVar(&dur, "for", "", `ban duration, e.g. "1h", "1d", "1w", or "permanent" (default: [ban] manual_bantime)`)
	c.Flags().StringVar(&reason, "reason", "", "why, shown in list and why")
	c.Flags().BoolVar(&force, "force", false, "ban even targets an allow-list entry protects (ignoreip, bansctl allow); never this host, Docker or Mailu's SUBNET")
	c.Flags().BoolVar(&yes, "yes", false, "confirm targets wider than /16 (IPv4) or /32 (IPv6)")
	c.Flags().StringVar(&file, "from-file", "", "read targets from a list FILE ('-' for stdin)")
	c.Flags().BoolVar(&skipInvalid, "skip-invalid", false, "with --from-file: ban the valid lines and list the bad ones instead of refusing all")
	return c
}

// maxFileErrors is how many bad lines are named before the rest are counted.
const maxFileErrors = 1000

// banFile imports a list file: every bad line is named FILE:LINE, and
// nothing is banned unless all are good or skipInvalid.
func banFile(cmd *cobra.Command, g *globals, name string, skipInvalid bool, req control.BanRequest) error {
	p, err := readTargetFile(cmd.InOrStdin(), name)
	if err != nil {
		return err
	}
	shown := name
	if name == "-" {
		shown = "stdin"
	}
	if p.BadCount > 0 && !skipInvalid {
		return fmt.Errorf("nothing banned: %d bad line(s) (--skip-invalid bans the others):\n%s", p.BadCount, p.BadReport(shown))
	}
	if len(p.Entries) == 0 {
		return fmt.Errorf("%s: no targets in the file", shown)
	}
	req.Targets = p.Targets()
	res, err := g.client().Ban(cmd.Context(), req)
	if err != nil {
		return err
	}
	if g.json {
		return writeJSON(cmd.OutOrStdout(), struct {
			control.BanResult
			Invalid []string `json:"invalid,omitempty"`
		}{res, badLines(p, shown)})
	}
	line := make(map[netip.Prefix]int, len(p.Entries))
	for _, e := range p.Entries {
		line[e.Target] = e.Line
	}
	w := cmd.ErrOrStderr()
	for _, s := range res.Skipped {
		fmt.Fprintf(w, "%s:%d: %s skipped: %s\n", shown, line[s.Target], s.Target, s.Why)
	}
	if p.BadCount > 0 {
		fmt.Fprintln(w, p.BadReport(shown))
	}
	fmt.Fprintf(cmd.OutOrStdout(), "banned %d target(s) from %s; skipped %d protected, %d invalid line(s)\n", res.Banned, shown, len(res.Skipped), p.BadCount)
	return nil
}

func badLines(p blocklist.Parsed, name string) []string {
	if p.BadCount == 0 {
		return nil
	}
	return strings.Split(p.BadReport(name), "\n")
}

// readTargetFile parses a list file ('-': in).
func readTargetFile(in io.Reader, name string) (blocklist.Parsed, error) {
	r := in
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return blocklist.Parsed{}, err
		}
		defer f.Close()
		r = f
	}
	p, err := blocklist.Parse(r, blocklist.Limits{Bad: maxFileErrors})
	if err != nil {
		return p, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}
