package main

// Notifications through a running bansd: a real Debian Postfix (in its
// namespace, linked to bansd's by a veth pair) delivering into a Maildir,
// and a webhook receiver listening in the same namespace.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/internal/netnstest"
	"github.com/bansd/bansd/internal/postfixtest"
	"github.com/bansd/bansd/notify"
)

// hookReceiver records the JSON messages POSTed to it.
type hookReceiver struct {
	mu   sync.Mutex
	msgs []notify.Message
	srv  *httptest.Server
}

func (h *hookReceiver) got() []notify.Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]notify.Message(nil), h.msgs...)
}

// startHookReceiver listens on addr inside ns: a socket keeps the
// namespace it was made in.
func startHookReceiver(t *testing.T, ns *netnstest.NS, addr string) *hookReceiver {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	h := &hookReceiver{}
	h.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m notify.Message
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("webhook body %q: %v", b, err)
		}
		h.mu.Lock()
		h.msgs = append(h.msgs, m)
		h.mu.Unlock()
		io.WriteString(w, `{"received":true}`)
	}))
	h.srv.Listener.Close()
	h.srv.Listener = ln
	h.srv.Start()
	t.Cleanup(h.srv.Close)
	return h
}

type gotMail struct{ subject, body string }

func mails(t *testing.T, pf *postfixtest.Server) []gotMail {
	t.Helper()
	ms, err := pf.Messages()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]gotMail, 0, len(ms))
	dec := new(mime.WordDecoder)
	for _, m := range ms {
		subj, err := dec.DecodeHeader(m.Header.Get("Subject"))
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = m.Body
		if m.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
			r = quotedprintable.NewReader(m.Body)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, gotMail{subj, string(b)})
	}
	return out
}

func countMails(ms []gotMail, subject string) int {
	n := 0
	for _, m := range ms {
		if strings.Contains(m.subject, subject) {
			n++
		}
	}
	return n
}

// waitUntil polls cond with a generous deadline (CI's cores are slow).
func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(within)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func notifyStatus(t *testing.T, in *instance) map[string]control.NotifyChannel {
	t.Helper()
	st, err := control.NewClient(in.socket).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]control.NotifyChannel{}
	if st.Notify != nil {
		for _, c := range st.Notify.Channels {
			out[c.Name] = c
		}
	}
	return out
}

const notifyChannels = `[notify.email.pm]
host = %q
port = %d
tls = "none"
from = "bansd@%[3]s"
to = ["postmaster@%[3]s"]
events = ["alarm", "alarm-cleared", "digest"]
timeout = "10s"
[notify.webhook.hook]
url = "http://%[1]s:8080/hook"
token = "s3cret-token-value"
`

const deadChannel = `[notify.webhook.dead]
url = "http://%s:9/nothing"
`

