package jail

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bansd/bansd/jail/parse"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/sources"
)

var t0 = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

type recorder struct {
	mu     sync.Mutex
	decs   []Decision
	alarms []Alarm
}

func (r *recorder) record(decs []Decision, alarms []Alarm) {
	r.mu.Lock()
	r.decs = append(r.decs, decs...)
	r.alarms = append(r.alarms, alarms...)
	r.mu.Unlock()
}

// testEngine records what its engine returns.
type testEngine struct {
	*Engine
	r *recorder
}

func (e testEngine) Process(l sources.Line) bool {
	out := e.Engine.Process(l)
	e.r.record(out.Decisions, out.Alarms)
	return out.Matched
}

func (e testEngine) FlushAlarms() { e.r.record(nil, e.Engine.FlushAlarms()) }

// feed runs parsed events through the engine (ProcessEvent, as replay
// does).
func (e testEngine) feed(evs ...parse.Event) {
	for _, ev := range evs {
		out := e.Engine.ProcessEvent(ev)
		e.r.record(out.Decisions, out.Alarms)
	}
}

func testConfig(t *testing.T, toml string) *configs.Config {
	t.Helper()
	var cfg *configs.Config
	var err error
	if toml == "" {
		cfg, err = configs.Default()
	} else {
		cfg, err = configs.Parse("test.toml", []byte(toml))
	}
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func newTestEngine(t *testing.T, toml string) (testEngine, *recorder) {
	t.Helper()
	r := &recorder{}
	e, err := NewEngine(testConfig(t, toml), Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	return testEngine{e, r}, r
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// adminFail is admin's "Login attempt ... failed: badauth: <hash>".
func adminFail(a string, at time.Duration, user, hash string) parse.Event {
	return parse.Event{Kind: parse.KindAuthFailure, Origin: parse.OriginAdmin, Time: t0.Add(at), Addr: addr(a), User: user, PassHash: hash, Port: 993, Count: 1,
		Line: fmt.Sprintf("Login attempt for: %s/imap/993 from: %s/1234: failed: badauth: %s", user, a, hash)}
}

func dovecotFail(a string, at time.Duration, n int) parse.Event {
	return parse.Event{Kind: parse.KindAuthFailure, Origin: parse.OriginDovecot, Time: t0.Add(at), Addr: addr(a), User: "u@example.com", Port: 993, Count: n,
		Line: "imap-login: Info: Disconnected: (auth failed, 1 attempts in 2 secs): rip=" + a}
}

func ev(k parse.Kind, o parse.Origin, a string, at time.Duration) parse.Event {
	return parse.Event{Kind: k, Origin: o, Time: t0.Add(at), Addr: addr(a), Port: 25, Count: 1, Line: k.String() + " from " + a}
}

func targets(ds []Decision) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Jail+":"+d.Target.String())
	}
	return out
}

func TestAddressJail(t *testing.T) {
	e, r := newTestEngine(t, "")
	for i := range 9 {
		e.feed(adminFail("203.0.113.7", time.Duration(i)*time.Minute, "alice@example.com", fmt.Sprintf("%06x", i)))
	}
	if len(r.decs) != 0 {
		t.Fatalf("9 failures banned: %v", targets(r.decs))
	}
	e.feed(adminFail("203.0.113.7", 9*time.Minute, "alice@example.com", "ffffff"))
	if len(r.decs) != 1 {
		t.Fatalf("10th failure: %d decisions", len(r.decs))
	}
	d := r.decs[0]
	if d.Target != pfx("203.0.113.7/32") || d.Jail != "auth" || d.Duration != time.Hour || d.Events != 10 || !d.Time.Equal(t0.Add(9*time.Minute)) {
		t.Fatalf("decision %+v", d)
	}
	if want := "10 failed logins in 1h (auth-failure) on imap/993, uncorroborated (text rules)"; d.Reason != want {
		t.Fatalf("reason %q, want %q", d.Reason, want)
	}
	if len(d.Evidence) != 10 || !strings.HasSuffix(d.Evidence[9], "badauth: ffffff") || !strings.HasSuffix(d.Evidence[0], "badauth: 000000") {
		t.Fatalf("evidence %q", d.Evidence)
	}
	// One burst, one decision: the window starts again.
	for i := range 9 {
		e.feed(adminFail("203.0.113.7", 10*time.Minute+time.Duration(i)*time.Second, "alice@example.com", fmt.Sprintf("a%05x", i)))
	}
	if len(r.decs) != 1 {
		t.Fatalf("after reset: %v", targets(r.decs))
	}
	if s := e.Stats(); s.Decisions["auth"] != 1 || s.Events["auth-failure"] != 19 {
		t.Fatalf("stats %+v", s)
	}
}

