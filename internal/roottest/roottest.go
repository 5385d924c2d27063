// Package roottest is the one rule for tests that need root (network
// namespaces, nftables, dockerd, a root-only socket): on a laptop, as a
// user, they skip and say why, so `go test ./jail ./configs` works there;
// under `make test` (BANSD_TEST_ROOT=must) running without root is a
// failure, never a silent skip.
package roottest

import (
	"os"
	"testing"
)

// Require skips t, or fails it under make test, unless the test runs as
// root. why says what the test needs root for.
func Require(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("BANSD_TEST_ROOT") == "must" {
		t.Fatalf("needs root (%s): run make test as root", why)
	}
	t.Skipf("needs root (%s): skipped; run as root, as make test does", why)
}
