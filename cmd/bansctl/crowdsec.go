package main

import (
	"fmt"
	"io"
	"time"

	"github.com/bansd/bansd/control"
)

// printCrowdSec shows the LAPI link in status.
func printCrowdSec(w io.Writer, cs *control.CrowdSecStatus) {
	if cs == nil {
		fmt.Fprintln(w, "\nCrowdSec: off")
		return
	}
	never := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return stamp(t)
	}
	fmt.Fprintf(w, "\nCrowdSec: %s (push %v, pull %v)\n", clean(cs.URL), cs.Push, cs.Pull)
	fmt.Fprintf(w, "  last push %s, last pull %s\n", never(cs.LastPush), never(cs.LastPull))
	fmt.Fprintf(w, "  pending pushes %d, pending unbans %d, shared %d; pushed %d, pulls %d (%d failed), applied %d, lifted %d, refused %d, rejected %d, dropped %d\n",
		cs.PendingPushes, cs.PendingUnbans, cs.Shared, cs.Pushed, cs.Pulls, cs.PullErrors, cs.Applied, cs.Lifted, cs.Refused, cs.Rejected, cs.QueueDropped)
	if cs.LastError != "" {
		fmt.Fprintf(w, "  last error %s: %s\n", stamp(cs.LastErrorAt), cut(clean(cs.LastError), 300))
	}
}
