package layout

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/bansd/bansd/"

// deps lists what pkg links, with `go list -deps` (tests excluded: only
// what ships counts).
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func TestImportArrows(t *testing.T) {
	for _, c := range []struct {
		pkg       string
		forbidden []string
	}{
		// The matcher and window code is pure: no database, no HTTP client.
		{"jail", []string{"go.etcd.io/bbolt", "github.com/docker/docker", mod + "store", mod + "ban", mod + "sources/docker"}},
		{"jail/parse", []string{"go.etcd.io/bbolt", "github.com/docker/docker", mod + "store", mod + "configs"}},
		// Enforcement does not know where decisions come from.
		{"ban", []string{mod + "jail", mod + "sources", mod + "configs", "github.com/docker/docker"}},
		// The store imports no bansd package at all.
		{"store", []string{mod}},
		// The leaf source package: lines, files, timestamps.
		{"sources", []string{mod + "store", "go.etcd.io/bbolt", "github.com/docker/docker", mod + "jail"}},
		{"sources/docker", []string{mod + "store", "go.etcd.io/bbolt", mod + "jail"}},
		{"sources/journal", []string{mod + "store", "go.etcd.io/bbolt", "github.com/docker/docker", mod + "jail", mod + "sources/docker"}},
		{"prefix", []string{mod}},
		// Lists are parsed and fetched, nothing more: bansctl links it too.
		{"blocklist", []string{mod + "store", mod + "ban", mod + "jail", mod + "configs", mod + "control", "go.etcd.io/bbolt", "github.com/docker/docker"}},
		// Sums over the history, a wire type of the control API: bansctl
		// links it, so it links neither the store nor bbolt.
		{"stats", []string{mod, "go.etcd.io/bbolt"}},
		{"control", []string{mod + "store", "go.etcd.io/bbolt", mod + "jail", mod + "ban"}},
	} {
		for _, d := range deps(t, c.pkg) {
			if d == mod+c.pkg {
				continue
			}
			for _, f := range c.forbidden {
				if d == f || strings.HasPrefix(d, strings.TrimSuffix(f, "/")+"/") {
					t.Errorf("%s links %s: that arrow points the wrong way", c.pkg, d)
				}
			}
		}
	}
}