func TestSlidingWindowLogTime(t *testing.T) {
	tests := []struct {
		name string
		ats  []time.Duration
		want int
	}{
		{"spread over more than findtime", steps(10, 7*time.Minute), 0},
		{"inside findtime", steps(10, 6*time.Minute), 1},
		// Lines from admin and front interleave with small clock skew.
		{"out of order within the window", []time.Duration{0, 5 * time.Second, 2 * time.Second, 20 * time.Second, 10 * time.Second, 30 * time.Second, 25 * time.Second, 40 * time.Second, 35 * time.Second, 38 * time.Second}, 1},
		// A line older than the window (ending at the newest) cannot count.
		{"too old", append(steps(9, time.Second), -2*time.Hour), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, r := newTestEngine(t, "")
			for i, at := range tc.ats {
				e.feed(adminFail("198.51.100.9", at, "bob@example.com", fmt.Sprintf("%06x", i)))
			}
			if len(r.decs) != tc.want {
				t.Fatalf("decisions %v, want %d", targets(r.decs), tc.want)
			}
		})
	}
}

func steps(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i) * d
	}
	return out
}

// Replaying the same events in a slightly different arrival order (as
// merged files vs live streams) decides the same bans.
func TestReplayOrderIndependent(t *testing.T) {
	var evs []parse.Event
	for i := range 40 {
		evs = append(evs, adminFail(fmt.Sprintf("203.0.113.%d", 10+i%4), time.Duration(i)*20*time.Second, "x@example.com", fmt.Sprintf("%06x", i)))
		evs = append(evs, ev(parse.KindPort25Auth, parse.OriginNginx, fmt.Sprintf("192.0.2.%d", 1+i%3), time.Duration(i)*25*time.Second))
	}
	run := func(evs []parse.Event) []string {
		e, r := newTestEngine(t, "")
		e.feed(evs...)
		return targets(r.decs)
	}
	want := run(evs)
	slices.Sort(want)
	swapped := append([]parse.Event(nil), evs...)
	for i := 0; i+1 < len(swapped); i += 3 {
		swapped[i], swapped[i+1] = swapped[i+1], swapped[i]
	}
	got := run(swapped)
	slices.Sort(got)
	if len(want) == 0 || strings.Join(want, " ") != strings.Join(got, " ") {
		t.Fatalf("in order %v, skewed %v", want, got)
	}
}

func TestDedup(t *testing.T) {
	tests := []struct {
		name string
		evs  func() []parse.Event
		want int
	}{
		{"stale password on many devices", func() []parse.Event {
			var evs []parse.Event
			for i := range 60 {
				evs = append(evs, adminFail("203.0.113.20", time.Duration(i)*10*time.Second, "carol@example.com", "0d41e7"))
			}
			return evs
		}, 0},
		{"same user, distinct passwords", func() []parse.Event {
			var evs []parse.Event
			for i := range 10 {
				evs = append(evs, adminFail("203.0.113.20", time.Duration(i)*time.Second, "carol@example.com", fmt.Sprintf("%06x", i)))
			}
			return evs
		}, 1},
		{"unknown user dedup on user", func() []parse.Event {
			var evs []parse.Event
			for i := range 30 {
				e := ev(parse.KindUnknownUser, parse.OriginAdmin, "203.0.113.21", time.Duration(i)*time.Second)
				e.User, e.PassHash = "'admin'", fmt.Sprintf("%06x", i)
				evs = append(evs, e)
			}
			return evs
		}, 0},
		{"unknown users sprayed", func() []parse.Event {
			var evs []parse.Event
			for i := range 10 {
				e := ev(parse.KindUnknownUser, parse.OriginAdmin, "203.0.113.21", time.Duration(i)*time.Second)
				e.User = fmt.Sprintf("'user%d'", i)
				evs = append(evs, e)
			}
			return evs
		}, 1},
		{"dovecot without hash is not deduplicated", func() []parse.Event {
			var evs []parse.Event
			for i := range 10 {
				evs = append(evs, dovecotFail("203.0.113.22", time.Duration(i)*time.Second, 1))
			}
			return evs
		}, 1},
		{"dovecot N attempts add N", func() []parse.Event {
			return []parse.Event{dovecotFail("203.0.113.23", 0, 5), dovecotFail("203.0.113.23", time.Second, 5)}
		}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, r := newTestEngine(t, "")
			e.feed(tc.evs()...)
			if len(r.decs) != tc.want {
				t.Fatalf("decisions %v, want %d", targets(r.decs), tc.want)
			}
		})
	}
}

