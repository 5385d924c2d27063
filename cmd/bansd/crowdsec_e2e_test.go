package main

// Sharing bans between two bansd "hosts" through Debian's real CrowdSec
// LAPI: each host is a real bansd process in a namespace of its own (its
// own nftables table and store), linked to LAPI's namespace by a veth pair.

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/internal/crowdsectest"
	"github.com/bansd/bansd/internal/dockertest"
	"github.com/bansd/bansd/internal/netnstest"
	"github.com/bansd/bansd/internal/proctest"
)

// sharedIgnore is never banned by either host (ignoreip).
const sharedIgnore = "203.0.113.250"

type csHosts struct {
	lapi *crowdsectest.LAPI
	a, b *instance
}

// startCSHost starts a bansd in a new namespace reaching LAPI over a veth
// pair (link is the /30's index), as machine and bouncer id, following the
// Docker engine at docker.
func startCSHost(t testing.TB, l *crowdsectest.LAPI, id string, link int, docker string) *instance {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("the nft command (apt package nftables) is needed to check the kernel side")
	}
	ns := netnstest.New(t)
	// 192.0.2.128/25 holds the links, away from the addresses banned here.
	base := netip.MustParseAddr("192.0.2.128").As4()
	base[3] += byte(4 * link)
	hostIP, lapiIP := base, base
	hostIP[3]++
	lapiIP[3] += 2
	hostName, lapiName := "cs"+id, "cs"+id+"l"
	if out, err := exec.Command("ip", "link", "add", hostName, "netns", ns.Name, "type", "veth", "peer", "name", lapiName, "netns", l.NS.Name).CombinedOutput(); err != nil {
		t.Fatalf("veth: %v: %s", err, out)
	}
	ns.Run(t, "ip", "addr", "add", netip.AddrFrom4(hostIP).String()+"/30", "dev", hostName)
	ns.Run(t, "ip", "link", "set", hostName, "up")
	ns.Run(t, "ip", "route", "add", "192.0.2.1/32", "via", netip.AddrFrom4(lapiIP).String())
	l.NS.Run(t, "ip", "addr", "add", netip.AddrFrom4(lapiIP).String()+"/30", "dev", lapiName)
	l.NS.Run(t, "ip", "link", "set", lapiName, "up")

	machine, bouncer := l.MachineID, l.BouncerKey
	password := l.Password
	if id != "a" {
		// Each host is its own machine and bouncer: LAPI keeps one stream
		// position per bouncer.
		machine, password, bouncer = "bansd-"+id, "pw-"+id+"-0123456789abcdef", "key-"+id+"-0123456789abcdef"
		l.Cscli(t, "machines", "add", machine, "--password", password, "--url", l.URL, "-f", filepath.Join(l.Dir, machine+".yaml"))
		l.Cscli(t, "bouncers", "add", machine, "--key", bouncer)
	}
	dir, err := os.MkdirTemp("", "bansd-cs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	in := &instance{ns: ns, dir: dir, config: filepath.Join(dir, "bansd.toml"), socket: filepath.Join(dir, "run", "bansd.sock"), docker: docker}
	in.writeConfig(t, fmt.Sprintf(`[engine]
ignoreip = [%q]
[crowdsec]
url = %q
machine_id = %q
password = %q
bouncer_key = %q
pull_interval = "1s"
`, sharedIgnore, l.URL, machine, password, bouncer))
	in.run(t)
	return in
}

func startCSHosts(t testing.TB) *csHosts {
	t.Helper()
	l := crowdsectest.Start(t)
	return &csHosts{lapi: l, a: startCSHost(t, l, "a", 0, noDocker), b: startCSHost(t, l, "b", 1, noDocker)}
}

// inSet reports whether addr (as nft prints it) is in the host's set.
func (in *instance) inSet(t testing.TB, set, addr string) bool {
	t.Helper()
	out, err := in.ns.Exec("nft", "list", "set", "inet", "bansd", set)
	if err != nil {
		t.Fatalf("nft list set %s: %v: %s", set, err, out)
	}
	for _, f := range strings.FieldsFunc(out, func(r rune) bool { return r == ' ' || r == ',' || r == '{' || r == '}' || r == '\n' || r == '\t' }) {
		if f == addr {
			return true
		}
	}
	return false
}

