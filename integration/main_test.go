// Package integration holds bansd's end-to-end tests: a Mailu-shaped
// compose stack of real nginx (mail module) and real Dovecot under a real
// dockerd in a network namespace, attacked and used from other namespaces,
// with the real bansd and bansctl binaries in between.
package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// bins are the binaries the tests use, built once per test binary.
var bins struct {
	dir                            string
	admin, backend, bansd, bansctl string
}

// repoRoot is the module's root (this package's parent directory).
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bansd-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(1)
	}
	code := func() int {
		if err := buildAll(dir); err != nil {
			fmt.Fprintln(os.Stderr, "integration:", err)
			return 1
		}
		return m.Run()
	}()
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildAll(dir string) error {
	bins.dir = dir
	for _, b := range []struct {
		out *string
		pkg string
	}{
		{&bins.admin, "./integration/admin"},
		{&bins.backend, "./integration/backend"},
	} {
		if err := goBuild(b.out, b.pkg); err != nil {
			return err
		}
	}
	return nil
}

func goBuild(out *string, pkg string) error {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	*out = filepath.Join(bins.dir, filepath.Base(pkg))
	cmd := exec.Command(gobin, "build", "-trimpath", "-o", *out, pkg)
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %w: %s", pkg, err, b)
	}
	return nil
}

var daemonBuild struct {
	once sync.Once
	err  error
}

// buildDaemon builds bansd and bansctl once, for the tests that run them.
func buildDaemon(t testing.TB) {
	t.Helper()
	daemonBuild.once.Do(func() {
		if daemonBuild.err = goBuild(&bins.bansd, "./cmd/bansd"); daemonBuild.err == nil {
			daemonBuild.err = goBuild(&bins.bansctl, "./cmd/bansctl")
		}
	})
	if daemonBuild.err != nil {
		t.Fatal(daemonBuild.err)
	}
}
