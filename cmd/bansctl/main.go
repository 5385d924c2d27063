// Command bansctl is the operator's CLI for bansd: list, ban, unban,
// status, why, replay, test and doctor.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/bansd/bansd/control"
)

// Exit codes: 0 ok, 1 the operation failed, 2 usage.
const (
	exitFailed = 1
	exitUsage  = 2
)

// usageError marks an error as the operator's mistake on the command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitError carries an exit code without a message (the command printed
// its own report, like doctor).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// globals are the root's persistent flags.
type globals struct {
	socket string
	json   bool
}

func (g *globals) client() *control.Client { return control.NewClient(g.socket) }

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "bansctl",
		Short:         "Control bansd, the ban daemon for Mailu on Docker",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.socket, "socket", control.SocketFromEnv(), "bansd's control socket (env BANSD_SOCKET)")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print JSON for scripts")
	root.AddCommand(newListCmd(g), newBanCmd(g), newUnbanCmd(g), newStatusCmd(g), newWhyCmd(g), newDoctorCmd(g), newReplayCmd(), newTestCmd(g), newVersionCmd(g), newGenDocsCmd(), newImportCmd(g), newHistoryCmd(g), newStatsCmd(g), newNotifyCmd(g), newShieldCmd(g), newAllowCmd(g))
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usagef("%s; see '%s --help'", flagWords(err), c.CommandPath())
	})
	root.SetHelpCommand(newHelpCmd(root))
	markUsage(root)
	return root
}

// markUsage makes every argument-count error a usage error, including
// those of commands written elsewhere.
func markUsage(c *cobra.Command) {
	if c.Args != nil {
		orig := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := orig(cmd, args); err != nil {
				return usagef("%s: wrong arguments %q; usage: %s", cmd.CommandPath(), args, cmd.UseLine())
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markUsage(sub)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var ue usageError
	// cobra reports unknown commands without a hook for them.
	if msg, ok := strings.CutPrefix(err.Error(), "unknown command "); ok {
		name, _, _ := strings.Cut(msg, " for ")
		err = usagef("no command %s; the commands are: %s", name, strings.Join(commandNames(root), ", "))
	}
	fmt.Fprintln(stderr, "bansctl:", err)
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown flag") {
		fmt.Fprintln(stderr, "Run 'bansctl --help' for usage.")
		return exitUsage
	}
	return exitFailed
}

// flagWords rewords pflag's errors ("unknown flag: --x", "flag needs an
// argument: --for") in bansctl's terms.
func flagWords(err error) string {
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "unknown flag: "); ok {
		return "unknown flag " + f
	}
	if f, ok := strings.CutPrefix(msg, "unknown shorthand flag: "); ok {
		return "unknown flag " + f
	}
	if f, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return f + " needs a value"
	}
	return msg
}

func commandNames(root *cobra.Command) []string {
	var names []string
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return names
}

// newHelpCmd replaces cobra's help command, which prints "Unknown help
// topic" and exits 0 for a command that does not exist.
func newHelpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "Help about any command",
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				return usagef("no command %q; the commands are: %s", strings.Join(args, " "), strings.Join(commandNames(root), ", "))
			}
			target.SetOut(cmd.OutOrStdout())
			return target.Help()
		},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
