package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/mailugen"
)

// journalLine is one container line as Docker's journald driver stores it.
type journalLine struct {
	svc  string
	us   int64
	text string
}

// journalOf turns generated files into the entries journald would hold:
// their Docker timestamps cut to journald's microseconds (the files are
// rewritten so, for a like-for-like comparison), entries in the order a
// time merge of the files takes them.
func journalOf(t *testing.T, tr *mailugen.Truth) []journalLine {
	t.Helper()
	var all []journalLine
	for _, svc := range mailugen.Services {
		b, err := os.ReadFile(tr.Files[svc])
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			stamp, text, _ := strings.Cut(l, " ")
			ts, err := time.Parse(time.RFC3339Nano, stamp)
			if err != nil {
				t.Fatalf("%s: %v", svc, err)
			}
			ts = ts.Truncate(time.Microsecond)
			fmt.Fprintf(&out, "%s %s\n", ts.Format("2006-01-02T15:04:05.000000000Z07:00"), text)
			all = append(all, journalLine{svc: svc, us: ts.UnixMicro(), text: text})
		}
		if err := os.WriteFile(tr.Files[svc], []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	order := map[string]int{}
	for i, s := range mailugen.Services {
		order[s] = i
	}
	slices.SortStableFunc(all, func(a, b journalLine) int {
		if a.us != b.us {
			return int(a.us - b.us)
		}
		return order[a.svc] - order[b.svc]
	})
	return all
}

// writeExport writes entries in the export format: every third MESSAGE as
// a binary field, front and admin named by tag (Mailu's FAQ), smtp by
// compose v1 container name with the default tag, and a foreign unit's
// entry now and then.
func writeExport(lines []journalLine) []byte {
	var b bytes.Buffer
	for i, l := range lines {
		fmt.Fprintf(&b, "__CURSOR=s=0;i=%x\n__REALTIME_TIMESTAMP=%d\n", i, l.us)
		if i%3 == 0 {
			b.WriteString("MESSAGE\n")
			b.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(l.text))))
			b.WriteString(l.text + "\n")
		} else {
			b.WriteString("MESSAGE=" + l.text + "\n")
		}
		if l.svc == "smtp" {
			b.WriteString("CONTAINER_NAME=mailu_smtp_1\nCONTAINER_TAG=0123456789ab\n")
		} else {
			fmt.Fprintf(&b, "CONTAINER_NAME=mailu-%s-1\nCONTAINER_TAG=mailu-%s\n", l.svc, l.svc)
		}
		fmt.Fprintf(&b, "CONTAINER_ID=%s\nPRIORITY=6\n\n", strings.Repeat(l.svc[:1], 12))
		if i%1000 == 0 {
			fmt.Fprintf(&b, "__REALTIME_TIMESTAMP=%d\nSYSLOG_IDENTIFIER=cron\nMESSAGE=(root) CMD (true)\n\n", l.us)
		}
	}
	return b.Bytes()
}

func journalJSON(t *testing.T, lines []journalLine) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, l := range lines {
		if err := enc.Encode(map[string]string{
			"__REALTIME_TIMESTAMP": fmt.Sprint(l.us), "MESSAGE": l.text,
			"CONTAINER_TAG": "mailu-" + l.svc, "CONTAINER_NAME": "mailu-" + l.svc + "-1", "_TRANSPORT": "journal",
		}); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// A journal of the generated stack replays to the same bans, alarms and
// counts as the same lines from files, in both of journalctl's formats,
// from a file and from standard input.
func TestReplayJournalMatchesFiles(t *testing.T) {
	tr, err := mailugen.Generate(mailugen.Options{Dir: t.TempDir(), Lines: 30000, Attackers: 12, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	lines := journalOf(t, tr)
	dir := t.TempDir()
	export, js := filepath.Join(dir, "mailu.export"), filepath.Join(dir, "mailu.json")
	if err := os.WriteFile(export, writeExport(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	jsonBytes := journalJSON(t, lines)
	if err := os.WriteFile(js, jsonBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	summary := func(stdin string, args ...string) (string, string) {
		t.Helper()
		code, out, errs := runReplay(t, stdin, append([]string{"--json"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		var rep struct {
			Lines, Matched int
			Bans           []struct{ Target, Jail, First string }
			Alarms         []struct {
				Address string
				Count   int
			}
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		if len(rep.Bans) == 0 {
			t.Fatalf("%v: no bans: %s", args, out)
		}
		return fmt.Sprintf("%+v", rep), errs
	}
	want, _ := summary("", serviceArgs(tr)...)
	for _, c := range []struct {
		name  string
		stdin string
		args  []string
		note  string
	}{
		{"export", "", []string{"--journal", export}, "entries of other units or containers skipped (cron: 31)"},
		{"json", "", []string{"--journal", js}, ""},
		{"json on stdin", string(jsonBytes), []string{"--journal", "-"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, errs := summary(c.stdin, c.args...)
			if got != want {
				t.Fatalf("journal replay differs from the files'\n got %s\nwant %s", got, want)
			}
			if !strings.Contains(errs, c.note) {
				t.Fatalf("stderr %q lacks %q", errs, c.note)
			}
		})
	}
}

func TestReplayInputErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.export")
	if err := os.WriteFile(bad, []byte("CONTAINER_TAG=mailu-front\nMESSAGE=a\n\nCONTAINER_TAG=mailu-front\nMESSAGE\n\x09\x00\x00\x00\x00\x00\x00\x00ab"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "nothing to replay"},
		{[]string{"--since", "7d", "front=x"}, exitUsage, "go with --docker"},
		{[]string{"--docker", "--since", "soon"}, exitUsage, `bad --since "soon"`},
		{[]string{"admin=-", "--journal", "-"}, exitUsage, "standard input (-) given twice"},
		{[]string{"--journal", filepath.Join(dir, "missing")}, exitFailed, "no such file"},
		{[]string{"--journal", bad}, exitFailed, "replay --journal " + bad + ": journal export: record 2: field MESSAGE: input ends after 2 of the value's 9 bytes"},
	} {
		code, _, errs := runReplay(t, "", c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errs, c.code, c.want)
		}
	}
}
