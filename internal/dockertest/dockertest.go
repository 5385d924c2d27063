// Package dockertest runs a real, private Docker engine for tests: Debian's
// dockerd inside a fresh network namespace, with its own data root, exec root
// and socket, removed again when the test ends.
//
// The engine's bridge and address pools stay inside 192.0.2.0/24, so that
// 198.51.100.0/24 and 203.0.113.0/24 remain free for veth links between the
// test's namespaces.
package dockertest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/roottest"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"golang.org/x/sys/unix"
)

// Options shape the engine.
type Options struct {
	// UserlandProxy turns on docker-proxy for published ports (dockerd's own
	// default; off here unless asked, as on hardened hosts).
	UserlandProxy bool
	// IPv6 enables IPv6 on the default bridge (2001:db8:d0c::/64) and
	// ip6tables rules.
	IPv6 bool
	// LiveRestore keeps containers running while dockerd is stopped.
	LiveRestore bool
	// Bip is the default bridge's address; "" means 192.0.2.1/25.
	Bip string
	// AddressPool is the --default-address-pool value for new networks;
	// "" means base=192.0.2.128/25,size=28 (eight /28 networks).
	AddressPool string
	// ExtraArgs are appended to dockerd's command line.
	ExtraArgs []string
}

// Engine is one running dockerd.
type Engine struct {
	// NetNS is the network namespace's name under /run/netns.
	NetNS string
	// Socket is the path of dockerd's unix socket.
	Socket string
	// Dir holds the data root, exec root, pid file and dockerd's log.
	Dir string

	opts Options

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	images map[string]bool // refs imported
}

var engines atomic.Int64

// Start creates a network namespace, starts dockerd in it and waits until it
// answers /_ping. Everything is undone by t.Cleanup.
func Start(t testing.TB, opts Options) *Engine {
	t.Helper()
	roottest.Require(t, "dockerd in a network namespace")
	for _, bin := range []string{"dockerd", "docker", "nsenter", "ip", "containerd", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("dockertest: %s not found (apt-get install docker.io iproute2 util-linux): %v", bin, err)
		}
	}
	// Short paths: containerd's and the shims' unix sockets live under the
	// exec root and must fit in sun_path (108 bytes).
	dir, err := os.MkdirTemp("/tmp", "bd")
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	e := &Engine{
		NetNS:  fmt.Sprintf("bansd-%d-%d", os.Getpid(), engines.Add(1)),
		Socket: filepath.Join(dir, "d.sock"),
		Dir:    dir,
		opts:   opts,
		images: map[string]bool{},
	}
	t.Cleanup(func() { e.removeDir(t) })
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}\n"), 0o600); err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	if out, err := exec.Command("ip", "netns", "add", e.NetNS).CombinedOutput(); err != nil {
		t.Fatalf("dockertest: ip netns add %s: %v: %s", e.NetNS, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", e.NetNS).CombinedOutput(); err != nil {
			t.Errorf("dockertest: ip netns delete %s: %v: %s", e.NetNS, err, out)
		}
	})
	e.Exec(t, "ip", "link", "set", "lo", "up")
	t.Cleanup(func() { e.shutdown(t) })
	e.start(t)
	return e
}

