// Package mailclient logs in to a mail front the way real clients and
// brute-force bots do (SMTP AUTH, IMAP LOGIN, POP3 USER/PASS, ManageSieve
// AUTHENTICATE), with or without TLS, and says how it went: success,
// failure, refused, or timeout (what a dropped SYN looks like).
package mailclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Proto is a login flavour, named by what a client configures.
type Proto string

const (
	SMTP       Proto = "smtp"       // port 25: STARTTLS if offered, then AUTH PLAIN (bots do this)
	Submission Proto = "submission" // port 587: STARTTLS, AUTH PLAIN
	SMTPS      Proto = "smtps"      // port 465: TLS, AUTH PLAIN
	IMAP       Proto = "imap"       // port 143: STARTTLS, LOGIN
	IMAPS      Proto = "imaps"      // port 993: TLS, LOGIN
	POP3       Proto = "pop3"       // port 110: STLS, USER/PASS
	POP3S      Proto = "pop3s"      // port 995: TLS, USER/PASS
	Sieve      Proto = "sieve"      // port 4190: STARTTLS, AUTHENTICATE PLAIN
)

// DefaultPort is the port Mailu's front publishes for p.
func DefaultPort(p Proto) int {
	return map[Proto]int{SMTP: 25, Submission: 587, SMTPS: 465, IMAP: 143, IMAPS: 993, POP3: 110, POP3S: 995, Sieve: 4190}[p]
}

// Outcome is how a login ended.
type Outcome string

const (
	Success Outcome = "success" // the server accepted the credentials
	Failure Outcome = "failure" // the server refused the credentials
	Timeout Outcome = "timeout" // no answer (a firewall drop)
	Refused Outcome = "refused" // RST: nothing listens
	Broken  Outcome = "error"   // anything else (protocol error, closed early)
)

// Options describe one login.
type Options struct {
	Addr    string // host:port of front
	Proto   Proto
	User    string
	Pass    string
	Source  netip.Addr    // local address to bind; zero: any
	Timeout time.Duration // whole session; 0: 10s
	// Dial opens the connection; nil: Dial. Tests pass one that opens the
	// socket inside another network namespace.
	Dial func(ctx context.Context, addr string, source netip.Addr) (net.Conn, error)
}

// Result is the outcome of one login.
type Result struct {
	Outcome Outcome       `json:"outcome"`
	Detail  string        `json:"detail,omitempty"`
	Elapsed time.Duration `json:"elapsed"`
	// Local is the client's address:port, as front logs it.
	Local string `json:"local,omitempty"`
}

// connect dials o.Addr from o.Source within o.Timeout (default 10 s) and
// sets the connection's deadline to match. done closes the connection and
// releases the timer.
func connect(ctx context.Context, o *Options) (c net.Conn, done func(), err error) {
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	dial := o.Dial
	if dial == nil {
		dial = Dial
	}
	c, err = dial(ctx, o.Addr, o.Source)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	return c, func() { c.Close(); cancel() }, nil
}

// Login runs one login session.
func Login(ctx context.Context, o Options) Result {
	start := time.Now()
	c, cancel, err := connect(ctx, &o)
	if err != nil {
		return Result{Outcome: classify(err), Detail: err.Error(), Elapsed: time.Since(start)}
	}
	defer cancel()
	local := c.LocalAddr().String()
	ok, detail, err := session(c, o)
	r := Result{Elapsed: time.Since(start), Local: local, Detail: detail}
	switch {
	case err != nil:
		r.Outcome = classify(err)
		r.Detail = strings.TrimSpace(detail + " " + err.Error())
	case ok:
		r.Outcome = Success
	default:
		r.Outcome = Failure
	}
	return r
}

// Dial opens a TCP connection from source (if set) to addr.
func Dial(ctx context.Context, addr string, source netip.Addr) (net.Conn, error) {
	d := net.Dialer{}
	if source.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: source.AsSlice()}
	}
	return d.DialContext(ctx, "tcp", addr)
}