// TestNotifyThroughDaemon: bansd's alarms (its firewall table deleted) and
// its ban digest arrive as emails in Postfix's Maildir and as JSON at a
// webhook; bansctl notify test prints each server's answer; status and
// metrics show a failing channel; with Postfix stopped an alarm waits in
// the spool, survives a reload that changes [notify], and arrives once
// after Postfix is back.
func TestNotifyThroughDaemon(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("the nft command (apt package nftables) is needed")
	}
	pf := postfixtest.Start(t, postfixtest.Options{})
	hook := startHookReceiver(t, pf.NS, postfixtest.Addr+":8080")

	ns := netnstest.New(t)
	if out, err := exec.Command("ip", "link", "add", "nt0", "netns", ns.Name, "type", "veth", "peer", "name", "nt0p", "netns", pf.NS.Name).CombinedOutput(); err != nil {
		t.Fatalf("veth: %v: %s", err, out)
	}
	ns.Run(t, "ip", "addr", "add", "192.0.2.201/30", "dev", "nt0")
	ns.Run(t, "ip", "link", "set", "nt0", "up")
	ns.Run(t, "ip", "route", "add", postfixtest.Addr+"/32", "via", "192.0.2.202")
	pf.NS.Run(t, "ip", "addr", "add", "192.0.2.202/30", "dev", "nt0p")
	pf.NS.Run(t, "ip", "link", "set", "nt0p", "up")

	in := newInstanceInNS(t, ns, noDocker, "")
	channels := fmt.Sprintf(notifyChannels, postfixtest.Addr, postfixtest.Port, postfixtest.Domain)
	general := "[notify]\ndigest = \"3s\"\nmax_per_hour = 100\n"
	in.writeConfig(t, "reconcile = \"1s\"\n"+general+channels+fmt.Sprintf(deadChannel, postfixtest.Addr))
	in.run(t)

	// A test message through every channel, with each server's answer.
	out, _, code := in.ctl(t, "notify", "test")
	if code != 1 || !strings.Contains(out, "pm: ok: 2.0.0 Ok: queued as ") || !strings.Contains(out, `hook: ok: HTTP 200 OK: {"received":true}`) || !strings.Contains(out, "dead: FAILED: ") {
		t.Fatalf("bansctl notify test: exit %d\n%s", code, out)
	}
	out = in.mustCtl(t, 0, "notify", "test", "pm")
	if !strings.HasPrefix(out, "pm: ok: 2.0.0 Ok: queued as ") || strings.Contains(out, "hook") {
		t.Fatalf("bansctl notify test pm:\n%s", out)
	}
	if _, errOut, code := in.ctl(t, "notify", "test", "nosuch"); code == 0 || !strings.Contains(errOut, "no such notify channel") {
		t.Fatalf("notify test of an unknown channel: exit %d: %s", code, errOut)
	}
	waitUntil(t, "the test email", time.Minute, func() bool { return countMails(mails(t, pf), "bansd test message") >= 2 })

	// An alarm: someone deletes bansd's table; the reconcile repairs it.
	ns.Run(t, "nft", "delete", "table", "inet", "bansd")
	waitUntil(t, "the alarm and its clearing by email", time.Minute, func() bool {
		ms := mails(t, pf)
		return countMails(ms, "bansd ALARM on") >= 1 && countMails(ms, "alarm cleared: firewall-table-lost") >= 1
	})
	for _, m := range mails(t, pf) {
		if strings.Contains(m.subject, "bansd ALARM on") {
			if !strings.Contains(m.subject, "firewall-table-lost") || !strings.Contains(m.body, "What to do: Something removed bansd's nftables table") {
				t.Errorf("alarm email: subject %q body\n%s", m.subject, m.body)
			}
		}
	}
	waitUntil(t, "the alarm at the webhook", time.Minute, func() bool {
		for _, m := range hook.got() {
			if m.Kind == notify.KindAlarm && m.Event != nil && m.Event.Reason == "firewall-table-lost" {
				return true
			}
		}
		return false
	})

	// A ban goes into the digest.
	in.mustCtl(t, 0, "ban", "203.0.113.77")
	waitUntil(t, "the digest by email", time.Minute, func() bool {
		for _, m := range mails(t, pf) {
			if strings.Contains(m.subject, "1 bans since") && strings.Contains(m.body, "manual") {
				return true
			}
		}
		return false
	})
	waitUntil(t, "the digest at the webhook", time.Minute, func() bool {
		for _, m := range hook.got() {
			if m.Kind == notify.KindDigest && m.Digest != nil && m.Digest.Bans == 1 && len(m.Digest.Jails) == 1 && m.Digest.Jails[0].Name == "manual" {
				return true
			}
		}
		return false
	})

	// The failing channel in status, metrics and the table; no secret.
	waitUntil(t, "failures of the dead channel", time.Minute, func() bool {
		c := notifyStatus(t, in)["dead"]
		return c.Failures >= 2 && c.LastError != ""
	})
	st := notifyStatus(t, in)
	if c := st["pm"]; c.Kind != "email" || c.LastSuccess.IsZero() || c.Sent < 3 || c.Target != fmt.Sprintf("smtp %s:%d (none)", postfixtest.Addr, postfixtest.Port) {
		t.Errorf("pm status %+v", c)
	}
	statusText := in.mustCtl(t, 0, "status")
	for _, w := range []string{"Notify:", "CHANNEL", "dead", "webhook http://" + postfixtest.Addr + ":9 (json)", "pm", "smtp " + postfixtest.Addr} {
		if !strings.Contains(statusText, w) {
			t.Errorf("status lacks %q:\n%s", w, statusText)
		}
	}
	var metrics strings.Builder
	if err := control.NewClient(in.socket).Metrics(context.Background(), &metrics); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`bansd_notify_sent_total{channel="pm"}`, `bansd_notify_pending{channel="dead"}`, `bansd_notify_failures_total{channel="dead"}`} {
		if !strings.Contains(metrics.String(), w) {
			t.Errorf("metrics lack %s", w)
		}
	}
	if strings.Contains(metrics.String(), `bansd_notify_failures_total{channel="dead"} 0`) {
		t.Error("the dead channel's failures are 0 in the metrics")
	}
	jsonStatus := in.mustCtl(t, 0, "--json", "status")
	for _, text := range []string{statusText, jsonStatus, in.log.String()} {
		if strings.Contains(text, "s3cret-token-value") || strings.Contains(text, "/hook") || strings.Contains(text, "/nothing") {
			t.Errorf("a secret (token or URL path) is printed:\n%s", text)
		}
	}

	// Postfix stops: the next alarm waits in the spool.
	pf.Stop()
	before := notifyStatus(t, in)["pm"].Failures
	ns.Run(t, "nft", "delete", "table", "inet", "bansd")
	waitUntil(t, "a failed attempt and a pending message", time.Minute, func() bool {
		c := notifyStatus(t, in)["pm"]
		return c.Failures > before && c.Pending >= 1
	})
	// A reload with a changed [notify] restarts the channels; the spool stays.
	in.writeConfig(t, "reconcile = \"1s\"\n"+general+channels)
	in.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, "the reloaded channels", time.Minute, func() bool {
		st := notifyStatus(t, in)
		_, dead := st["dead"]
		return !dead && st["pm"].Pending >= 1
	})
	pf.Start()
	waitUntil(t, "the waiting alarm and its clearing after Postfix is back", 3*time.Minute, func() bool {
		return countMails(mails(t, pf), "alarm cleared: firewall-table-lost") >= 2
	})
	waitUntil(t, "an empty spool", time.Minute, func() bool { return notifyStatus(t, in)["pm"].Pending == 0 })
	if n := countMails(mails(t, pf), "bansd ALARM on"); n != 2 {
		t.Errorf("%d alarm emails, want 2 (one per deletion, each once)", n)
	}
	select {
	case err := <-in.exited:
		t.Fatalf("bansd exited: %v", err)
	default:
	}
	hist := in.mustCtl(t, 0, "history", "--kind", "alarm,alarm-cleared")
	if strings.Count(hist, "firewall-table-lost") < 4 {
		t.Errorf("history of the alarms:\n%s", hist)
	}
}

