package crowdsec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Faults the real LAPI cannot be made to produce: an httptest server.

func fakeClient(t testing.TB, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := NewClient(ClientConfig{URL: srv.URL, MachineID: "m", Password: "p", BouncerKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type pulled struct {
	d       Decision
	deleted bool
}

func pullAll(c *Client) ([]pulled, StreamCounts, error) {
	var got []pulled
	n, err := c.Stream(context.Background(), true, func(d Decision, del bool) error {
		got = append(got, pulled{d, del})
		return nil
	})
	return got, n, err
}

func TestStreamValidatesEachDecision(t *testing.T) {
	dec := func(typ, scope, value, dur string) string {
		return fmt.Sprintf(`{"duration":%q,"id":1,"origin":"cscli","scenario":"s","scope":%q,"type":%q,"value":%q}`, dur, scope, typ, value)
	}
	for _, tc := range []struct {
		name   string
		item   string
		target string // "" when not passed on
		dur    time.Duration
		counts StreamCounts
	}{
		{"ip", dec("ban", "Ip", "203.0.113.5", "4m59.5s"), "203.0.113.5/32", 4*time.Minute + 59500*time.Millisecond, StreamCounts{New: 1}},
		{"scope case", dec("ban", "ip", "2001:db8::1", "1h"), "2001:db8::1/128", time.Hour, StreamCounts{New: 1}},
		{"range", dec("ban", "Range", "198.51.100.0/24", "1h"), "198.51.100.0/24", time.Hour, StreamCounts{New: 1}},
		{"range host bits cleared", dec("ban", "Range", "198.51.100.77/24", "1h"), "198.51.100.0/24", time.Hour, StreamCounts{New: 1}},
		{"mapped ip unmapped", dec("ban", "Ip", "::ffff:203.0.113.9", "1h"), "203.0.113.9/32", time.Hour, StreamCounts{New: 1}},
		{"mapped range unmapped", dec("ban", "Range", "::ffff:198.51.100.0/120", "1h"), "198.51.100.0/24", time.Hour, StreamCounts{New: 1}},
		{"100 years capped", dec("ban", "Ip", "203.0.113.5", "876000h"), "203.0.113.5/32", DefaultMaxDuration, StreamCounts{New: 1, Capped: 1}},
		{"captcha ignored", dec("captcha", "Ip", "203.0.113.5", "1h"), "", 0, StreamCounts{OtherType: 1}},
		{"country scope", dec("ban", "Country", "FR", "1h"), "", 0, StreamCounts{Invalid: 1}},
		{"bad ip", dec("ban", "Ip", "203.0.113.500", "1h"), "", 0, StreamCounts{Invalid: 1}},
		{"ip with prefix", dec("ban", "Ip", "203.0.113.5/32", "1h"), "", 0, StreamCounts{Invalid: 1}},
		{"zone", dec("ban", "Ip", "fe80::1%eth0", "1h"), "", 0, StreamCounts{Invalid: 1}},
		{"loopback", dec("ban", "Ip", "127.0.0.1", "1h"), "", 0, StreamCounts{Invalid: 1}},
		{"whole internet", dec("ban", "Range", "0.0.0.0/0", "1h"), "", 0, StreamCounts{Invalid: 1}},
		{"too wide v4", dec("ban", "Range", "10.0.0.0/7", "1h"), "", 0, StreamCounts{Invalid: 1}},
		{"too wide v6", dec("ban", "Range", "2001::/15", "1h"), "", 0, StreamCounts{Invalid: 1}},
		{"day unit", dec("ban", "Ip", "203.0.113.5", "7d"), "", 0, StreamCounts{Invalid: 1}},
		{"expired", dec("ban", "Ip", "203.0.113.5", "-3s"), "", 0, StreamCounts{Expired: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeClient(t, func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, `{"new":[%s],"deleted":null}`, tc.item)
			})
			got, n, err := pullAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.counts {
				t.Errorf("counts %+v, want %+v", n, tc.counts)
			}
			if tc.target == "" {
				if len(got) != 0 {
					t.Errorf("passed on %+v, want nothing", got)
				}
				return
			}
			if len(got) != 1 || got[0].d.Target != netip.MustParsePrefix(tc.target) || got[0].d.Duration != tc.dur || got[0].deleted {
				t.Errorf("got %+v, want %s for %s", got, tc.target, tc.dur)
			}
		})
	}
}

func TestStreamDeletedNeedNoDuration(t *testing.T) {
	c := fakeClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != "k" || r.URL.Query().Get("startup") != "true" {
			http.Error(w, `{"message":"access forbidden"}`, 403)
			return
		}
		io.WriteString(w, `{"deleted":[{"duration":"-1h2m","id":2,"origin":"cscli","scenario":"x","scope":"Range","type":"ban","value":"198.51.100.0/24"}],"new":null,"later_field":{"a":[1,2]}}`)
	})
	got, n, err := pullAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if n.Deleted != 1 || len(got) != 1 || !got[0].deleted || got[0].d.Target != netip.MustParsePrefix("198.51.100.0/24") {
		t.Errorf("got %+v %+v", got, n)
	}
}