func classify(err error) Outcome {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return Timeout
	case strings.Contains(err.Error(), "connection refused"):
		return Refused
	default:
		return Broken
	}
}

type conn struct {
	c net.Conn
	r *bufio.Reader
	o Options
}

func (c *conn) startTLS() {
	host, _, _ := net.SplitHostPort(c.o.Addr)
	t := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true, ServerName: host}) //nolint:gosec // test bed with a self-signed certificate
	c.c = t
	c.r = bufio.NewReader(t)
}

func (c *conn) send(line string) error {
	_, err := c.c.Write([]byte(line + "\r\n"))
	return err
}

func (c *conn) line() (string, error) {
	l, err := c.r.ReadString('\n')
	if err != nil {
		return strings.TrimRight(l, "\r\n"), fmt.Errorf("read: %w", err)
	}
	return strings.TrimRight(l, "\r\n"), nil
}

// smtpReply reads a (multi-line) SMTP reply.
func (c *conn) smtpReply() (int, string, error) {
	var all []string
	for {
		l, err := c.line()
		if err != nil {
			return 0, strings.Join(all, " | "), err
		}
		all = append(all, l)
		if len(l) < 4 || l[3] != '-' {
			code, _ := strconv.Atoi(l[:min(3, len(l))])
			return code, strings.Join(all, "\n"), nil
		}
	}
}

func session(nc net.Conn, o Options) (bool, string, error) {
	c := &conn{c: nc, r: bufio.NewReader(nc), o: o}
	if o.Proto == SMTPS || o.Proto == IMAPS || o.Proto == POP3S {
		c.startTLS()
	}
	switch o.Proto {
	case SMTP, Submission, SMTPS:
		return c.smtp()
	case IMAP, IMAPS:
		return c.imap()
	case POP3, POP3S:
		return c.pop3()
	case Sieve:
		return c.sieve()
	}
	return false, "", fmt.Errorf("unknown protocol %q", o.Proto)
}