// TestNotifyNeverSlowsBans: with a webhook that accepts connections and
// never answers (delivery stuck for its hour-long timeout), manual bans
// still complete and reach the kernel, and the channel's messages wait.
func TestNotifyNeverSlowsBans(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("the nft command (apt package nftables) is needed")
	}
	ns := netnstest.New(t)
	ns.Run(t, "ip", "link", "set", "lo", "up")
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:8081")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-accepted:
				c.Close()
			default:
				return
			}
		}
	})
	in := newInstanceInNS(t, ns, noDocker, "")
	in.writeConfig(t, `[notify]
max_per_hour = 1000
[notify.webhook.stuck]
url = "http://127.0.0.1:8081/hook"
events = ["ban", "unban", "alarm", "digest"]
timeout = "1h"
`)
	in.run(t)

	in.mustCtl(t, 0, "ban", "203.0.113.10")
	var held net.Conn
	select {
	case held = <-accepted:
		accepted <- held // for the cleanup
	case <-time.After(time.Minute):
		t.Fatal("the webhook was never called")
	}
	targets := []string{"ban"}
	for i := 11; i < 61; i++ {
		targets = append(targets, fmt.Sprintf("203.0.113.%d", i))
	}
	in.mustCtl(t, 0, targets...)
	for i := 61; i < 66; i++ {
		in.mustCtl(t, 0, "ban", fmt.Sprintf("203.0.113.%d", i))
	}
	in.mustCtl(t, 0, "unban", "203.0.113.11")
	for _, a := range []string{"203.0.113.10", "203.0.113.60", "203.0.113.65"} {
		if !in.inSet(t, "v4_32", a) {
			t.Errorf("%s is not in the kernel set while delivery is stuck", a)
		}
	}
	if in.inSet(t, "v4_32", "203.0.113.11") {
		t.Error("203.0.113.11 is still in the kernel set after its unban")
	}
	waitUntil(t, "the stuck channel's waiting messages", time.Minute, func() bool {
		c := notifyStatus(t, in)["stuck"]
		return c.Pending >= 50 && c.Sent == 0
	})
}
