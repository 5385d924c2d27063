package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/internal/dockertest"
	"github.com/bansd/bansd/jail"
)

// hasElem says whether nft's listing of a set holds the element addr.
func hasElem(listing, addr string) bool {
	return regexp.MustCompile(`(^|[\s{,])` + regexp.QuoteMeta(addr) + `([\s,}]|$)`).MatchString(listing)
}

// TestAllowAgainstDaemon: bansctl allow through the real daemon, store and
// kernel: exact and narrower bans are lifted, a /24 is split around a /32
// (the kernel holds the pieces, not the /24 nor the /32), why names the
// entry, manual bans are refused unless --force, a --for entry expires on
// time with its history, and the list survives a restart.
func TestAllowAgainstDaemon(t *testing.T) {
	in := start(t)
	for _, b := range []string{"203.0.113.0/24", "198.51.100.7", "198.51.100.16/28", "2001:db8:7::/48"} {
		in.mustCtl(t, 0, "ban", "--for", "1h", b)
	}

	out := in.mustCtl(t, 0, "allow", "198.51.100.0/24", "--reason", "office")
	for _, want := range []string{"allowed 198.51.100.0/24 until removed", "lifted 198.51.100.7/32 (jail manual)", "lifted 198.51.100.16/28 (jail manual)"} {
		if !strings.Contains(out, want) {
			t.Errorf("allow 198.51.100.0/24: output lacks %q:\n%s", want, out)
		}
	}
	out = in.mustCtl(t, 0, "allow", "203.0.113.7", "--for", "3s")
	if want := "split  203.0.113.0/24 (jail manual) around it: still banned 203.0.113.0/30 203.0.113.4/31 203.0.113.6/32 203.0.113.8/29 203.0.113.16/28 203.0.113.32/27 203.0.113.64/26 203.0.113.128/25"; !strings.Contains(out, want) {
		t.Errorf("allow 203.0.113.7: output lacks %q:\n%s", want, out)
	}
	out = in.mustCtl(t, 0, "allow", "2001:db8:7:1::/64")
	if !strings.Contains(out, "split  2001:db8:7::/48") || !strings.Contains(out, "2001:db8:7::/64 2001:db8:7:2::/63") {
		t.Errorf("allow 2001:db8:7:1::/64: output does not split the /48:\n%s", out)
	}
	for set, want := range map[string][]string{
		"v4_32": {"203.0.113.6"}, "v4_31": {"203.0.113.4"}, "v4_30": {"203.0.113.0"}, "v4_29": {"203.0.113.8"},
		"v4_26": {"203.0.113.64"}, "v4_25": {"203.0.113.128"}, "v6_64": {"2001:db8:7::"}, "v6_63": {"2001:db8:7:2::"},
	} {
		k := in.kernel(t, set)
		for _, a := range want {
			if !hasElem(k, a) {
				t.Errorf("kernel set %s lacks %s after the split:\n%s", set, a, k)
			}
		}
	}
	for set, gone := range map[string]string{"v4_32": "203.0.113.7", "v4_24": "203.0.113.0", "v4_28": "198.51.100.16", "v6_48": "2001:db8:7::"} {
		if k := in.kernel(t, set); hasElem(k, gone) {
			t.Errorf("kernel set %s still holds %s:\n%s", set, gone, k)
		}
	}
	if k := in.kernel(t, "v4_32"); hasElem(k, "198.51.100.7") {
		t.Errorf("the lifted 198.51.100.7 is still in the kernel:\n%s", k)
	}

	if out := in.mustCtl(t, 0, "why", "203.0.113.7"); !strings.Contains(out, "never banned: allow-list 203.0.113.7/32 until") || !strings.Contains(out, "not banned") {
		t.Errorf("why 203.0.113.7 does not name the allow entry:\n%s", out)
	}
	if out := in.mustCtl(t, 1, "ban", "--for", "1h", "198.51.100.9"); !strings.Contains(out, "allow-list 198.51.100.0/24: office") {
		t.Errorf("a manual ban of an allowed address: refusal does not name the entry:\n%s", out)
	}
	in.mustCtl(t, 0, "ban", "--for", "1h", "--force", "198.51.100.9")
	in.mustCtl(t, 0, "unban", "198.51.100.9")

	var l control.AllowList
	if err := json.Unmarshal([]byte(in.mustCtl(t, 0, "--json", "allow", "list")), &l); err != nil || len(l.Entries) != 3 {
		t.Fatalf("allow list --json: %+v, %v; want 3 entries", l, err)
	}
	if out := in.mustCtl(t, 0, "allow", "list"); !strings.Contains(out, "198.51.100.0/24") || !strings.Contains(out, "permanent") || !strings.Contains(out, "office") {
		t.Errorf("allow list:\n%s", out)
	}

	// The 3 s entry ends on its own.
	deadline := time.Now().Add(10 * time.Second)
	for strings.Contains(in.mustCtl(t, 0, "allow", "list"), "203.0.113.7/32") {
		if time.Now().After(deadline) {
			t.Fatal("the --for 3s entry is still listed after 10 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out := in.mustCtl(t, 0, "why", "203.0.113.7"); strings.Contains(out, "never banned") {
		t.Errorf("why after expiry still names a rule:\n%s", out)
	}
	in.mustCtl(t, 0, "ban", "--for", "1h", "203.0.113.7")
	h := in.mustCtl(t, 0, "--json", "history", "--kind", "allow-list,unban")
	for _, want := range []string{"added", "expired", "split around allow-list entry 203.0.113.7/32", "lifted: inside allow-list entry 198.51.100.0/24"} {
		if !strings.Contains(h, want) {
			t.Errorf("history lacks %q:\n%s", want, h)
		}
	}

	// A restart keeps the list, and the pieces of the split ban.
	in.stop(t)
	in.run(t)
	if out := in.mustCtl(t, 0, "allow", "list"); !strings.Contains(out, "198.51.100.0/24") || !strings.Contains(out, "2001:db8:7:1::/64") {
		t.Errorf("allow list after a restart:\n%s", out)
	}
	in.mustCtl(t, 1, "ban", "--for", "1h", "198.51.100.50")
	if k := in.kernel(t, "v4_25"); !hasElem(k, "203.0.113.128") {
		t.Errorf("a split piece is gone after a restart:\n%s", k)
	}
	in.mustCtl(t, 0, "allow", "remove", "198.51.100.0/24")
	if out := in.mustCtl(t, 1, "allow", "remove", "198.51.100.0/24"); !strings.Contains(out, "no allow-list entry for 198.51.100.0/24") {
		t.Errorf("removing a missing entry:\n%s", out)
	}
	in.mustCtl(t, 0, "ban", "--for", "1h", "198.51.100.50")
	if h := in.mustCtl(t, 0, "history", "--kind", "allow-list"); !strings.Contains(h, "removed") {
		t.Errorf("history lacks the removal:\n%s", h)
	}
	for _, args := range [][]string{{"allow", "0.0.0.0/0"}, {"allow", "203.0.113.1", "--for", "soon"}, {"allow", "nonsense"}} {
		if _, _, code := in.ctl(t, args...); code == 0 {
			t.Errorf("bansctl %s: exit 0, want a refusal", strings.Join(args, " "))
		}
	}
}

// TestReloadIgnoreIPLiftsBans: an ignoreip added by SIGHUP lifts the bans
// inside it and splits a wider one around it, and says so in the log and
// the history.
func TestReloadIgnoreIPLiftsBans(t *testing.T) {
	in := start(t)
	in.mustCtl(t, 0, "ban", "--for", "1h", "203.0.113.0/24")
	in.mustCtl(t, 0, "ban", "--for", "1h", "198.51.100.5")
	in.writeConfig(t, "[engine]\nignoreip = [\"203.0.113.64/26\", \"198.51.100.0/24\"]\n")
	in.cmd.Process.Signal(syscall.SIGHUP)
	waitReload(t, in, func(r *control.ReloadResult) bool { return r != nil && r.OK })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(in.log.String(), "ban lifted") || !strings.Contains(in.log.String(), "ban split") {
		if time.Now().After(deadline) {
			t.Fatalf("no ban lifted/split in the log after the reload:\n%s", in.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if k := in.kernel(t, "v4_24"); hasElem(k, "203.0.113.0") {
		t.Errorf("the /24 that holds a new ignoreip is still banned:\n%s", k)
	}
	if k := in.kernel(t, "v4_32"); hasElem(k, "198.51.100.5") {
		t.Errorf("198.51.100.5, inside a new ignoreip, is still banned:\n%s", k)
	}
	if k := in.kernel(t, "v4_26"); !hasElem(k, "203.0.113.0") {
		t.Errorf("203.0.113.0/26, the rest of the /24, is not banned:\n%s", k)
	}
	if k := in.kernel(t, "v4_25"); !hasElem(k, "203.0.113.128") {
		t.Errorf("203.0.113.128/25, the rest of the /24, is not banned:\n%s", k)
	}
	h := in.mustCtl(t, 0, "--json", "history", "--kind", "allow-list,unban")
	for _, want := range []string{"split around ignoreip 203.0.113.64/26: still banned 203.0.113.0/26 203.0.113.128/25", "lifted: inside ignoreip 198.51.100.0/24"} {
		if !strings.Contains(h, want) {
			t.Errorf("history lacks %q:\n%s", want, h)
		}
	}
}

// TestAllowedNotCountedRealDocker: a real dockerd runs a Mailu-like front
// whose log holds port-25 AUTH attempts from an allowed address and from
// its neighbour. bansd bans the neighbour, does not count the allowed
// address, and raises the allowed-client alarm for it instead.
func TestAllowedNotCountedRealDocker(t *testing.T) {
	e := dockertest.Start(t, dockertest.Options{})
	in := startWith(t, e.Host())
	in.mustCtl(t, 0, "allow", "203.0.113.9", "--reason", "monitoring")
	const script = `n=100
for a in 203.0.113.9 203.0.113.10 203.0.113.9 203.0.113.10 203.0.113.9 203.0.113.10 203.0.113.9 203.0.113.10 203.0.113.9 203.0.113.10 203.0.113.9 203.0.113.10; do
  n=$((n+1)); ts=$(date -u '+%Y/%m/%d %H:%M:%S')
  echo "$ts [info] 23#23: *$n client $a:4$n connected to 0.0.0.0:25"
  sleep 0.05
  echo "$ts [info] 23#23: *$n client login failed: \"AUTH not supported\" while in http auth state, client: $a, server: 0.0.0.0:25, login: \"bot$n\""
  sleep 0.6
done
exec sleep 600`
	e.MailuLike(t, "192.0.2.160/28", "192.0.2.161", map[string]string{"front": script})

	c := control.NewClient(in.socket)
	deadline := time.Now().Add(40 * time.Second)
	for {
		l, err := c.Bans(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		st := mustStatus(t, c)
		var alarm *control.AlarmStatus
		for i := range st.Alarms {
			if st.Alarms[i].Kind == jail.AlarmAllowedClient {
				alarm = &st.Alarms[i]
			}
		}
		if len(l.Bans) > 0 && alarm != nil && strings.Contains(scrape(t, c), `bansd_lines_total{service="front"} 24`) {
			if len(l.Bans) != 1 || l.Bans[0].Target.String() != "203.0.113.10/32" {
				t.Fatalf("bans = %+v, want only the neighbour 203.0.113.10", l.Bans)
			}
			if alarm.Addr != "203.0.113.9" || !strings.Contains(alarm.Fix, "allow remove") {
				t.Errorf("alarm = %+v", alarm)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ban of the neighbour and alarm for the allowed address after 40 s: bans %+v, alarms %+v", l.Bans, st.Alarms)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if k := in.kernel(t, "v4_32"); hasElem(k, "203.0.113.9") || !hasElem(k, "203.0.113.10") {
		t.Errorf("kernel set:\n%s", k)
	}
	out := in.mustCtl(t, 0, "why", "203.0.113.9")
	if !strings.Contains(out, "never banned: allow-list 203.0.113.9/32: monitoring") || regexp.MustCompile(`203\.0\.113\.9/32 +[1-9]`).MatchString(out) {
		t.Errorf("why of the allowed address (named, nothing counted for its /32):\n%s", out)
	}
}