func plain(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

func (c *conn) smtp() (bool, string, error) {
	if code, msg, err := c.smtpReply(); err != nil || code != 220 {
		return false, msg, errors.Join(err, fmt.Errorf("greeting %d", code))
	}
	ehlo := func() (string, error) {
		if err := c.send("EHLO client.example"); err != nil {
			return "", err
		}
		code, msg, err := c.smtpReply()
		if err == nil && code != 250 {
			err = fmt.Errorf("EHLO: %s", msg)
		}
		return msg, err
	}
	caps, err := ehlo()
	if err != nil {
		return false, caps, err
	}
	if c.o.Proto != SMTPS && strings.Contains(caps, "STARTTLS") {
		if err := c.send("STARTTLS"); err != nil {
			return false, "", err
		}
		if code, msg, err := c.smtpReply(); err != nil || code != 220 {
			return false, msg, errors.Join(err, fmt.Errorf("STARTTLS %d", code))
		}
		c.startTLS()
		if caps, err = ehlo(); err != nil {
			return false, caps, err
		}
	}
	// Port 25 never advertises AUTH; bots send it anyway.
	if err := c.send("AUTH PLAIN " + plain(c.o.User, c.o.Pass)); err != nil {
		return false, "", err
	}
	code, msg, err := c.smtpReply()
	if err != nil {
		return false, msg, err
	}
	_ = c.send("QUIT")
	return code == 235, msg, nil
}

// imapArg writes s as an IMAP quoted string, or as a non-synchronizing
// literal when it holds what a quoted string cannot (CR, LF, 8-bit): the
// usernames of injection attempts.
func imapArg(s string) string {
	if !strings.ContainsAny(s, "\r\n") && isASCII(s) {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	return "{" + strconv.Itoa(len(s)) + "+}\r\n" + s
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || s[i] == 0 {
			return false
		}
	}
	return true
}

func (c *conn) imapTagged(tag string) (string, error) {
	for {
		l, err := c.line()
		if err != nil {
			return l, err
		}
		if strings.HasPrefix(l, tag+" ") {
			return strings.TrimPrefix(l, tag+" "), nil
		}
	}
}

func (c *conn) imap() (bool, string, error) {
	greet, err := c.line()
	if err != nil || !strings.HasPrefix(greet, "* OK") {
		return false, greet, errors.Join(err, errors.New("no IMAP greeting"))
	}
	if c.o.Proto == IMAP {
		if err := c.send("a STARTTLS"); err != nil {
			return false, "", err
		}
		if r, err := c.imapTagged("a"); err != nil || !strings.HasPrefix(r, "OK") {
			return false, r, errors.Join(err, errors.New("STARTTLS refused"))
		}
		c.startTLS()
	}
	if err := c.send("b LOGIN " + imapArg(c.o.User) + " " + imapArg(c.o.Pass)); err != nil {
		return false, "", err
	}
	r, err := c.imapTagged("b")
	if err != nil {
		return false, r, err
	}
	_ = c.send("c LOGOUT")
	return strings.HasPrefix(r, "OK"), r, nil
}

func (c *conn) pop3() (bool, string, error) {
	greet, err := c.line()
	if err != nil || !strings.HasPrefix(greet, "+OK") {
		return false, greet, errors.Join(err, errors.New("no POP3 greeting"))
	}
	cmd := func(s string) (string, error) {
		if err := c.send(s); err != nil {
			return "", err
		}
		return c.line()
	}
	if c.o.Proto == POP3 {
		if r, err := cmd("STLS"); err != nil || !strings.HasPrefix(r, "+OK") {
			return false, r, errors.Join(err, errors.New("STLS refused"))
		}
		c.startTLS()
	}
	r, err := cmd("USER " + c.o.User)
	if err != nil {
		return false, r, err
	}
	if !strings.HasPrefix(r, "+OK") {
		return false, r, nil
	}
	if r, err = cmd("PASS " + c.o.Pass); err != nil {
		return false, r, err
	}
	_ = c.send("QUIT")
	return strings.HasPrefix(r, "+OK"), r, nil
}

// sieveResponse reads ManageSieve lines up to the OK/NO/BYE that ends them.
func (c *conn) sieveResponse() (string, error) {
	for {
		l, err := c.line()
		if err != nil {
			return l, err
		}
		u := strings.ToUpper(l)
		if strings.HasPrefix(u, "OK") || strings.HasPrefix(u, "NO") || strings.HasPrefix(u, "BYE") {
			return l, nil
		}
	}
}

func (c *conn) sieve() (bool, string, error) {
	if r, err := c.sieveResponse(); err != nil || !strings.HasPrefix(strings.ToUpper(r), "OK") {
		return false, r, errors.Join(err, errors.New("no ManageSieve greeting"))
	}
	if err := c.send("STARTTLS"); err != nil {
		return false, "", err
	}
	if r, err := c.sieveResponse(); err != nil || !strings.HasPrefix(strings.ToUpper(r), "OK") {
		return false, r, errors.Join(err, errors.New("STARTTLS refused"))
	}
	c.startTLS()
	// After STARTTLS the server sends its capabilities again.
	if r, err := c.sieveResponse(); err != nil {
		return false, r, err
	}
	if err := c.send(`AUTHENTICATE "PLAIN" "` + plain(c.o.User, c.o.Pass) + `"`); err != nil {
		return false, "", err
	}
	r, err := c.sieveResponse()
	if err != nil {
		return false, r, err
	}
	_ = c.send("LOGOUT")
	return strings.HasPrefix(strings.ToUpper(r), "OK"), r, nil
}

// Probe opens a TCP connection and closes it at once: success when the
// handshake completes, timeout when the SYN is dropped. dial may be nil.
func Probe(ctx context.Context, addr string, source netip.Addr, timeout time.Duration, dial func(context.Context, string, netip.Addr) (net.Conn, error)) Result {
	if dial == nil {
		dial = Dial
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := dial(ctx, addr, source)
	if err != nil {
		return Result{Outcome: classify(err), Detail: err.Error(), Elapsed: time.Since(start)}
	}
	defer c.Close()
	return Result{Outcome: Success, Elapsed: time.Since(start), Local: c.LocalAddr().String()}
}

// AuthLoginNoPassword sends, on one port 25 session, AUTH LOGIN with each of
// users as the username and a password that is not base64: nginx logs each
// username inside an "invalid base64" line, and nobody is asked whether the
// login is right, so the sender makes no failed login. It stops at the
// first error (nginx closes the session after a few bad commands) and
// returns how many usernames were logged. dial may be nil.
func AuthLoginNoPassword(ctx context.Context, addr string, source netip.Addr, users []string, timeout time.Duration, dial func(context.Context, string, netip.Addr) (net.Conn, error)) (int, error) {
	if dial == nil {
		dial = Dial
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := dial(ctx, addr, source)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	c := &conn{c: nc, r: bufio.NewReader(nc)}
	if code, msg, err := c.smtpReply(); err != nil || code != 220 {
		return 0, errors.Join(err, fmt.Errorf("greeting %d: %s", code, msg))
	}
	if err := c.send("EHLO client.example"); err != nil {
		return 0, err
	}
	if code, msg, err := c.smtpReply(); err != nil || code != 250 {
		return 0, errors.Join(err, fmt.Errorf("EHLO %d: %s", code, msg))
	}
	for i, u := range users {
		if err := c.send("AUTH LOGIN"); err != nil {
			return i, err
		}
		if code, msg, err := c.smtpReply(); err != nil || code != 334 {
			return i, errors.Join(err, fmt.Errorf("AUTH LOGIN %d: %s", code, msg))
		}
		if err := c.send(base64.StdEncoding.EncodeToString([]byte(u))); err != nil {
			return i, err
		}
		if code, msg, err := c.smtpReply(); err != nil || code != 334 {
			return i, errors.Join(err, fmt.Errorf("username %d: %s", code, msg))
		}
		if err := c.send("!!!!"); err != nil {
			return i, err
		}
		code, msg, err := c.smtpReply()
		if err != nil {
			return i, err
		}
		if code < 500 {
			return i, fmt.Errorf("invalid base64 password answered %d: %s", code, msg)
		}
	}
	_ = c.send("QUIT")
	return len(users), nil
}

// PipelinedAuth is a bot on port 25 that sends EHLO and AUTH PLAIN in its
// first packet, one write before it has read the greeting, as many real
// bots do; nginx then logs the failure within a millisecond of the
// connection. dial may be nil.
func PipelinedAuth(ctx context.Context, o Options) Result {
	start := time.Now()
	nc, cancel, err := connect(ctx, &o)
	if err != nil {
		return Result{Outcome: classify(err), Detail: err.Error(), Elapsed: time.Since(start)}
	}
	defer cancel()
	r := Result{Local: nc.LocalAddr().String()}
	c := &conn{c: nc, r: bufio.NewReader(nc), o: o}
	fail := func(detail string, err error) Result {
		r.Outcome, r.Detail, r.Elapsed = classify(err), strings.TrimSpace(detail+" "+err.Error()), time.Since(start)
		return r
	}
	if _, err := nc.Write([]byte("EHLO bot.example\r\nAUTH PLAIN " + plain(o.User, o.Pass) + "\r\n")); err != nil {
		return fail("", err)
	}
	for _, want := range []int{220, 250} {
		if code, msg, err := c.smtpReply(); err != nil || code != want {
			return fail(msg, errors.Join(err, fmt.Errorf("want %d, got %d", want, code)))
		}
	}
	code, msg, err := c.smtpReply()
	if err != nil {
		return fail(msg, err)
	}
	_ = c.send("QUIT")
	r.Detail, r.Elapsed = msg, time.Since(start)
	r.Outcome = Failure
	if code == 235 {
		r.Outcome = Success
	}
	return r
}