func TestAdminOrFront(t *testing.T) {
	t.Run("2.0: no admin login lines, front counts", func(t *testing.T) {
		e, r := newTestEngine(t, "")
		for i := range 10 {
			e.feed(parse.Event{Kind: parse.KindAuthFailure, Origin: parse.OriginNginx, Time: t0.Add(time.Duration(i) * time.Second), Addr: addr("203.0.113.30"), Port: 465, Count: 1})
		}
		if len(r.decs) != 1 || r.decs[0].Jail != "auth" {
			t.Fatalf("decisions %v", targets(r.decs))
		}
	})
	t.Run("2.0 SSO lines from admin do not latch", func(t *testing.T) {
		e, r := newTestEngine(t, "")
		sso := ev(parse.KindAuthFailure, parse.OriginAdmin, "198.51.100.3", 0)
		sso.Port = 0
		ok := ev(parse.KindAuthSuccess, parse.OriginAdmin, "198.51.100.4", 0)
		ok.Port = 0
		e.feed(sso, ok)
		for i := range 10 {
			e.feed(parse.Event{Kind: parse.KindAuthFailure, Origin: parse.OriginNginx, Time: t0.Add(time.Duration(i) * time.Second), Addr: addr("203.0.113.34"), Port: 993, Count: 1})
		}
		if len(r.decs) != 1 || e.Stats().AdminLogins {
			t.Fatalf("decisions %v, latched %v", targets(r.decs), e.Stats().AdminLogins)
		}
	})
	t.Run("2024.06: each attempt once, from admin", func(t *testing.T) {
		e, r := newTestEngine(t, "")
		for i := range 9 {
			at := time.Duration(i) * time.Second
			e.feed(adminFail("203.0.113.31", at, "d@example.com", fmt.Sprintf("%06x", i)), dovecotFail("203.0.113.31", at, 1))
		}
		if len(r.decs) != 0 {
			t.Fatalf("9 attempts counted twice: %v", targets(r.decs))
		}
		if s := e.Stats(); !s.AdminLogins || s.FrontSkipped != 9 {
			t.Fatalf("stats %+v", s)
		}
		e.feed(adminFail("203.0.113.31", 10*time.Second, "d@example.com", "abcdef"))
		if len(r.decs) != 1 {
			t.Fatalf("10th: %v", targets(r.decs))
		}
	})
	t.Run("port 25 AUTH is only ever logged by front", func(t *testing.T) {
		e, r := newTestEngine(t, "")
		e.feed(adminFail("198.51.100.1", 0, "x", "000000"))
		for i := range 5 {
			e.feed(ev(parse.KindPort25Auth, parse.OriginNginx, "203.0.113.32", time.Duration(i)*time.Second))
		}
		if len(r.decs) != 1 || r.decs[0].Jail != "smtp-auth-bots" || r.decs[0].Target != pfx("203.0.113.32/32") {
			t.Fatalf("decisions %v", targets(r.decs))
		}
	})
	t.Run("2.0 rate limit from nginx and admin limiter counts once", func(t *testing.T) {
		e, r := newTestEngine(t, "")
		e.feed(ev(parse.KindRateLimited, parse.OriginAdmin, "198.51.100.2", 0))
		for i := range 4 {
			at := time.Duration(i+1) * time.Second
			e.feed(ev(parse.KindRateLimited, parse.OriginNginx, "203.0.113.33", at), ev(parse.KindRateLimited, parse.OriginAdmin, "203.0.113.33", at))
		}
		if len(r.decs) != 0 {
			t.Fatalf("4 limited attempts banned: %v", targets(r.decs))
		}
		e.feed(ev(parse.KindRateLimited, parse.OriginAdmin, "203.0.113.33", 6*time.Second))
		if len(r.decs) != 1 || r.decs[0].Jail != "limiter" {
			t.Fatalf("decisions %v", targets(r.decs))
		}
	})
}

