// Package version holds what the build stamps into both binaries. The
// Makefile sets Version and Commit with -ldflags -X; a plain `go build`
// leaves the dev defaults, so a binary never claims a release it is not.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by the linker: -X github.com/bansd/bansd/internal/version.Version=...
var (
	Version = "0.0.0-dev"
	Commit  = ""
)

// Info is what `bansd --version` and `bansctl version` print.
type Info struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Go      string `json:"go"`
}

// Get returns the stamped values; without a stamped commit it falls back
// to the VCS revision the Go toolchain recorded, if any.
func Get() Info {
	i := Info{Version: Version, Commit: Commit, Go: runtime.Version()}
	if i.Commit == "" {
		i.Commit = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					i.Commit = s.Value[:12]
				}
			}
		}
	}
	return i
}

// String is the one-line form: "bansd 1.2.0 (commit abc123, go1.26.8)".
func (i Info) String(prog string) string {
	return fmt.Sprintf("%s %s (commit %s, %s)", prog, i.Version, i.Commit, i.Go)
}
