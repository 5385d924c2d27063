package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/store"
)

type received struct {
	path, query string
	header      http.Header
	body        []byte
}

// receiver records every request; status picks the answer per request.
type receiver struct {
	mu     sync.Mutex
	reqs   []received
	status func(n int) int
	srv    *httptest.Server
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	r := &receiver{status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		n := len(r.reqs)
		r.reqs = append(r.reqs, received{req.URL.Path, req.URL.RawQuery, req.Header.Clone(), b})
		r.mu.Unlock()
		code := 200
		if r.status != nil {
			code = r.status(n)
		}
		w.WriteHeader(code)
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.reqs...)
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !ok() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func openSpool(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "bansd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func start(t *testing.T, cfg configs.Notify, spool Spool, opt Options) *Notifier {
	t.Helper()
	if opt.RetryMin == 0 {
		opt.RetryMin, opt.RetryMax = 20*time.Millisecond, 100*time.Millisecond
	}
	opt.Host = "mx.example.test"
	n, err := New(cfg, spool, opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return n
}

func hook(url, preset string, events ...string) configs.Webhook {
	return configs.Webhook{Name: "h", URL: configs.Secret(url), Preset: preset, Events: events, Timeout: 5 * time.Second}
}

var target = netip.MustParsePrefix("203.0.113.7/32")

func TestWebhookJSONEachKind(t *testing.T) {
	r := newReceiver(t, nil)
	w := hook(r.srv.URL+"/hook", "json", "ban", "unban", "alarm", "alarm-cleared", "daemon", "digest")
	w.Token = "tok"
	n := start(t, configs.Notify{Digest: 200 * time.Millisecond, MaxPerHour: 100, MaxSpoolAge: time.Hour,
		Webhook: map[string]configs.Webhook{"h": w}}, openSpool(t), Options{})
	t0 := time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC)
	events := []Event{
		{Kind: KindBan, Time: t0, Target: target, Jail: "auth", Duration: time.Hour, Level: 1, Reason: "10 failures in 1h"},
		{Kind: KindUnban, Time: t0, Target: target, Reason: "manual, uid 0"},
		{Kind: KindAlarm, Time: t0, Target: netip.MustParsePrefix("172.17.0.1/32"), Reason: "gateway-client", Text: "userland proxy: fix it\x1b[2J\r\nSubject: forged"},
		{Kind: KindAlarmCleared, Time: t0, Reason: "gateway-client"},
		{Kind: KindDaemon, Time: t0, Reason: "started"},
	}
	for _, e := range events {
		n.Notify(e)
	}
	waitFor(t, "6 requests", 5*time.Second, func() bool { return len(r.got()) >= 6 })
	got := r.got()
	for i, e := range events {
		req := got[i]
		if req.path != "/hook" || req.header.Get("Content-Type") != "application/json" || req.header.Get("Authorization") != "Bearer tok" {
			t.Errorf("%s: path %s headers %v", e.Kind, req.path, req.header)
		}
		var m Message
		if err := json.Unmarshal(req.body, &m); err != nil {
			t.Fatalf("%s: %v: %s", e.Kind, err, req.body)
		}
		if m.Kind != e.Kind || m.Host != "mx.example.test" || m.Event == nil || m.Event.Kind != e.Kind || !m.Event.Time.Equal(t0) || m.Event.Target != e.Target || m.Title == "" || m.Text == "" {
			t.Errorf("%s: message %s", e.Kind, req.body)
		}
		var raw map[string]any
		json.Unmarshal(req.body, &raw)
		ev := raw["event"].(map[string]any)
		if e.Kind == KindBan && (ev["duration_seconds"] != 3600.0 || ev["level"] != 1.0 || ev["jail"] != "auth" || ev["target"] != "203.0.113.7/32") {
			t.Errorf("ban event JSON %v", ev)
		}
		if e.Kind == KindAlarm && (strings.ContainsAny(ev["text"].(string), "\x1b\r") || !strings.Contains(m.Title, "gateway-client 172.17.0.1/32")) {
			t.Errorf("alarm text not cleaned: %q / %q", ev["text"], m.Title)
		}
	}
	var d Message
	json.Unmarshal(got[5].body, &d)
	if d.Kind != KindDigest || d.Digest == nil || d.Digest.Bans != 1 || d.Digest.Jails[0] != (Count{"auth", 1}) ||
		d.Digest.Networks[0] != (Count{"203.0.113.0/24", 1}) || len(d.Digest.RepeatOffenders) != 1 {
		t.Errorf("digest %s", got[5].body)
	}
}

func TestWebhookPresets(t *testing.T) {
	alarm := Event{Kind: KindAlarm, Time: time.Now(), Target: target, Reason: "open-relay-risk", Text: "fix: ports"}
	for _, tc := range []struct {
		preset, template string
		check            func(t *testing.T, r received)
	}{
		{"ntfy", "", func(t *testing.T, r received) {
			if r.header.Get("Title") == "" || r.header.Get("Priority") != "5" || r.header.Get("Tags") != "rotating_light" || r.header.Get("Authorization") != "Bearer tok" || !strings.Contains(string(r.body), "open-relay-risk") {
				t.Errorf("ntfy: %v %s", r.header, r.body)
			}
		}},
		{"gotify", "", func(t *testing.T, r received) {
			var b map[string]any
			json.Unmarshal(r.body, &b)
			if r.path != "/hook/message" || r.query != "token=tok" || b["priority"] != 8.0 || !strings.Contains(b["title"].(string), "ALARM") || !strings.Contains(b["message"].(string), "fix: ports") || r.header.Get("Authorization") != "" {
				t.Errorf("gotify: %s?%s %s", r.path, r.query, r.body)
			}
		}},
		{"slack", "", func(t *testing.T, r received) {
			var b map[string]string
			json.Unmarshal(r.body, &b)
			if len(b) != 1 || !strings.HasPrefix(b["text"], "*bansd ALARM") || !strings.Contains(b["text"], "fix: ports") {
				t.Errorf("slack: %s", r.body)
			}
		}},
		{"matrix", "", func(t *testing.T, r received) {
			var b map[string]string
			json.Unmarshal(r.body, &b)
			if !strings.Contains(b["text"], "fix: ports") || b["body"] != b["text"] || !strings.Contains(b["html"], "<strong>bansd ALARM") || b["key"] != "tok" {
				t.Errorf("matrix: %s", r.body)
			}
		}},
		{"template", "{{.Kind}}|{{.Event.Reason}}|{{.Host}}", func(t *testing.T, r received) {
			if string(r.body) != "alarm|open-relay-risk|mx.example.test" || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
				t.Errorf("template: %q %v", r.body, r.header)
			}
		}},
	} {
		t.Run(tc.preset, func(t *testing.T) {
			r := newReceiver(t, nil)
			w := hook(r.srv.URL+"/hook", tc.preset, "alarm")
			w.Token, w.Template = "tok", tc.template
			w.Headers = map[string]configs.Secret{"X-Extra": "yes"}
			n := start(t, configs.Notify{MaxPerHour: 10, Webhook: map[string]configs.Webhook{"h": w}}, openSpool(t), Options{})
			n.Notify(alarm)
			waitFor(t, "a request", 5*time.Second, func() bool { return len(r.got()) == 1 })
			got := r.got()[0]
			if got.header.Get("X-Extra") != "yes" {
				t.Errorf("header missing: %v", got.header)
			}
			tc.check(t, got)
		})
	}
}

