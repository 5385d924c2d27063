package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bansd/bansd/integration/mailclient"
	"github.com/bansd/bansd/internal/dockertest"
	"github.com/bansd/bansd/internal/netnstest"
)

// Mailu's users in mailu/mailu.env.
const (
	legitUser = "alice@example.com"
	legitPass = "alice-password"
)

// stack is a running Mailu-shaped compose project on a private engine.
type stack struct {
	e       *dockertest.Engine
	version string
	env     []string
	compose string
}

// mailuImages imports one rootfs under Mailu's image names: a read-only
// bind of the host's /usr supplies nginx and Dovecot to front; admin and
// the backends are the static Go stand-ins at /admin and /backend.
func mailuImages(t testing.TB, e *dockertest.Engine, version string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	dir := func(name string, mode int64) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: now}); err != nil {
			t.Fatal(err)
		}
	}
	file := func(name string, data []byte, mode int64) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: now}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"usr", "etc", "etc/ssl", "etc/dovecot", "proc", "sys", "dev", "run", "var", "var/lib", "var/lib/nginx", "var/lib/dovecot", "var/log", "var/log/nginx", "certs", "conf"} {
		dir(d, 0o755)
	}
	dir("tmp", 0o1777)
	for link, target := range map[string]string{"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: link, Linkname: target, Mode: 0o777, ModTime: now}); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"etc/passwd", "etc/group"} {
		b, err := os.ReadFile(filepath.Join(repoRoot(), "integration/mailu/rootfs", f))
		if err != nil {
			t.Fatal(err)
		}
		file(f, b, 0o644)
	}
	for name, src := range map[string]string{"admin": bins.admin, "backend": bins.backend} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		file(name, b, 0o755)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	ref := "ghcr.io/mailu/nginx:" + version
	if _, err := e.DockerInput(&buf, "import", "-", ref); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"admin", "postfix", "dovecot"} {
		e.Docker(t, "tag", ref, "ghcr.io/mailu/"+name+":"+version)
	}
}