func TestStreamRejectsGarbage(t *testing.T) {
	for name, body := range map[string]string{
		"html":            "<html>502 Bad Gateway</html>",
		"array":           `[1,2]`,
		"new not a list":  `{"new":"x"}`,
		"item not object": `{"new":[1]}`,
		"wrong type":      `{"new":[{"id":"one"}]}`,
		"cut":             `{"new":[{"id":1,"value":"203.0`,
		"trailing":        `{"new":null}{"new":null}`,
		"empty":           ``,
	} {
		t.Run(name, func(t *testing.T) {
			c := fakeClient(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
			if _, _, err := pullAll(c); err == nil {
				t.Errorf("%q accepted", body)
			} else if !strings.Contains(err.Error(), "/v1/decisions/stream") {
				t.Errorf("error does not say what: %v", err)
			}
		})
	}
}

// endless writes n bytes of prefix, then filler, without holding them.
func endless(w http.ResponseWriter, prefix string, filler byte, n int) {
	io.WriteString(w, prefix)
	buf := []byte(strings.Repeat(string(filler), 64<<10))
	for sent := len(prefix); sent < n; sent += len(buf) {
		if _, err := w.Write(buf); err != nil {
			return
		}
	}
}

func allocDuring(fn func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

func Test100MBAnswersFailWithBoundedMemory(t *testing.T) {
	const size = 100 << 20
	for _, tc := range []struct {
		name string
		body func(w http.ResponseWriter)
		call func(c *Client) error
	}{
		{"login", func(w http.ResponseWriter) { endless(w, `{"token":"`, 'a', size) }, func(c *Client) error { return c.Login(context.Background()) }},
		{"stream one huge value", func(w http.ResponseWriter) { endless(w, `{"new":[{"value":"`, 'a', size) }, func(c *Client) error { _, _, err := pullAll(c); return err }},
		{"stream huge whitespace", func(w http.ResponseWriter) { endless(w, `{"new":`, ' ', size) }, func(c *Client) error { _, _, err := pullAll(c); return err }},
		{"stream error answer", func(w http.ResponseWriter) { w.WriteHeader(502); endless(w, ``, 'x', size) }, func(c *Client) error { _, _, err := pullAll(c); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeClient(t, func(w http.ResponseWriter, r *http.Request) { tc.body(w) })
			var err error
			alloc := allocDuring(func() { err = tc.call(c) })
			if !errors.Is(err, ErrBodyTooLarge) {
				t.Errorf("error %v, want ErrBodyTooLarge", err)
			}
			if alloc > 16<<20 {
				t.Errorf("allocated %d MiB reading a 100 MiB answer", alloc>>20)
			}
		})
	}
}

func TestReloginOn401AndRefreshBeforeExpiry(t *testing.T) {
	var logins, posts atomic.Int32
	var mu sync.Mutex
	valid := ""
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/v1/watchers/login":
			if ua := r.Header.Get("User-Agent"); !strings.Contains(ua, "/") {
				t.Errorf("user agent %q: 1.4.6 wants name/version", ua)
			}
			n := logins.Add(1)
			valid = fmt.Sprint("tok", n)
			fmt.Fprintf(w, `{"code":200,"expire":%q,"token":%q}`, now.Add(time.Hour).Format(time.RFC3339), valid)
		case "/v1/alerts":
			posts.Add(1)
			if r.Header.Get("Authorization") != "Bearer "+valid {
				w.WriteHeader(401)
				io.WriteString(w, `{"code":401,"message":"Token is expired"}`)
				return
			}
			io.WriteString(w, `["1"]`)
		}
	}))
	defer srv.Close()
	clock := now
	c, err := NewClient(ClientConfig{URL: srv.URL + "/", MachineID: "m", Password: "p", Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	push := func() error {
		_, err := c.PushAlerts(context.Background(), []Alert{{Target: netip.MustParsePrefix("203.0.113.1/32"), Scenario: "bansd/x", Duration: time.Hour, At: clock}})
		return err
	}
	if err := push(); err != nil || logins.Load() != 1 {
		t.Fatalf("first push: %v, %d logins", err, logins.Load())
	}
	// LAPI restarted with a new secret: our token is refused once.
	mu.Lock()
	valid = "other"
	mu.Unlock()
	if err := push(); err != nil || logins.Load() != 2 || posts.Load() != 3 {
		t.Fatalf("after 401: %v, %d logins, %d posts", err, logins.Load(), posts.Load())
	}
	// Near expiry, the token is renewed before use, not after a 401.
	clock = now.Add(56 * time.Minute)
	if err := push(); err != nil || logins.Load() != 3 || posts.Load() != 4 {
		t.Fatalf("near expiry: %v, %d logins, %d posts", err, logins.Load(), posts.Load())
	}
}

func TestSyncerDropsWhatLAPIRejectsAndKeepsWhatFails(t *testing.T) {
	var status atomic.Int32
	status.Store(503)
	c := fakeClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/watchers/login":
			fmt.Fprintf(w, `{"code":200,"expire":%q,"token":"t"}`, time.Now().Add(time.Hour).Format(time.RFC3339))
		case "/v1/alerts":
			s := int(status.Load())
			w.WriteHeader(s)
			if s == 500 {
				io.WriteString(w, `{"message":"validation failure list:\n0.source in body is required"}`)
			}
		}
	})
	s, err := NewSyncer(Config{Client: c, Queue: newMemQueue(10), Push: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Push(Local{Target: netip.MustParsePrefix("203.0.113.1/32"), Jail: "j", Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.pushOnce(context.Background()); err == nil {
		t.Fatal("503 not reported")
	}
	if st := s.Status(); st.PendingPushes != 1 || st.PushRejected != 0 {
		t.Fatalf("after 503: %+v", st)
	}
	status.Store(500)
	// attempted before: the syncer looks first; the fake has no such alert.
	c2 := fakeClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/watchers/login":
			fmt.Fprintf(w, `{"code":200,"expire":%q,"token":"t"}`, time.Now().Add(time.Hour).Format(time.RFC3339))
		case r.Method == "GET":
			io.WriteString(w, `null`)
		default:
			w.WriteHeader(500)
			io.WriteString(w, `{"message":"validation failure list"}`)
		}
	})
	s.cfg.Client = c2
	if err := s.pushOnce(context.Background()); err == nil {
		t.Fatal("validation failure not reported")
	}
	if st := s.Status(); st.PendingPushes != 0 || st.PushRejected != 1 {
		t.Errorf("after validation failure: %+v, want the entry dropped and counted", st)
	}
}

