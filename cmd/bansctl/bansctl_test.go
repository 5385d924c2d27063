package main

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
)

func TestParseTargets(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string
		errs     []string
	}{
		{"addresses, CIDRs, comments, blanks", "# header\n203.0.113.7\n\n  198.51.100.0/24  # net\n2001:db8::1\n::ffff:192.0.2.9\n203.0.113.77/24\n",
			[]string{"203.0.113.7/32", "198.51.100.0/24", "2001:db8::1/128", "192.0.2.9/32", "203.0.113.0/24"}, nil},
		{"CRLF", "203.0.113.7\r\n203.0.113.8\r\n", []string{"203.0.113.7/32", "203.0.113.8/32"}, nil},
		{"bad lines named", "203.0.113.7\nfoo\n\n203.0.113.0/33\n", nil, []string{"list.txt:2:", "list.txt:4:"}},
		{"zone refused", "fe80::1%eth0\n", nil, []string{"list.txt:1:"}},
		{"empty", "# nothing\n\n", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTargets("list.txt", strings.NewReader(tc.in))
			if len(tc.errs) > 0 {
				if err == nil || got != nil {
					t.Fatalf("got %v, %v; want an error and nothing", got, err)
				}
				for _, e := range tc.errs {
					if !strings.Contains(err.Error(), e) {
						t.Errorf("error %q lacks %q", err, e)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, p := range got {
				s = append(s, p.String())
			}
			if strings.Join(s, " ") != strings.Join(tc.want, " ") {
				t.Errorf("got %v, want %v", s, tc.want)
			}
		})
	}
}

func TestParseTargetsManyBadLines(t *testing.T) {
	_, err := parseTargets("f", strings.NewReader(strings.Repeat("bad\n", 1000)))
	if err == nil || strings.Count(err.Error(), "\n") > maxFileErrors+2 || !strings.Contains(err.Error(), "more bad lines") {
		t.Errorf("error not bounded: %d lines", strings.Count(err.Error(), "\n"))
	}
}

func FuzzParseTargets(f *testing.F) {
	f.Add("203.0.113.7\n# c\n198.51.100.0/24 # x\n")
	f.Add("2001:db8::/32\n\x00\xff\n")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := parseTargets("f", strings.NewReader(in))
		if err != nil && got != nil {
			t.Fatal("targets returned with an error")
		}
		for _, p := range got {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() {
				t.Fatalf("bad target %v from %q", p, in)
			}
		}
	})
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"plain user@example.com": "plain user@example.com",
		"é ünïcode":              "é ünïcode",
		"\x1b[31mred":            `\x1b[31mred`,
		"a\nb\tc":                `a\nb\tc`,
		"\xff":                   `\xff`,
		"\u202eevil":             `\u202eevil`,
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 45 * time.Second: "45s", 12*time.Minute + 3*time.Second: "12m3s",
		3*time.Hour + 4*time.Minute: "3h4m", 50 * time.Hour: "2d2h",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestExitCodes covers what needs no daemon: usage errors are 2, a daemon
// that is not there is 1. The rest runs against a real bansd in cmd/bansd.
func TestExitCodes(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none.sock")
	cases := []struct {
		args []string
		want int
	}{
		{[]string{"--help"}, 0},
		{[]string{"ban", "--help"}, 0},
		{[]string{"ban"}, 2},
		{[]string{"ban", "300.1.1.1"}, 2},
		{[]string{"ban", "--for", "-1h", "203.0.113.1"}, 2},
		{[]string{"unban", "--jail", "auth", "--all", "--yes"}, 2},
		{[]string{"why", "a", "b"}, 2},
		{[]string{"status", "--nope"}, 2},
		{[]string{"nope"}, 2},
		{[]string{"status"}, 1},
		{[]string{"list", "--json"}, 1},
		{[]string{"ban", "--from-file", filepath.Join(t.TempDir(), "missing.txt")}, 1},
	}
	for _, tc := range cases {
		var out, errb bytes.Buffer
		got := run(context.Background(), append([]string{"--socket", none}, tc.args...), &out, &errb)
		if got != tc.want {
			t.Errorf("bansctl %v: exit %d, want %d (%s)", tc.args, got, tc.want, errb.String())
		}
	}
}

// BenchmarkPrintBans100k is the table side of `bansctl list`.
func BenchmarkPrintBans100k(b *testing.B) {
	now := time.Now()
	bans := make([]control.Ban, 100_000)
	for i := range bans {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		bans[i] = control.Ban{Target: netip.PrefixFrom(a, 32), Jail: "auth", Reason: "10 failures in 1h", Since: now, Until: now.Add(time.Hour), Level: 1}
	}
	for b.Loop() {
		if err := printBans(io.Discard, bans, now); err != nil {
			b.Fatal(err)
		}
	}
}