func (e *Engine) args() []string {
	bip, pool := e.opts.Bip, e.opts.AddressPool
	if bip == "" {
		bip = "192.0.2.1/25"
	}
	if pool == "" {
		pool = "base=192.0.2.128/25,size=28"
	}
	a := []string{
		"--net=/run/netns/" + e.NetNS, "dockerd",
		"--config-file", filepath.Join(e.Dir, "daemon.json"),
		"--data-root", filepath.Join(e.Dir, "root"),
		"--exec-root", filepath.Join(e.Dir, "x"),
		"-H", "unix://" + e.Socket,
		"--pidfile", filepath.Join(e.Dir, "d.pid"),
		"--storage-driver=vfs",
		"--iptables=true",
		"--bip", bip,
		"--default-address-pool", pool,
		"--userland-proxy=" + strconv.FormatBool(e.opts.UserlandProxy),
		// A containerd already running on the host would be shared; keep
		// this engine's objects apart from anyone else's.
		"--containerd-namespace", e.NetNS,
		"--containerd-plugins-namespace", e.NetNS + "-p",
		"--shutdown-timeout", "2",
	}
	if e.opts.IPv6 {
		a = append(a, "--ipv6", "--fixed-cidr-v6", "2001:db8:d0c::/64", "--experimental", "--ip6tables")
	}
	if e.opts.LiveRestore {
		a = append(a, "--live-restore")
	}
	return append(a, e.opts.ExtraArgs...)
}

// start runs dockerd (through nsenter, not `ip netns exec`, which remounts
// /sys and hides the cgroup mounts) and waits for /_ping.
func (e *Engine) start(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(e.Dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	cmd := exec.Command("nsenter", e.args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("dockertest: start dockerd: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	e.mu.Lock()
	e.cmd, e.exited = cmd, exited
	e.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := e.ping(); err == nil {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("dockertest: dockerd did not answer /_ping within 60s: %v\n%s", err, e.LogTail(40))
		}
		select {
		case <-exited:
			t.Fatalf("dockertest: dockerd exited during start:\n%s", e.LogTail(40))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Pid is dockerd's process id (nsenter execs it), for benchmarks that
// read its CPU time.
func (e *Engine) Pid() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cmd.Process.Pid
}

func (e *Engine) ping() error {
	hc := &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", e.Socket)
		}},
	}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://docker/_ping")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/_ping: %s", resp.Status)
	}
	return nil
}

// Running reports whether the dockerd this engine started is still alive.
func (e *Engine) Running() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.exited == nil {
		return false
	}
	select {
	case <-e.exited:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM to dockerd and waits for it to exit; after 30 s it
// sends SIGKILL to dockerd's process group (dockerd and the containerd it
// supervises, nothing else).
func (e *Engine) Stop(t testing.TB) {
	t.Helper()
	if err := e.stop(); err != nil {
		t.Fatalf("dockertest: %v", err)
	}
}

func (e *Engine) stop() error {
	e.mu.Lock()
	cmd, exited := e.cmd, e.exited
	e.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return nil
	case <-time.After(30 * time.Second):
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-exited:
		return fmt.Errorf("dockerd ignored SIGTERM for 30s and was killed:\n%s", e.LogTail(20))
	case <-time.After(10 * time.Second):
		return fmt.Errorf("dockerd (pid %d) survived SIGKILL", cmd.Process.Pid)
	}
}

// Kill sends SIGKILL to dockerd alone, as a crash would, and waits for it
// to die. With LiveRestore the containers keep running; Restart brings the
// engine back.
func (e *Engine) Kill(t testing.TB) {
	t.Helper()
	e.mu.Lock()
	cmd, exited := e.cmd, e.exited
	e.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("dockertest: dockerd (pid %d) survived SIGKILL", cmd.Process.Pid)
	}
	e.waitContainerd(t)
}

// Restart stops dockerd if it runs and starts it again on the same data
// root and socket.
func (e *Engine) Restart(t testing.TB) {
	t.Helper()
	e.Stop(t)
	e.start(t)
}

// RestartWith stops dockerd and starts it again with opts, on the same
// data root and socket (e.g. the userland proxy turned off).
func (e *Engine) RestartWith(t testing.TB, opts Options) {
	t.Helper()
	e.Stop(t)
	e.opts = opts
	e.start(t)
}