func TestFloodIsFoldedIntoBoundedMessages(t *testing.T) {
	r := newReceiver(t, nil)
	const limit = 6
	n := start(t, configs.Notify{Digest: time.Second, MaxPerHour: limit, MaxSpoolAge: time.Hour,
		Webhook: map[string]configs.Webhook{"h": hook(r.srv.URL, "json", "ban", "digest")}}, openSpool(t), Options{})
	for i := range 10_000 {
		a := netip.AddrFrom4([4]byte{198, 51, 100 + byte(i%3), byte(i)})
		n.Notify(Event{Kind: KindBan, Target: netip.PrefixFrom(a, 32), Jail: "auth", Duration: time.Hour, Level: i % 2})
	}
	// Several digest intervals pass: still at most limit.
	time.Sleep(3500 * time.Millisecond)
	got := r.got()
	if len(got) > limit || len(got) < 2 {
		t.Fatalf("%d messages for 10,000 bans, want 2..%d", len(got), limit)
	}
	var kinds []string
	var folded, digested int
	for _, req := range got {
		var m Message
		json.Unmarshal(req.body, &m)
		kinds = append(kinds, string(m.Kind))
		if m.Folded != nil {
			folded += m.Folded.Count
			if !strings.Contains(m.Text, "folded") {
				t.Errorf("folded text: %s", m.Text)
			}
		}
		if m.Digest != nil {
			digested += m.Digest.Bans
			if len(m.Digest.Jails) != 1 || len(m.Digest.Networks) != 3 || len(m.Digest.RepeatOffenders) != 10 || m.Digest.MoreRepeatOffenders != 4990 {
				t.Errorf("digest %+v", *m.Digest)
			}
		}
	}
	st := n.Status()
	if digested != 10_000 || st.Lost != 0 {
		t.Errorf("digest counted %d bans, lost %d; kinds %v", digested, st.Lost, kinds)
	}
	if folded == 0 || uint64(folded) > st.Channels[0].Folded || st.Channels[0].Folded < 10_000-limit {
		t.Errorf("folded summary says %d, status %d; kinds %v", folded, st.Channels[0].Folded, kinds)
	}
	if kinds[len(kinds)-1] != "folded" {
		t.Errorf("last message is %s, want the folded summary; kinds %v", kinds[len(kinds)-1], kinds)
	}
}