func TestSuccessExemption(t *testing.T) {
	e, r := newTestEngine(t, "")
	succ := parse.Event{Kind: parse.KindAuthSuccess, Origin: parse.OriginAdmin, Time: t0, Addr: addr("203.0.113.40"), User: "e@example.com", Count: 1}
	e.feed(succ)
	// The user's own stale passwords (any case of its name) are set aside.
	for i := range 40 {
		e.feed(adminFail("203.0.113.40", time.Minute+time.Duration(i)*time.Second, "E@example.com", fmt.Sprintf("%06x", i)))
	}
	if len(r.decs) != 0 {
		t.Fatalf("exempt pair banned: %v", targets(r.decs))
	}
	if st := e.Why(addr("203.0.113.40")); len(st) != 1 || !st[0].ExemptUntil.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("why %+v", st)
	}
	// Other users from the same address count: one login the attacker
	// owns (or a real user behind the same NAT) hides nothing else.
	for i := range 10 {
		e.feed(adminFail("203.0.113.40", 2*time.Minute+time.Duration(i)*time.Second, fmt.Sprintf("other%d@example.com", i), fmt.Sprintf("c%05x", i)))
	}
	if len(r.decs) != 1 || r.decs[0].Jail != "auth" || r.decs[0].Target != pfx("203.0.113.40/32") {
		t.Fatalf("other users after a success: %v", targets(r.decs))
	}
	if s := e.Stats(); s.Exempted != 40 {
		t.Fatalf("exempted %d", s.Exempted)
	}

	// The exemption ends after success_exempt (log time).
	e2, r2 := newTestEngine(t, "")
	e2.feed(succ)
	for i := range 10 {
		e2.feed(adminFail("203.0.113.40", 25*time.Hour+time.Duration(i)*time.Second, "e@example.com", fmt.Sprintf("b%05x", i)))
	}
	if len(r2.decs) != 1 || r2.decs[0].Target != pfx("203.0.113.40/32") {
		t.Fatalf("after exemption: %v", targets(r2.decs))
	}

	// The ceiling: an exempt pair sets aside at most exemptCeiling
	// attempts; past it they count.
	e3, r3 := newTestEngine(t, "")
	e3.feed(succ)
	for i := range exemptCeiling + 10 {
		e3.feed(adminFail("203.0.113.40", time.Minute+time.Duration(i)*time.Second, "e@example.com", fmt.Sprintf("d%05x", i)))
	}
	if len(r3.decs) != 1 || r3.decs[0].Jail != "auth" {
		t.Fatalf("past the ceiling: %v", targets(r3.decs))
	}
	if s := e3.Stats(); s.Exempted != exemptCeiling {
		t.Fatalf("exempted %d, want %d", s.Exempted, exemptCeiling)
	}
}

const networkTOML = `
[jails.network]
maxretry = 12
min_addresses = 4
`