// shutdown removes every container, stops dockerd and kills what a killed
// dockerd may have left behind (shims and container processes of this
// engine only).
func (e *Engine) shutdown(t testing.TB) {
	if e.Running() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := e.removeContainers(ctx); err != nil {
			t.Logf("dockertest: remove containers: %v", err)
		}
	}
	if err := e.stop(); err != nil {
		t.Errorf("dockertest: %v", err)
	}
	e.killLeftovers(t)
	if t.Failed() {
		t.Logf("dockertest: dockerd log (last lines):\n%s", e.LogTail(30))
	}
}

func (e *Engine) removeContainers(ctx context.Context) error {
	c, err := e.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	return removeAll(ctx, c)
}

// killLeftovers kills what a killed dockerd leaves behind, and only this
// engine's: container init processes (by the pid files under the exec
// root, checked against their cgroup) and then containerd and its shims
// (their command lines name this engine's directory).
func (e *Engine) killLeftovers(t testing.TB) {
	root := filepath.Join(e.Dir, "x", "containerd", "daemon", "io.containerd.runtime.v2.task", e.NetNS)
	ents, _ := os.ReadDir(root)
	for _, ent := range ents {
		id := ent.Name()
		b, err := os.ReadFile(filepath.Join(root, id, "init.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		if cgroup, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid)); bytes.Contains(cgroup, []byte(id)) {
			t.Logf("dockertest: killing leftover container %.12s (pid %d)", id, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, pid := range e.ownProcesses() {
		t.Logf("dockertest: killing leftover containerd process %d", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// ownProcesses lists the live containerd and shim processes whose command
// line names this engine's directory.
func (e *Engine) ownProcesses() []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if !strings.HasPrefix(filepath.Base(args[0]), "containerd") || !bytes.Contains(b, []byte(e.Dir+"/")) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitContainerd waits until the containerd a killed dockerd supervised
// is gone, and removes its pid file: a zombie not yet reaped by init still
// answers kill(pid, 0), and dockerd would wait for it forever.
func (e *Engine) waitContainerd(t testing.TB) {
	pidfile := filepath.Join(e.Dir, "x", "containerd", "containerd.pid")
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return
	}
	pid := strings.TrimSpace(string(b))
	deadline := time.Now().Add(20 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		// The state follows the command name in parentheses.
		if i := bytes.LastIndexByte(stat, ')'); err != nil || (i > 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X')) {
			break
		}
		if time.Now().After(deadline) {
			// Still serving: dockerd will adopt it.
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := os.Remove(pidfile); err != nil && !os.IsNotExist(err) {
		t.Fatalf("dockertest: %v", err)
	}
}

func (e *Engine) removeDir(t testing.TB) {
	// dockerd normally unmounts everything on exit; a killed one leaves
	// bind mounts (netns files, container rootfs) under the exec root.
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		var mps []string
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) > 4 {
				if mp := unescapeMount(f[4]); strings.HasPrefix(mp, e.Dir+"/") {
					mps = append(mps, mp)
				}
			}
		}
		for i := len(mps) - 1; i >= 0; i-- {
			_ = unix.Unmount(mps[i], unix.MNT_DETACH)
		}
	}
	if err := os.RemoveAll(e.Dir); err != nil {
		t.Errorf("dockertest: remove %s: %v", e.Dir, err)
	}
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// LogTail returns the last n lines of dockerd's log.
func (e *Engine) LogTail(n int) string {
	return Tail(filepath.Join(e.Dir, "dockerd.log"), n)
}

// Tail returns the last n lines of the file at path, or the error reading
// it.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Client returns an API client for this engine, closed by t.Cleanup.
func (e *Engine) Client(t testing.TB) *client.Client {
	t.Helper()
	c, err := e.newClient()
	if err != nil {
		t.Fatalf("dockertest: client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (e *Engine) newClient() (*client.Client, error) {
	return client.NewClientWithOpts(client.WithHost(e.Host()), client.WithAPIVersionNegotiation())
}

// Host is the DOCKER_HOST value for this engine.
func (e *Engine) Host() string { return "unix://" + e.Socket }

// Env is the environment for docker and docker-compose commands aimed at
// this engine (os.Environ plus DOCKER_HOST and a private DOCKER_CONFIG).
func (e *Engine) Env() []string {
	return append(os.Environ(), "DOCKER_HOST="+e.Host(), "DOCKER_CONFIG="+filepath.Join(e.Dir, "cli"))
}

// Docker runs the docker CLI against this engine and returns its stdout;
// a failure fails the test.
func (e *Engine) Docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := e.DockerInput(nil, args...)
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	return out
}

// DockerInput runs the docker CLI with stdin and returns its stdout, or an
// error that carries stderr.
func (e *Engine) DockerInput(stdin io.Reader, args ...string) (string, error) {
	cmd := exec.Command("docker", append([]string{"-H", e.Host()}, args...)...)
	cmd.Env = e.Env()
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Exec runs a command inside the engine's network namespace and returns
// its stdout; a failure fails the test.
func (e *Engine) Exec(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + e.NetNS}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("dockertest: in %s: %s: %v: %s", e.NetNS, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String()
}

// ImportBusybox imports an image made of busybox-static (/bin/busybox, its
// applets as symlinks, /bin/sh) and returns its reference. Cached per engine.
func (e *Engine) ImportBusybox(t testing.TB) string {
	t.Helper()
	return e.Import(t, "bansd-busybox:latest", nil)
}

// ImportLogspam builds internal/dockertest/logspam as a static binary and
// imports it, beside busybox, as /bin/logspam. Cached per engine.
func (e *Engine) ImportLogspam(t testing.TB) string {
	t.Helper()
	e.mu.Lock()
	const ref = "bansd-logspam:latest"
	ok := e.images[ref]
	e.mu.Unlock()
	if ok {
		return ref
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("dockertest: cannot find the logspam source")
	}
	bin := filepath.Join(e.Dir, "logspam")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	cmd := exec.Command(gobin, "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = filepath.Join(filepath.Dir(file), "logspam")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dockertest: build logspam: %v: %s", err, out)
	}
	return e.Import(t, ref, map[string]string{"bin/logspam": bin})
}

// Import imports an image holding busybox plus files (path in the image →
// path on the host, copied with mode 0755) and returns ref. Cached per
// engine and ref.
func (e *Engine) Import(t testing.TB, ref string, files map[string]string) string {
	t.Helper()
	e.mu.Lock()
	if e.images[ref] {
		e.mu.Unlock()
		return ref
	}
	e.mu.Unlock()
	var buf bytes.Buffer
	if err := rootfs(&buf, files); err != nil {
		t.Fatalf("dockertest: rootfs for %s: %v", ref, err)
	}
	if _, err := e.DockerInput(&buf, "import", "-", ref); err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	e.mu.Lock()
	e.images[ref] = true
	e.mu.Unlock()
	return ref
}

func rootfs(w io.Writer, files map[string]string) error {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("%w (apt-get install busybox-static)", err)
	}
	list, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	tw := tar.NewWriter(w)
	now := time.Now()
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp"} {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode, ModTime: now}); err != nil {
			return err
		}
	}
	if err := writeFile(tw, "bin/busybox", bb, now); err != nil {
		return err
	}
	seen := map[string]bool{"busybox": true}
	for _, applet := range strings.Fields(string(list)) {
		if seen[applet] || strings.Contains(applet, "/") {
			continue
		}
		seen[applet] = true
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: now}); err != nil {
			return err
		}
	}
	if !seen["sh"] {
		return errors.New("busybox has no sh applet")
	}
	for dst, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := writeFile(tw, dst, b, now); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeFile(tw *tar.Writer, name string, b []byte, mod time.Time) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(b)), ModTime: mod}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

func removeAll(ctx context.Context, c *client.Client) error {
	cs, err := c.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return err
	}
	var errs []error
	for _, ct := range cs {
		if err := c.ContainerRemove(ctx, ct.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
