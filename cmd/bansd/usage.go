package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

const synopsis = "bansd - ban daemon for Mailu on Docker"

const description = `bansd follows the logs of Mailu's containers through the Docker API, counts
failed logins per address and per network in sliding windows of log time,
and bans offenders in the nftables table "inet bansd", in a prerouting chain
hooked before Docker's NAT. Bans are kept in a bbolt file and restored at
start; the kernel expires each ban by itself.

With no --config the embedded default configuration runs; a file given with
--config overrides it key by key (bansd --print-default-config shows the
base). SIGHUP reloads the file, SIGTERM stops bansd and leaves the kernel
bans in place. bansctl(8) talks to the running daemon. With
BANSD_CPUPROFILE=FILE in the environment, bansd writes a CPU profile of the
whole run to FILE (for go tool pprof) when it stops.

Exit status: 0 ok, 1 the daemon failed, 2 a usage or configuration error.`

// usage prints bansd's help: what it is, then every flag.
func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "%s\n\nUsage: bansd [flags]\n\n%s\n\nFlags:\n", synopsis, description)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// argError says what went wrong on the command line in bansd's words
// instead of the flag package's.
func argError(err error) string {
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return "unknown flag " + f
	}
	if f, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return f + " needs a value"
	}
	return msg
}
