package notify

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/bansd/bansd/configs"
)

// Go's net/smtp reads reply lines without a limit, so a hostile or broken
// server could grow memory at will; these few commands are written here,
// over a connection with a byte budget and a deadline on every step.
const (
	smtpMaxLine    = 2048    // RFC 5321 says 512 for a reply line
	smtpMaxLines   = 100     // lines in one multi-line reply
	smtpReadBudget = 1 << 20 // bytes read from the server in one session
)

// DialFunc opens a connection; the default is a net.Dialer.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

type emailSender struct {
	cfg     configs.Email
	host    string // our name, for EHLO and Message-ID
	dial    DialFunc
	tlsConf *tls.Config
}

func (s *emailSender) describe() string {
	return fmt.Sprintf("smtp %s:%d (%s)", s.cfg.Host, s.cfg.Port, s.cfg.TLS)
}

// budgetReader fails once more than n bytes were read.
type budgetReader struct {
	r io.Reader
	n int
}

var errBudget = fmt.Errorf("server sent more than %d bytes in one session", smtpReadBudget)

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, errBudget
	}
	if len(p) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= n
	return n, err
}

type smtpConn struct {
	conn    net.Conn
	r       *bufio.Reader
	timeout time.Duration
	step    string
}

// deadline applies the step timeout to the next exchange.
func (c *smtpConn) deadline(step string) {
	c.step = step
	c.conn.SetDeadline(time.Now().Add(c.timeout))
}

func (c *smtpConn) setConn(conn net.Conn) {
	c.conn = conn
	c.r = bufio.NewReaderSize(&budgetReader{r: conn, n: smtpReadBudget}, smtpMaxLine)
}

// reply reads one (multi-line) reply and checks its code's first digit.
func (c *smtpConn) reply(want byte) (int, string, error) {
	var lines []string
	code := 0
	for i := 0; ; i++ {
		if i >= smtpMaxLines {
			return 0, "", fmt.Errorf("%s: reply has more than %d lines", c.step, smtpMaxLines)
		}
		line, err := c.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return 0, "", fmt.Errorf("%s: reply line longer than %d bytes (not an SMTP server?)", c.step, smtpMaxLine)
		}
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return 0, "", fmt.Errorf("%s: no answer within %s", c.step, c.timeout)
			}
			return 0, "", fmt.Errorf("%s: read: %w", c.step, err)
		}
		s := strings.TrimRight(string(line), "\r\n")
		if len(s) < 3 || len(s) > 3 && s[3] != ' ' && s[3] != '-' {
			return 0, "", fmt.Errorf("%s: garbage answer %q (not an SMTP server?)", c.step, clean(s, 80, false))
		}
		n, err := strconv.Atoi(s[:3])
		if err != nil || n < 200 || n > 599 {
			return 0, "", fmt.Errorf("%s: garbage answer %q (not an SMTP server?)", c.step, clean(s, 80, false))
		}
		if code != 0 && n != code {
			return 0, "", fmt.Errorf("%s: reply codes %d and %d mixed in one reply", c.step, code, n)
		}
		code = n
		lines = append(lines, clean(s[min(4, len(s)):], 512, false))
		if len(s) == 3 || s[3] == ' ' {
			break
		}
	}
	text := strings.Join(lines, "\n")
	if strconv.Itoa(code)[0] != want {
		return code, text, fmt.Errorf("%s: server answered %d %s", c.step, code, text)
	}
	return code, text, nil
}

func (c *smtpConn) cmd(want byte, step, format string, args ...any) (string, error) {
	c.deadline(step)
	if _, err := fmt.Fprintf(c.conn, format+"\r\n", args...); err != nil {
		return "", fmt.Errorf("%s: write: %w", step, err)
	}
	_, text, err := c.reply(want)
	return text, err
}

