package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"net/url"
	"sort"
	"time"

	"github.com/spf13/cobra"
	// Pure-Go sqlite (no cgo): Fail2Ban's database is sqlite, and a
	// hand-written B-tree reader would have to follow its file format,
	// WAL and all.
	_ "modernc.org/sqlite"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
)

const (
	defaultFail2BanDB = "/var/lib/fail2ban/fail2ban.sqlite3"
	importJail        = "fail2ban"
	// permanentFor is how long a Fail2Ban ban without end (bantime -1)
	// lasts in bansd: its default ban.bantime_max.
	permanentFor = 5 * 7 * 24 * time.Hour
)

// f2bBan is one address Fail2Ban holds banned now.
type f2bBan struct {
	Addr   netip.Prefix
	Jail   string
	Remain time.Duration
}

func newImportCmd(g *globals) *cobra.Command {
	imp := &cobra.Command{Use: "import", Short: "Take over bans from another tool"}
	imp.AddCommand(&cobra.Command{
		Use:   "fail2ban [DB]",
		Short: "Ban, under jail fail2ban, every address Fail2Ban's database holds banned, for its remaining time",
		Long: `Reads Fail2Ban's own sqlite database (default ` + defaultFail2BanDB + `, read-only)
and bans each address it holds banned now for the time its Fail2Ban ban has
left, under jail "fail2ban". A ban without end (bantime -1) gets 5w.
Addresses a never-ban rule protects are refused and listed, as with ban.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db := defaultFail2BanDB
			if len(args) == 1 {
				db = args[0]
			}
			bans, err := readFail2Ban(cmd.Context(), db, time.Now())
			if err != nil {
				return err
			}
			n := 0
			// One request per (jail, remaining second): bansd bans a
			// request's targets for one duration.
			type key struct {
				jail string
				secs int64
			}
			groups := map[key][]netip.Prefix{}
			for _, b := range bans {
				k := key{b.Jail, int64(b.Remain / time.Second)}
				groups[k] = append(groups[k], b.Addr)
			}
			keys := make([]key, 0, len(groups))
			for k := range groups {
				keys = append(keys, k)
			}
			sort.Slice(keys, func(i, j int) bool {
				if keys[i].jail != keys[j].jail {
					return keys[i].jail < keys[j].jail
				}
				return keys[i].secs < keys[j].secs
			})
			for _, k := range keys {
				res, err := g.client().Ban(cmd.Context(), control.BanRequest{
					Targets: groups[k], Duration: fmt.Sprintf("%ds", k.secs), Jail: importJail,
					Reason: "imported from Fail2Ban jail " + k.jail,
				})
				if err != nil {
					return fmt.Errorf("after %d of %d imported: %w", n, len(bans), err)
				}
				n += res.Banned
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d of %d ban(s) from %s into jail %s\n", n, len(bans), db, importJail)
			return nil
		},
	})
	return imp
}

// readFail2Ban returns the addresses banned at now, each once with the
// longest time left. bips (Fail2Ban 0.11+) holds each address's latest
// ban; older databases only have bans.
func readFail2Ban(ctx context.Context, path string, now time.Time) ([]f2bBan, error) {
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	table := "bans"
	var name string
	if db.QueryRowContext(ctx, `SELECT name FROM sqlite_master WHERE type='table' AND name='bips'`).Scan(&name) == nil {
		table = "bips"
	}
	rows, err := db.QueryContext(ctx, `SELECT jail, ip, timeofban, bantime FROM `+table)
	if err != nil {
		return nil, fmt.Errorf("%s: not a Fail2Ban database? %w", path, err)
	}
	defer rows.Close()
	best := map[netip.Prefix]f2bBan{}
	for rows.Next() {
		var (
			jail, ip           string
			timeofban, bantime sql.NullInt64
		)
		if err := rows.Scan(&jail, &ip, &timeofban, &bantime); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		p, err := configs.ParsePrefix(ip)
		if err != nil {
			return nil, fmt.Errorf("%s: jail %s: address %q: %w", path, jail, ip, err)
		}
		var remain time.Duration
		switch {
		case !bantime.Valid:
			continue
		case bantime.Int64 < 0:
			remain = permanentFor
		default:
			remain = time.Unix(timeofban.Int64+bantime.Int64, 0).Sub(now)
		}
		if remain < time.Second {
			continue
		}
		if b, ok := best[p]; !ok || remain > b.Remain {
			best[p] = f2bBan{Addr: p, Jail: jail, Remain: remain}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make([]f2bBan, 0, len(best))
	for _, b := range best {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Addr().Less(out[j].Addr.Addr()) })
	return out, nil
}
