package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/integration/mailclient"
)

// forger writes whole nginx and Dovecot lines into front's log stream
// through line feeds (or carriage returns) in AUTH LOGIN usernames on port
// 25, followed by a password that is not base64: nginx logs the username,
// nobody checks it, so the carrier never makes a failed login. It knows
// what an attacker can learn or guess: a real nginx worker's PID#TID and
// front's address on the Mailu network.
type forger struct {
	s      *stack
	worker string     // "PID#TID" of a real nginx worker
	lip    netip.Addr // front's address, for Dovecot's lip=
	connid atomic.Uint64
}

var nginxConnected = regexp.MustCompile(`\[info\] (\d+#\d+): \*(\d+) client \S+ connected to`)

func newForger(t testing.TB, s *stack, legit *peer) *forger {
	t.Helper()
	// A legitimate connection to port 25 makes nginx log a connected line
	// (on 2024.06 nothing else goes through nginx).
	if r := legit.probe(legit.addrs[0], 25, 5*time.Second); r.Outcome != mailclient.Success {
		t.Fatalf("probe of port 25: %+v", r)
	}
	var m []string
	deadline := time.Now().Add(10 * time.Second)
	for m == nil {
		all := nginxConnected.FindAllStringSubmatch(s.logs(t, "front"), -1)
		if len(all) > 0 {
			m = all[len(all)-1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("front logged no nginx connected line")
		}
		time.Sleep(100 * time.Millisecond)
	}
	out := s.e.Docker(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "mailu_front_1")
	lip, err := netip.ParseAddr(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("front's address %q: %v", out, err)
	}
	f := &forger{s: s, worker: m[1], lip: lip}
	// Far above the real counter (a few hundred here).
	f.connid.Store(10_000_000)
	return f
}

// id is a fresh forged CONNID.
func (f *forger) id() uint64 { return f.connid.Add(1) }

func nginxNow() string { return time.Now().UTC().Format("2006/01/02 15:04:05") }

func hostPort(a netip.Addr, port int) string {
	return netip.AddrPortFrom(a, uint16(port)).String()
}

func server25(a netip.Addr) string {
	if a.Is6() {
		return "[::]:25"
	}
	return "0.0.0.0:25"
}

// connected is nginx's line for a new connection from a:port.
func (f *forger) connected(id uint64, a netip.Addr, port int) string {
	return fmt.Sprintf("%s [info] %s: *%d client %s connected to %s", nginxNow(), f.worker, id, hostPort(a, port), server25(a))
}

// failure is nginx's line for a refused AUTH on port 25 by a.
func (f *forger) failure(id uint64, a netip.Addr) string {
	return fmt.Sprintf(`%s [info] %s: *%d client login failed: "AUTH not supported" while in http auth state, client: %s, server: %s, login: "bot%d@example.com"`,
		nginxNow(), f.worker, id, a, server25(a), id)
}

// dovecot is the 2024.06 front's Dovecot line for n failed attempts by
// a:port on 993.
func (f *forger) dovecot(a netip.Addr, port, n int) string {
	return fmt.Sprintf("%s imap-login: Info: Disconnected: Aborted login (auth failed, %d attempts in 2 secs): user=<x%d@example.com>, method=PLAIN, rip=%s, rport=%d, lip=%s, lport=993, TLS",
		time.Now().UTC().Format("Jan 02 15:04:05"), n, port, a, port, f.lip)
}

// usernames packs lines into AUTH LOGIN usernames: each starts with a short
// piece of its own and holds at most ~1.8 KB (nginx cuts a log line at 2 KB).
// nginx closes the quote after the last line; a line that ends in a quote
// leaves it to nginx, others get a junk piece after them.
func usernames(sep string, lines []string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() == 0 {
			return
		}
		u := cur.String()
		if strings.HasSuffix(u, `"`) {
			u = strings.TrimSuffix(u, `"`)
		} else {
			u += sep + "z"
		}
		out = append(out, u)
		cur.Reset()
	}
	for _, l := range lines {
		if cur.Len() > 0 && cur.Len()+len(sep)+len(l) > 1800 {
			flush()
		}
		if cur.Len() == 0 {
			cur.WriteString("q")
		}
		cur.WriteString(sep)
		cur.WriteString(l)
	}
	flush()
	return out
}

// carry sends the usernames from src, a few per connection (nginx closes a
// session after max_errors bad commands).
func (f *forger) carry(t testing.TB, p *peer, src netip.Addr, users []string) {
	t.Helper()
	addr := net.JoinHostPort(p.front.String(), "25")
	stuck := 0
	for len(users) > 0 {
		n, err := mailclient.AuthLoginNoPassword(context.Background(), addr, src, users[:min(3, len(users))], 8*time.Second, p.dial)
		users = users[n:]
		if n == 0 {
			if stuck++; stuck > 2 {
				t.Fatalf("carrier %s: nginx takes no more usernames: %v", src, err)
			}
		}
	}
}

// forge writes lines into front's stream from src, split by sep.
func (f *forger) forge(t testing.TB, p *peer, src netip.Addr, sep string, lines ...string) {
	t.Helper()
	f.carry(t, p, src, usernames(sep, lines))
}

