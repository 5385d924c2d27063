package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	buildinfo "github.com/bansd/bansd/internal/version"
)

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print bansctl's version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := buildinfo.Get()
			if g.json {
				return writeJSON(cmd.OutOrStdout(), info)
			}
			fmt.Fprintln(cmd.OutOrStdout(), info.String("bansctl"))
			return nil
		},
	}
}

// newGenDocsCmd writes the man pages (bansctl.8 and one per subcommand)
// and the shell completions from the command tree itself, for packaging.
// Hidden: operators get these from the package.
func newGenDocsCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "gen-docs DIR",
		Short:  "Write man pages and shell completions into DIR (for packaging)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			root.DisableAutoGenTag = true
			man := filepath.Join(args[0], "man8")
			comp := filepath.Join(args[0], "completions")
			for _, d := range []string{man, comp} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					return err
				}
			}
			hdr := &doc.GenManHeader{Title: "BANSCTL", Section: "8", Source: "bansd " + buildinfo.Version, Manual: "System Administration"}
			if err := doc.GenManTree(root, hdr, man); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			gens := []struct {
				name string
				gen  func(string) error
			}{
				{"bansctl.bash", func(p string) error { return root.GenBashCompletionFileV2(p, true) }},
				{"_bansctl", root.GenZshCompletionFile},
				{"bansctl.fish", func(p string) error { return root.GenFishCompletionFile(p, true) }},
			}
			for _, g := range gens {
				if err := g.gen(filepath.Join(comp, g.name)); err != nil {
					return fmt.Errorf("completion %s: %w", g.name, err)
				}
			}
			return nil
		},
	}
}
