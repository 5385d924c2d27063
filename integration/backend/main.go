// Command backend stands in for Mailu's smtp and imap containers in the
// end-to-end test bed. It accepts whatever front proxies to it (nginx's
// mail proxy, with or without a PROXY protocol header, and Dovecot's login
// proxy) and says yes to every login: front and admin already decided. It
// exists only so that legitimate logins succeed end to end. It logs nothing
// per session, so that its stream carries no signal of its own.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	smtp := flag.String("smtp", "", "comma-separated SMTP listen addresses (e.g. :25,:10025)")
	imap := flag.String("imap", "", "IMAP listen addresses")
	pop3 := flag.String("pop3", "", "POP3 listen addresses")
	sieve := flag.String("sieve", "", "ManageSieve listen addresses")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	protos := []struct {
		addrs string
		serve func(*session)
	}{{*smtp, serveSMTP}, {*imap, serveIMAP}, {*pop3, servePOP3}, {*sieve, serveSieve}}
	n := 0
	for _, p := range protos {
		for _, a := range strings.Split(p.addrs, ",") {
			if a = strings.TrimSpace(a); a == "" {
				continue
			}
			ln, err := net.Listen("tcp", a)
			if err != nil {
				fmt.Fprintln(os.Stderr, "backend:", err)
				os.Exit(1)
			}
			n++
			go acceptLoop(ctx, ln, p.serve)
		}
	}
	if n == 0 {
		fmt.Fprintln(os.Stderr, "backend: no listeners")
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "backend: %d listeners ready\n", n)
	<-ctx.Done()
}

func acceptLoop(ctx context.Context, ln net.Listener, serve func(*session)) {
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			s := newSession(c)
			serve(s)
		}()
	}
}

type session struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

// newSession swallows a PROXY protocol v1 header if the proxy sends one
// (nginx with `proxy_protocol on`); the client never speaks first in these
// protocols, so a short wait tells the two apart.
func newSession(c net.Conn) *session {
	s := &session{c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}
	_ = c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	if b, err := s.r.Peek(6); err == nil && string(b) == "PROXY " {
		_, _ = s.r.ReadString('\n')
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Minute))
	return s
}

func (s *session) send(lines ...string) error {
	for _, l := range lines {
		if _, err := s.w.WriteString(l + "\r\n"); err != nil {
			return err
		}
	}
	return s.w.Flush()
}

func (s *session) line() (string, error) {
	l, err := s.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(l, "\r\n"), nil
}

// loop sends greeting, then hands each command that read returns to
// handle, until a read or a write fails or handle says the session is over.
func (s *session) loop(greeting []string, read func() (string, error), handle func(string) (bool, error)) {
	if s.send(greeting...) != nil {
		return
	}
	for {
		l, err := read()
		if err != nil {
			return
		}
		if done, err := handle(l); done || err != nil {
			return
		}
	}
}

// ask sends a continuation prompt and reads the client's answer.
func (s *session) ask(prompt string) error {
	if err := s.send(prompt); err != nil {
		return err
	}
	_, err := s.line()
	return err
}

func serveSMTP(s *session) {
	s.loop([]string{"220 backend ESMTP"}, s.line, func(l string) (bool, error) {
		verb, arg, _ := strings.Cut(l, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			return false, s.send("250-backend", "250-XCLIENT ADDR NAME LOGIN PROTO HELO PORT DESTADDR DESTPORT", "250-AUTH PLAIN LOGIN", "250 8BITMIME")
		case "XCLIENT":
			return false, s.send("220 backend ESMTP")
		case "AUTH":
			var err error
			mech, ir, _ := strings.Cut(arg, " ")
			switch strings.ToUpper(mech) {
			case "LOGIN":
				if ir == "" {
					err = s.ask("334 VXNlcm5hbWU6")
				}
				if err == nil {
					err = s.ask("334 UGFzc3dvcmQ6")
				}
			default:
				if ir == "" {
					err = s.ask("334 ")
				}
			}
			if err != nil {
				return true, err
			}
			return false, s.send("235 2.7.0 Authentication successful")
		case "DATA":
			if err := s.send("354 go ahead"); err != nil {
				return true, err
			}
			for {
				d, err := s.line()
				if err != nil {
					return true, err
				}
				if d == "." {
					break
				}
			}
			return false, s.send("250 2.0.0 queued")
		case "QUIT":
			return true, s.send("221 2.0.0 bye")
		default:
			return false, s.send("250 2.0.0 ok")
		}
	})
}