func TestWebhookRetriesAfter500(t *testing.T) {
	r := newReceiver(t, func(n int) int {
		if n < 3 {
			return 500
		}
		return 200
	})
	db := openSpool(t)
	n := start(t, configs.Notify{MaxPerHour: 10, MaxSpoolAge: time.Hour,
		Webhook: map[string]configs.Webhook{"h": hook(r.srv.URL, "json", "alarm")}}, db, Options{})
	n.Notify(Event{Kind: KindAlarm, Reason: "x"})
	waitFor(t, "delivery", 5*time.Second, func() bool { return n.Status().Channels[0].Sent == 1 })
	got := r.got()
	if len(got) != 4 {
		t.Fatalf("%d requests, want 3 failures and 1 success", len(got))
	}
	for _, g := range got[1:] {
		if string(g.body) != string(got[0].body) {
			t.Error("a retry sent a different body")
		}
	}
	st := n.Status().Channels[0]
	if st.Failures != 3 || !strings.Contains(st.LastError, "HTTP 500") || st.Pending != 0 || st.LastAnswer != `HTTP 200 OK: {"ok":true}` {
		t.Errorf("status %+v", st)
	}
	if left, _ := db.Outbox(""); len(left) != 0 {
		t.Errorf("spool keeps %d", len(left))
	}
}

func TestWebhookBadServers(t *testing.T) {
	loop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/again", http.StatusFound)
	}))
	defer loop.Close()
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := 200
		if r.URL.Path == "/fail" {
			code = 502
		}
		w.WriteHeader(code)
		chunk := []byte(strings.Repeat("x", 1<<20))
		for range 200 { // 200 MB unless the client hangs up
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer huge.Close()
	for _, tc := range []struct{ url, want string }{
		{loop.URL, "stopped after 3 redirects (a redirect loop?)"},
		{huge.URL + "/fail", "HTTP 502 Bad Gateway: xxxx"},
		{huge.URL + "/ok", "answer body longer than 64 KiB"},
	} {
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		n, err := New(configs.Notify{Webhook: map[string]configs.Webhook{"h": hook(tc.url, "json", "alarm")}}, openSpool(t), Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = n.Test(context.Background(), "h")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.url, err, tc.want)
		}
		if st := n.Status().Channels[0]; !strings.Contains(st.LastError, tc.want) {
			t.Errorf("%s: status %+v", tc.url, st)
		}
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if grew := int64(after.TotalAlloc - before.TotalAlloc); grew > 8<<20 {
			t.Errorf("%s: allocated %d bytes", tc.url, grew)
		}
	}
}

func TestStatusAndErrorsHideSecrets(t *testing.T) {
	loop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.String(), http.StatusFound)
	}))
	defer loop.Close()
	w := hook(loop.URL+"/s3cret-path", "gotify", "alarm")
	w.Token = "tok-s3cret"
	w.Headers = map[string]configs.Secret{"X-Key": "hdr-s3cret"}
	var log syncBuf
	n := start(t, configs.Notify{MaxPerHour: 10, Webhook: map[string]configs.Webhook{"h": w}}, openSpool(t),
		Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	_, err := n.Test(context.Background(), "h")
	n.Notify(Event{Kind: KindAlarm, Reason: "x"})
	waitFor(t, "a failed delivery", 5*time.Second, func() bool { return n.Status().Channels[0].Failures >= 2 })
	st, _ := json.Marshal(n.Status())
	for _, out := range []string{fmt.Sprint(err), string(st), log.String()} {
		if !strings.Contains(out, "redirect") {
			t.Errorf("no redirect error in %s", out)
		}
		if strings.Contains(out, "s3cret") {
			t.Errorf("secret shown: %s", out)
		}
	}
}
