package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/store"
)

func TestNotifyNeverBlocks(t *testing.T) {
	n, err := New(configs.Notify{}, openSpool(t), Options{Queue: 100})
	if err != nil {
		t.Fatal(err)
	}
	// Run is not running: nothing drains the queue.
	done := make(chan struct{})
	go func() {
		for range 20_000 {
			n.Notify(Event{Kind: KindBan, Target: target})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Notify blocked")
	}
	if lost := n.Status().Lost; lost != 19_900 {
		t.Fatalf("lost %d, want 19900", lost)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestOldMessagesDroppedCountedLogged(t *testing.T) {
	r := newReceiver(t, nil)
	db := openSpool(t)
	old := time.Now().Add(-2 * time.Hour)
	if _, err := db.OutboxAdd([]store.OutboxMessage{
		{Channel: "h", Created: old, Body: []byte(`{"kind":"alarm","title":"stale"}`)},
		{Channel: "h", Created: time.Now(), Body: []byte(`{"kind":"alarm","title":"fresh"}`)},
	}); err != nil {
		t.Fatal(err)
	}
	var log syncBuf
	n := start(t, configs.Notify{MaxPerHour: 10, MaxSpoolAge: time.Hour,
		Webhook: map[string]configs.Webhook{"h": hook(r.srv.URL, "json", "alarm")}}, db,
		Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	waitFor(t, "the fresh message", 5*time.Second, func() bool { return n.Status().Channels[0].Sent == 1 })
	got := r.got()
	if len(got) != 1 || !strings.Contains(string(got[0].body), "fresh") {
		t.Fatalf("sent %d: %s", len(got), got[0].body)
	}
	if st := n.Status().Channels[0]; st.Dropped != 1 {
		t.Errorf("status %+v", st)
	}
	if !strings.Contains(log.String(), "undelivered messages dropped") || !strings.Contains(log.String(), "count=1") {
		t.Errorf("log:\n%s", log.String())
	}
}

func TestUnknownChannel(t *testing.T) {
	n, _ := New(configs.Notify{}, openSpool(t), Options{})
	if _, err := n.Test(t.Context(), "nope"); err == nil || !strings.Contains(err.Error(), `no such notify channel "nope"`) {
		t.Fatalf("err %v", err)
	}
}

// FuzzSMTPReply: whatever a server sends, the reply reader ends with a
// reply or an error, within its budget, never a panic.
func FuzzSMTPReply(f *testing.F) {
	for _, s := range []string{"220 hi\r\n", "250-a\r\n250 b\r\n", "250-a\r\n251 b\r\n", "2\r\n", "999 x\r\n", "220", strings.Repeat("250-x\r\n", 200)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := net.Pipe()
		defer a.Close()
		go func() { b.Write(data); b.Close() }()
		c := &smtpConn{timeout: time.Second, step: "fuzz"}
		c.setConn(a)
		code, text, err := c.reply('2')
		if err == nil && (code < 200 || code > 299) {
			t.Fatalf("accepted code %d", code)
		}
		if len(text) > smtpMaxLines*520 {
			t.Fatalf("reply text %d bytes", len(text))
		}
	})
}

// A notifier that replaces another (a reload) sends the digest of the
// bans the old one counted, and keeps the channel's counters.
func TestTakeOverKeepsDigestAndCounters(t *testing.T) {
	r := newReceiver(t, nil)
	db := openSpool(t)
	cfg := configs.Notify{Digest: time.Hour, MaxPerHour: 100, MaxSpoolAge: time.Hour,
		Webhook: map[string]configs.Webhook{"h": hook(r.srv.URL, "json", "alarm", "digest")}}
	old, err := New(cfg, db, Options{Host: "mx.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { old.Run(ctx); close(done) }()
	old.Notify(Event{Kind: KindAlarm, Reason: "gateway-client"})
	waitFor(t, "the alarm", 5*time.Second, func() bool { return len(r.got()) == 1 })
	waitFor(t, "sent counted", 5*time.Second, func() bool { return old.Status().Channels[0].Sent == 1 })
	for range 3 {
		old.Notify(Event{Kind: KindBan, Target: target, Jail: "auth", Duration: time.Hour})
	}
	cancel()
	<-done

	cfg.Digest = 100 * time.Millisecond
	n, err := New(cfg, db, Options{Host: "mx.example.test", RetryMin: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n.TakeOver(old)
	if st := n.Status().Channels[0]; st.Sent != 1 {
		t.Fatalf("sent after take-over %d, want 1", st.Sent)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	go func() { n.Run(ctx2); close(done2) }()
	t.Cleanup(func() { cancel2(); <-done2 })
	waitFor(t, "the digest", 5*time.Second, func() bool { return len(r.got()) == 2 })
	var m Message
	if err := json.Unmarshal(r.got()[1].body, &m); err != nil {
		t.Fatal(err)
	}
	if m.Kind != KindDigest || m.Digest == nil || m.Digest.Bans != 3 {
		t.Fatalf("second message %+v, want a digest of 3 bans", m)
	}
}