func TestNetworkJail(t *testing.T) {
	e, r := newTestEngine(t, networkTOML)
	// 3 addresses, 4 unknown users each: 12 attempts, but too few addresses.
	for i := range 12 {
		u := ev(parse.KindUnknownUser, parse.OriginAdmin, fmt.Sprintf("198.51.100.%d", 1+i%3), time.Duration(i)*time.Second)
		u.User = fmt.Sprintf("'u%d'", i)
		e.feed(u)
	}
	if len(r.decs) != 0 {
		t.Fatalf("3 addresses banned the network: %v", targets(r.decs))
	}
	u := ev(parse.KindUnknownUser, parse.OriginAdmin, "198.51.100.200", 20*time.Second)
	u.User = "'late'"
	e.feed(u)
	if len(r.decs) != 1 || r.decs[0].Target != pfx("198.51.100.0/24") || r.decs[0].Jail != "network" {
		t.Fatalf("decisions %v", targets(r.decs))
	}
	if !strings.Contains(r.decs[0].Reason, "from 4 addresses of 198.51.100.0/24") {
		t.Fatalf("reason %q", r.decs[0].Reason)
	}

	// IPv6: /64 for network, /48 for network48 (60 attempts, 8 addresses).
	e6, r6 := newTestEngine(t, "")
	for i := range 64 {
		a := fmt.Sprintf("2001:db8:6:%x::1", i%8)
		u := ev(parse.KindUnknownUser, parse.OriginAdmin, a, time.Duration(i)*time.Second)
		u.User = fmt.Sprintf("'v%d'", i)
		e6.feed(u)
	}
	if len(r6.decs) != 1 || r6.decs[0].Target != pfx("2001:db8:6::/48") || r6.decs[0].Jail != "network48" {
		t.Fatalf("v6 decisions %v", targets(r6.decs))
	}
}

func TestProtected(t *testing.T) {
	e, r := newTestEngine(t, `
[engine]
ignoreip = ["192.0.2.0/28"]
real_ip_from = ["192.0.2.100"]
`)
	e.SetProtected(Protected{
		Gateways:  []netip.Addr{addr("172.18.0.1")},
		Networks:  []netip.Prefix{pfx("172.18.0.0/16")},
		HostAddrs: []netip.Addr{addr("198.51.100.77")},
	})
	for _, tc := range []struct{ a, rule string }{
		{"127.0.0.1", "loopback"}, {"::1", "loopback"}, {"0.0.0.0", "unspecified"}, {"fe80::1", "link-local"},
		{"ff02::1", "multicast"}, {"172.18.0.1", "docker gateway 172.18.0.1"}, {"172.18.3.4", "docker network 172.18.0.0/16"},
		{"192.168.203.9", "Mailu SUBNET 192.168.203.0/24"}, {"198.51.100.77", "host address 198.51.100.77"},
		{"192.0.2.3", "ignoreip 192.0.2.0/28"}, {"192.0.2.100", "REAL_IP_FROM 192.0.2.100/32"},
		{"::ffff:192.0.2.100", "REAL_IP_FROM 192.0.2.100/32"},
	} {
		rule, ok := e.IsProtected(addr(tc.a))
		if !ok || rule != tc.rule {
			t.Errorf("IsProtected(%s) = %q, %v; want %q", tc.a, rule, ok, tc.rule)
		}
	}
	if rule, ok := e.IsProtected(addr("203.0.113.1")); ok {
		t.Errorf("203.0.113.1 protected by %q", rule)
	}
	for _, a := range []string{"127.0.0.1", "172.18.0.1", "172.18.3.4", "192.168.203.1", "198.51.100.77", "192.0.2.3", "192.0.2.100"} {
		for i := range 20 {
			e.feed(ev(parse.KindPort25Auth, parse.OriginNginx, a, time.Duration(i)*time.Second))
		}
	}
	if len(r.decs) != 0 {
		t.Fatalf("protected addresses banned: %v", targets(r.decs))
	}
	// The network jail must not ban a network holding a protected address.
	for i := range 40 {
		u := ev(parse.KindUnknownUser, parse.OriginAdmin, fmt.Sprintf("198.51.100.%d", 1+i%8), time.Minute+time.Duration(i)*time.Second)
		u.User = fmt.Sprintf("'n%d'", i)
		e.feed(u)
	}
	for _, d := range r.decs {
		if d.Jail == "network" {
			t.Fatalf("network with host address banned: %+v", d)
		}
	}
	if s := e.Stats(); s.Refused == 0 {
		t.Fatalf("no refused network decision: %+v", s)
	}
}

