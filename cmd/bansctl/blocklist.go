package main

import (
	"fmt"
	"io"
	"time"

	"github.com/bansd/bansd/control"
)

// printBlocklists shows each [blocklists.NAME]; its bans are in
// `bansctl list --jail blocklist:NAME`.
func printBlocklists(w io.Writer, ls []control.BlocklistStatus) {
	if len(ls) == 0 {
		return
	}
	never := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return stamp(t)
	}
	fmt.Fprintln(w, "\nBlocklists:")
	for _, l := range ls {
		fmt.Fprintf(w, "  %s: %s\n", clean(l.Name), clean(l.Source))
		fmt.Fprintf(w, "    entries %d (skipped %d), version of %s, last refresh %s, next %s\n",
			l.Entries, l.Skipped, never(l.Version), never(l.LastRefresh), never(l.NextRefresh))
		fmt.Fprintf(w, "    fetches %d (%d not modified, %d failed); last change +%d -%d\n", l.Fetches, l.NotModified, l.Failures, l.Added, l.Removed)
		if l.LastError != "" {
			state := "since recovered"
			if !l.LastErrorAt.Before(l.LastRefresh) {
				state = "the previous version stays enforced"
			}
			fmt.Fprintf(w, "    last error %s (%s): %s\n", stamp(l.LastErrorAt), state, cut(clean(l.LastError), 300))
		}
	}
}
