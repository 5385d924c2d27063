package mailugen

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func TestGenerate(t *testing.T) {
	for _, v := range []string{V2024, V20} {
		t.Run(v, func(t *testing.T) {
			dir := t.TempDir()
			tr, err := Generate(Options{Dir: dir, Lines: 30000, Attackers: 12, Seed: 5, Version: v})
			if err != nil {
				t.Fatal(err)
			}
			if tr.Lines < 29000 || tr.Lines > 31000 {
				t.Fatalf("%d lines, asked for 30000", tr.Lines)
			}
			// 12 attackers + 3 network sprays.
			if len(tr.Bans) != 15 || !slices.Contains(tr.Bans, "198.51.100.0/24") || !slices.Equal(tr.Alarms, []string{gatewayIP}) {
				t.Fatalf("truth %+v", tr)
			}
			total := 0
			for _, svc := range Services {
				var last time.Time
				for i, l := range readLines(t, tr.Files[svc]) {
					ts, rest, ok := strings.Cut(l, " ")
					tm, err := time.Parse(time.RFC3339Nano, ts)
					if !ok || err != nil || rest == "" {
						t.Fatalf("%s:%d: no docker prefix: %q", svc, i+1, l)
					}
					if tm.Before(last) {
						t.Fatalf("%s:%d: time goes back", svc, i+1)
					}
					last = tm
					total++
					if strings.ContainsRune(l, '\x01') || strings.ContainsRune(l, 0) {
						t.Fatalf("%s:%d: placeholder left: %q", svc, i+1, l)
					}
				}
			}
			if total != tr.Lines {
				t.Fatalf("files hold %d lines, truth says %d", total, tr.Lines)
			}
			// The same seed gives the same logs.
			dir2 := t.TempDir()
			if _, err := Generate(Options{Dir: dir2, Lines: 30000, Attackers: 12, Seed: 5, Version: v}); err != nil {
				t.Fatal(err)
			}
			for _, svc := range Services {
				a, _ := os.ReadFile(tr.Files[svc])
				b, _ := os.ReadFile(dir2 + "/" + svc + ".log")
				if string(a) != string(b) {
					t.Fatalf("%s differs between runs with one seed", svc)
				}
			}
		})
	}
}

func TestGenerateDistinct(t *testing.T) {
	dir := t.TempDir()
	tr, err := Generate(Options{Dir: dir, Distinct: 5000, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Lines != 5000 || len(tr.Bans) != 0 {
		t.Fatalf("truth %+v", tr)
	}
	f, err := os.Open(tr.Files["admin"])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		i := strings.LastIndex(l, " by ")
		addr := strings.TrimSuffix(l[i+4:], ".")
		if !strings.HasPrefix(addr, "2001:db8:") || seen[addr] {
			t.Fatalf("address %q not a new documentation address", addr)
		}
		seen[addr] = true
	}
}

func TestGenerateErrors(t *testing.T) {
	for _, opt := range []Options{{}, {Dir: t.TempDir(), Version: "1.9"}, {Dir: t.TempDir(), Distinct: 1 << 21}, {Dir: t.TempDir(), Attackers: -1}} {
		if _, err := Generate(opt); err == nil {
			t.Errorf("Generate(%+v) accepted", opt)
		}
	}
}