func TestGatewayAlarm(t *testing.T) {
	e, r := newTestEngine(t, "")
	// No live gateways: Docker's first address of SUBNET is assumed.
	for i := range 100 {
		e.feed(dovecotFail("192.168.203.1", time.Duration(i)*time.Second, 1))
	}
	relay := ev(parse.KindRelayClient, parse.OriginPostfix, "192.168.203.1", 3*time.Minute)
	e.feed(relay)
	// An internal sender inside SUBNET (admin, webmail) is not an open relay.
	e.feed(ev(parse.KindRelayClient, parse.OriginPostfix, "192.168.203.7", 3*time.Minute))
	// webmail's own ports are not lost client addresses.
	wm := dovecotFail("192.168.203.8", 3*time.Minute, 1)
	wm.Port = 10143
	e.feed(wm)
	if len(r.decs) != 0 {
		t.Fatalf("gateway banned: %v", targets(r.decs))
	}
	// Events at 0s and 60s..99s pass the minute limit, then 180s.
	if len(r.alarms) != 3 {
		t.Fatalf("alarms %d: %+v", len(r.alarms), r.alarms)
	}
	a := r.alarms[0]
	if a.Kind != "gateway-client" || a.Addr != addr("192.168.203.1") || a.Count != 1 || !strings.Contains(a.Hint, `"userland-proxy": false`) || !strings.Contains(a.Hint, "IPv6") {
		t.Fatalf("alarm %+v", a)
	}
	if r.alarms[1].Count != 60 || r.alarms[2].Count != 40 {
		t.Fatalf("counts %d %d", r.alarms[1].Count, r.alarms[2].Count)
	}
	e.feed(dovecotFail("192.168.203.1", 3*time.Minute+time.Second, 1))
	e.FlushAlarms()
	total := 0
	for _, a := range r.alarms {
		total += a.Count
	}
	if len(r.alarms) != 4 || total != 102 {
		t.Fatalf("after flush %d alarms, total %d", len(r.alarms), total)
	}
	if s := e.Stats(); s.AlarmEvents != 102 || s.Alarms != 4 {
		t.Fatalf("stats %+v", s)
	}
}

func TestMaxTracked(t *testing.T) {
	e, _ := newTestEngine(t, "[engine]\nmax_tracked = 100\n")
	for i := range 1000 {
		e.feed(ev(parse.KindPort25Auth, parse.OriginNginx, fmt.Sprintf("2001:db8:%x::1", i), time.Duration(i)*time.Millisecond))
	}
	s := e.Stats()
	if s.Tracked > 100 || s.Evicted < 2900 {
		t.Fatalf("tracked %d evicted %d", s.Tracked, s.Evicted)
	}
	// The newest are kept: the last address is still counted.
	if st := e.Why(addr("2001:db8:3e7::1")); len(st) == 0 {
		t.Fatal("newest window evicted")
	}
	if st := e.Why(addr("2001:db8:0::1")); len(st) != 0 {
		t.Fatalf("oldest window kept: %+v", st)
	}
}

func TestEvidenceBounded(t *testing.T) {
	e, r := newTestEngine(t, "[engine]\nevidence_lines = 3\n")
	for i := range 5 {
		x := ev(parse.KindPort25Auth, parse.OriginNginx, "203.0.113.50", time.Duration(i)*time.Second)
		x.Line = strings.Repeat("A", 100000)
		e.feed(x)
	}
	if len(r.decs) != 1 || len(r.decs[0].Evidence) != 3 || len(r.decs[0].Evidence[0]) != maxEvidenceBytes {
		t.Fatalf("decisions %+v", targets(r.decs))
	}
}

