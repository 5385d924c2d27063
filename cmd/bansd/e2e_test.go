package main

// End-to-end tests: a real bansd process in a fresh network namespace (its
// own nftables), a temp state file and socket, no dockerd (the Docker
// source waits), driven by the real bansctl binary and the control client.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/internal/netnstest"
)

// binDir holds bansd and bansctl, built once for the package; it is world
// readable so bansctl can run as nobody.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "bansd-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	args := []string{"build", "-o", dir}
	if os.Getenv("BANSD_TEST_RACE") != "" {
		// The binaries under test with the race detector.
		args = append(args, "-race")
	}
	for _, pkg := range []string{"github.com/bansd/bansd/cmd/bansd", "github.com/bansd/bansd/cmd/bansctl"} {
		out, err := exec.Command("go", append(args, pkg)...).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	binDir = dir
	return m.Run()
}

// instance is one bansd under test.
type instance struct {
	ns     *netnstest.NS
	dir    string
	config string
	socket string
	docker string
	// daemonExtra are more [daemon] keys for the config.
	daemonExtra string
	// env is added to bansd's environment (fault hooks).
	env []string
	// bin is the bansd binary to run; "" is the one built for the package.
	bin    string
	cmd    *exec.Cmd
	log    *logBuffer
	exited chan error
}

// baseConfig runs the text rules: these tests have containers print
// synthetic Mailu lines that no client's connection stands behind. The
// kernel's word (attribution = "kernel") is tested with real clients of a
// real nginx and Dovecot in integration/.
const baseConfig = `[daemon]
%ssocket = %q
state = %q
log_level = "debug"
[docker]
host = %q
[firewall]
attribution = "text"
`

// noDocker is an engine address where nothing listens: the source waits.
const noDocker = "unix:///nonexistent/docker.sock"

// start runs bansd in a new network namespace and waits for its socket.
func start(t testing.TB) *instance { return startWith(t, noDocker) }

// startWith is start with bansd's Docker engine address.
func startWith(t testing.TB, dockerHost string) *instance {
	t.Helper()
	in := newInstance(t, dockerHost)
	in.run(t)
	return in
}

// startInNS runs bansd in ns (e.g. a dockertest engine's) with extra
// lines appended to the config's [firewall] section.
func startInNS(t testing.TB, ns *netnstest.NS, dockerHost, extra string) *instance {
	t.Helper()
	in := newInstanceInNS(t, ns, dockerHost, extra)
	in.run(t)
	return in
}

// newInstance prepares a bansd in a new namespace with the default
// config, without starting it.
func newInstance(t testing.TB, dockerHost string) *instance {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("the nft command (apt package nftables) is needed to check the kernel side")
	}
	return newInstanceInNS(t, netnstest.New(t), dockerHost, "")
}

