// Package postfixtest runs Debian's real Postfix for a test: its own
// configuration, queue and data directories under a temporary directory,
// inside a network namespace of its own, listening on a test address and
// delivering every recipient of its domain into one Maildir.
package postfixtest

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/roottest"

	"github.com/bansd/bansd/internal/netnstest"
)

// Addr is where Postfix listens inside its namespace.
const (
	Addr   = "192.0.2.25"
	Port   = 25
	Domain = "example.test"
	// TLSPort takes implicit TLS (submissions, RFC 8314) when Options.TLS.
	TLSPort = 465
)

// Options shape the server.
type Options struct {
	// TLS offers STARTTLS with a self-signed certificate for
	// mx.example.test, and implicit TLS on TLSPort.
	TLS bool
}

// Server is one running Postfix.
type Server struct {
	NS      *netnstest.NS
	Dir     string
	Maildir string // the Maildir every recipient's mail lands in
	// Roots trusts the server's certificate (TLS only).
	Roots *x509.CertPool
	conf  string
	t     testing.TB
}

// CoreServices are the master.cf lines every Postfix a test runs needs
// (no chroot: the services would need copies of /etc inside the queue);
// each adds its listeners and delivery agents.
const CoreServices = `cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`

// Start sets up and starts Postfix, and registers its stop and removal.
// It fails the test when not root or without the postfix package.
func Start(t testing.TB, opt Options) *Server {
	t.Helper()
	roottest.Require(t, "Postfix in a network namespace")
	if _, err := exec.LookPath("postfix"); err != nil {
		t.Fatal("postfixtest: the postfix command is missing (scripts/deps.sh installs Debian's postfix)")
	}
	pu, err := user.Lookup("postfix")
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	ns := netnstest.New(t)
	ns.Run(t, "ip", "addr", "add", Addr+"/32", "dev", "lo")

	// t.TempDir is 0700; Postfix's own user must walk into its
	// directories, so this one is made by hand.
	dir, err := os.MkdirTemp("", "postfixtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Server{NS: ns, Dir: dir, conf: filepath.Join(dir, "conf"), Maildir: filepath.Join(dir, "mail", "postmaster"), t: t}
	for _, d := range []string{"conf", "queue", "data", "mail"} {
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
	// Delivered as nobody: virtual(8) refuses root.
	if err := os.Chown(filepath.Join(dir, "mail"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	main := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.%[2]s
mydomain = %[2]s
myorigin = %[2]s
mydestination =
inet_interfaces = %[3]s
inet_protocols = ipv4
mynetworks = 127.0.0.0/8 192.0.2.0/24
smtpd_relay_restrictions = permit_mynetworks reject_unauth_destination
virtual_mailbox_domains = %[2]s
virtual_mailbox_base = %[1]s/mail
virtual_mailbox_maps = static:postmaster/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
alias_maps =
alias_database =
local_recipient_maps =
maillog_file_prefixes = %[1]s
maillog_file = %[1]s/maillog
smtputf8_enable = no
disable_dns_lookups = yes
smtpd_banner = $myhostname ESMTP postfixtest
`, dir, Domain, Addr)
	if opt.TLS {
		cert, key := filepath.Join(s.conf, "cert.pem"), filepath.Join(s.conf, "key.pem")
		out, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
			"-subj", "/CN=mx."+Domain, "-addext", "subjectAltName=DNS:mx."+Domain+",IP:"+Addr,
			"-keyout", key, "-out", cert).CombinedOutput()
		if err != nil {
			t.Fatalf("postfixtest: openssl: %v: %s", err, out)
		}
		pem, err := os.ReadFile(cert)
		if err != nil {
			t.Fatal(err)
		}
		s.Roots = x509.NewCertPool()
		s.Roots.AppendCertsFromPEM(pem)
		main += fmt.Sprintf("smtpd_tls_cert_file = %s\nsmtpd_tls_key_file = %s\nsmtpd_tls_security_level = may\n", cert, key)
	}
	master := fmt.Sprintf("%s:%d inet n - n - - smtpd\n", Addr, Port) + CoreServices +
		"virtual   unix - n n - - virtual\ntlsmgr    unix - - n 1000? 1 tlsmgr\n"
	if opt.TLS {
		master += fmt.Sprintf("%s:%d inet n - n - - smtpd -o smtpd_tls_wrappermode=yes\n", Addr, TLSPort)
	}
	for name, text := range map[string]string{"main.cf": main, "master.cf": master} {
		if err := os.WriteFile(filepath.Join(s.conf, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.Start()
	t.Cleanup(func() {
		if s.running() {
			s.Stop()
		}
	})
	return s
}

func (s *Server) postfix(cmd string) error {
	out, err := s.NS.Exec("postfix", "-c", s.conf, cmd)
	if err != nil {
		return fmt.Errorf("postfix %s: %v\n%s\nmaillog:\n%s", cmd, err, out, s.Log())
	}
	return nil
}

// Start starts (or restarts after Stop) the server and waits until it
// answers on its port.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.postfix("start"); err != nil {
		s.t.Fatal(err)
	}
	end := time.Now().Add(10 * time.Second)
	for {
		c, err := s.Dial(context.Background(), "tcp", net.JoinHostPort(Addr, fmt.Sprint(Port)))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(end) {
			s.t.Fatalf("postfixtest: not listening after 10s: %v\nmaillog:\n%s", err, s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server and waits for its master process to go.
func (s *Server) Stop() {
	s.t.Helper()
	if err := s.postfix("stop"); err != nil {
		s.t.Error(err)
		return
	}
	end := time.Now().Add(10 * time.Second)
	for s.running() {
		if time.Now().After(end) {
			s.t.Errorf("postfixtest: still running 10s after stop")
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) running() bool {
	_, err := s.NS.Exec("postfix", "-c", s.conf, "status")
	return err == nil
}

// Dial connects from inside the server's namespace (the only place its
// address exists); it fits notify.Options.Dial.
func (s *Server) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return s.NS.Dial(ctx, network, addr)
}

// Log is Postfix's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "maillog"))
	return string(b)
}

// Messages returns the delivered messages in delivery order (by file
// name, which starts with the delivery time).
func (s *Server) Messages() ([]*mail.Message, error) {
	var files []string
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(s.Maildir, sub))
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		for _, e := range ents {
			files = append(files, filepath.Join(s.Maildir, sub, e.Name()))
		}
	}
	sort.Slice(files, func(i, j int) bool { return filepath.Base(files[i]) < filepath.Base(files[j]) })
	var out []*mail.Message
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		m, err := mail.ReadMessage(fh)
		if err != nil {
			fh.Close()
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, m) // the body reader keeps fh open until the test ends
		s.t.Cleanup(func() { fh.Close() })
	}
	return out, nil
}

// WaitMessages waits until at least n messages were delivered.
func (s *Server) WaitMessages(n int, timeout time.Duration) []*mail.Message {
	s.t.Helper()
	end := time.Now().Add(timeout)
	for {
		ms, err := s.Messages()
		if err != nil {
			s.t.Fatal(err)
		}
		if len(ms) >= n || time.Now().After(end) {
			if len(ms) < n {
				s.t.Fatalf("postfixtest: %d messages after %s, want %d\nmaillog:\n%s", len(ms), timeout, n, tail(s.Log(), 30))
			}
			return ms
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
