//go:build genman

// The man page generator is built only with the genman tag (`make docs`):
// cobra's doc generator and the markdown renderer under it are 1.2 MiB of
// text and tables, which the daemon would map, and keep resident, for a
// page it writes once at packaging time.

package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

// manFlag adds --gen-man to fs. The returned func, called once fs is
// parsed, writes the page when the flag was given and says whether it did.
func manFlag(fs *flag.FlagSet) func() (bool, error) {
	dir := fs.String("gen-man", "", "write the man page bansd.8 into `DIR` and exit (for packaging)")
	return func() (bool, error) {
		if *dir == "" {
			return false, nil
		}
		return true, writeMan(fs, *dir)
	}
}

// writeMan renders bansd.8 from the same flag set the daemon parses, so
// the page cannot drift from the binary. cobra's generator wants a
// command; this one only carries the flags and texts.
func writeMan(fs *flag.FlagSet, dir string) error {
	cmd := &cobra.Command{
		Use:   "bansd",
		Short: "ban daemon for Mailu on Docker",
		Long:  description,
		Run:   func(*cobra.Command, []string) {},
	}
	cmd.DisableAutoGenTag = true
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "gen-man" {
			return
		}
		pf := pflag.PFlagFromGoFlag(f)
		cmd.Flags().AddFlag(pf)
	})
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	out, err := os.Create(filepath.Join(dir, "bansd.8"))
	if err != nil {
		return err
	}
	hdr := &doc.GenManHeader{Title: "BANSD", Section: "8", Source: "bansd " + version, Manual: "System Administration"}
	if err := doc.GenMan(cmd, hdr, out); err != nil {
		out.Close()
		return fmt.Errorf("man page: %w", err)
	}
	return out.Close()
}