func TestReloadForgetWhy(t *testing.T) {
	e, r := newTestEngine(t, "")
	nine := func(a string, base time.Duration) {
		for i := range 9 {
			e.feed(adminFail(a, base+time.Duration(i)*time.Second, "f@example.com", fmt.Sprintf("%06x", i)))
		}
	}
	nine("203.0.113.60", 0)
	st := e.Why(addr("203.0.113.60"))
	var auth *WindowState
	for i := range st {
		if st[i].Jail == "auth" {
			auth = &st[i]
		}
	}
	if auth == nil || auth.Count != 9 || auth.MaxRetry != 10 || auth.Key != pfx("203.0.113.60/32") || !auth.First.Equal(t0) || !auth.Last.Equal(t0.Add(8*time.Second)) {
		t.Fatalf("why %+v", st)
	}
	// Same settings: the window survives.
	if err := e.Reload(testConfig(t, "[jails.scan]\nenabled = true\n")); err != nil {
		t.Fatal(err)
	}
	e.feed(adminFail("203.0.113.60", 9*time.Second, "f@example.com", "eeeeee"))
	if len(r.decs) != 1 {
		t.Fatalf("after reload: %v", targets(r.decs))
	}
	// Changed settings: the jail starts again.
	nine("203.0.113.61", time.Minute)
	if err := e.Reload(testConfig(t, "[jails.auth]\nmaxretry = 11\n")); err != nil {
		t.Fatal(err)
	}
	e.feed(adminFail("203.0.113.61", 2*time.Minute, "f@example.com", "eeeeee"))
	if len(r.decs) != 1 {
		t.Fatalf("changed jail kept its window: %v", targets(r.decs))
	}
	// Forget drops the windows inside the target.
	nine("203.0.113.62", 3*time.Minute)
	e.Forget(pfx("203.0.113.0/24"))
	if st := e.Why(addr("203.0.113.62")); len(st) != 0 {
		t.Fatalf("after forget: %+v", st)
	}
}

func TestConcurrentProcess(t *testing.T) {
	e, r := newTestEngine(t, "")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				e.feed(ev(parse.KindPort25Auth, parse.OriginNginx, fmt.Sprintf("2001:db8:%x::1", g), time.Duration(i)*time.Second))
				_ = e.Why(addr("2001:db8:1::1"))
			}
		}()
	}
	go e.Stats()
	wg.Wait()
	if len(r.decs) != 400 {
		t.Fatalf("%d decisions, want 4 x 100", len(r.decs))
	}
}

// Whatever events arrive (attacker-chosen addresses, times, users, counts),
// the engine neither panics nor exceeds max_tracked, and never decides on a
// protected address or a target that does not hold the event's address.
func FuzzEngineEvents(f *testing.F) {
	f.Add([]byte("\x01\x03\xcb\x00\x71\x07\x00\x05user"), int64(0))
	f.Add([]byte("\x04\x01\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"), int64(3600e9))
	f.Fuzz(func(t *testing.T, data []byte, at int64) {
		cfg := testConfig(t, "[engine]\nmax_tracked = 100\n")
		ng, err := NewEngine(cfg, Options{Now: func() time.Time { return t0 }})
		if err != nil {
			t.Fatal(err)
		}
		r := &recorder{}
		e := testEngine{ng, r}
		for len(data) >= 6 {
			k := parse.Kind(data[0] % uint8(parse.KindCount+1))
			o := parse.Origin(data[1] % 6)
			var a netip.Addr
			if data[2]&1 == 0 {
				a = netip.AddrFrom4([4]byte{data[2], data[3], data[4], data[5]})
				data = data[6:]
			} else if len(data) >= 18 {
				a = netip.AddrFrom16([16]byte(data[2:18]))
				data = data[18:]
			} else {
				break
			}
			n := 1
			if len(data) > 0 {
				n = int(data[0]) - 8
				data = data[1:]
			}
			user := string(data[:min(len(data), 4)])
			ev := parse.Event{Kind: k, Origin: o, Addr: a, Time: t0.Add(time.Duration(at%int64(48*time.Hour)) + time.Duration(len(data))*time.Second), User: user, PassHash: user, Port: n * 7, Count: n, Line: user}
			before := len(r.decs)
			e.feed(ev)
			for _, d := range r.decs[before:] {
				if !d.Target.Contains(a.Unmap()) {
					t.Fatalf("decision %v for event from %v", d.Target, a)
				}
				if rule, ok := e.IsProtected(a); ok {
					t.Fatalf("protected %v (%s) banned", a, rule)
				}
			}
			if s := e.Stats(); s.Tracked > 100 {
				t.Fatalf("tracked %d", s.Tracked)
			}
		}
	})
}

