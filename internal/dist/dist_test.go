package main

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/dockertest"
)

const testVersion = "1.2.3-rc1+abc1234"

var (
	stageOnce sync.Once
	stageDir  string
	stageErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if stageDir != "" {
		os.RemoveAll(stageDir)
	}
	os.Exit(code)
}

// repoRoot is where the Makefile is (tests run in internal/dist).
func repoRoot(t *testing.T) string {
	t.Helper()
	r, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// makeCmd runs make in the repository with its binaries built into bin,
// so concurrent builds never share the tree's bin/.
func makeCmd(t *testing.T, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command("make", append([]string{"--no-print-directory", "-C", repoRoot(t), "BIN=" + bin, "VERSION=" + testVersion, "COMMIT=abc1234def56"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// staged is one packaging install (`make install PREFIX=/usr`), shared
// by the tests of this file.
func staged(t *testing.T) string {
	t.Helper()
	stageOnce.Do(func() {
		stageDir, stageErr = os.MkdirTemp("", "bansd-stage-")
		if stageErr != nil {
			return
		}
		makeCmd(t, filepath.Join(stageDir, "bin"), "install", "DESTDIR="+filepath.Join(stageDir, "root"), "PREFIX=/usr", "UNITDIR=/lib/systemd/system")
	})
	if stageErr != nil {
		t.Fatal(stageErr)
	}
	if _, err := os.Stat(filepath.Join(stageDir, "root/usr/sbin/bansd")); err != nil {
		t.Fatalf("staging failed earlier: %v", err)
	}
	return filepath.Join(stageDir, "root")
}

func buildRelease(t *testing.T) (release, string) {
	t.Helper()
	root := repoRoot(t)
	r := release{
		Version: testVersion, Commit: "abc1234def56", Root: staged(t),
		Scripts: filepath.Join(root, "configs/deb"), Compose: filepath.Join(root, "configs/compose.yml"),
		MTime: time.Unix(1700000000, 0).UTC(),
	}
	out := t.TempDir()
	names, err := build(r, out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bansd_" + testVersion + "_amd64.deb", "bansd-" + testVersion + "-linux-amd64.tar.gz", "bansd-" + testVersion + "-image.tar", "SHA256SUMS"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("artifacts %v, want %v", names, want)
	}
	return r, out
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDeb reads the package back with dpkg-deb: the files where Debian
// and the README say, the config as a conffile, the maintainer scripts.
func TestDeb(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Fatal("dpkg-deb not found (apt package dpkg)")
	}
	_, out := buildRelease(t)
	deb := filepath.Join(out, debName(testVersion))
	if v := strings.TrimSpace(run(t, out, "dpkg-deb", "-f", deb, "Version")); v != "1.2.3~rc1+abc1234" {
		t.Errorf("Version %q: a prerelease must sort before 1.2.3", v)
	}
	if a := strings.TrimSpace(run(t, out, "dpkg-deb", "-f", deb, "Architecture")); a != "amd64" {
		t.Errorf("Architecture %q", a)
	}
	list := run(t, out, "dpkg-deb", "-c", deb)
	for _, p := range []string{
		"./usr/sbin/bansd", "./usr/bin/bansctl", "./lib/systemd/system/bansd.service", "./etc/bansd/bansd.toml",
		"./usr/share/man/man8/bansd.8", "./usr/share/man/man8/bansctl.8", "./usr/share/man/man8/bansctl-ban.8",
		"./usr/share/man/man8/bansctl-unban.8", "./usr/share/bash-completion/completions/bansctl",
		"./usr/share/zsh/vendor-completions/_bansctl", "./usr/share/fish/vendor_completions.d/bansctl.fish",
		"./usr/share/doc/bansd/copyright",
	} {
		if !strings.Contains(list, p+"\n") {
			t.Errorf("package lacks %s", p)
		}
	}
	ctrl := t.TempDir()
	run(t, out, "dpkg-deb", "-e", deb, ctrl)
	conf, err := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	if err != nil || strings.TrimSpace(string(conf)) != "/etc/bansd/bansd.toml" {
		t.Errorf("conffiles %q, %v", conf, err)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		fi, err := os.Stat(filepath.Join(ctrl, s))
		if err != nil || fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("maintainer script %s: %v %v", s, fi, err)
		}
	}
	x := t.TempDir()
	run(t, out, "dpkg-deb", "-x", deb, x)
	unit, err := os.ReadFile(filepath.Join(x, "lib/systemd/system/bansd.service"))
	if err != nil || !strings.Contains(string(unit), "\nExecStart=/usr/sbin/bansd --config /etc/bansd/bansd.toml ") {
		t.Errorf("unit's ExecStart does not read the config: %v\n%s", err, unit)
	}
	ver := run(t, x, filepath.Join(x, "usr/sbin/bansd"), "--version")
	if !strings.Contains(ver, "bansd "+testVersion+" (commit abc1234def56, go") {
		t.Errorf("bansd --version: %q", ver)
	}
	// The shipped config changes nothing: it checks as the defaults.
	if got := run(t, x, filepath.Join(x, "usr/sbin/bansd"), "--check", "--config", filepath.Join(x, "etc/bansd/bansd.toml")); !strings.Contains(got, "config ok") {
		t.Errorf("--check of the shipped config: %q", got)
	}
}

// TestTarballAndSums lists the tarball and checks SHA256SUMS with
// sha256sum itself.
func TestTarballAndSums(t *testing.T) {
	_, out := buildRelease(t)
	f, err := os.Open(filepath.Join(out, tarName(testVersion)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	got := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		got[h.Name] = string(data)
	}
	top := "bansd-" + testVersion + "-linux-amd64/"
	for _, p := range []string{"usr/sbin/bansd", "usr/bin/bansctl", "lib/systemd/system/bansd.service", "etc/bansd/bansd.toml",
		"usr/share/man/man8/bansd.8", "usr/share/man/man8/bansctl-why.8", "usr/share/bash-completion/completions/bansctl", "compose.yml"} {
		if _, ok := got[top+p]; !ok {
			t.Errorf("tarball lacks %s", top+p)
		}
	}
	if c := got[top+"compose.yml"]; !strings.Contains(c, "image: bansd:${BANSD_VERSION:-1.2.3-rc1-abc1234}") {
		t.Errorf("compose.yml not pinned to the release's image:\n%s", c)
	}
	if s := run(t, out, "sha256sum", "-c", "SHA256SUMS"); strings.Count(s, ": OK") != 3 {
		t.Errorf("sha256sum -c: %s", s)
	}
}

// TestImageLoad loads the image archive into a private dockerd, checks
// its tag and OCI labels, and runs the containerised bansctl.
func TestImageLoad(t *testing.T) {
	_, out := buildRelease(t)
	e := dockertest.Start(t, dockertest.Options{})
	loaded := e.Docker(t, "load", "-i", filepath.Join(out, imageName(testVersion)))
	ref := "bansd:1.2.3-rc1-abc1234"
	if !strings.Contains(loaded, ref) {
		t.Fatalf("docker load: %s", loaded)
	}
	var labels map[string]string
	if err := json.Unmarshal([]byte(e.Docker(t, "image", "inspect", "-f", "{{json .Config.Labels}}", ref)), &labels); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"org.opencontainers.image.version": testVersion, "org.opencontainers.image.revision": "abc1234def56", "org.opencontainers.image.licenses": "MIT"} {
		if labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, labels[k], v)
		}
	}
	if v := e.Docker(t, "run", "--rm", ref, "--version"); !strings.HasPrefix(v, "bansd "+testVersion+" ") {
		t.Errorf("docker run --version: %q", v)
	}
	if v := e.Docker(t, "run", "--rm", "--entrypoint", "bansctl", ref, "version"); !strings.HasPrefix(v, "bansctl "+testVersion+" ") {
		t.Errorf("bansctl in the image: %q", v)
	}
}
