package main

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
)

// TestReadTargetFile: a file or '-' (stdin) goes through the list parser,
// with every bad line kept for the report up to maxFileErrors.
func TestReadTargetFile(t *testing.T) {
	list := "; Spamhaus DROP\n192.0.2.0/24 ; SBL1\n# FireHOL\n198.51.100.7\nbad\n"
	path := filepath.Join(t.TempDir(), "drop.txt")
	if err := os.WriteFile(path, []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		in    io.Reader
		file  string
		entry int
	}{{"file", nil, path, 2}, {"stdin", strings.NewReader(list), "-", 2}} {
		p, err := readTargetFile(c.in, c.file)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(p.Entries) != c.entry || p.BadCount != 1 || p.Bad[0].Line != 5 {
			t.Errorf("%s: %d entries, bad %+v; want 2 and line 5", c.name, len(p.Entries), p.Bad)
		}
	}
	p, err := readTargetFile(strings.NewReader(strings.Repeat("bad\n", 3000)), "-")
	if err != nil || p.BadCount != 3000 || len(p.Bad) != maxFileErrors {
		t.Errorf("3000 bad lines: count %d, named %d, %v; want 3000, %d", p.BadCount, len(p.Bad), err, maxFileErrors)
	}
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
		{[]string{"ban", "--force", "--from-file", "-"}, 2},
		{[]string{"ban", "--skip-invalid", "203.0.113.1"}, 2},
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
