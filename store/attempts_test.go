package store

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAttemptsPerHour(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bansd.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetEventLimits(EventLimits{MaxAge: 48 * time.Hour})
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	adds := []struct {
		at     time.Time
		counts map[string]uint64
	}{
		{t0.Add(5 * time.Minute), map[string]uint64{"auth-failure": 3}},
		{t0.Add(59 * time.Minute), map[string]uint64{"auth-failure": 2, "relay-denied": 1, "scan": 0}},
		{t0.Add(61 * time.Minute), map[string]uint64{"port25-auth": 7}},
		{t0.Add(3 * time.Hour), map[string]uint64{"scan": 0}}, // nothing: no record
	}
	for _, a := range adds {
		if err := db.AddAttempts(a.at, a.counts); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	if db, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetEventLimits(EventLimits{MaxAge: 48 * time.Hour})

	hours := func(since time.Time) string {
		var out []string
		if err := db.EachAttemptHour(since, func(h time.Time, c map[string]uint64) {
			out = append(out, fmt.Sprintf("%s %v", h.Format("15:04"), c))
		}); err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, "; ")
	}
	tests := []struct {
		since time.Time
		want  string
	}{
		{time.Time{}, "03:00 map[auth-failure:5 relay-denied:1]; 04:00 map[port25-auth:7]"},
		{t0.Add(30 * time.Minute), "03:00 map[auth-failure:5 relay-denied:1]; 04:00 map[port25-auth:7]"},
		{t0.Add(time.Hour), "04:00 map[port25-auth:7]"},
		{t0.Add(2 * time.Hour), ""},
	}
	for _, tt := range tests {
		if got := hours(tt.since); got != tt.want {
			t.Errorf("since %v: %q, want %q", tt.since, got, tt.want)
		}
	}
	// A write 49.5 hours later drops the hour that ended before its age bound.
	if err := db.AddAttempts(t0.Add(49*time.Hour+30*time.Minute), map[string]uint64{"auth-failure": 1}); err != nil {
		t.Fatal(err)
	}
	if got, want := hours(time.Time{}), "04:00 map[port25-auth:7]; 04:00 map[auth-failure:1]"; got != want {
		t.Errorf("after pruning: %q, want %q", got, want)
	}
}
