package notify

import (
	"bufio"
	"context"
	"encoding/base64"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/configs"
)

// fakeSMTP serves one scripted session per connection on loopback; it
// stands for servers that misbehave in ways Postfix cannot be made to.
func fakeSMTP(t *testing.T, serve func(c net.Conn)) (host string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); serve(c) }()
		}
	}()
	a := ln.Addr().(*net.TCPAddr)
	return "127.0.0.1", a.Port
}

func emailCfg(host string, port int) configs.Email {
	return configs.Email{Name: "m", Host: host, Port: port, TLS: configs.TLSNone, From: "bansd@example.test",
		To: []string{"postmaster@example.test"}, Events: []string{"alarm"}, Timeout: 500 * time.Millisecond}
}

func testEmail(t *testing.T, e configs.Email) (string, error, ChannelStatus) {
	t.Helper()
	n, err := New(configs.Notify{Email: map[string]configs.Email{"m": e}}, openSpool(t), Options{Host: "mx.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answer, err := n.Test(ctx, "m")
	return answer, err, n.Status().Channels[0]
}

func TestSMTPBadServers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve func(c net.Conn)
		want  string
	}{
		{"hangs", func(c net.Conn) { time.Sleep(3 * time.Second) }, "greeting: no answer within 500ms"},
		{"hangs after EHLO", func(c net.Conn) {
			c.Write([]byte("220 hi\r\n"))
			time.Sleep(3 * time.Second)
		}, "EHLO: no answer within 500ms"},
		{"garbage", func(c net.Conn) { c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")) }, `greeting: garbage answer "HTTP/1.1 400 Bad Request" (not an SMTP server?)`},
		{"100 MB banner line", func(c net.Conn) {
			c.Write([]byte("220 "))
			chunk := []byte(strings.Repeat("A", 1<<20))
			for range 100 {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}, "greeting: reply line longer than 2048 bytes"},
		{"100 MB of banner lines", func(c net.Conn) {
			line := []byte("220-" + strings.Repeat("B", 1000) + "\r\n")
			for range 100_000 {
				if _, err := c.Write(line); err != nil {
					return
				}
			}
		}, "greeting: reply has more than 100 lines"},
		{"refuses recipient", func(c net.Conn) {
			r := bufio.NewReader(c)
			c.Write([]byte("220 hi\r\n"))
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				switch {
				case strings.HasPrefix(l, "EHLO"):
					c.Write([]byte("250-fake\r\n250 8BITMIME\r\n"))
				case strings.HasPrefix(l, "RCPT"):
					c.Write([]byte("550 5.1.1 no such user\r\n"))
				default:
					c.Write([]byte("250 ok\r\n"))
				}
			}
		}, "RCPT TO: server answered 550 5.1.1 no such user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, port := fakeSMTP(t, tc.serve)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err, st := testEmail(t, emailCfg(host, port))
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if !strings.Contains(st.LastError, tc.want) || st.Failures != 1 {
				t.Errorf("status %+v", st)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s", d)
			}
			// The fake's own chunk is 2 MB of this; reading the banner
			// unbounded would be over 100 MB.
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
				t.Errorf("allocated %d bytes", grew)
			}
		})
	}
}

func TestSMTPStartTLSRequired(t *testing.T) {
	host, port := fakeSMTP(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		c.Write([]byte("220 hi\r\n"))
		r.ReadString('\n')
		c.Write([]byte("250-fake\r\n250 AUTH PLAIN\r\n"))
		r.ReadString('\n')
	})
	e := emailCfg(host, port)
	e.TLS = configs.TLSStartTLS
	if _, err, _ := testEmail(t, e); err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Fatalf("err %v", err)
	}
}

