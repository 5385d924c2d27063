package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bansd/bansd/control"
)

func newNotifyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notify",
		Short: "Notification channels: send a test message",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "test [CHANNEL]",
		Short: "Send a test message through the daemon (every channel, or CHANNEL) and print what each server answered",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			channel := ""
			if len(args) == 1 {
				channel = args[0]
			}
			res, err := g.client().NotifyTest(cmd.Context(), channel)
			if err != nil {
				return err
			}
			if g.json {
				if err := writeJSON(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			} else {
				printNotifyTest(cmd.OutOrStdout(), res)
			}
			for _, r := range res {
				if !r.OK {
					return exitError{exitFailed}
				}
			}
			return nil
		},
	})
	return cmd
}

func printNotifyTest(w io.Writer, res []control.NotifyTestResult) {
	for _, r := range res {
		if r.OK {
			fmt.Fprintf(w, "%s: ok: %s\n", r.Channel, cut(clean(r.Answer), 300))
		} else {
			fmt.Fprintf(w, "%s: FAILED: %s\n", r.Channel, cut(clean(r.Error), 300))
		}
	}
}

func printNotify(w io.Writer, n *control.NotifyStatus) error {
	if n == nil {
		fmt.Fprintln(w, "\nNotify: no channel ([notify.email.NAME], [notify.webhook.NAME])")
		return nil
	}
	fmt.Fprintln(w, "\nNotify:")
	never := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return stamp(t)
	}
	t := &table{}
	t.add("CHANNEL", "KIND", "TARGET", "EVENTS", "SENT", "PENDING", "FAILURES", "LAST SUCCESS", "LAST ERROR")
	for _, c := range n.Channels {
		lastErr := "-"
		if c.LastError != "" {
			lastErr = never(c.LastErrorTime) + " " + cut(clean(c.LastError), 60)
		}
		t.add(c.Name, c.Kind, clean(c.Target), strings.Join(c.Events, ","), strconv.FormatUint(c.Sent, 10), strconv.Itoa(c.Pending),
			strconv.FormatUint(c.Failures, 10), never(c.LastSuccess), lastErr)
	}
	if err := t.write(w); err != nil {
		return err
	}
	if n.Lost > 0 || n.SpoolErrors > 0 {
		fmt.Fprintf(w, "  lost events %d, spool errors %d\n", n.Lost, n.SpoolErrors)
	}
	return nil
}
