package notify

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/roottest"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/internal/postfixtest"
)

func needRoot(t *testing.T) {
	roottest.Require(t, "runs Postfix in a network namespace")
}

func postfixChannel(tlsMode string) configs.Email {
	return configs.Email{Name: "pm", Host: postfixtest.Addr, Port: postfixtest.Port, TLS: tlsMode,
		From: "bansd@" + postfixtest.Domain, To: []string{"postmaster@" + postfixtest.Domain},
		Events: []string{"alarm", "digest"}, Timeout: 5 * time.Second}
}

func readMail(t *testing.T, m *mail.Message) (subject, body string) {
	t.Helper()
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("Content-Transfer-Encoding") != "quoted-printable" {
		t.Errorf("transfer encoding %q", m.Header.Get("Content-Transfer-Encoding"))
	}
	b, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"Date", "Message-ID", "From", "To"} {
		if m.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	if _, err := m.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	return subject, string(b)
}

// TestEmailAlarmAndDigestThroughPostfix: the userland-proxy alarm and a ban
// digest go over STARTTLS to a real Postfix and are read from its Maildir.
func TestEmailAlarmAndDigestThroughPostfix(t *testing.T) {
	needRoot(t)
	pf := postfixtest.Start(t, postfixtest.Options{TLS: true})
	n := start(t, configs.Notify{Digest: 700 * time.Millisecond, MaxPerHour: 20, MaxSpoolAge: time.Hour,
		Email: map[string]configs.Email{"pm": postfixChannel(configs.TLSStartTLS)}}, openSpool(t),
		Options{Dial: pf.Dial, TLSConfig: &tls.Config{RootCAs: pf.Roots, ServerName: "mx." + postfixtest.Domain}})
	n.Notify(Event{Kind: KindAlarm, Target: netip.MustParsePrefix("172.18.0.1/32"), Reason: "gateway-client",
		Text: "Clients reach Mailu from the Docker gateway 172.18.0.1: the userland proxy hides their addresses.\n.\nFix: set \"userland-proxy\": false in /etc/docker/daemon.json."})
	for i, j := range []string{"auth", "auth", "smtp-auth-bots"} {
		n.Notify(Event{Kind: KindBan, Target: netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)}), 32), Jail: j, Duration: time.Hour, Level: i / 2})
	}
	msgs := pf.WaitMessages(2, 15*time.Second)
	subjects := map[string]string{}
	for _, m := range msgs {
		s, b := readMail(t, m)
		subjects[s] = b
	}
	alarm := subjects["bansd ALARM on mx.example.test: gateway-client 172.18.0.1/32"]
	if !strings.Contains(alarm, "userland proxy hides their addresses.\n.\nFix: set \"userland-proxy\": false") {
		t.Errorf("alarm body (dot line must survive dot-stuffing):\n%s\nsubjects: %v", alarm, subjects)
	}
	var digest string
	for s, b := range subjects {
		if strings.HasPrefix(s, "bansd on mx.example.test: 3 bans since ") {
			digest = b
		}
	}
	for _, want := range []string{"3 bans of 3 targets", "Top jails:", "auth                     2", "smtp-auth-bots           1", "203.0.113.0/24           3", "New repeat offenders:\n  203.0.113.12/32"} {
		if !strings.Contains(digest, want) {
			t.Errorf("digest lacks %q:\n%s\nsubjects: %v", want, digest, subjects)
		}
	}
	if strings.Count(pf.Log(), "ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1") != 2 {
		t.Errorf("want two STARTTLS sessions in the Postfix log:\n%s", pf.Log())
	}
	if st := n.Status().Channels[0]; st.Sent != 2 || !strings.Contains(st.LastAnswer, "Ok: queued as") {
		t.Errorf("status %+v", st)
	}
	answer, err := n.Test(context.Background(), "pm")
	if err != nil || !strings.Contains(answer, "2.0.0 Ok: queued as") {
		t.Errorf("Test: %q %v", answer, err)
	}

	// Implicit TLS (port 465) to the same server, and a certificate the
	// client does not trust is refused.
	e := postfixChannel(configs.TLSImplicit)
	e.Port = postfixtest.TLSPort
	for _, tc := range []struct {
		roots bool
		want  string
	}{{true, "2.0.0 Ok: queued as"}, {false, "certificate signed by unknown authority"}} {
		opt := Options{Dial: pf.Dial, Host: "mx.example.test", TLSConfig: &tls.Config{ServerName: "mx." + postfixtest.Domain}}
		if tc.roots {
			opt.TLSConfig.RootCAs = pf.Roots
		}
		n465, err := New(configs.Notify{Email: map[string]configs.Email{"pm": e}}, openSpool(t), opt)
		if err != nil {
			t.Fatal(err)
		}
		answer, err := n465.Test(context.Background(), "pm")
		if got := answer + fmt.Sprint(err); !strings.Contains(got, tc.want) {
			t.Errorf("port 465, trusted %v: %q %v, want %q", tc.roots, answer, err, tc.want)
		}
	}
	if msgs := pf.WaitMessages(4, 10*time.Second); len(msgs) != 4 {
		t.Errorf("%d messages, want 4", len(msgs))
	}
}

// TestEmailWaitsOutAnOutage: with Postfix stopped the messages wait in the
// spool, across a notifier restart, and each arrives once when it is back.
func TestEmailWaitsOutAnOutage(t *testing.T) {
	needRoot(t)
	pf := postfixtest.Start(t, postfixtest.Options{})
	pf.Stop()
	db := openSpool(t)
	cfg := configs.Notify{Digest: time.Hour, MaxPerHour: 20, MaxSpoolAge: time.Hour,
		Email: map[string]configs.Email{"pm": postfixChannel(configs.TLSNone)}}
	opt := Options{Dial: pf.Dial, RetryMin: 100 * time.Millisecond, RetryMax: 300 * time.Millisecond, Host: "mx.example.test"}

	n1, err := New(cfg, db, opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n1.Run(ctx); close(done) }()
	for _, r := range []string{"one", "two", "three"} {
		n1.Notify(Event{Kind: KindAlarm, Reason: "outage-" + r})
	}
	waitFor(t, "failed attempts", 10*time.Second, func() bool {
		st := n1.Status().Channels[0]
		return st.Failures >= 2 && st.Pending == 3
	})
	if st := n1.Status().Channels[0]; !strings.Contains(st.LastError, "connect 192.0.2.25:25") {
		t.Errorf("status %+v", st)
	}
	cancel()
	<-done
	if left, _ := db.Outbox("pm"); len(left) != 3 || left[0].Attempts == 0 || left[0].LastError == "" {
		t.Fatalf("spool after the outage: %+v", left)
	}

	pf.Start()
	n2 := start(t, cfg, db, opt)
	msgs := pf.WaitMessages(3, 15*time.Second)
	time.Sleep(time.Second) // time for a duplicate to show up
	if msgs, _ = pf.Messages(); len(msgs) != 3 {
		t.Fatalf("%d messages delivered, want 3", len(msgs))
	}
	seen := map[string]int{}
	for _, m := range msgs {
		s, _ := readMail(t, m)
		seen[s]++
	}
	for _, r := range []string{"one", "two", "three"} {
		if k := seen["bansd ALARM on mx.example.test: outage-"+r]; k != 1 {
			t.Errorf("outage-%s delivered %d times; all: %v", r, k, seen)
		}
	}
	if left, _ := db.Outbox(""); len(left) != 0 {
		t.Errorf("spool keeps %d", len(left))
	}
	if st := n2.Status().Channels[0]; st.Sent != 3 || st.Pending != 0 {
		t.Errorf("status %+v", st)
	}
}