// Process runs the real matchers: admin's lines count, front's Dovecot
// lines for the same attempts do not (2024.06), and the stats say so.
func TestProcessLines(t *testing.T) {
	e, r := newTestEngine(t, "")
	for i := range 10 {
		ts := t0.Add(time.Duration(i) * time.Second)
		admin := fmt.Sprintf("[%s] INFO in nginx: Login attempt for: alice@example.com/imap/993 from: 203.0.113.7/5154%d: failed: badauth: 3fa9c%d", ts.Format("2006-01-02 15:04:05,000"), i, i)
		front := fmt.Sprintf("%s imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<alice@example.com>, method=PLAIN, rip=203.0.113.7, rport=50122, lip=192.168.203.5, lport=993, TLS", ts.Add(2*time.Second).Format("Jan 02 15:04:05"))
		if !e.Process(sources.Line{Service: "admin", Time: ts, Text: admin}) {
			t.Fatalf("admin line not matched: %s", admin)
		}
		if !e.Process(sources.Line{Service: "front", Time: ts.Add(2 * time.Second), Text: front}) {
			t.Fatalf("front line not matched: %s", front)
		}
	}
	e.Process(sources.Line{Service: "front", Time: t0, Text: "nothing to see"})
	if len(r.decs) != 1 || r.decs[0].Target != pfx("203.0.113.7/32") || r.decs[0].Events != 10 {
		t.Fatalf("decisions %+v", r.decs)
	}
	s := e.Stats()
	if s.Lines != 21 || s.Matched != 20 || s.FrontSkipped != 10 || s.Parser.Lines != 21 || s.Events["auth-failure"] != 20 {
		t.Fatalf("stats %+v", s)
	}
}

// Process says, for each matched line, why no jail counted it, and the
// jails count the events they took.
func TestProcessNotCounted(t *testing.T) {
	e, _ := newTestEngine(t, "")
	admin := func(at time.Duration, a, outcome string) string {
		return fmt.Sprintf("[%s] INFO in nginx: Login attempt for: alice@example.com/imap/993 from: %s/51544: %s", t0.Add(at).Format("2006-01-02 15:04:05,000"), a, outcome)
	}
	dovecot := fmt.Sprintf("%s imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<alice@example.com>, method=PLAIN, rip=203.0.113.7, rport=50122, lip=192.168.203.5, lport=993, TLS", t0.Add(time.Minute).Format("Jan 02 15:04:05"))
	for i, tc := range []struct {
		service, text string
		notCounted    string
	}{
		{"admin", admin(0, "203.0.113.7", "failed: badauth: 3fa9c2"), ""},
		{"admin", admin(time.Second, "203.0.113.7", "failed: badauth: 3fa9c2"), SkipDeduped},
		{"front", dovecot, SkipFront},
		{"admin", admin(2*time.Second, "198.51.100.4", "success: password"), SkipSuccess},
		{"admin", admin(3*time.Second, "198.51.100.4", "failed: badauth: 111111"), SkipExempt},
		{"admin", admin(4*time.Second, "192.168.203.1", "failed: badauth: 222222"), SkipProtected},
		{"smtp", "Oct 25 03:33:07 mail postfix/smtpd[59863]: A303311BB3A: client=unknown[192.0.2.77]", SkipAlarmOnly},
	} {
		ev, out := e.Engine.Inspect(sources.Line{Service: tc.service, Time: t0.Add(time.Duration(i) * time.Second), Text: tc.text})
		if !out.Matched || out.Verdict.Class != parse.ClassMatched || out.NotCounted != tc.notCounted || ev.Line != tc.text {
			t.Errorf("%q: matched %v, verdict %v, not counted %q; want %q", tc.text, out.Matched, out.Verdict.Class, out.NotCounted, tc.notCounted)
		}
	}
	out := e.Engine.Process(sources.Line{Service: "admin", Text: "no admin line"})
	if out.Matched || out.Verdict.Class != parse.ClassUnparsable || out.NotCounted != "" {
		t.Errorf("unparsable line: %+v", out)
	}
	// The first failure counted in auth (address) and network (its /24).
	if s := e.Stats(); s.JailEvents["auth"] != 1 || s.JailEvents["network"] != 1 || s.JailEvents["api"] != 0 {
		t.Errorf("jail events %v", s.JailEvents)
	}
}