func TestSyncerQueueBoundDropsOldestAndCounts(t *testing.T) {
	c := fakeClient(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	s, err := NewSyncer(Config{Client: c, Queue: newMemQueue(5), Push: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if err := s.Push(Local{Target: netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), 32), Jail: "j", Until: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Status()
	if st.PendingPushes != 5 || st.QueueDropped != 3 {
		t.Errorf("%+v, want 5 pending and 3 dropped", st)
	}
	if s.ownTarget(netip.MustParsePrefix("203.0.113.0/32")) || !s.ownTarget(netip.MustParsePrefix("203.0.113.7/32")) {
		t.Error("own-target index does not follow the queue's drops")
	}
}

func FuzzStream(f *testing.F) {
	f.Add(`{"deleted":null,"new":[{"duration":"4m59.68s","id":1,"origin":"cscli","scenario":"m","scope":"Ip","type":"ban","value":"192.0.2.5"}]}`)
	f.Add(`{"new":[{"duration":"1h","scope":"Range","type":"ban","value":"::ffff:198.51.100.0/120"}],"deleted":[{"scope":"ip","type":"ban","value":"2001:db8::1"}]}`)
	f.Add(`{"new":null,"x":[[[[]]]]}`)
	c, _ := NewClient(ClientConfig{URL: "http://127.0.0.1:1"})
	f.Fuzz(func(t *testing.T, body string) {
		var n StreamCounts
		_ = c.decodeStream(strings.NewReader(body), &n, func(d Decision, deleted bool) error {
			p := d.Target
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("passed on an invalid target %v", p)
			}
			if !deleted && (d.Duration < time.Second || d.Duration > DefaultMaxDuration) {
				t.Fatalf("passed on a duration %s out of bounds", d.Duration)
			}
			return nil
		})
	})
}

func TestPullFailureResyncsFromStartupAndLiftsStale(t *testing.T) {
	type query struct {
		raw    string
		failed bool
	}
	var mu sync.Mutex
	var queries []query
	fail := false
	c := fakeClient(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		queries = append(queries, query{r.URL.RawQuery, fail})
		switch {
		case fail:
			w.WriteHeader(500)
		case r.URL.Query().Get("startup") == "true":
			io.WriteString(w, `{"new":[{"duration":"1h","id":1,"origin":"cscli","scenario":"s","scope":"Ip","type":"ban","value":"203.0.113.2"}],"deleted":null}`)
		default:
			io.WriteString(w, `{"new":null,"deleted":null}`)
		}
	})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(queries) }
	enf := newMemEnforcer()
	// A pulled ban left from before (LAPI deleted it while bansd was away).
	enf.Apply(context.Background(), []Pulled{{Target: netip.MustParsePrefix("203.0.113.99/32"), Duration: time.Hour, Pulled: true}})
	time.Sleep(10 * time.Millisecond)
	s, err := NewSyncer(Config{Client: c, Enforcer: enf, NeverBan: allowAll, Pull: true,
		PullInterval: 20 * time.Millisecond, RetryMin: 20 * time.Millisecond, RetryMax: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 2*time.Second, "a startup pull and a delta", func() bool { return count() >= 2 })
	if _, ok := enf.get(netip.MustParsePrefix("203.0.113.99/32")); ok {
		t.Error("a pulled ban LAPI no longer has survived the startup pull")
	}
	if _, ok := enf.get(netip.MustParsePrefix("203.0.113.2/32")); !ok {
		t.Error("startup decision not enforced")
	}
	mu.Lock()
	fail = true
	mu.Unlock()
	waitFor(t, 2*time.Second, "a failed pull", func() bool { return s.Status().PullErrors > 0 })
	mu.Lock()
	fail = false
	n := len(queries)
	mu.Unlock()
	waitFor(t, 2*time.Second, "pulls after the failure", func() bool { return count() >= n+2 })
	mu.Lock()
	defer mu.Unlock()
	if queries[n].raw != "startup=true" || queries[n+1].raw != "" {
		t.Errorf("pulls after a failed one: %+v; want a startup pull, then deltas", queries[n:])
	}
}

// LAPI too slow: the push lands after bansd gave up waiting. The next try
// must find it there instead of pushing it again.
func TestSlowLAPIPushLandsOnceAfterTimeout(t *testing.T) {
	var mu sync.Mutex
	var stored []string // alerts LAPI holds, as JSON
	var posts int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/watchers/login":
			fmt.Fprintf(w, `{"code":200,"expire":%q,"token":"t"}`, time.Now().Add(time.Hour).Format(time.RFC3339))
		case r.Method == "POST":
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			posts++
			// Committed, then answered too late.
			stored = append(stored, strings.Replace(strings.TrimSuffix(strings.TrimPrefix(string(body), "["), "]"),
				`"decisions":[{`, `"id":7,"decisions":[{"id":70,`, 1))
			mu.Unlock()
			time.Sleep(300 * time.Millisecond)
			io.WriteString(w, `["7"]`)
		case r.Method == "GET":
			mu.Lock()
			fmt.Fprintf(w, "[%s]", strings.Join(stored, ","))
			mu.Unlock()
		}
	}))
	defer srv.Close()
	c, err := NewClient(ClientConfig{URL: srv.URL, MachineID: "m", Password: "p", RequestTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSyncer(Config{Client: c, Queue: newMemQueue(10), Push: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Push(Local{Target: netip.MustParsePrefix("203.0.113.1/32"), Jail: "j", Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.pushOnce(context.Background()); err == nil {
		t.Fatal("a timed-out push was taken as delivered")
	}
	time.Sleep(300 * time.Millisecond)
	if err := s.pushOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := s.Status()
	mu.Lock()
	defer mu.Unlock()
	if posts != 1 || st.PushRecovered != 1 || st.Shared != 1 || st.PendingPushes != 0 {
		t.Errorf("%d posts, status %+v; want 1 post, found again, marked shared", posts, st)
	}
}
