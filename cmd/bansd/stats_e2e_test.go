package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/bansd/bansd/stats"
)

// TestStatsAgainstDaemon: bans made through a running bansd come back
// summed up from `bansctl stats`, as JSON and as plain text (not a
// terminal: no bars).
func TestStatsAgainstDaemon(t *testing.T) {
	in := start(t)
	in.mustCtl(t, 0, "ban", "--for", "2h", "203.0.113.50", "203.0.113.51", "2001:db8:5::1")
	in.mustCtl(t, 0, "unban", "203.0.113.50")
	in.mustCtl(t, 0, "ban", "--for", "1h", "203.0.113.50")
	// Past a restart: the history is the store's.
	in.stop(t)
	in.run(t)

	var s stats.Summary
	out := in.mustCtl(t, 0, "--json", "stats", "--since", "1d")
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	var bans, hours uint64
	for _, h := range s.Hours {
		bans += h.Bans
		hours++
	}
	if hours < 24 || hours > 26 || bans != 4 {
		t.Errorf("%d hours holding %d bans, want 24 or 25 hours, 4 bans: %+v", hours, bans, s.Hours)
	}
	if tt := s.Totals; tt.Bans != 4 || tt.Unbans != 1 || tt.Refreshes != 0 || tt.Alarms != 0 || tt.Attempts != 0 {
		t.Errorf("totals %+v", tt)
	}
	if len(s.Jails) != 1 || s.Jails[0] != (stats.Count{Name: "manual", Bans: 4}) {
		t.Errorf("jails %+v", s.Jails)
	}
	wantNets := []stats.Count{{Name: "203.0.113.0/24", Bans: 3}, {Name: "2001:db8:5::/64", Bans: 1}}
	if len(s.Networks) != 2 || s.Networks[0] != wantNets[0] || s.Networks[1] != wantNets[1] {
		t.Errorf("networks %+v, want %+v", s.Networks, wantNets)
	}
	if len(s.Offenders) != 1 || s.Offenders[0].Target.String() != "203.0.113.50/32" || s.Offenders[0].Bans != 2 {
		t.Errorf("offenders %+v", s.Offenders)
	}
	var raw map[string]json.RawMessage
	json.Unmarshal([]byte(out), &raw)
	for _, k := range []string{"since", "until", "hours", "totals", "top_jails", "top_networks", "repeat_offenders"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("--json has no %q: %s", k, out)
		}
	}

	out = in.mustCtl(t, 0, "stats", "--top", "1")
	for _, re := range []string{
		`(?m)^attempts 0, bans 4 \(0 lengthened\), alarms 0, unbans 1, expiries 0$`,
		`(?m)^HOUR +ATTEMPTS +BANS +ALARMS$`,
		`(?m)^TOP JAILS +BANS\nmanual +4$`,
		`(?m)^TOP NETWORKS +BANS\n203\.0\.113\.0/24 +3$`,
		`(?m)^REPEAT OFFENDERS +BANS +LEVEL +LAST\n203\.0\.113\.50/32 +2 +0 `,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("stats lacks %s:\n%s", re, out)
		}
	}
	if strings.Contains(out, "2001:db8:5::/64") || strings.Contains(out, "█") {
		t.Errorf("--top 1 lists more than one network, or bars off a terminal:\n%s", out)
	}
	if n := len(regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d \d\d:00 `).FindAllString(out, -1)); n < 7*24 || n > 7*24+2 {
		t.Errorf("the default period is 7d: %d hour rows", n)
	}
	if _, errs, code := in.ctl(t, "stats", "--since", "soon"); code != 2 || !strings.Contains(errs, "bad --since") {
		t.Errorf("bad --since: exit %d, %s", code, errs)
	}
}