// forgeFailures is the set of nginx framings of a (n forged failures each),
// from src: whole connected+failure pairs after line feeds and after
// carriage returns, connected lines first and their failures one write
// (30 ms) later, and failures with no connected line at all. CONNIDs are
// far above nginx's counter.
func (f *forger) forgeFailures(t testing.TB, p *peer, src, a netip.Addr, n int) {
	t.Helper()
	pairs := func() []string {
		var ls []string
		for range n {
			id := f.id()
			ls = append(ls, f.connected(id, a, 40000+int(id%20000)), f.failure(id, a))
		}
		return ls
	}
	f.forge(t, p, src, "\n", pairs()...)
	f.forge(t, p, src, "\r", pairs()...)
	var opened, failed []string
	for range n {
		id := f.id()
		opened = append(opened, f.connected(id, a, 40000+int(id%20000)))
		failed = append(failed, f.failure(id, a))
	}
	f.forge(t, p, src, "\n", opened...)
	time.Sleep(30 * time.Millisecond)
	f.forge(t, p, src, "\n", failed...)
	var bare []string
	for range n {
		bare = append(bare, f.failure(f.id(), a))
	}
	f.forge(t, p, src, "\n", bare...)
}

// assertForgedLine checks that front's log holds a whole line (after
// Docker's timestamp) that starts like what was forged about a: the
// injection happened as the attacker wants, so the test is not vacuous.
func assertForgedLine(t testing.TB, s *stack, f *forger, a netip.Addr, kind string) {
	t.Helper()
	var re string
	switch kind {
	case "nginx":
		re = `(?m)^\S+ \d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[info\] ` + regexp.QuoteMeta(f.worker) + `: \*\d{8,} client login failed: "AUTH not supported" while in http auth state, client: ` +
			regexp.QuoteMeta(a.String()) + `, server: `
	case "dovecot":
		re = `(?m)^\S+ [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d imap-login: Info: Disconnected: Aborted login \(auth failed, \d+ attempts in 2 secs\): user=<[^>]*>, method=PLAIN, rip=` +
			regexp.QuoteMeta(a.String()) + `, rport=\d+, lip=`
	}
	if !regexp.MustCompile(re).MatchString(s.logs(t, "front")) {
		t.Fatalf("front's log has no forged %s line about %s as its own line (%s): the injection did not happen as planned", kind, a, re)
	}
}

// settle waits until bansd has read each service's stream up to its
// newest line, then gives the engine a moment: what was written is judged.
func settle(t testing.TB, s *stack, b *bansd, services ...string) {
	t.Helper()
	for _, svc := range services {
		cmd := exec.Command("docker", "-H", s.e.Host(), "logs", "-t", "--tail", "1", "mailu_"+svc+"_1")
		cmd.Env = s.e.Env()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("docker logs %s: %v: %s", svc, err, out)
		}
		var last time.Time
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			ts, _, _ := strings.Cut(l, " ")
			if tt, err := time.Parse(time.RFC3339Nano, ts); err == nil && tt.After(last) {
				last = tt
			}
		}
		if last.IsZero() {
			continue
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			src := sourceOf(t, b, svc)
			if !src.LastLine.Before(last) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("bansd has not read %s up to %s after 15s: %+v", svc, last.Format(time.RFC3339Nano), src)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(300 * time.Millisecond)
}

// assertUncounted checks, with `bansctl why`, that no jail counts any of
// addrs on its own (no single-address window with a count, no ban
// containing it) and that `bansctl list` has no ban containing them.
// Network windows also hold the real attackers' events of the group: their
// share of forged lines is checked by count (itemNetwork).
func assertUncounted(t testing.TB, b *bansd, addrs ...netip.Addr) {
	t.Helper()
	list := banList(t, b)
	for _, a := range addrs {
		w := whyOf(t, b, a)
		var counted []string
		for _, win := range w.Windows {
			if win.Count > 0 && win.Target.IsSingleIP() {
				counted = append(counted, fmt.Sprintf("%s %s %d/%d", win.Jail, win.Target, win.Count, win.MaxRetry))
			}
		}
		if len(counted) > 0 || len(w.Bans) > 0 {
			jails := []string{}
			for _, ban := range w.Bans {
				jails = append(jails, fmt.Sprintf("%s by %s level %d until %s", ban.Target, ban.Jail, ban.Level, ban.Until.Format(time.RFC3339)))
			}
			t.Errorf("framed %s counted: windows %v, bans %v", a, counted, jails)
		}
		for _, ban := range list.Bans {
			if ban.Target.Contains(a) {
				t.Errorf("framed %s listed: %s by %s", a, ban.Target, ban.Jail)
			}
		}
	}
}

func banList(t testing.TB, b *bansd) control.BanList {
	t.Helper()
	out, err := b.ctl("list")
	if err != nil {
		t.Fatal(err)
	}
	var list control.BanList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("bansctl --json list: %v: %s", err, out)
	}
	return list
}

// networkCount is the network jail's count for the network holding a.
func networkCount(t testing.TB, b *bansd, a netip.Addr, jail string) (int, []control.Ban) {
	t.Helper()
	w := whyOf(t, b, a)
	var bans []control.Ban
	for _, ban := range w.Bans {
		if !ban.Target.IsSingleIP() {
			bans = append(bans, ban)
		}
	}
	i := slices.IndexFunc(w.Windows, func(win control.WindowStatus) bool { return win.Jail == jail && !win.Target.IsSingleIP() })
	if i < 0 {
		return 0, bans
	}
	return w.Windows[i].Count, bans
}

func statusOf(t testing.TB, b *bansd) control.Status {
	t.Helper()
	out, err := b.ctl("status")
	if err != nil {
		t.Fatal(err)
	}
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("bansctl --json status: %v: %s", err, out)
	}
	return st
}
