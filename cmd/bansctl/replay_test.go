package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/internal/mailugen"
)

func runReplay(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd()
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"replay"}, args...))
	root.SetOut(&out)
	root.SetErr(&errb)
	code = 0
	if err := root.ExecuteContext(context.Background()); err != nil {
		code = exitCode(err, &errb)
	}
	return code, out.String(), errb.String()
}

// exitCode maps an error the way run does, without going through os.Args.
func exitCode(err error, stderr *bytes.Buffer) int {
	stderr.WriteString(err.Error())
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown flag") {
		return exitUsage
	}
	return exitFailed
}

func serviceArgs(tr *mailugen.Truth) []string {
	var args []string
	for _, s := range mailugen.Services {
		args = append(args, s+"="+tr.Files[s])
	}
	return args
}

// The generated logs' ground truth is what the real engine decides when
// replayed, for both Mailu versions: every expected ban, no other, and the
// gateway alarm.
func TestReplayGroundTruth(t *testing.T) {
	for _, version := range []string{mailugen.V2024, mailugen.V20} {
		t.Run(version, func(t *testing.T) {
			tr, err := mailugen.Generate(mailugen.Options{Dir: t.TempDir(), Lines: 60000, Attackers: 30, Seed: 42, Version: version})
			if err != nil {
				t.Fatal(err)
			}
			code, out, errs := runReplay(t, "", append([]string{"--json"}, serviceArgs(tr)...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			var rep struct {
				Lines   int     `json:"lines"`
				Matched int     `json:"matched"`
				Seconds float64 `json:"seconds"`
				Bans    []struct {
					Target, Jail, First, Reason string
					Events                      int
				} `json:"bans"`
				Alarms []struct {
					Kind, Address, Hint string
					Count               int
				} `json:"alarms"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("json: %v\n%s", err, out)
			}
			var got []string
			for _, b := range rep.Bans {
				got = append(got, b.Target)
				if b.Jail == "" || b.Reason == "" || b.Events == 0 || !strings.HasPrefix(b.First, "2026-11-2") {
					t.Errorf("ban %+v", b)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tr.Bans) {
				t.Fatalf("bans differ from ground truth\n got %v\nwant %v", got, tr.Bans)
			}
			var alarms []string
			for _, a := range rep.Alarms {
				alarms = append(alarms, a.Address)
				if a.Kind != "gateway-client" || a.Count < 100 || !strings.Contains(a.Hint, "userland-proxy") {
					t.Errorf("alarm %+v", a)
				}
			}
			if !slices.Equal(alarms, tr.Alarms) {
				t.Fatalf("alarms %v, want %v", alarms, tr.Alarms)
			}
			if rep.Lines != tr.Lines || rep.Matched == 0 || rep.Seconds <= 0 {
				t.Fatalf("lines %d (want %d), matched %d, seconds %v", rep.Lines, tr.Lines, rep.Matched, rep.Seconds)
			}
		})
	}
}

func TestReplayHumanAndStdin(t *testing.T) {
	tr, err := mailugen.Generate(mailugen.Options{Dir: t.TempDir(), Lines: 20000, Attackers: 8, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := os.ReadFile(tr.Files["admin"])
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := runReplay(t, string(admin), "front="+tr.Files["front"], "admin=-", "smtp="+tr.Files["smtp"])
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"lines/s", "JAIL", "auth", "BANS (", "198.51.100.0/24", "ALARMS (1 addresses)", "192.168.203.1", "userland-proxy"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// Files without Docker's prefix are merged by their own timestamps.
func TestReplayWithoutDockerPrefix(t *testing.T) {
	dir := t.TempDir()
	admin := filepath.Join(dir, "admin.log")
	front := filepath.Join(dir, "front.log")
	var a, f strings.Builder
	for i := range 10 {
		ts := "2026-11-20 00:0" + string(rune('0'+i)) + ":00,000"
		a.WriteString("[" + ts + "] INFO in nginx: Login attempt for: x@example.com/imap/993 from: 203.0.113.9/4000: failed: badauth: 00000" + string(rune('0'+i)) + "\n")
		f.WriteString("Nov 20 00:0" + string(rune('0'+i)) + ":02 imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<x@example.com>, method=PLAIN, rip=203.0.113.9, rport=4000, lip=192.168.203.5, lport=993, TLS\n")
	}
	// A success at the start from the same address would exempt it; put it
	// last in the file but first in time for another address instead.
	if err := os.WriteFile(admin, []byte(a.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(front, []byte(f.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runReplay(t, "", "--json", "front="+front, "admin="+admin)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	// Merged in time order, admin's first line latches before front's
	// failures: 10 attempts counted once each, one ban.
	if !strings.Contains(out, `"target": "203.0.113.9/32"`) || !strings.Contains(out, `"events": 10`) || !strings.Contains(out, "2026-11-20T00:09:00Z") {
		t.Fatalf("output:\n%s", out)
	}
}

func TestReplayErrors(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.log")
	if err := os.WriteFile(ok, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[jails.auth]\nmaxretry = 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no args", nil, exitUsage, ""},
		{"no = and no file", []string{filepath.Join(dir, "front.log")}, exitFailed, "no such file"},
		{"no = and nothing to guess from", []string{ok}, exitUsage, "give the service, e.g. front=" + ok},
		{"empty service", []string{"=x"}, exitUsage, "[SERVICE=]FILE"},
		{"bad --print", []string{"--print", "some", "front=" + ok}, exitUsage, "--print: want matched, missed, set-aside or all"},
		{"bad --print-limit", []string{"--print-limit", "0", "front=" + ok}, exitUsage, "--print-limit: want a positive number"},
		{"stdin twice", []string{"front=-", "admin=-"}, exitUsage, "twice"},
		{"unknown flag", []string{"--nope", "front=" + ok}, exitUsage, ""},
		{"missing file", []string{"front=" + filepath.Join(dir, "nope.log")}, exitFailed, "no such file"},
		{"directory", []string{"front=" + dir}, exitFailed, "directory"},
		{"bad config", []string{"--config", bad, "front=" + ok}, exitFailed, "maxretry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runReplay(t, "", tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.msg) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tc.code, errs, tc.msg)
			}
		})
	}
}

// BenchmarkReplay is `bansctl replay` over about a million generated lines
// (reading, merging, parsing, counting).
func BenchmarkReplay(b *testing.B) {
	tr, err := mailugen.Generate(mailugen.Options{Dir: b.TempDir(), Lines: 1_000_000, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := configs.Default()
	if err != nil {
		b.Fatal(err)
	}
	var inputs []replayInput
	for _, s := range mailugen.Services {
		inputs = append(inputs, replayInput{service: s, path: tr.Files[s]})
	}
	b.ResetTimer()
	var lines uint64
	for b.Loop() {
		rep, err := replay(context.Background(), cfg, inputs, nil, replayOptions{printLimit: 50})
		if err != nil {
			b.Fatal(err)
		}
		lines += rep.Lines
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
}
