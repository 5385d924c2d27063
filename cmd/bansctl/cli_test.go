package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/roottest"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/internal/netnstest"
)

// TestCLIWords: every usage error exits 2 and says what is expected in
// bansctl's words, not the CLI library's.
func TestCLIWords(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none.sock")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"unban", "--covering", "--all", "--yes"}, 2, `--covering goes with targets`},
		{[]string{"ban", "--for", "0s", "203.0.113.1"}, 2, `--for: want a positive duration such as "1h", "1d" or "1w", or "permanent", got "0s"`},
		{[]string{"ban", "--for"}, 2, "--for needs a value; see 'bansctl ban --help'"},
		{[]string{"help", "nosuch"}, 2, `no command "nosuch"; the commands are: allow, ban, completion, doctor, history, import, list, notify, replay, shield, stats, status, test, unban, version, why`},
		{[]string{"nosuch"}, 2, `no command "nosuch"; the commands are:`},
		{[]string{"status", "--nope"}, 2, "unknown flag --nope; see 'bansctl status --help'"},
		{[]string{"shield", "maybe"}, 2, `shield takes on or off, not "maybe"`},
		{[]string{"why", "a", "b"}, 2, `bansctl why: wrong arguments ["a" "b"]; usage: bansctl why ADDRESS`},
		{[]string{"help", "status"}, 0, ""},
		{[]string{"version"}, 0, ""},
	}
	for _, tc := range cases {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"--socket", none}, tc.args...), &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("bansctl %v: exit %d, want %d; stderr %q, want %q", tc.args, code, tc.code, errb.String(), tc.want)
		}
		for _, cobraText := range []string{"unknown command", "accepts ", "Unknown help topic", "flag needs an argument", "unknown flag:"} {
			if strings.Contains(errb.String()+out.String(), cobraText) {
				t.Errorf("bansctl %v: cobra's words %q in %q", tc.args, cobraText, errb.String()+out.String())
			}
		}
	}
	var out bytes.Buffer
	if run(context.Background(), []string{"version"}, &out, &out); !strings.HasPrefix(out.String(), "bansctl ") || !strings.Contains(out.String(), "go1.") {
		t.Errorf("bansctl version: %q", out.String())
	}
}

func buildBin(t *testing.T, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// TestPermissionDenied runs bansctl as an unprivileged user against a
// root-only socket, as the daemon makes it (0600 in a 0755 directory).
func TestPermissionDenied(t *testing.T) {
	roottest.Require(t, "a root-only socket and setpriv to another user")
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatal("setpriv (apt package util-linux) is needed")
	}
	bin := buildBin(t, "github.com/bansd/bansd/cmd/bansctl")
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.Chmod(filepath.Dir(bin), 0o755)
	os.Chmod(dir, 0o755)
	sock := filepath.Join(dir, "bansd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Chmod(sock, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin, "--socket", sock, "status")
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "permission denied: run as root or set daemon.socket_group") {
		t.Errorf("unprivileged bansctl status: %v\n%s", err, out)
	}
}

// TestUnbanUnknownJail asks a real bansd (in a private network
// namespace, no Docker) to unban a jail it does not have.
func TestUnbanUnknownJail(t *testing.T) {
	sock := startBansd(t)
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"--socket", sock, "unban", "--jail", "nosuch"}, &out, &errb)
	want := `no jail "nosuch"; the jails are: api, auth, limiter, network, network48, relay, scan, smtp-auth-bots`
	if code != 2 || !strings.Contains(errb.String(), want) {
		t.Errorf("unban --jail nosuch: exit %d, %q; want 2 and %q", code, errb.String(), want)
	}
	out.Reset()
	errb.Reset()
	if code := run(t.Context(), []string{"--socket", sock, "unban", "--jail", "auth"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "unbanned 0 target(s)") {
		t.Errorf("unban --jail auth: exit %d, %q %q", code, out.String(), errb.String())
	}
}

// startBansd runs a real bansd in a private network namespace (its own
// table there, no Docker) and returns its control socket.
func startBansd(t *testing.T) string {
	t.Helper()
	ns := netnstest.New(t)
	bansd := buildBin(t, "github.com/bansd/bansd/cmd/bansd")
	dir := t.TempDir()
	sock := filepath.Join(dir, "bansd.sock")
	cfg := filepath.Join(dir, "bansd.toml")
	body := "[daemon]\nsocket = \"" + sock + "\"\nstate = \"" + filepath.Join(dir, "state.db") + "\"\n[docker]\nhost = \"unix://" + filepath.Join(dir, "none.sock") + "\"\n"
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	d := exec.Command("ip", "netns", "exec", ns.Name, bansd, "--config", cfg)
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Process.Signal(os.Interrupt)
		d.Wait()
	})
	c := control.NewClient(sock)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := c.Status(t.Context()); err == nil {
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatal("bansd did not answer")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