// newInstanceInNS prepares a bansd in ns (directory, config with extra
// [firewall] lines) without starting it.
func newInstanceInNS(t testing.TB, ns *netnstest.NS, dockerHost, extra string) *instance {
	t.Helper()
	dir, err := os.MkdirTemp("", "bansd-e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	in := &instance{ns: ns, dir: dir, config: filepath.Join(dir, "bansd.toml"), socket: filepath.Join(dir, "run", "bansd.sock"), docker: dockerHost}
	in.writeConfig(t, extra)
	return in
}

// run starts the bansd process and waits until its socket answers.
func (in *instance) run(t testing.TB) {
	t.Helper()
	in.log = &logBuffer{}
	ns := in.ns
	bin := in.bin
	if bin == "" {
		bin = filepath.Join(binDir, "bansd")
	}
	in.cmd = exec.Command("nsenter", "--net="+ns.Path, bin, "--config", in.config)
	in.cmd.Stdout, in.cmd.Stderr = in.log, in.log
	in.cmd.Env = append(os.Environ(), in.env...)
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, log, exited := in.cmd, in.log, make(chan error, 1)
	in.exited = exited
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("bansd log:\n%s", log.String())
		}
	})
	c := control.NewClient(in.socket)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Status(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case err := <-in.exited:
			t.Fatalf("bansd exited at start: %v\n%s", err, in.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("bansd did not answer on %s: %v\n%s", in.socket, err, in.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logBuffer is bansd's output, read by the test while the process writes it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// stop sends SIGTERM and expects a clean exit.
func (in *instance) stop(t testing.TB) {
	t.Helper()
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-in.exited:
		if err != nil {
			t.Errorf("bansd exit after SIGTERM: %v\n%s", err, in.log.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("bansd did not stop on SIGTERM")
	}
	in.exited <- nil // for the cleanup
}

// kill ends bansd with SIGKILL: no flush, no store close, as a crash.
func (in *instance) kill() {
	in.cmd.Process.Signal(syscall.SIGKILL)
	<-in.exited
	in.exited <- nil // for the cleanup, as stop does
}

// waitOneBan waits until bansd holds a ban, which must be the only one and
// of target by jail; log is shown when none comes within 30 s.
func waitOneBan(t *testing.T, in *instance, c *control.Client, target, jail, why string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, err := c.Bans(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Bans) > 0 {
			if len(l.Bans) != 1 || l.Bans[0].Target.String() != target || l.Bans[0].Jail != jail {
				t.Fatalf("bans = %+v, want only %s by %s", l.Bans, target, jail)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no ban 30 s after the restart\n%s", why, in.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (in *instance) writeConfig(t testing.TB, extra string) {
	t.Helper()
	cfg := fmt.Sprintf(baseConfig, in.daemonExtra, in.socket, filepath.Join(in.dir, "state", "bansd.db"), in.docker) + extra
	if err := os.WriteFile(in.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ctl runs bansctl against the instance and returns stdout, stderr, exit code.
func (in *instance) ctl(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	return runCtl(t, in.socket, nil, args...)
}

func runCtl(t testing.TB, socket string, cred *syscall.Credential, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "bansctl"), args...)
	cmd.Env = append(os.Environ(), "BANSD_SOCKET="+socket)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("bansctl %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// mustCtl is ctl that expects exit code want.
func (in *instance) mustCtl(t testing.TB, want int, args ...string) string {
	t.Helper()
	out, errs, code := in.ctl(t, args...)
	if code != want {
		t.Fatalf("bansctl %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errs)
	}
	return out + errs
}

// kernel returns the elements of set in the instance's namespace.
func (in *instance) kernel(t testing.TB, set string) string {
	t.Helper()
	return in.ns.Run(t, "nft", "list", "set", "inet", "bansd", set)
}

func TestCLIAgainstDaemon(t *testing.T) {
	in := start(t)

	// status: no dockerd, the source waits and says so.
	out := in.mustCtl(t, 0, "status", "--json")
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if !strings.Contains(st.Docker.State, "waiting for dockerd") || len(st.Sources) == 0 {
		t.Errorf("docker status = %+v", st.Docker)
	}
	if !st.Firewall.Present || st.Firewall.Hook != "prerouting" || st.Firewall.Priority != -310 {
		t.Errorf("firewall status = %+v", st.Firewall)
	}
	if len(st.Jails) == 0 || st.Config.File != in.config {
		t.Errorf("status jails/config = %+v %+v", st.Jails, st.Config)
	}
	human := in.mustCtl(t, 0, "status")
	for _, want := range []string{"waiting for dockerd", "Jails:", "auth", "prerouting priority -310"} {
		if !strings.Contains(human, want) {
			t.Errorf("status lacks %q:\n%s", want, human)
		}
	}

	// ban addresses and CIDRs, both families.
	in.mustCtl(t, 0, "ban", "--for", "1h", "--reason", "e2e test", "203.0.113.7", "198.51.100.0/24", "2001:db8:1::/64")
	if k := in.kernel(t, "v4_32"); !strings.Contains(k, "203.0.113.7") {
		t.Errorf("203.0.113.7 not in the kernel:\n%s", k)
	}
	if k := in.kernel(t, "v4_24"); !strings.Contains(k, "198.51.100.0") {
		t.Errorf("198.51.100.0/24 not in the kernel:\n%s", k)
	}
	if k := in.kernel(t, "v6_64"); !strings.Contains(k, "2001:db8:1::") {
		t.Errorf("2001:db8:1::/64 not in the kernel:\n%s", k)
	}

	// list --json: exactly the contract shape.
	out = in.mustCtl(t, 0, "list", "--json")
	var list struct {
		Bans []map[string]json.RawMessage `json:"bans"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	if len(list.Bans) != 3 {
		t.Fatalf("list --json has %d bans:\n%s", len(list.Bans), out)
	}
	rfc3339 := regexp.MustCompile(`^"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"$`)
	for _, b := range list.Bans {
		if len(b) != 8 || string(b["origin"]) != `"local"` {
			t.Errorf("ban has keys %v, want target jail reason since until level manual origin (local)", b)
		}
		for _, k := range []string{"since", "until"} {
			if !rfc3339.Match(b[k]) {
				t.Errorf("%s = %s, want RFC3339", k, b[k])
			}
		}
		if string(b["manual"]) != "true" || string(b["reason"]) != `"e2e test"` || string(b["jail"]) != `"manual"` {
			t.Errorf("ban = %v", b)
		}
	}
	if !strings.Contains(out, `"target":"203.0.113.7/32"`) {
		t.Errorf("list --json lacks 203.0.113.7/32:\n%s", out)
	}
	out = in.mustCtl(t, 0, "list")
	for _, want := range []string{"TARGET", "REMAINING", "203.0.113.7/32", "2001:db8:1::/64", "e2e test"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	if out := in.mustCtl(t, 0, "list", "--jail", "auth"); !strings.Contains(out, "no active bans") {
		t.Errorf("list --jail auth:\n%s", out)
	}

	// why: the ban, and a protected address.
	out = in.mustCtl(t, 0, "why", "203.0.113.7")
	if !strings.Contains(out, "BANNED 203.0.113.7/32 manually") || !strings.Contains(out, "e2e test") {
		t.Errorf("why 203.0.113.7:\n%s", out)
	}
	out = in.mustCtl(t, 0, "why", "--json", "198.51.100.9")
	var why control.Why
	if err := json.Unmarshal([]byte(out), &why); err != nil || len(why.Bans) != 1 || why.Bans[0].Target.String() != "198.51.100.0/24" {
		t.Errorf("why --json 198.51.100.9: %v\n%s", err, out)
	}
	if out := in.mustCtl(t, 0, "why", "192.168.203.1"); !strings.Contains(out, "never banned") {
		t.Errorf("why of Mailu's SUBNET:\n%s", out)
	}

	// Protected targets are refused, and nothing of the request is applied.
	out = in.mustCtl(t, 1, "ban", "203.0.113.8", "192.168.203.5")
	if !strings.Contains(out, "192.168.203.5/32") || !strings.Contains(out, "SUBNET") {
		t.Errorf("refusal does not name the target and rule:\n%s", out)
	}
	in.mustCtl(t, 1, "ban", "192.168.0.0/16")
	in.mustCtl(t, 1, "ban", "127.0.0.1")
	if k := in.kernel(t, "v4_32"); strings.Contains(k, "203.0.113.8") {
		t.Errorf("a refused request was partly applied:\n%s", k)
	}

	// A blocklist with a bad line: file:line named, nothing applied.
	bl := filepath.Join(in.dir, "block.txt")
	os.WriteFile(bl, []byte("# list\n203.0.113.20\n\n203.0.113.21 # inline comment\nnot-an-address\n"), 0o644)
	out = in.mustCtl(t, 1, "ban", "--from-file", bl)
	if !strings.Contains(out, bl+":5") {
		t.Errorf("bad line not named file:line:\n%s", out)
	}
	if k := in.kernel(t, "v4_32"); strings.Contains(k, "203.0.113.20") {
		t.Errorf("a bad blocklist was partly applied:\n%s", k)
	}
	os.WriteFile(bl, []byte("# list\n203.0.113.20\n\n203.0.113.21 # inline comment\n"), 0o644)
	in.mustCtl(t, 0, "ban", "--from-file", bl)
	if k := in.kernel(t, "v4_32"); !strings.Contains(k, "203.0.113.20") || !strings.Contains(k, "203.0.113.21") {
		t.Errorf("blocklist not applied:\n%s", k)
	}

	// Usage errors exit 2 without touching the daemon.
	for _, args := range [][]string{
		{"ban"},
		{"ban", "not-an-address"},
		{"ban", "--for", "soon", "203.0.113.9"},
		{"ban", "--from-file", bl, "203.0.113.9"},
		{"why", "nope"},
		{"why"},
		{"list", "extra"},
		{"unban"},
		{"unban", "--all"},
		{"unban", "--all", "--yes", "203.0.113.7"},
		{"--bogus"},
		{"frobnicate"},
	} {
		if _, errs, code := in.ctl(t, args...); code != 2 {
			t.Errorf("bansctl %v: exit %d, want 2 (%s)", args, code, errs)
		}
	}

	// Metrics over the socket.
	var m bytes.Buffer
	if err := control.NewClient(in.socket).Metrics(context.Background(), &m); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"bansd_lines_total{service=\"front\"}", "bansd_events_total{kind=", "bansd_decisions_total{jail=\"auth\"}",
		"bansd_bans_active{jail=\"manual\"} 5", "bansd_alarms_total{kind=", "bansd_source_state{service=\"front\",state=\"waiting\"} 1",
		"bansd_source_lag_seconds{service=", "bansd_source_reconnects_total{service=", "bansd_ban_latency_seconds_bucket",
		"bansd_nft_flush_seconds_count", "bansd_dropped_packets_total{set=\"v4_32\"}", "bansd_dropped_bytes_total{set=",
	} {
		if !strings.Contains(m.String(), name) {
			t.Errorf("metrics lack %s", name)
		}
	}

	// unban one, then a jail, then all.
	in.mustCtl(t, 0, "unban", "203.0.113.7")
	if k := in.kernel(t, "v4_32"); strings.Contains(k, "203.0.113.7 ") || strings.Contains(k, "203.0.113.7,") {
		t.Errorf("203.0.113.7 still in the kernel:\n%s", k)
	}
	if out := in.mustCtl(t, 0, "list"); strings.Contains(out, "203.0.113.7/32") {
		t.Errorf("203.0.113.7 still listed:\n%s", out)
	}
	in.mustCtl(t, 0, "unban", "--all", "--yes")
	if out := in.mustCtl(t, 0, "list", "--json"); strings.TrimSpace(out) != `{"bans":[]}` {
		t.Errorf("after unban --all: %s", out)
	}
	if k := in.kernel(t, "v4_24"); strings.Contains(k, "198.51.100.0") {
		t.Errorf("198.51.100.0/24 still in the kernel:\n%s", k)
	}

	// A dead daemon is an operation failure (1), not a usage error.
	if _, errs, code := runCtl(t, filepath.Join(in.dir, "none.sock"), nil, "status"); code != 1 || !strings.Contains(errs, "not running") {
		t.Errorf("status without daemon: exit %d: %s", code, errs)
	}
}

// TestNonRootRefused proves the peer-credential check: even with the
// socket opened to everyone, uid 65534 gets 403.
func TestNonRootRefused(t *testing.T) {
	in := start(t)
	fi, err := os.Stat(in.socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	if err := os.Chmod(in.socket, 0o666); err != nil {
		t.Fatal(err)
	}
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	for _, args := range [][]string{{"status"}, {"ban", "203.0.113.66"}, {"list"}} {
		out, errs, code := runCtl(t, in.socket, nobody, args...)
		// The daemon's 403, not a file-permission error on connect.
		if code != 1 || !strings.Contains(errs, "only root and members of daemon.socket_group") {
			t.Errorf("bansctl %v as nobody: exit %d\nstdout: %s\nstderr: %s", args, code, out, errs)
		}
	}
	if k := in.kernel(t, "v4_32"); strings.Contains(k, "203.0.113.66") {
		t.Errorf("nobody banned an address:\n%s", k)
	}
	in.mustCtl(t, 0, "status")
}

// TestSocketGroup: with daemon.socket_group the socket is 0660 for that
// group, and its members (primary or supplementary) may use it; others not.
func TestSocketGroup(t *testing.T) {
	in := start(t)
	in.stop(t)
	in.daemonExtra = "socket_group = \"nogroup\"\n"
	in.writeConfig(t, "")
	in.run(t)
	fi, err := os.Stat(in.socket)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o660 || st.Gid != 65534 || st.Uid != 0 {
		t.Errorf("socket mode %v owner %d:%d, want 0660 0:65534", fi.Mode().Perm(), st.Uid, st.Gid)
	}
	for _, tc := range []struct {
		name string
		cred *syscall.Credential
		want int
	}{
		{"primary group", &syscall.Credential{Uid: 65534, Gid: 65534}, 0},
		{"supplementary group", &syscall.Credential{Uid: 65534, Gid: 1, Groups: []uint32{2, 65534}}, 0},
		{"not a member", &syscall.Credential{Uid: 65534, Gid: 1, Groups: []uint32{2}}, 1},
	} {
		// The socket file is 0660: a non-member would fail at connect,
		// so open it up to reach the credential check.
		os.Chmod(in.socket, 0o666)
		_, errs, code := runCtl(t, in.socket, tc.cred, "status")
		if code != tc.want {
			t.Errorf("%s: exit %d, want %d: %s", tc.name, code, tc.want, errs)
		}
	}
}

func TestBadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[daemon]\nlog_level = \"info\"\n\n[jails.auth]\nfindtime = \"forever\"\n"), 0o644)
	cmd := exec.Command(filepath.Join(binDir, "bansd"), "--config", bad)
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() == 0 {
		t.Fatalf("bansd with a bad config: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), bad+":5: jails.auth.findtime") {
		t.Errorf("error does not name file:line: key:\n%s", out)
	}
	os.WriteFile(bad, []byte("[daemon]\nsocket_path = \"/x\"\n"), 0o644)
	out, err = exec.Command(filepath.Join(binDir, "bansd"), "--config", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), bad+":2: daemon.socket_path: unknown key") {
		t.Errorf("unknown key: %v\n%s", err, out)
	}
}

// TestReloadAndStop: SIGHUP with a bad file keeps the old config and shows
// why; a good one is taken; SIGTERM leaves the kernel bans in place.
func TestReloadAndStop(t *testing.T) {
	in := start(t)
	in.mustCtl(t, 0, "ban", "--for", "2h", "203.0.113.50", "2001:db8:5::1")

	in.writeConfig(t, "[jails.auth]\nmaxretry = 0\n")
	in.cmd.Process.Signal(syscall.SIGHUP)
	st := waitReload(t, in, func(r *control.ReloadResult) bool { return r != nil })
	if st.Config.LastReload.OK || !strings.Contains(st.Config.LastReload.Error, "jails.auth.maxretry") {
		t.Errorf("bad reload: %+v", st.Config.LastReload)
	}
	if out := in.mustCtl(t, 0, "status"); !strings.Contains(out, "REFUSED") || !strings.Contains(out, "previous config keeps running") {
		t.Errorf("status does not show the refused reload:\n%s", out)
	}

	in.writeConfig(t, "[jails.auth]\nmaxretry = 3\n")
	in.cmd.Process.Signal(syscall.SIGHUP)
	st = waitReload(t, in, func(r *control.ReloadResult) bool { return r != nil && r.OK })
	if !st.Config.LastReload.OK {
		t.Errorf("good reload: %+v", st.Config.LastReload)
	}

	in.stop(t)
	if k := in.kernel(t, "v4_32"); !strings.Contains(k, "203.0.113.50") {
		t.Errorf("kernel ban gone after SIGTERM:\n%s", k)
	}
	if k := in.kernel(t, "v6_128"); !strings.Contains(k, "2001:db8:5::1") {
		t.Errorf("kernel ban gone after SIGTERM:\n%s", k)
	}
	if !strings.Contains(in.log.String(), "kernel bans stay in place") {
		t.Errorf("no shutdown log:\n%s", in.log.String())
	}
}

func waitReload(t *testing.T, in *instance, ok func(*control.ReloadResult) bool) control.Status {
	t.Helper()
	c := control.NewClient(in.socket)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := c.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ok(st.Config.LastReload) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("reload not seen: %+v", st.Config.LastReload)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
