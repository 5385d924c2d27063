package crowdsec

import (
	"context"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/crowdsectest"
	"github.com/bansd/bansd/store"
)

func clientFor(t testing.TB, l *crowdsectest.LAPI, bouncerKey string) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{URL: l.URL, MachineID: l.MachineID, Password: l.Password,
		BouncerKey: bouncerKey, HTTP: l.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func runSyncer(t *testing.T, cfg Config) (*Syncer, context.CancelFunc) {
	t.Helper()
	if cfg.PullInterval == 0 {
		cfg.PullInterval = 200 * time.Millisecond
	}
	cfg.RetryMin, cfg.RetryMax = 100*time.Millisecond, 300*time.Millisecond
	s, err := NewSyncer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return s, stop
}

// streamOf pulls a whole startup stream as another bouncer sees it.
func streamOf(t *testing.T, c *Client) map[netip.Prefix]Decision {
	t.Helper()
	got := map[netip.Prefix]Decision{}
	_, err := c.Stream(context.Background(), true, func(d Decision, deleted bool) error {
		if !deleted {
			got[d.Target] = d
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestLAPIPushAppearsOnAnotherBouncersStreamAndUnbanDeletesOnlyOurs(t *testing.T) {
	l := crowdsectest.Start(t)
	c := clientFor(t, l, "")
	s, _ := runSyncer(t, Config{Client: c, Queue: newMemQueue(100), Push: true})
	now := time.Now()
	one, rng := mustPrefix("203.0.113.7/32"), mustPrefix("198.51.100.0/24")
	// cscli's own decision on the same address must survive bansd's unban.
	l.Cscli(t, "decisions", "add", "--ip", "203.0.113.7", "--duration", "30m")
	for _, lb := range []Local{
		{Target: one, Jail: "auth", Until: now.Add(time.Hour), Events: 7, Reason: "10 failed logins"},
		{Target: rng, Jail: "auth", Until: now.Add(30 * time.Minute), Events: 40, Reason: "subnet"},
		{Target: mustPrefix("203.0.113.8/32"), Manual: true, Until: now.Add(2 * time.Hour), Reason: "by admin"},
	} {
		if err := s.Push(lb); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "3 pushes acknowledged", func() bool { return s.Status().Shared == 3 }, s)
	if st := s.Status(); st.Pushed != 3 || st.LastPush.IsZero() || st.PendingPushes != 0 {
		t.Errorf("status after push: %+v", st)
	}

	other := "otherbouncerkey0123456789abcdef"
	l.Cscli(t, "bouncers", "add", "other", "--key", other)
	got := streamOf(t, clientFor(t, l, other))
	for _, want := range []struct {
		target   netip.Prefix
		scenario string
		dur      time.Duration
	}{{one, "bansd/auth", time.Hour}, {rng, "bansd/auth", 30 * time.Minute}, {mustPrefix("203.0.113.8/32"), "bansd/manual", 2 * time.Hour}} {
		d, ok := got[want.target]
		if !ok {
			t.Errorf("%s not on another bouncer's stream: %v", want.target, got)
			continue
		}
		if d.Origin != "bansd" || d.Scenario != want.scenario || d.Duration > want.dur || d.Duration < want.dur-30*time.Second {
			t.Errorf("%s on the stream: %+v, want origin bansd, scenario %s, about %s left", want.target, d, want.scenario, want.dur)
		}
	}
	// cscli alerts list --ip finds nothing pushed through the API in 1.4.6
	// (it filters on columns LAPI fills only for its own agents): filter here.
	alerts := l.Alerts(t)
	var ours int
	for _, a := range alerts {
		if a.MachineID == l.MachineID && len(a.Decisions) == 1 && a.Decisions[0].Value == "203.0.113.7" {
			ours++
			if a.Scenario != "bansd/auth" || a.Message != "bansd auth: 10 failed logins" {
				t.Errorf("pushed alert: %+v", a)
			}
		}
	}
	if ours != 1 {
		t.Errorf("%d alerts of bansd for 203.0.113.7, want 1: %+v", ours, alerts)
	}

	if err := s.Unban(one); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "unban withdrawn", func() bool { st := s.Status(); return st.Unbans == 1 && st.PendingUnbans == 0 })
	var ds []crowdsectest.Decision
	for _, d := range l.Decisions(t) {
		if d.Value == "203.0.113.7" {
			ds = append(ds, d)
		}
	}
	if len(ds) != 1 || ds[0].Origin != "cscli" {
		t.Errorf("after bansd's unban of 203.0.113.7, decisions %+v; want only cscli's", ds)
	}
}

func TestLAPIPullEnforcesCscliDecisionsAndRefusesNeverBan(t *testing.T) {
	l := crowdsectest.Start(t)
	c := clientFor(t, l, l.BouncerKey)
	enf := newMemEnforcer()
	gateway := mustPrefix("203.0.113.1/32")
	var mu sync.Mutex
	var alarms []Refusal
	s, _ := runSyncer(t, Config{Client: c, Queue: newMemQueue(100), Enforcer: enf, Push: true, Pull: true,
		NeverBan: func(p netip.Prefix) (bool, string) {
			if p.Overlaps(gateway) {
				return false, "Docker gateway"
			}
			return true, ""
		},
		OnRefusal: func(r Refusal) { mu.Lock(); alarms = append(alarms, r); mu.Unlock() }})

	l.Cscli(t, "decisions", "add", "--ip", "203.0.113.20", "--duration", "5m")
	l.Cscli(t, "decisions", "add", "--range", "198.51.100.0/24", "--duration", "1h")
	l.Cscli(t, "decisions", "add", "--ip", "203.0.113.1", "--duration", "5m")
	l.Cscli(t, "decisions", "add", "--ip", "203.0.113.21", "--duration", "5m", "--type", "captcha")
	ip, rng := mustPrefix("203.0.113.20/32"), mustPrefix("198.51.100.0/24")
	waitFor(t, 10*time.Second, "cscli decisions enforced", func() bool {
		_, a := enf.get(ip)
		_, b := enf.get(rng)
		return a && b
	})
	for _, w := range []struct {
		p   netip.Prefix
		dur time.Duration
	}{{ip, 5 * time.Minute}, {rng, time.Hour}} {
		b, _ := enf.get(w.p)
		if !b.Pulled || b.Label != "crowdsec:cscli/manual 'ban' from 'cli'" || b.Duration > w.dur || b.Duration < w.dur-30*time.Second {
			t.Errorf("pulled %s: %+v, want pulled, cscli label, about %s left", w.p, b, w.dur)
		}
	}
	waitFor(t, 5*time.Second, "the gateway decision refused", func() bool { return s.Status().Refused >= 1 })
	if _, ok := enf.get(gateway); ok {
		t.Error("a decision against the never-ban gateway was enforced")
	}
	mu.Lock()
	if len(alarms) == 0 || alarms[0].Target != gateway || alarms[0].Reason != "Docker gateway" {
		t.Errorf("alarms %+v, want one for %s", alarms, gateway)
	}
	mu.Unlock()
	waitFor(t, 5*time.Second, "the captcha decision counted", func() bool { return s.Status().OtherType >= 1 }, s)
	if _, ok := enf.get(mustPrefix("203.0.113.21/32")); ok {
		t.Errorf("a captcha decision was enforced")
	}

	l.Cscli(t, "decisions", "delete", "--ip", "203.0.113.20")
	waitFor(t, 10*time.Second, "cscli delete lifted", func() bool { _, ok := enf.get(ip); return !ok })
	if _, ok := enf.get(rng); !ok {
		t.Error("deleting one decision lifted another")
	}

	// Our own push comes back on our stream: recognised, not enforced.
	own := mustPrefix("203.0.113.30/32")
	if err := s.Push(Local{Target: own, Jail: "auth", Until: time.Now().Add(time.Hour), Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "own push skipped on pull", func() bool { return s.Status().OwnSkipped >= 1 })
	// Another bansd host's push (same scenario form, other machine) is enforced, flagged pulled.
	l.Cscli(t, "machines", "add", "bansd-b", "--password", "passwordofhostb", "-f", filepath.Join(l.Dir, "b.yaml"))
	hostB, err := NewClient(ClientConfig{URL: l.URL, MachineID: "bansd-b", Password: "passwordofhostb", HTTP: l.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	peer := mustPrefix("203.0.113.40/32")
	if _, err := hostB.PushAlerts(context.Background(), []Alert{
		{Target: peer, Scenario: "bansd/auth", Message: "b", Events: 3, Duration: time.Hour, At: time.Now(), Key: "k-b-1"},
		{Target: own, Scenario: "bansd/auth", Message: "b", Events: 3, Duration: time.Hour, At: time.Now(), Key: "k-b-2"},
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the other bansd host's ban enforced", func() bool { _, ok := enf.get(peer); return ok })
	if b, _ := enf.get(peer); !b.Pulled || b.Label != "crowdsec:bansd/bansd/auth" {
		t.Errorf("peer's ban: %+v", b)
	}
	time.Sleep(600 * time.Millisecond) // a few more pulls
	if _, ok := enf.get(own); ok {
		t.Error("this host's own ban (pushed by both hosts) was enforced again as pulled")
	}
	if st := s.Status(); st.Pushed != 1 {
		t.Errorf("pushed %d, want only the one local ban (pulled ones are never pushed)", st.Pushed)
	}
}

func TestLAPIKilledWithPushesPendingDeliversEachOnceAcrossRestarts(t *testing.T) {
	l := crowdsectest.Start(t)
	path := filepath.Join(t.TempDir(), "bansd.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l.Kill(t)
	c := clientFor(t, l, "")
	s, stop := runSyncer(t, Config{Client: c, Queue: db.CrowdSecQueue(100), Push: true})
	targets := []netip.Prefix{mustPrefix("203.0.113.50/32"), mustPrefix("203.0.113.51/32"), mustPrefix("203.0.113.52/32"), mustPrefix("2001:db8::/64")}
	for _, p := range targets {
		if err := s.Push(Local{Target: p, Jail: "auth", Until: time.Now().Add(time.Hour), Reason: "r"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "a failed push attempt", func() bool { return s.Status().LastError != "" })
	if st := s.Status(); st.PendingPushes != len(targets) || st.Pushed != 0 {
		t.Fatalf("with LAPI down: %+v", st)
	}
	// bansd restarts while LAPI is down: the queue is all it has.
	stop()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	q := db.CrowdSecQueue(100)

	l.Restart(t)
	// A push whose answer was lost: it reached LAPI, but the queue still
	// says "attempted, not acknowledged".
	lost := mustPrefix("203.0.113.53/32")
	lostKey := "lost-answer-key"
	if _, err := clientFor(t, l, "").PushAlerts(context.Background(), []Alert{{Target: lost, Scenario: "bansd/auth", Message: "m", Events: 1, Duration: time.Hour, At: time.Now(), Key: lostKey}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Append([]byte(`{"key":"` + lostKey + `","target":"203.0.113.53/32","scenario":"bansd/auth","until":"` +
		time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `","attempts":1}`)); err != nil {
		t.Fatal(err)
	}
	s2, _ := runSyncer(t, Config{Client: clientFor(t, l, ""), Queue: q, Push: true})
	waitFor(t, 15*time.Second, "the queue delivered", func() bool { st := s2.Status(); return st.Shared == len(targets)+1 })
	if st := s2.Status(); st.Pushed != uint64(len(targets)) || st.PushRecovered != 1 {
		t.Errorf("after restart: %+v; want %d pushed and 1 recovered", st, len(targets))
	}
	// A second restart re-pushes nothing: what LAPI has is marked sent.
	s3, _ := runSyncer(t, Config{Client: clientFor(t, l, ""), Queue: q, Push: true})
	time.Sleep(500 * time.Millisecond)
	if st := s3.Status(); st.Pushed != 0 || st.Shared != len(targets)+1 {
		t.Errorf("third run: %+v", st)
	}
	for _, p := range append(targets, lost) {
		n := 0
		for _, a := range l.Alerts(t) {
			for _, d := range a.Decisions {
				if d.Value == Value(p) {
					n++
				}
			}
		}
		if n != 1 {
			t.Errorf("%s: %d alerts in LAPI, want exactly 1", p, n)
		}
	}
}