// certs writes a throw-away self-signed certificate for front.
func certs(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
		"-nodes", "-days", "2", "-subj", "/CN=mail.example.com",
		"-keyout", filepath.Join(dir, "key.pem"), "-out", filepath.Join(dir, "cert.pem")).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl (apt-get install openssl): %v: %s", err, out)
	}
	for _, f := range []string{"key.pem", "cert.pem"} {
		if err := os.Chmod(filepath.Join(dir, f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startStack brings up project "mailu" with docker-compose (Debian's v1);
// env adds variables of mailu/docker-compose.yml (AUTH_RATELIMIT_IP=...).
func startStack(t testing.TB, e *dockertest.Engine, version string, env ...string) *stack {
	t.Helper()
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatal("docker-compose not found (apt-get install docker-compose)")
	}
	mailuImages(t, e, version)
	s := &stack{
		e:       e,
		version: version,
		env:     append(append(e.Env(), "MAILU_VERSION="+version, "MAILU_CERTS="+certs(t)), env...),
		compose: filepath.Join(repoRoot(), "integration/mailu/docker-compose.yml"),
	}
	s.composeRun(t, "up", "-d")
	t.Cleanup(func() {
		if t.Failed() {
			for _, svc := range []string{"front", "admin"} {
				cmd := exec.Command("docker", "-H", e.Host(), "logs", "-t", "--tail", "60", "mailu_"+svc+"_1")
				cmd.Env = e.Env()
				out, _ := cmd.CombinedOutput()
				t.Logf("docker logs mailu_%s_1 (tail):\n%s", svc, out)
			}
		}
		// No `docker-compose down`: the engine's own cleanup removes the
		// containers and the network with it, in a fraction of the time.
	})
	return s
}

func (s *stack) composeCmd(args ...string) *exec.Cmd {
	cmd := exec.Command("docker-compose", append([]string{"-p", "mailu", "-f", s.compose}, args...)...)
	cmd.Env = s.env
	return cmd
}

func (s *stack) composeRun(t testing.TB, args ...string) {
	t.Helper()
	if out, err := s.composeCmd(args...).CombinedOutput(); err != nil {
		t.Fatalf("docker-compose %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// logs returns `docker logs -t` of one service, both streams.
func (s *stack) logs(t testing.TB, service string) string {
	t.Helper()
	cmd := exec.Command("docker", "-H", s.e.Host(), "logs", "-t", "mailu_"+service+"_1")
	cmd.Env = s.e.Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker logs: %v: %s", err, out)
	}
	return string(out)
}

// peer is a network namespace linked by veth to the engine's namespace:
// an Internet client of the Mailu host.
type peer struct {
	ns     *netnstest.NS
	addrs  []netip.Addr // IPv4 addresses, the first one primary
	addr6  netip.Addr
	front  netip.Addr // the engine-side address it connects to
	front6 netip.Addr // the same over IPv6
}

var peerSeq struct {
	sync.Mutex
	n int
}

// newLegit is the legitimate client's peer: 203.0.113.2, 2001:db8:2::2.
func newLegit(t testing.TB, e *dockertest.Engine) *peer {
	t.Helper()
	return newPeer(t, e, "203.0.113", "2001:db8:2", 0)
}

// newAttacker is the attackers' peer: 198.51.100.2 and extra more
// addresses, 2001:db8:1::2.
func newAttacker(t testing.TB, e *dockertest.Engine, extra int) *peer {
	t.Helper()
	return newPeer(t, e, "198.51.100", "2001:db8:1", extra)
}

// newPeer links a fresh namespace to e's: net3 is the IPv4 /24 ("198.51.100"),
// net6 the IPv6 /64 ("2001:db8:1"); extra adds that many more IPv4
// addresses (.10 upwards) to the peer, for runs that need fresh sources.
func newPeer(t testing.TB, e *dockertest.Engine, net3, net6 string, extra int) *peer {
	t.Helper()
	ns := netnstest.New(t)
	peerSeq.Lock()
	peerSeq.n++
	n := peerSeq.n
	peerSeq.Unlock()
	a, b := fmt.Sprintf("bp%d-%d", os.Getpid()%100000, n), fmt.Sprintf("bh%d-%d", os.Getpid()%100000, n)
	if out, err := exec.Command("ip", "link", "add", a, "netns", ns.Name, "type", "veth", "peer", "name", b, "netns", e.NetNS).CombinedOutput(); err != nil {
		t.Fatalf("veth: %v: %s", err, out)
	}
	e.Exec(t, "ip", "addr", "add", net3+".1/24", "dev", b)
	e.Exec(t, "ip", "-6", "addr", "add", net6+"::1/64", "dev", b, "nodad")
	e.Exec(t, "ip", "link", "set", b, "up")
	p := &peer{ns: ns, addr6: netip.MustParseAddr(net6 + "::2"), front: netip.MustParseAddr(net3 + ".1"), front6: netip.MustParseAddr(net6 + "::1")}
	var batch strings.Builder
	for i := 0; i <= extra; i++ {
		host := 2
		if i > 0 {
			host = 9 + i
		}
		addr := netip.MustParseAddr(fmt.Sprintf("%s.%d", net3, host))
		p.addrs = append(p.addrs, addr)
		fmt.Fprintf(&batch, "addr add %s/24 dev %s\n", addr, a)
	}
	fmt.Fprintf(&batch, "addr add %s/64 dev %s nodad\nlink set %s up\n", p.addr6, a, a)
	cmd := exec.Command("ip", "netns", "exec", ns.Name, "ip", "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("peer addresses: %v: %s", err, out)
	}
	ns.Run(t, "ip", "route", "add", "default", "via", net3+".1")
	ns.Run(t, "ip", "-6", "route", "add", "default", "via", net6+"::1")
	return p
}

// dial opens a TCP connection from inside the peer's namespace.
func (p *peer) dial(ctx context.Context, addr string, src netip.Addr) (net.Conn, error) {
	var c net.Conn
	err := p.ns.Do(func() error {
		var err error
		c, err = mailclient.Dial(ctx, addr, src)
		return err
	})
	return c, err
}

// login logs in from src, over IPv6 when src is an IPv6 address.
func (p *peer) login(src netip.Addr, proto mailclient.Proto, user, pass string) mailclient.Result {
	front := p.front
	if src.Is6() {
		front = p.front6
	}
	return mailclient.Login(context.Background(), mailclient.Options{
		Addr: net.JoinHostPort(front.String(), fmt.Sprint(mailclient.DefaultPort(proto))), Proto: proto,
		User: user, Pass: pass, Source: src, Timeout: 8 * time.Second, Dial: p.dial,
	})
}

func (p *peer) probe(src netip.Addr, port int, timeout time.Duration) mailclient.Result {
	front := p.front
	if src.Is6() {
		front = p.front6
	}
	return mailclient.Probe(context.Background(), net.JoinHostPort(front.String(), fmt.Sprint(port)), src, timeout, p.dial)
}

// waitReady waits until a legitimate IMAP login through front succeeds:
// nginx, Dovecot, admin and the backend are all up.
func waitReady(t testing.TB, p *peer) {
	t.Helper()
	if last, ok := ready(p, 60*time.Second); !ok {
		t.Fatalf("front not ready after 60s: last login %+v", last)
	}
}

// ready tries a legitimate IMAP login through front until one succeeds or
// within has passed, and returns the last attempt.
func ready(p *peer, within time.Duration) (mailclient.Result, bool) {
	deadline := time.Now().Add(within)
	var last mailclient.Result
	for time.Now().Before(deadline) {
		if last = p.login(p.addrs[0], mailclient.IMAPS, legitUser, legitPass); last.Outcome == mailclient.Success {
			return last, true
		}
		time.Sleep(300 * time.Millisecond)
	}
	return last, false
}

// bansd is a running daemon in the engine's namespace.
type bansd struct {
	cmd    *exec.Cmd
	dir    string
	socket string
	log    string
	done   chan struct{}
}

// startBansd runs the real bansd in e's namespace with its own state,
// socket and a config overlay (extra TOML appended to the test's base).
func startBansd(t testing.TB, e *dockertest.Engine, extra string) *bansd {
	t.Helper()
	buildDaemon(t)
	dir, err := os.MkdirTemp("", "bansd-e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b := &bansd{dir: dir, socket: filepath.Join(dir, "bansd.sock"), log: filepath.Join(dir, "bansd.log"), done: make(chan struct{})}
	cfg := fmt.Sprintf(`[daemon]
socket = %q
state = %q
log_level = "debug"

[docker]
host = %q
project = "mailu"
`, b.socket, filepath.Join(dir, "bansd.db"), e.Host()) + extra
	cfgPath := filepath.Join(dir, "bansd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(b.log)
	if err != nil {
		t.Fatal(err)
	}
	b.cmd = exec.Command("nsenter", "--net=/run/netns/"+e.NetNS, bins.bansd, "-config", cfgPath)
	b.cmd.Stdout, b.cmd.Stderr = logf, logf
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = b.cmd.Wait(); logf.Close(); close(b.done) }()
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command(bins.bansctl, "--socket", b.socket, "status").CombinedOutput()
			t.Logf("bansctl status:\n%s", out)
		}
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.done
		}
		if t.Failed() {
			t.Logf("bansd log (tail):\n%s", dockertest.Tail(b.log, 60))
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st struct {
			Sources []struct {
				Service, State string
			}
		}
		out, err := b.ctl("status")
		if err == nil && json.Unmarshal([]byte(out), &st) == nil && following(st.Sources) {
			return b
		}
		select {
		case <-b.done:
			t.Fatalf("bansd exited:\n%s", dockertest.Tail(b.log, 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("bansd not following front and admin after 20s: %v %s\n%s", err, out, dockertest.Tail(b.log, 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func following(srcs []struct{ Service, State string }) bool {
	n := 0
	for _, s := range srcs {
		if (s.Service == "front" || s.Service == "admin") && s.State == "attached" {
			n++
		}
	}
	return n == 2
}

// ctl runs bansctl --json against this daemon.
func (b *bansd) ctl(args ...string) (string, error) {
	cmd := exec.Command(bins.bansctl, append([]string{"--socket", b.socket, "--json"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("bansctl %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// ctlText runs bansctl without --json (what an operator reads).
func (b *bansd) ctlText(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(bins.bansctl, append([]string{"--socket", b.socket}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("bansctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
