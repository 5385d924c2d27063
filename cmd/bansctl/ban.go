package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
)

func newBanCmd(g *globals) *cobra.Command {
	var (
		dur, reason, file string
		force, yes        bool
	)
	c := &cobra.Command{
		Use:   "ban [flags] TARGET... | --from-file FILE",
		Short: "Ban addresses or CIDRs (or import a blocklist file)",
		Long: `Ban addresses and CIDRs now, in the kernel and in bansd's store, for
--for (default: the daemon's [ban] manual_bantime, 24h) or, with
--for permanent, until an unban: the kernel element then has no timeout.
Never banned, with or without --force: loopback, this host's addresses,
Docker networks and gateways, Mailu's SUBNET/SUBNET6 and REAL_IP_FROM.
Banned only with --force: ignoreip and AUTH_RATELIMIT_EXEMPTION entries.
A target wider than /16 (IPv4) or /32 (IPv6) needs --yes.
--from-file reads one address or CIDR per line; '#' starts a comment. A bad
line stops the import before anything is banned.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (file == "") == (len(args) == 0) {
				return usagef("give targets or --from-file, not both and not neither")
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
			var targets []netip.Prefix
			if file != "" {
				var err error
				if targets, err = readTargetFile(file); err != nil {
					return err
				}
				if len(targets) == 0 {
					return fmt.Errorf("%s: no targets in the file", file)
				}
			} else {
				for _, a := range args {
					p, err := configs.ParsePrefix(a)
					if err != nil {
						return usagef("%v", err)
					}
					targets = append(targets, p)
				}
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
	c.Flags().BoolVar(&force, "force", false, "ban even targets an allow-list entry protects (ignoreip); never this host, Docker or Mailu's SUBNET")
	c.Flags().BoolVar(&yes, "yes", false, "confirm targets wider than /16 (IPv4) or /32 (IPv6)")
	c.Flags().StringVar(&file, "from-file", "", "read targets from FILE ('-' for stdin)")
	return c
}

// maxFileErrors is how many bad lines are reported before giving up.
const maxFileErrors = 20

// readTargetFile parses a blocklist; every bad line is named file:line and
// nothing is returned unless all lines are good.
func readTargetFile(name string) ([]netip.Prefix, error) {
	var r io.Reader
	if name == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	return parseTargets(name, r)
}

func parseTargets(name string, r io.Reader) ([]netip.Prefix, error) {
	var (
		out  []netip.Prefix
		errs []string
		n    int
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		n++
		ln := sc.Text()
		if i := strings.IndexByte(ln, '#'); i >= 0 {
			ln = ln[:i]
		}
		ln = strings.TrimSpace(ln)
		if ln == "" {
			continue
		}
		p, err := configs.ParsePrefix(ln)
		if err != nil {
			if len(errs) < maxFileErrors {
				errs = append(errs, fmt.Sprintf("%s:%d: %v", name, n, err))
			} else if len(errs) == maxFileErrors {
				errs = append(errs, "... more bad lines")
			}
			continue
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, n+1, err)
	}
	if len(errs) > 0 {
		return nil, errors.New("nothing banned, bad lines:\n  " + strings.Join(errs, "\n  "))
	}
	return out, nil
}