var literal = regexp.MustCompile(`\{(\d+)(\+?)\}$`)

// imapLine reads one IMAP command line with its literals inlined.
func (s *session) imapLine() (string, error) {
	var b strings.Builder
	for {
		l, err := s.line()
		if err != nil {
			return "", err
		}
		m := literal.FindStringSubmatch(l)
		if m == nil {
			b.WriteString(l)
			return b.String(), nil
		}
		n, err := strconv.Atoi(m[1])
		if err != nil || n > 1<<20 {
			return "", errors.New("bad literal")
		}
		if m[2] == "" {
			if err := s.send("+ OK"); err != nil {
				return "", err
			}
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(s.r, buf); err != nil {
			return "", err
		}
		b.WriteString(l[:len(l)-len(m[0])])
		b.WriteString(strconv.Quote(string(buf)))
	}
}

const imapCaps = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN"

func serveIMAP(s *session) {
	s.loop([]string{"* OK [CAPABILITY " + imapCaps + "] backend ready"}, s.imapLine, func(l string) (bool, error) {
		fields := strings.Fields(l)
		if len(fields) < 2 {
			return false, s.send("* BAD what")
		}
		tag, cmd := fields[0], strings.ToUpper(fields[1])
		switch cmd {
		case "CAPABILITY":
			return false, s.send("* CAPABILITY "+imapCaps, tag+" OK done")
		case "ID":
			return false, s.send(`* ID ("name" "backend")`, tag+" OK done")
		case "AUTHENTICATE":
			if len(fields) < 4 {
				if err := s.ask("+ "); err != nil {
					return true, err
				}
			}
			return false, s.send(tag + " OK [CAPABILITY " + imapCaps + "] Logged in")
		case "LOGIN":
			return false, s.send(tag + " OK [CAPABILITY " + imapCaps + "] Logged in")
		case "LOGOUT":
			return true, s.send("* BYE bye", tag+" OK done")
		default:
			return false, s.send(tag + " OK done")
		}
	})
}

func servePOP3(s *session) {
	s.loop([]string{"+OK backend ready"}, s.line, func(l string) (bool, error) {
		verb, arg, _ := strings.Cut(l, " ")
		switch strings.ToUpper(verb) {
		case "CAPA":
			return false, s.send("+OK", "USER", "SASL PLAIN", "UIDL", ".")
		case "AUTH":
			if _, ir, _ := strings.Cut(arg, " "); ir == "" {
				if err := s.ask("+ "); err != nil {
					return true, err
				}
			}
			return false, s.send("+OK logged in")
		case "QUIT":
			return true, s.send("+OK bye")
		default:
			return false, s.send("+OK")
		}
	})
}

func serveSieve(s *session) {
	caps := []string{`"IMPLEMENTATION" "backend"`, `"SIEVE" "fileinto"`, `"SASL" "PLAIN"`, `"VERSION" "1.0"`}
	s.loop(append(caps, `OK "backend ready"`), s.imapLine, func(l string) (bool, error) {
		verb, _, _ := strings.Cut(l, " ")
		switch strings.ToUpper(strings.Trim(verb, `"`)) {
		case "CAPABILITY":
			return false, s.send(append(caps, `OK "done"`)...)
		case "LOGOUT":
			return true, s.send(`OK "bye"`)
		default:
			return false, s.send(`OK "done"`)
		}
	})
}