// TestSMTPAuth runs AUTH PLAIN and LOGIN against a fake server (Postfix
// would need a Dovecot or Cyrus SASL setup of its own for this); the fake
// checks the credentials and the whole dialogue, dot-stuffing included.
func TestSMTPAuth(t *testing.T) {
	for _, mech := range []string{"PLAIN", "LOGIN"} {
		t.Run(mech, func(t *testing.T) {
			got := make(chan string, 1)
			host, port := fakeSMTP(t, func(c net.Conn) {
				r := bufio.NewReader(c)
				read := func() string { l, _ := r.ReadString('\n'); return strings.TrimRight(l, "\r\n") }
				say := func(s string) { c.Write([]byte(s + "\r\n")) }
				say("220 fake ESMTP")
				var log []string
				authed := false
				for {
					l := read()
					log = append(log, l)
					switch {
					case l == "":
						return
					case strings.HasPrefix(l, "EHLO "):
						say("250-fake\r\n250-AUTH " + mech + "\r\n250 8BITMIME")
					case l == "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00bansd\x00pa:ss")):
						authed = true
						say("235 2.7.0 ok")
					case l == "AUTH LOGIN":
						say("334 VXNlcm5hbWU6")
						u, _ := base64.StdEncoding.DecodeString(read())
						say("334 UGFzc3dvcmQ6")
						p, _ := base64.StdEncoding.DecodeString(read())
						authed = string(u) == "bansd" && string(p) == "pa:ss"
						say("235 2.7.0 ok")
					case strings.HasPrefix(l, "MAIL FROM:"):
						if !authed {
							say("530 auth first")
							continue
						}
						say("250 ok")
					case strings.HasPrefix(l, "RCPT TO:"):
						say("250 ok")
					case l == "DATA":
						say("354 go")
						var body []string
						for {
							d := read()
							if d == "." {
								break
							}
							body = append(body, d)
						}
						got <- strings.Join(log, "\n") + "\n--\n" + strings.Join(body, "\n")
						say("250 2.0.0 Ok: queued as FAKE1")
					case l == "QUIT":
						say("221 bye")
						return
					default:
						say("500 what")
					}
				}
			})
			e := emailCfg(host, port)
			e.Username, e.Password = "bansd", "pa:ss"
			answer, err, st := testEmail(t, e)
			if err != nil {
				t.Fatal(err)
			}
			if answer != "2.0.0 Ok: queued as FAKE1" || st.LastAnswer != answer || st.LastError != "" {
				t.Errorf("answer %q status %+v", answer, st)
			}
			session := <-got
			for _, want := range []string{"EHLO mx.example.test", "MAIL FROM:<bansd@example.test>", "RCPT TO:<postmaster@example.test>",
				"Subject: bansd test message from mx.example.test", "Message-ID: <", "@mx.example.test>", "Auto-Submitted: auto-generated", "Date: "} {
				if !strings.Contains(session, want) {
					t.Errorf("session lacks %q:\n%s", want, session)
				}
			}
			if strings.Contains(session, "pa:ss") {
				t.Error("password in clear in the session")
			}
		})
	}
}

func TestSMTPRefusesPasswordWithoutTLS(t *testing.T) {
	e := emailCfg("192.0.2.1", 25)
	e.Username, e.Password = "u", "p"
	s := &emailSender{cfg: e, host: "x", dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		a, b := net.Pipe()
		go func() {
			r := bufio.NewReader(b)
			b.Write([]byte("220 hi\r\n"))
			r.ReadString('\n')
			b.Write([]byte("250-x\r\n250 AUTH PLAIN\r\n"))
			r.ReadString('\n')
			b.Close()
		}()
		return a, nil
	}}
	if _, err := s.send(context.Background(), eventMessage("x", Event{Kind: KindTest})); err == nil || !strings.Contains(err.Error(), "refusing to send the password to 192.0.2.1:25 without TLS") {
		t.Fatalf("err %v", err)
	}
}

func TestDotStuff(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a\r\n.b\r\n", "a\r\n..b\r\n.\r\n"},
		{"a\n.\nb", "a\r\n..\r\nb\r\n.\r\n"},
		{"", ".\r\n"},
	} {
		if got := string(dotStuff([]byte(tc.in))); got != tc.want {
			t.Errorf("dotStuff(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestComposeKeepsAttackerTextOutOfHeaders(t *testing.T) {
	s := &emailSender{cfg: emailCfg("h", 25), host: "mx.example.test"}
	m := eventMessage("mx.example.test", Event{Kind: KindAlarm, Time: time.Unix(1_800_000_000, 0), Reason: "user\r\nBcc: victim@example.net\r\n\r\nforged", Text: strings.Repeat("x", 10_000)})
	raw := string(s.compose(m))
	head, body, ok := strings.Cut(raw, "\r\n\r\n")
	if !ok || strings.Contains(head, "\r\nBcc:") || strings.Count(head, "Subject:") != 1 {
		t.Fatalf("header forged:\n%s", head)
	}
	if len(body) > 2*maxText {
		t.Fatalf("body %d bytes: text not cut", len(body))
	}
}
