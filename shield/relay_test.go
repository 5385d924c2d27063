package shield

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/roottest"

	"github.com/bansd/bansd/internal/dockertest"
	"github.com/bansd/bansd/internal/netnstest"
	"github.com/bansd/bansd/internal/postfixtest"
	"golang.org/x/sys/unix"
)

// Mailu's network as compose makes it: IPv4 only, inside the engine's pool.
const (
	mailuSubnet = "192.0.2.144/28"
	hostV4      = "198.51.100.1"
	clientV4    = "198.51.100.2"
	hostV6      = "2001:db8:1::1"
	clientV6    = "2001:db8:1::2"
)

// relayStack is a real dockerd with the userland proxy on, an IPv4-only
// network, Debian's Postfix in a container publishing port 25 on all
// addresses with mynetworks = the network's subnet (as Mailu sets it), and
// a client namespace joined to the engine's by a veth. Nothing routes
// outside these namespaces.
type relayStack struct {
	eng    *dockertest.Engine
	cli    *netnstest.NS
	queue  string
	nsFd   int
	cname  string
	logDir string
}

func startRelay(t *testing.T) *relayStack {
	t.Helper()
	roottest.Require(t, "dockerd, network namespaces, nftables")
	if _, err := exec.LookPath("postfix"); err != nil {
		t.Fatal("shield: the postfix command is missing (apt-get install postfix; scripts/deps.sh)")
	}
	pu, err := user.Lookup("postfix")
	if err != nil {
		t.Fatal(err)
	}
	eng := dockertest.Start(t, dockertest.Options{UserlandProxy: true})
	img := eng.ImportBusybox(t)
	eng.Docker(t, "network", "create", "--subnet", mailuSubnet, "mailu_default")

	dir, err := os.MkdirTemp("", "shieldpf-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{"conf", "queue", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var uid, gid int
	fmt.Sscan(pu.Uid, &uid)
	fmt.Sscan(pu.Gid, &gid)
	if err := os.Chown(filepath.Join(dir, "data"), uid, gid); err != nil {
		t.Fatal(err)
	}
	// Mailu's smtp: mynetworks is SUBNET, relay for it without AUTH.
	// defer_transports keeps every relayed message queued: no delivery is
	// ever attempted, and there is no DNS or route out besides.
	main := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = /pf/queue
data_directory = /pf/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.example.org
mydomain = example.org
mydestination =
relay_domains = example.org
relay_transport = smtp
inet_interfaces = all
inet_protocols = ipv4
mynetworks = 127.0.0.0/8 %s
smtpd_relay_restrictions = permit_mynetworks reject_unauth_destination
defer_transports = smtp
default_transport = smtp
disable_dns_lookups = yes
smtpd_peername_lookup = no
alias_maps =
alias_database =
local_recipient_maps =
maillog_file_prefixes = /pf
maillog_file = /pf/maillog
smtputf8_enable = no
`, mailuSubnet)
	master := "25 inet n - n - - smtpd\npickup    unix n - n 60 1 pickup\nsmtp      unix - - n - - smtp\n" + postfixtest.CoreServices
	for name, text := range map[string]string{"main.cf": main, "master.cf": master} {
		if err := os.WriteFile(filepath.Join(dir, "conf", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// -t: Postfix reports start-up errors on stderr only when it is a tty.
	// The image is busybox; Debian's Postfix, its libraries and the host's
	// users come in read-only from the host.
	cname := "mailu-smtp-1"
	eng.Docker(t, "run", "-d", "-t", "--name", cname, "--network", "mailu_default", "-p", "25:25", "-p", "2525:25",
		"-v", "/usr:/usr:ro", "-v", "/lib:/lib:ro", "-v", "/lib64:/lib64:ro", "-v", "/etc:/etc:ro",
		"-v", dir+":/pf", img, "/usr/sbin/postfix", "-c", "/pf/conf", "start-fg")

	cli := netnstest.New(t)
	cli.Run(t, "ip", "link", "add", "vc", "type", "veth", "peer", "name", "vh", "netns", eng.NetNS)
	eng.Exec(t, "ip", "addr", "add", hostV4+"/24", "dev", "vh")
	eng.Exec(t, "ip", "addr", "add", hostV6+"/64", "dev", "vh", "nodad")
	eng.Exec(t, "ip", "link", "set", "vh", "up")
	cli.Run(t, "ip", "addr", "add", clientV4+"/24", "dev", "vc")
	cli.Run(t, "ip", "addr", "add", clientV6+"/64", "dev", "vc", "nodad")
	cli.Run(t, "ip", "link", "set", "vc", "up")

	fd, err := unix.Open("/run/netns/"+eng.NetNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	r := &relayStack{eng: eng, cli: cli, queue: filepath.Join(dir, "queue"), nsFd: fd, cname: cname, logDir: dir}

	end := time.Now().Add(30 * time.Second)
	for {
		c, err := r.dial("tcp", net.JoinHostPort(hostV4, "25"))
		if err == nil {
			br := bufio.NewReader(c)
			line, _ := br.ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "220") {
				break
			}
		}
		if time.Now().After(end) {
			out, _ := eng.DockerInput(nil, "logs", cname)
			t.Fatalf("postfix in the container did not greet within 30s: %v\nmaillog:\n%s\npostfix output:\n%s",
				err, r.maillog(), out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return r
}

func (r *relayStack) maillog() string {
	b, _ := os.ReadFile(filepath.Join(r.logDir, "maillog"))
	return string(b)
}

func (r *relayStack) dial(network, addr string) (net.Conn, error) {
	var c net.Conn
	err := r.cli.Do(func() (err error) {
		c, err = net.DialTimeout(network, addr, 3*time.Second)
		return
	})
	return c, err
}

// queued counts the message files in the queue's mail directories.
func (r *relayStack) queued(t *testing.T) int {
	t.Helper()
	n := 0
	for _, d := range []string{"maildrop", "incoming", "active", "deferred", "hold"} {
		filepath.WalkDir(filepath.Join(r.queue, d), func(_ string, e os.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() {
				n++
			}
			return nil
		})
	}
	return n
}

// relayAttempt speaks SMTP without AUTH: EHLO, MAIL FROM, RCPT TO a
// foreign domain, and DATA when the recipient was taken. It returns the
// RCPT reply.
func relayAttempt(c net.Conn) (string, error) { return sendAttempt(c, "someone@example.net") }

// sendAttempt is relayAttempt to rcpt.
func sendAttempt(c net.Conn, rcpt string) (string, error) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	read := func() (string, error) {
		var all string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return all, err
			}
			all += line
			if len(line) < 4 || line[3] != '-' {
				return strings.TrimSpace(all), nil
			}
		}
	}
	cmd := func(s string) (string, error) {
		if _, err := fmt.Fprintf(c, "%s\r\n", s); err != nil {
			return "", err
		}
		return read()
	}
	if g, err := read(); err != nil || !strings.HasPrefix(g, "220") {
		return g, fmt.Errorf("greeting %q: %v", g, err)
	}
	for _, s := range []string{"EHLO client.example.com", "MAIL FROM:<spammer@example.com>"} {
		if rep, err := cmd(s); err != nil || !strings.HasPrefix(rep, "250") {
			return rep, fmt.Errorf("%s: %q: %v", s, rep, err)
		}
	}
	rcpt, err := cmd("RCPT TO:<" + rcpt + ">")
	if err != nil || !strings.HasPrefix(rcpt, "250") {
		cmd("QUIT")
		return rcpt, err
	}
	if rep, err := cmd("DATA"); err != nil || !strings.HasPrefix(rep, "354") {
		return rcpt, fmt.Errorf("DATA: %q: %v", rep, err)
	}
	if rep, err := cmd("Subject: relay test\r\n\r\nrelayed through the gateway\r\n."); err != nil || !strings.HasPrefix(rep, "250") {
		return rcpt, fmt.Errorf("end of data: %q: %v", rep, err)
	}
	cmd("QUIT")
	return rcpt, nil
}

// gatewayConnect matches only a session's opening line from the gateway: a bare
// "connect from" also matches the "disconnect from" Postfix writes, a moment
// after QUIT, for the IPv4 session just before the shield goes up.
var gatewayConnect = regexp.MustCompile(`smtpd\[\d+\]: connect from [^\s\[]*\[192\.0\.2\.145\]`)

func TestRelayShield(t *testing.T) {
	r := startRelay(t)
	ctx := context.Background()
	v6 := net.JoinHostPort(hostV6, "25")
	v4 := net.JoinHostPort(hostV4, "25")

	// Without the shield, the IPv6 client is the gateway to Postfix: relayed.
	c, err := r.dial("tcp", v6)
	if err != nil {
		t.Fatalf("IPv6 dial without shield: %v", err)
	}
	rcpt, err := relayAttempt(c)
	if err != nil || !strings.HasPrefix(rcpt, "250") {
		t.Fatalf("IPv6 without shield: RCPT %q, %v; want 250 (open relay)\nmaillog:\n%s", rcpt, err, r.maillog())
	}
	t.Logf("IPv6 without shield: RCPT TO:<someone@example.net> -> %s", rcpt)
	if !strings.Contains(r.maillog(), "[192.0.2.145]") {
		t.Errorf("maillog shows no connection from the gateway 192.0.2.145:\n%s", r.maillog())
	}
	waitQueued(t, r, 1)
	t.Logf("postqueue -p:\n%s", r.eng.Docker(t, "exec", r.cname, "postqueue", "-c", "/pf/conf", "-p"))

	// IPv4 keeps its own address, outside mynetworks: refused to relay.
	c, err = r.dial("tcp", v4)
	if err != nil {
		t.Fatalf("IPv4 dial: %v", err)
	}
	rcpt, _ = relayAttempt(c)
	if !strings.HasPrefix(rcpt, "554") || !strings.Contains(rcpt, "Relay access denied") {
		t.Fatalf("IPv4: RCPT %q, want 554 Relay access denied", rcpt)
	}
	t.Logf("IPv4: RCPT TO:<someone@example.net> -> %s", rcpt)

	s, err := Open(Options{Table: "bansd", NetNS: r.nsFd})
	if err != nil {
		t.Fatal(err)
	}
	ports, why := Risk(Facts{UserlandProxy: true, PublishedAll: []uint16{25}, HostIPv6: true})
	t.Log(why)
	if err := s.Raise(ctx, ports); err != nil {
		t.Fatal(err)
	}
	before := r.queued(t)
	connects := len(gatewayConnect.FindAllString(r.maillog(), -1))
	if connects == 0 {
		t.Fatalf("maillog has no session opened by the gateway before the shield:\n%s", r.maillog())
	}
	start := time.Now()
	_, err = r.dial("tcp", v6)
	took := time.Since(start)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("IPv6 with shield: %v, want connection refused", err)
	}
	if took > 100*time.Millisecond {
		t.Fatalf("IPv6 with shield refused after %v, want within 100ms", took)
	}
	t.Logf("IPv6 with shield: refused in %v", took)
	time.Sleep(500 * time.Millisecond) // a connection that slipped through would be logged by now
	if n := r.queued(t); n != before {
		t.Errorf("queue went from %d to %d with the shield up", before, n)
	}
	if n := len(gatewayConnect.FindAllString(r.maillog(), -1)); n != connects {
		t.Errorf("Postfix logged %d new connections from the gateway with the shield up:\n%s", n-connects, r.maillog())
	}
	st, err := s.Status(ctx)
	if err != nil || !st.Up || !st.Intact || st.Refused != 1 {
		t.Fatalf("status = %+v, %v; want up, intact, refused 1", st, err)
	}

	// IPv6 to a port not shielded still reaches docker-proxy.
	c, err = r.dial("tcp", net.JoinHostPort(hostV6, "2525"))
	if err != nil {
		t.Fatalf("IPv6 to unshielded 2525: %v", err)
	}
	c.Close()

	// IPv4 is untouched by the shield.
	c, err = r.dial("tcp", v4)
	if err != nil {
		t.Fatalf("IPv4 dial with shield: %v", err)
	}
	if rcpt, _ = relayAttempt(c); !strings.HasPrefix(rcpt, "554") {
		t.Fatalf("IPv4 with shield: RCPT %q, want 554", rcpt)
	}
	// And mail for the server's own domain (Mailu's own mail) still
	// arrives over IPv4 with the shield up.
	queued := r.queued(t)
	if c, err = r.dial("tcp", v4); err != nil {
		t.Fatalf("IPv4 dial with shield: %v", err)
	}
	if rcpt, err = sendAttempt(c, "postmaster@example.org"); err != nil || !strings.HasPrefix(rcpt, "250") {
		t.Fatalf("IPv4 with shield, mail for example.org: RCPT %q, %v; want 250", rcpt, err)
	}
	waitQueued(t, r, queued+1)
	t.Logf("IPv4 with shield: RCPT TO:<postmaster@example.org> -> %s, queued", rcpt)

	if log := r.maillog(); strings.Contains(log, "status=sent") || strings.Contains(log, "status=bounced") {
		t.Errorf("Postfix tried delivery, want every relayed message held:\n%s", log)
	}

	// Docker's own tables survive the shield coming and going.
	dockerRules := r.eng.Exec(t, "iptables-save")
	if err := s.Lower(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.eng.Exec(t, "iptables-save"); stripCounters(got) != stripCounters(dockerRules) {
		t.Errorf("Docker's iptables changed:\nbefore\n%s\nafter\n%s", dockerRules, got)
	}
	c, err = r.dial("tcp", v6)
	if err != nil {
		t.Fatalf("IPv6 after Lower: %v", err)
	}
	c.Close()

	// Raised again, then someone runs `nft flush ruleset` (it also wipes
	// Docker's iptables-nft rules; docker-proxy keeps listening): IPv6
	// gets through until Ensure puts the shield back.
	if err := s.Raise(ctx, ports); err != nil {
		t.Fatal(err)
	}
	if _, err := r.dial("tcp", v6); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("IPv6 after re-raise: %v, want refused", err)
	}
	r.eng.Exec(t, "nft", "flush", "ruleset")
	c, err = r.dial("tcp", v6)
	if err != nil {
		t.Fatalf("IPv6 after flush ruleset, before Ensure: %v, want connected", err)
	}
	c.Close()
	if err := s.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.dial("tcp", v6); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("IPv6 after Ensure: %v, want refused", err)
	}
	if st, err := s.Status(ctx); err != nil || !st.Up || !st.Intact {
		t.Fatalf("status after Ensure = %+v, %v", st, err)
	}
}

func stripCounters(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "#") || strings.HasPrefix(l, ":") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func waitQueued(t *testing.T, r *relayStack, n int) {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for r.queued(t) < n {
		if time.Now().After(end) {
			t.Fatalf("%d messages queued after 10s, want %d\nmaillog:\n%s", r.queued(t), n, r.maillog())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("queued: %d", r.queued(t))
}
