package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
)

// TestHistoryAgainstDaemon: the actions of a running bansd come back from
// `bansctl history` (table, --json, filters), `why` ends with them, and
// stop and start are in it after a restart.
func TestHistoryAgainstDaemon(t *testing.T) {
	in := start(t)
	in.mustCtl(t, 0, "ban", "--for", "2h", "203.0.113.50", "2001:db8:5::/64")
	in.mustCtl(t, 0, "unban", "2001:db8:5::/64")
	in.writeConfig(t, "[jails.auth]\nmaxretry = 0\n")
	in.cmd.Process.Signal(syscall.SIGHUP)
	waitReload(t, in, func(r *control.ReloadResult) bool { return r != nil })
	// Over the socket (bansctl has no reload command): the caller is root.
	c := control.NewClient(in.socket)
	if _, err := c.Reload(context.Background()); err == nil {
		t.Fatal("reload of a bad file accepted")
	}
	in.writeConfig(t, "")
	if _, err := c.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	// in.log is the first run's until the restart.
	if l := in.log.String(); !strings.Contains(l, "uid=0") || !strings.Contains(l, "target=2001:db8:5::/64") {
		t.Errorf("the daemon's log does not name the caller and target:\n%s", l)
	}
	in.stop(t)
	in.run(t)

	out := in.mustCtl(t, 0, "--json", "history")
	var kinds []string
	var evs []control.HistoryEvent
	for _, ln := range strings.Split(strings.TrimSpace(out), "\n") {
		var e control.HistoryEvent
		if err := json.Unmarshal([]byte(ln), &e); err != nil {
			t.Fatalf("--json line %q: %v", ln, err)
		}
		evs = append(evs, e)
		kinds = append(kinds, fmt.Sprintf("%s:%d", e.Kind, e.UID))
	}
	want := "start:-1 manual:0 manual:0 unban:0 refused:-1 refused:0 reload:0 stop:-1 start:-1"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("history kinds:uid\n%s\nwant\n%s", got, want)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq <= evs[i-1].Seq || evs[i].Time.Before(evs[i-1].Time) {
			t.Errorf("not newest last: %+v before %+v", evs[i-1], evs[i])
		}
	}
	if evs[1].Duration != control.Duration(2*time.Hour) || evs[1].Jail != "manual" {
		t.Errorf("manual ban event %+v", evs[1])
	}

	tests := []struct {
		args []string
		want []string // substrings, in order, of the table
		not  []string
	}{
		{[]string{"history", "203.0.113.0/24"}, []string{"TIME", "manual", "203.0.113.50/32", "2h"}, []string{"2001:db8", "start"}},
		{[]string{"history", "--kind", "unban,refused"}, []string{"unban", "2001:db8:5::/64", "refused", "refused"}, []string{"203.0.113.50", "start"}},
		{[]string{"history", "--jail", "manual", "--since", "1h"}, []string{"manual", "manual", "unban"}, []string{"start"}},
		{[]string{"why", "203.0.113.50"}, []string{"203.0.113.50", "recent history (last 1)", "manual"}, nil},
	}
	for _, tt := range tests {
		out := in.mustCtl(t, 0, tt.args...)
		rest := out
		for _, w := range tt.want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Errorf("bansctl %v: no %q (in order) in\n%s", tt.args, w, out)
				break
			}
			rest = rest[i+len(w):]
		}
		for _, n := range tt.not {
			if strings.Contains(out, n) {
				t.Errorf("bansctl %v: %q should be filtered out:\n%s", tt.args, n, out)
			}
		}
	}
	if _, errs, code := in.ctl(t, "history", "--kind", "nonsense"); code != 2 || !strings.Contains(errs, "bad --kind") {
		t.Errorf("bad --kind: exit %d, %s", code, errs)
	}
	if _, errs, code := in.ctl(t, "history", "--since", "soon"); code != 2 || !strings.Contains(errs, "bad --since") {
		t.Errorf("bad --since: exit %d, %s", code, errs)
	}
}

// TestHistoryKilledDuringBurst: bansd SIGKILLed while clients ban in a
// burst; after a restart every ban in the kernel has exactly one event.
func TestHistoryKilledDuringBurst(t *testing.T) {
	in := start(t)
	c := control.NewClient(in.socket)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				ts := make([]netip.Prefix, 20)
				for k := range ts {
					n := (w*100000 + i*20 + k)
					ts[k] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(w), byte(n >> 8), byte(n)}), 32)
				}
				if _, err := c.Ban(ctx, control.BanRequest{Targets: ts, Duration: "1h", Force: true}); err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	in.kill()
	cancel()
	wg.Wait()
	in.run(t)

	evs, err := c.History(context.Background(), control.HistoryQuery{Kinds: []string{"manual"}})
	if err != nil {
		t.Fatal(err)
	}
	count := map[netip.Prefix]int{}
	for _, e := range evs {
		count[e.Target]++
	}
	l, err := c.Bans(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	k := in.kernel(t, "v4_32")
	t.Logf("killed after %d ban events; %d bans after restart", len(evs), len(l.Bans))
	if len(l.Bans) < 20 {
		t.Fatalf("only %d bans before the kill", len(l.Bans))
	}
	for _, b := range l.Bans {
		if count[b.Target] != 1 {
			t.Errorf("%s banned with %d events, want 1", b.Target, count[b.Target])
		}
		if !strings.Contains(k, b.Target.Addr().String()+" ") && !strings.Contains(k, b.Target.Addr().String()+",") {
			t.Errorf("%s not in the kernel after restart", b.Target)
		}
	}
	if len(count) != len(l.Bans) || len(evs) != len(l.Bans) {
		t.Errorf("%d events for %d targets, %d bans", len(evs), len(count), len(l.Bans))
	}
}
