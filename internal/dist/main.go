// Command dist turns a staged install tree (`make install DESTDIR=...
// PREFIX=/usr`) into bansd's release artifacts: the .deb, the tarball,
// the container image as a `docker load` archive, and SHA256SUMS. `make
// dist` runs it; nothing here needs dockerd or dpkg.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// release is what every artifact is built from.
type release struct {
	Version string    // e.g. 1.2.0 or 0.0.0-dev+abc1234
	Commit  string    // full or short git commit, for labels
	Root    string    // staged tree, laid out as on the target (usr/sbin/bansd ...)
	Scripts string    // directory of postinst, prerm, postrm
	Compose string    // the compose drop-in shipped in the tarball
	MTime   time.Time // every file's time, so builds repeat byte for byte
}

func main() {
	var r release
	out := flag.String("out", "dist", "output `DIR`")
	epoch := flag.String("mtime", os.Getenv("SOURCE_DATE_EPOCH"), "file times, Unix `SECONDS` (default: SOURCE_DATE_EPOCH)")
	flag.StringVar(&r.Version, "version", "", "release `VERSION`")
	flag.StringVar(&r.Commit, "commit", "", "git `COMMIT`")
	flag.StringVar(&r.Root, "root", "", "staged install tree `DIR`")
	flag.StringVar(&r.Scripts, "scripts", "configs/deb", "maintainer scripts `DIR`")
	flag.StringVar(&r.Compose, "compose", "configs/compose.yml", "compose drop-in `FILE`")
	flag.Parse()
	if r.Version == "" || r.Root == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: dist -version V -root DIR [-commit C] [-out DIR]")
		os.Exit(2)
	}
	if *epoch != "" {
		s, err := strconv.ParseInt(*epoch, 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dist: -mtime:", err)
			os.Exit(2)
		}
		r.MTime = time.Unix(s, 0).UTC()
	} else {
		r.MTime = time.Unix(0, 0).UTC()
	}
	names, err := build(r, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dist:", err)
		os.Exit(1)
	}
	for _, n := range names {
		fmt.Println(filepath.Join(*out, n))
	}
}

// build writes all four artifacts into out and returns their names.
func build(r release, out string) ([]string, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	steps := []struct {
		name string
		fn   func(release, string) error
	}{
		{debName(r.Version), writeDeb},
		{tarName(r.Version), writeTarball},
		{imageName(r.Version), writeImage},
	}
	var names []string
	for _, s := range steps {
		if err := s.fn(r, filepath.Join(out, s.name)); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		names = append(names, s.name)
	}
	if err := writeSums(out, names); err != nil {
		return nil, fmt.Errorf("SHA256SUMS: %w", err)
	}
	return append(names, "SHA256SUMS"), nil
}

func debName(v string) string   { return "bansd_" + v + "_amd64.deb" }
func tarName(v string) string   { return "bansd-" + v + "-linux-amd64.tar.gz" }
func imageName(v string) string { return "bansd-" + v + "-image.tar" }
