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

func serveSMTP(s *session) {
	if s.send("220 backend ESMTP") != nil {
		return
	}
	for {
		l, err := s.line()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(l, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			err = s.send("250-backend", "250-XCLIENT ADDR NAME LOGIN PROTO HELO PORT DESTADDR DESTPORT", "250-AUTH PLAIN LOGIN", "250 8BITMIME")
		case "XCLIENT":
			err = s.send("220 backend ESMTP")
		case "AUTH":
			mech, ir, _ := strings.Cut(arg, " ")
			switch strings.ToUpper(mech) {
			case "LOGIN":
				if ir == "" {
					if err = s.send("334 VXNlcm5hbWU6"); err == nil {
						_, err = s.line()
					}
				}
				if err == nil {
					if err = s.send("334 UGFzc3dvcmQ6"); err == nil {
						_, err = s.line()
					}
				}
			default:
				if ir == "" {
					if err = s.send("334 "); err == nil {
						_, err = s.line()
					}
				}
			}
			if err == nil {
				err = s.send("235 2.7.0 Authentication successful")
			}
		case "DATA":
			if err = s.send("354 go ahead"); err != nil {
				return
			}
			for {
				d, derr := s.line()
				if derr != nil {
					return
				}
				if d == "." {
					break
				}
			}
			err = s.send("250 2.0.0 queued")
		case "QUIT":
			_ = s.send("221 2.0.0 bye")
			return
		default:
			err = s.send("250 2.0.0 ok")
		}
		if err != nil {
			return
		}
	}
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
	if s.send("* OK [CAPABILITY "+imapCaps+"] backend ready") != nil {
		return
	}
	for {
		l, err := s.imapLine()
		if err != nil {
			return
		}
		fields := strings.Fields(l)
		if len(fields) < 2 {
			if s.send("* BAD what") != nil {
				return
			}
			continue
		}
		tag, cmd := fields[0], strings.ToUpper(fields[1])
		switch cmd {
		case "CAPABILITY":
			err = s.send("* CAPABILITY "+imapCaps, tag+" OK done")
		case "ID":
			err = s.send(`* ID ("name" "backend")`, tag+" OK done")
		case "AUTHENTICATE":
			if len(fields) < 4 {
				if err = s.send("+ "); err == nil {
					_, err = s.line()
				}
			}
			if err == nil {
				err = s.send(tag + " OK [CAPABILITY " + imapCaps + "] Logged in")
			}
		case "LOGIN":
			err = s.send(tag + " OK [CAPABILITY " + imapCaps + "] Logged in")
		case "LOGOUT":
			_ = s.send("* BYE bye", tag+" OK done")
			return
		default:
			err = s.send(tag + " OK done")
		}
		if err != nil {
			return
		}
	}
}

func servePOP3(s *session) {
	if s.send("+OK backend ready") != nil {
		return
	}
	for {
		l, err := s.line()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(l, " ")
		switch strings.ToUpper(verb) {
		case "CAPA":
			err = s.send("+OK", "USER", "SASL PLAIN", "UIDL", ".")
		case "AUTH":
			if _, ir, _ := strings.Cut(arg, " "); ir == "" {
				if err = s.send("+ "); err == nil {
					_, err = s.line()
				}
			}
			if err == nil {
				err = s.send("+OK logged in")
			}
		case "QUIT":
			_ = s.send("+OK bye")
			return
		default:
			err = s.send("+OK")
		}
		if err != nil {
			return
		}
	}
}

func serveSieve(s *session) {
	caps := []string{`"IMPLEMENTATION" "backend"`, `"SIEVE" "fileinto"`, `"SASL" "PLAIN"`, `"VERSION" "1.0"`}
	if s.send(append(caps, `OK "backend ready"`)...) != nil {
		return
	}
	for {
		l, err := s.imapLine()
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(l, " ")
		switch strings.ToUpper(strings.Trim(verb, `"`)) {
		case "CAPABILITY":
			err = s.send(append(caps, `OK "done"`)...)
		case "LOGOUT":
			_ = s.send(`OK "bye"`)
			return
		default:
			err = s.send(`OK "done"`)
		}
		if err != nil {
			return
		}
	}
}
