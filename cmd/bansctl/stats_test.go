package main

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/stats"
)

func TestBar(t *testing.T) {
	for _, c := range []struct {
		v, top uint64
		width  int
		want   string
	}{
		{0, 0, 4, "    "},
		{0, 10, 4, "    "},
		{10, 10, 4, "████"},
		{5, 10, 4, "██  "},
		{1, 1000, 4, "▏   "}, // never invisible
		{3, 16, 2, "▍ "},     // 3/16 of 16 eighths: 3 eighths
		{7, 8, 1, "▉"},
	} {
		if got := bar(c.v, c.top, c.width); got != c.want {
			t.Errorf("bar(%d, %d, %d) = %q, want %q", c.v, c.top, c.width, got, c.want)
		}
	}
}

func TestPrintStats(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	a := stats.New(t0, t0.Add(2*time.Hour+10*time.Minute))
	for _, e := range []stats.Event{
		{Time: t0.Add(5 * time.Minute), Kind: stats.Ban, Target: netip.MustParsePrefix("192.0.2.7/32"), Jail: "auth"},
		{Time: t0.Add(65 * time.Minute), Kind: stats.Refresh, Target: netip.MustParsePrefix("192.0.2.7/32"), Jail: "auth", Level: 1},
		{Time: t0.Add(66 * time.Minute), Kind: stats.Ban, Target: netip.MustParsePrefix("2001:db8::9/128"), Jail: "smtp-auth-bots"},
		{Time: t0.Add(70 * time.Minute), Kind: stats.Alarm},
	} {
		a.Add(e)
	}
	a.Attempts(t0, map[string]uint64{"auth-failure": 40, "port25-auth": 8})
	a.Attempts(t0.Add(time.Hour), map[string]uint64{"auth-failure": 12})
	sum := a.Summary(10)
	loc := time.FixedZone("X", 3600)

	tests := []struct {
		name string
		s    stats.Summary
		tty  bool
		want []string // lines (trailing blanks trimmed) that must be there, in order
		not  []string
	}{
		{"terminal", sum, true, []string{
			"from 2026-11-30 11:00 to 2026-11-30 13:10",
			"attempts 60, bans 3 (1 lengthened), alarms 1, unbans 0, expiries 0",
			"attempts by kind: auth-failure 52, port25-auth 8",
			"HOUR              ATTEMPTS                           BANS                    ALARMS",
			"2026-11-30 11:00  " + strings.Repeat("█", 30) + " 48  " + strings.Repeat("█", 10) + strings.Repeat(" ", 10) + " 1  " + strings.Repeat(" ", 10) + " 0",
			"2026-11-30 12:00  " + strings.Repeat("█", 7) + "▌" + strings.Repeat(" ", 22) + " 12  " + strings.Repeat("█", 20) + " 2  " + strings.Repeat("█", 10) + " 1",
			"2026-11-30 13:00  " + strings.Repeat(" ", 30) + " 0   " + strings.Repeat(" ", 20) + " 0  " + strings.Repeat(" ", 10) + " 0",
			"TOP JAILS       BANS", "auth            2", "smtp-auth-bots  1",
			"TOP NETWORKS   BANS", "192.0.2.0/24   2", "2001:db8::/64  1",
			"REPEAT OFFENDERS  BANS  LEVEL  LAST", "192.0.2.7/32      2     1      2026-11-30 12:05",
		}, nil},
		{"plain", sum, false, []string{
			"attempts 60, bans 3 (1 lengthened), alarms 1, unbans 0, expiries 0",
			"HOUR              ATTEMPTS  BANS  ALARMS",
			"2026-11-30 11:00  48        1     0",
			"2026-11-30 12:00  12        2     1",
			"2026-11-30 13:00  0         0     0",
			"TOP JAILS       BANS",
			"REPEAT OFFENDERS  BANS  LEVEL  LAST",
		}, []string{"█", "▌"}},
		{"nothing", stats.New(t0, t0.Add(time.Minute)).Summary(10), false, []string{
			"attempts 0, bans 0 (0 lengthened), alarms 0, unbans 0, expiries 0",
			"2026-11-30 11:00  0         0     0",
			"top jails: none", "top networks: none", "repeat offenders: none",
		}, []string{"attempts by kind"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := printStats(&b, tt.s, tt.tty, loc); err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, l := range strings.Split(b.String(), "\n") {
				lines = append(lines, strings.TrimRight(l, " "))
			}
			i := 0
			for _, w := range tt.want {
				w = strings.TrimRight(w, " ")
				for i < len(lines) && lines[i] != w {
					i++
				}
				if i == len(lines) {
					t.Fatalf("no line %q (in order) in\n%s", w, b.String())
				}
			}
			for _, n := range tt.not {
				if strings.Contains(b.String(), n) {
					t.Errorf("%q in\n%s", n, b.String())
				}
			}
		})
	}
}

// TestStatsFlags: --since reads durations as history's does, in one place.
func TestStatsFlags(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none.sock")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"stats", "--since", "soon"}, 2, `bad --since "soon": a duration such as 24h or 7d`},
		{[]string{"history", "--since", "soon"}, 2, `bad --since "soon": a duration such as 24h or 7d`},
		{[]string{"stats", "--since", "-1d"}, 2, `bad --since "-1d"`},
		{[]string{"stats", "--top", "0"}, 2, "bad --top 0"},
		{[]string{"stats", "extra"}, 2, "wrong arguments"},
		{[]string{"stats", "--since", "1w"}, 1, "bansd is not running"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), append([]string{"--socket", none}, c.args...), &out, &errb); code != c.code || !strings.Contains(errb.String(), c.want) {
			t.Errorf("bansctl %v: exit %d, %q; want %d, %q", c.args, code, errb.String(), c.code, c.want)
		}
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if got, err := parseSince("7d", now); err != nil || !got.Equal(now.Add(-7*24*time.Hour)) {
		t.Errorf("parseSince(7d) = %v, %v", got, err)
	}
}

// TestGenDocsHasStats: the man page and completions come from the command.
func TestGenDocsHasStats(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"gen-docs", dir}, &out, &errb); code != 0 {
		t.Fatalf("gen-docs: exit %d: %s", code, errb.String())
	}
	man, err := os.ReadFile(filepath.Join(dir, "man8", "bansctl-stats.8"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(man), "repeat offenders") || !strings.Contains(string(man), "since") {
		t.Errorf("bansctl-stats.8 lacks the help text:\n%s", man)
	}
	for _, f := range []string{"bansctl.bash", "_bansctl", "bansctl.fish"} {
		if _, err := os.Stat(filepath.Join(dir, "completions", f)); err != nil {
			t.Error(err)
		}
	}
	// The scripts ask bansctl itself for the words.
	out.Reset()
	if code := run(context.Background(), []string{"__complete", "st"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "stats\t") {
		t.Errorf("completion of \"st\": exit %d, %q", code, out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"__complete", "stats", "--"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "--since") || !strings.Contains(out.String(), "--top") {
		t.Errorf("completion of stats' flags: exit %d, %q", code, out.String())
	}
}
