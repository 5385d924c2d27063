// Command mailugen writes realistic Mailu container logs with a known
// ground truth, for bansctl replay tests and benchmarks.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/bansd/bansd/internal/mailugen"
)

func main() {
	var opt mailugen.Options
	flag.StringVar(&opt.Dir, "out", "", "output directory (front.log, admin.log, smtp.log, truth.json)")
	flag.IntVar(&opt.Lines, "lines", 100000, "about how many lines to write")
	flag.IntVar(&opt.Attackers, "attackers", 24, "single-address attackers")
	flag.IntVar(&opt.Distinct, "distinct", 0, "memory test: this many distinct attacking addresses, one line each, nothing else")
	flag.Uint64Var(&opt.Seed, "seed", 1, "random seed")
	flag.StringVar(&opt.Version, "version", mailugen.V2024, "Mailu version to imitate: "+mailugen.V2024+" or "+mailugen.V20)
	flag.Parse()
	if opt.Dir == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: mailugen -out DIR [-lines N] [-attackers N] [-distinct N] [-seed N] [-version 2024.06|2.0]")
		os.Exit(2)
	}
	tr, err := mailugen.Generate(opt)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mailugen:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(tr); err != nil {
		fmt.Fprintln(os.Stderr, "mailugen:", err)
		os.Exit(1)
	}
}
