package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
)

func TestPrintWarmup(t *testing.T) {
	until := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		srcs []control.SourceStatus
		want []string // lines that must appear; nil: nothing printed
	}{
		{"no warm-up", []control.SourceStatus{{Service: "front"}}, nil},
		{"complete and partial", []control.SourceStatus{
			{Service: "front", Warmup: &control.WarmupStatus{State: "complete", Lines: 1200, From: until.Add(-time.Hour), Until: until, Seconds: 0.25}},
			{Service: "admin"},
			{Service: "smtp", Warmup: &control.WarmupStatus{State: "partial", Lines: 100, Skipped: 50, From: until.Add(-10 * time.Minute), Until: until, Seconds: 1.5,
				Why: "more than docker.warmup_max_lines (100)"}},
		}, []string{
			"Warm-up (windows rebuilt from the log before each cursor):",
			"front    complete  1200              1h0m      0.25s  -",
			"smtp     partial   100 (+50 skipped)  10m0s    1.50s  more than docker.warmup_max_lines (100)",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := printWarmup(&b, tc.srcs); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			if tc.want == nil {
				if out != "" {
					t.Fatalf("printed %q, want nothing", out)
				}
				return
			}
			for _, w := range tc.want {
				if !strings.Contains(squash(out), squash(w)) {
					t.Errorf("missing %q in:\n%s", w, out)
				}
			}
			if strings.Contains(out, "admin") {
				t.Errorf("a service without warm-up is listed:\n%s", out)
			}
		})
	}
}

// squash collapses runs of spaces, so that a test does not pin column widths.
func squash(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(lines, "\n")
}