// waitSet waits until addr is (want) or is not (!want) in the host's set.
func (in *instance) waitSet(t testing.TB, set, addr string, want bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for in.inSet(t, set, addr) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s = %v after %s, want %v\n%s", addr, set, !want, within, want, in.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (in *instance) status(t testing.TB) control.Status {
	t.Helper()
	st, err := control.NewClient(in.socket).Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (in *instance) bansOn(t testing.TB, target string) []control.Ban {
	t.Helper()
	l, err := control.NewClient(in.socket).Bans(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	var out []control.Ban
	for _, b := range l.Bans {
		if b.Target.String() == target {
			out = append(out, b)
		}
	}
	return out
}

// waitRefused waits for the alarm that a pulled decision against addr was
// refused, and checks that the link counted it.
func (in *instance) waitRefused(t testing.TB, addr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := in.status(t)
		if slices.ContainsFunc(st.Alarms, func(al control.AlarmStatus) bool {
			return al.Kind == alarmCrowdSecRefused && al.Addr == addr
		}) {
			if st.CrowdSec.Refused == 0 {
				t.Errorf("refusal not counted: %+v", st.CrowdSec)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no crowdsec-refused alarm for %s after %s: %+v", addr, within, st.Alarms)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestCrowdSecTwoHosts(t *testing.T) {
	h := startCSHosts(t)
	a, b := h.a, h.b

	t.Run("a ban on A is dropped on B", func(t *testing.T) {
		a.mustCtl(t, 0, "ban", "--for", "1h", "--reason", "shared test", "203.0.113.10")
		b.waitSet(t, "v4_32", "203.0.113.10", true, 10*time.Second)
		bb := b.bansOn(t, "203.0.113.10/32")
		if len(bb) != 1 || bb[0].Jail != "crowdsec" || bb[0].Origin != "crowdsec:bansd/bansd/manual" || bb[0].Level != 0 {
			t.Errorf("B's ban = %+v", bb)
		}
		if rem := bb[0].Until.Sub(time.Now()); rem < 50*time.Minute || rem > time.Hour+time.Minute {
			t.Errorf("B's ban has %s left, want about 1h", rem)
		}
		// A keeps its own ban as local: its own decision came back on its
		// stream and was recognised.
		time.Sleep(2500 * time.Millisecond)
		ab := a.bansOn(t, "203.0.113.10/32")
		if len(ab) != 1 || ab[0].Origin != "local" || ab[0].Jail != "manual" {
			t.Errorf("A's ban = %+v", ab)
		}
		out := b.mustCtl(t, 0, "why", "203.0.113.10")
		if !strings.Contains(out, "origin crowdsec:bansd/bansd/manual") {
			t.Errorf("why on B:\n%s", out)
		}
		if out := a.mustCtl(t, 0, "list"); !strings.Contains(out, "ORIGIN") || !strings.Contains(out, "local") {
			t.Errorf("list on A:\n%s", out)
		}
		if n := len(h.lapi.Alerts(t)); n != 1 {
			t.Errorf("%d alerts in LAPI, want 1", n)
		}
		// B does not push a pulled ban back.
		if st := b.status(t).CrowdSec; st == nil || st.Pushed != 0 || st.Applied == 0 {
			t.Errorf("B's link = %+v", st)
		}
		var m strings.Builder
		if err := control.NewClient(a.socket).Metrics(t.Context(), &m); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`bansd_crowdsec_pushes_total\{result="pushed"\} 1\n`, `bansd_crowdsec_pulls_total\{result="ok"\} [1-9]`, `bansd_crowdsec_pulled_decisions_total\{outcome="own"\} [1-9]`} {
			if !regexp.MustCompile(want).MatchString(m.String()) {
				t.Errorf("A's metrics lack %s", want)
			}
		}
		// Unban on A withdraws it from LAPI, and B lifts it.
		a.mustCtl(t, 0, "unban", "203.0.113.10")
		b.waitSet(t, "v4_32", "203.0.113.10", false, 10*time.Second)
	})

	t.Run("cscli decisions reach both and their deletion lifts them", func(t *testing.T) {
		h.lapi.Cscli(t, "decisions", "add", "--ip", "203.0.113.20", "--duration", "5m", "--reason", "cscli test")
		h.lapi.Cscli(t, "decisions", "add", "--range", "198.51.100.0/24", "--duration", "5m", "--reason", "cscli range")
		for _, in := range []*instance{a, b} {
			in.waitSet(t, "v4_32", "203.0.113.20", true, 10*time.Second)
			in.waitSet(t, "v4_24", "198.51.100.0", true, 10*time.Second)
			bs := in.bansOn(t, "198.51.100.0/24")
			if len(bs) != 1 || !strings.HasPrefix(bs[0].Origin, "crowdsec:cscli/") {
				t.Errorf("range ban = %+v", bs)
			}
			if rem := time.Until(bs[0].Until); rem > 5*time.Minute || rem < 4*time.Minute {
				t.Errorf("range ban has %s left, want about 5m", rem)
			}
		}
		h.lapi.Cscli(t, "decisions", "delete", "--ip", "203.0.113.20")
		h.lapi.Cscli(t, "decisions", "delete", "--range", "198.51.100.0/24")
		for _, in := range []*instance{a, b} {
			in.waitSet(t, "v4_32", "203.0.113.20", false, 10*time.Second)
			in.waitSet(t, "v4_24", "198.51.100.0", false, 10*time.Second)
		}
	})

	t.Run("a never-ban address is refused with an alarm", func(t *testing.T) {
		h.lapi.Cscli(t, "decisions", "add", "--ip", sharedIgnore, "--duration", "5m")
		for _, in := range []*instance{a, b} {
			in.waitRefused(t, sharedIgnore, 10*time.Second)
			if in.inSet(t, "v4_32", sharedIgnore) {
				t.Errorf("%s banned", sharedIgnore)
			}
		}
		out := b.mustCtl(t, 0, "status")
		if !strings.Contains(out, "CrowdSec: http://192.0.2.1:8080") || !strings.Contains(out, alarmCrowdSecRefused) {
			t.Errorf("status:\n%s", out)
		}
		h.lapi.Cscli(t, "decisions", "delete", "--ip", sharedIgnore)
	})

	t.Run("a decision against the Docker gateway is refused with an alarm", func(t *testing.T) {
		// Host C follows a real dockerd whose Mailu network is
		// 203.0.113.192/28: its gateway, what docker-proxy connects from,
		// is learnt from Docker, not configured.
		const gateway = "203.0.113.193"
		e := dockertest.Start(t, dockertest.Options{})
		e.MailuLike(t, "203.0.113.192/28", gateway, nil)
		c := startCSHost(t, h.lapi, "c", 2, e.Host())
		deadline := time.Now().Add(30 * time.Second)
		for st := c.status(t); st.Docker.Project != "mailu" || st.Docker.State != "following"; st = c.status(t) {
			if time.Now().After(deadline) {
				t.Fatalf("C does not follow Mailu: %+v", st.Docker)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if out := c.mustCtl(t, 0, "why", gateway); !strings.Contains(out, "docker gateway "+gateway) {
			t.Fatalf("C has not learnt the gateway from Docker:\n%s", out)
		}

		h.lapi.Cscli(t, "decisions", "add", "--ip", gateway, "--duration", "5m", "--reason", "framed gateway")
		t.Cleanup(func() { h.lapi.Cscli(t, "decisions", "delete", "--ip", gateway) })
		c.waitRefused(t, gateway, 15*time.Second)
		// Host A has no such network: for it the address is an ordinary
		// one, and enforcing it there shows the decision did reach the
		// hosts while C, after the same pulls, still has it out.
		a.waitSet(t, "v4_32", gateway, true, 10*time.Second)
		if c.inSet(t, "v4_32", gateway) {
			t.Errorf("C banned its own Docker gateway %s", gateway)
		}
		if bs := c.bansOn(t, gateway+"/32"); len(bs) != 0 {
			t.Errorf("C lists a ban of its gateway: %+v", bs)
		}
		if out := c.mustCtl(t, 0, "status"); !strings.Contains(out, "docker gateway "+gateway) || !strings.Contains(out, alarmCrowdSecRefused) {
			t.Errorf("C's status does not say why the decision was refused:\n%s", out)
		}
	})

	t.Run("LAPI down: pushes wait and are delivered once", func(t *testing.T) {
		h.lapi.Kill(t)
		targets := []string{"203.0.113.30", "203.0.113.31", "203.0.113.32"}
		a.mustCtl(t, 0, append([]string{"ban", "--for", "1h"}, targets...)...)
		for _, tg := range targets {
			if !a.inSet(t, "v4_32", tg) {
				t.Errorf("%s not banned locally while LAPI is down", tg)
			}
		}
		if st := a.status(t).CrowdSec; st.PendingPushes != len(targets) {
			t.Errorf("pending pushes = %d, want %d", st.PendingPushes, len(targets))
		}
		h.lapi.Restart(t)
		for _, tg := range targets {
			b.waitSet(t, "v4_32", tg, true, 30*time.Second)
		}
		time.Sleep(3 * time.Second) // a few more push and pull rounds
		count := map[string]int{}
		for _, al := range h.lapi.Alerts(t) {
			for _, d := range al.Decisions {
				count[d.Value]++
			}
		}
		for _, tg := range targets {
			if count[tg] != 1 {
				t.Errorf("%s: %d decisions in LAPI, want 1 (%v)", tg, count[tg], count)
			}
		}
		if st := a.status(t).CrowdSec; st.PendingPushes != 0 {
			t.Errorf("pending pushes after LAPI came back = %d", st.PendingPushes)
		}
	})
}

// BenchmarkCrowdSecShare: time from a ban decided on host A to the element
// in host B's kernel set, through the real LAPI with a 1 s pull interval.
func BenchmarkCrowdSecShare(b *testing.B) {
	h := startCSHosts(b)
	ca := control.NewClient(h.a.socket)
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		addr := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xbe, 0xef, 14: byte(i >> 8), 15: byte(i)})
		start := time.Now()
		if _, err := ca.Ban(context.Background(), control.BanRequest{Targets: []netip.Prefix{netip.PrefixFrom(addr, 128)}, Duration: "1h"}); err != nil {
			b.Fatal(err)
		}
		h.b.waitSet(b, "v6_128", addr.String(), true, 10*time.Second)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(pct(0.5).Seconds(), "p50-s")
	b.ReportMetric(pct(0.99).Seconds(), "p99-s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkCrowdSecStartup100k: a bansd started against a LAPI that already
// holds 100,000 decisions (imported with the real cscli): time from the
// process's start until every one is an element of its kernel set, and the
// daemon's peak RSS (VmHWM) when they are. Run with -benchtime 1x.
func BenchmarkCrowdSecStartup100k(b *testing.B) {
	const n = 100_000
	l := crowdsectest.Start(b)
	addrs := make([]netip.Addr, n)
	for i := range addrs {
		addrs[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xc5, 12: byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i + 1)})
	}
	t0 := time.Now()
	l.ImportIPs(b, "4h", addrs)
	b.Logf("cscli imported %d decisions in %s", n, time.Since(t0).Round(time.Millisecond))
	var took []time.Duration
	var peak int64
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// A new machine and bouncer each round: LAPI sends each new
		// bouncer the whole startup stream.
		start := time.Now()
		in := startCSHost(b, l, fmt.Sprint("s", i), i, noDocker)
		deadline := time.Now().Add(5 * time.Minute)
		for st := in.status(b); st.CrowdSec == nil || st.CrowdSec.Applied < n; st = in.status(b) {
			if time.Now().After(deadline) {
				b.Fatalf("%+v of %d applied after 5 min", st.CrowdSec, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
		took = append(took, time.Since(start))
		b.StopTimer()
		if got := kernelElements(b, in, "v6_128", "2001:db8:c500:"); got != n {
			b.Fatalf("%d elements in v6_128, want %d", got, n)
		}
		peak = max(peak, proctest.KiB(b, in.cmd.Process.Pid, "VmHWM"))
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(took[len(took)/2].Seconds(), "enforced-s")
	b.ReportMetric(float64(peak)/1024, "bansd-peakRSS-MiB")
	b.ReportMetric(0, "ns/op")
}

// kernelElements counts the elements of one of the instance's sets that
// start with prefix, as nft prints them.
func kernelElements(t testing.TB, in *instance, set, prefix string) int {
	t.Helper()
	out, err := in.ns.Exec("nft", "list", "set", "inet", "bansd", set)
	if err != nil {
		t.Fatalf("nft list set %s: %v", set, err)
	}
	n := 0
	for _, f := range strings.FieldsFunc(out, func(r rune) bool { return r == ' ' || r == ',' || r == '{' || r == '}' || r == '\n' || r == '\t' }) {
		if strings.HasPrefix(f, prefix) {
			n++
		}
	}
	return n
}
