package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/bansd/bansd/control"
)

func newShieldCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "shield on|off",
		Short: "Turn the relay shield on or off at run time (off lasts until \"shield on\", a reload or a restart)",
		Long: `The relay shield refuses IPv6 connections to Mailu's ports published on all
addresses while Docker's userland proxy would hand them to an IPv4-only Mailu
network as the bridge gateway, which Postfix trusts (an open relay).
"bansctl shield off" lowers it until "bansctl shield on", a reload (SIGHUP) or
a restart of bansd; firewall.relay_shield = false turns it off for good.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"on", "off"},
		RunE: func(cmd *cobra.Command, args []string) error {
			var on bool
			switch args[0] {
			case "on":
				on = true
			case "off":
			default:
				return usagef("shield takes on or off, not %q", args[0])
			}
			st, err := g.client().Shield(cmd.Context(), on)
			if err != nil {
				return err
			}
			if g.json {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			printShield(cmd.OutOrStdout(), st)
			if !on && st.Risk {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: the relay shield is off and the open-relay risk holds: IPv6 clients are relayed as the Docker gateway")
			}
			return nil
		},
	}
}

// printShield writes the relay shield's state, as status shows it.
func printShield(w io.Writer, s control.ShieldStatus) {
	state := "down"
	switch {
	case s.Up:
		state = fmt.Sprintf("UP (IPv6 to ports %v refused with a TCP reset, %d refused)", s.Ports, s.Refused)
	case s.Off != "":
		state = "OFF (" + s.Off + ")"
		if s.Risk {
			state += ": THE RELAY IS OPEN"
		}
	}
	fmt.Fprintf(w, "\nRelay shield: %s\n", state)
	if s.Why != "" {
		fmt.Fprintf(w, "  %s\n", clean(s.Why))
	}
	if s.Fix != "" {
		fmt.Fprintf(w, "  fix: %s\n", s.Fix)
	}
	if s.Problem != "" {
		fmt.Fprintf(w, "  problem: %s\n", clean(s.Problem))
	}
}