// send delivers one message and returns the server's answer to the data.
func (s *emailSender) send(ctx context.Context, m Message) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 4*s.cfg.Timeout)
	defer cancel()
	addr := net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
	dctx, dcancel := context.WithTimeout(ctx, s.cfg.Timeout)
	raw, err := s.dial(dctx, "tcp", addr)
	dcancel()
	if err != nil {
		return "", fmt.Errorf("connect %s: %w", addr, err)
	}
	defer raw.Close()
	// The context ends the session wherever it is.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()

	c := &smtpConn{timeout: s.cfg.Timeout}
	c.setConn(raw)
	tlsConf := s.tlsConfig()
	secure := false
	if s.cfg.TLS == configs.TLSImplicit {
		tc := tls.Client(raw, tlsConf)
		c.deadline("TLS handshake")
		if err := tc.HandshakeContext(ctx); err != nil {
			return "", fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		c.setConn(tc)
		secure = true
	}
	c.deadline("greeting")
	if _, _, err := c.reply('2'); err != nil {
		return "", err
	}
	ext, err := c.ehlo(s.host)
	if err != nil {
		return "", err
	}
	if s.cfg.TLS == configs.TLSStartTLS {
		if _, ok := ext["STARTTLS"]; !ok {
			return "", fmt.Errorf("%s does not offer STARTTLS (set tls = \"tls\" for port 465, or \"none\")", addr)
		}
		if _, err := c.cmd('2', "STARTTLS", "STARTTLS"); err != nil {
			return "", err
		}
		tc := tls.Client(c.conn, tlsConf)
		c.deadline("TLS handshake")
		if err := tc.HandshakeContext(ctx); err != nil {
			return "", fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		c.setConn(tc)
		secure = true
		if ext, err = c.ehlo(s.host); err != nil {
			return "", err
		}
	}
	if s.cfg.Username != "" {
		if !secure && !isLoopback(s.cfg.Host) {
			return "", fmt.Errorf("refusing to send the password to %s without TLS", addr)
		}
		if err := c.auth(ext["AUTH"], s.cfg.Username, s.cfg.Password.Reveal()); err != nil {
			return "", err
		}
	}
	from, _ := mail.ParseAddress(s.cfg.From)
	if _, err := c.cmd('2', "MAIL FROM", "MAIL FROM:<%s>", from.Address); err != nil {
		return "", err
	}
	for _, to := range s.cfg.To {
		a, _ := mail.ParseAddress(to)
		if _, err := c.cmd('2', "RCPT TO", "RCPT TO:<%s>", a.Address); err != nil {
			return "", err
		}
	}
	if _, err := c.cmd('3', "DATA", "DATA"); err != nil {
		return "", err
	}
	c.deadline("message")
	if _, err := c.conn.Write(dotStuff(s.compose(m))); err != nil {
		return "", fmt.Errorf("message: write: %w", err)
	}
	_, answer, err := c.reply('2')
	if err != nil {
		return "", err
	}
	// The message is accepted; a failed QUIT changes nothing.
	c.cmd('2', "QUIT", "QUIT")
	return answer, nil
}

func (s *emailSender) tlsConfig() *tls.Config {
	if s.tlsConf != nil {
		c := s.tlsConf.Clone()
		if c.ServerName == "" {
			c.ServerName = s.cfg.Host
		}
		return c
	}
	return &tls.Config{ServerName: s.cfg.Host, MinVersion: tls.VersionTLS12}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ehlo returns the server's extensions, upper-cased keyword to parameters.
func (c *smtpConn) ehlo(name string) (map[string]string, error) {
	text, err := c.cmd('2', "EHLO", "EHLO %s", name)
	if err != nil {
		return nil, err
	}
	ext := map[string]string{}
	for i, l := range strings.Split(text, "\n") {
		if i == 0 {
			continue // the greeting line
		}
		k, v, _ := strings.Cut(l, " ")
		ext[strings.ToUpper(k)] = v
	}
	return ext, nil
}

func (c *smtpConn) auth(offered, user, pass string) error {
	mechs := strings.Fields(strings.ToUpper(offered))
	has := func(m string) bool {
		for _, x := range mechs {
			if x == m {
				return true
			}
		}
		return false
	}
	switch {
	case has("PLAIN"):
		tok := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
		if _, err := c.cmd('2', "AUTH PLAIN", "AUTH PLAIN %s", tok); err != nil {
			return fmt.Errorf("authentication as %s: %w", user, err)
		}
	case has("LOGIN"):
		if _, err := c.cmd('3', "AUTH LOGIN", "AUTH LOGIN"); err != nil {
			return fmt.Errorf("authentication as %s: %w", user, err)
		}
		if _, err := c.cmd('3', "AUTH LOGIN user", "%s", base64.StdEncoding.EncodeToString([]byte(user))); err != nil {
			return fmt.Errorf("authentication as %s: %w", user, err)
		}
		if _, err := c.cmd('2', "AUTH LOGIN password", "%s", base64.StdEncoding.EncodeToString([]byte(pass))); err != nil {
			return fmt.Errorf("authentication as %s: %w", user, err)
		}
	default:
		return fmt.Errorf("server offers no AUTH PLAIN or LOGIN (offered: %q)", offered)
	}
	return nil
}

// compose writes an RFC 5322 message, body quoted-printable so that any
// server takes it whatever it says about 8BITMIME.
func (s *emailSender) compose(m Message) []byte {
	var b bytes.Buffer
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("Date", m.Time.Format(time.RFC1123Z))
	hdr("From", s.cfg.From)
	hdr("To", strings.Join(s.cfg.To, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", clean(m.Title, 200, false)))
	hdr("Message-ID", "<"+messageID(s.host)+">")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	hdr("Auto-Submitted", "auto-generated")
	hdr("X-Bansd-Kind", string(m.Kind))
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(strings.ReplaceAll(m.Text, "\r", "")))
	qp.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}

func messageID(host string) string {
	var r [12]byte
	rand.Read(r[:])
	if host == "" {
		host = "bansd.invalid"
	}
	return fmt.Sprintf("%d.%s@%s", time.Now().UnixNano(), hex.EncodeToString(r[:]), host)
}

// dotStuff turns msg into the DATA stream: CRLF lines, leading dots
// doubled, the final ".".
func dotStuff(msg []byte) []byte {
	var out bytes.Buffer
	lines := strings.Split(strings.ReplaceAll(string(msg), "\r\n", "\n"), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for _, l := range lines {
		if strings.HasPrefix(l, ".") {
			out.WriteByte('.')
		}
		out.WriteString(l)
		out.WriteString("\r\n")
	}
	out.WriteString(".\r\n")
	return out.Bytes()
}
