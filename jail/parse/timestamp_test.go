package parse

import (
	"testing"
	"time"
)

func TestTimeAgrees(t *testing.T) {
	docker := time.Date(2026, 1, 1, 12, 0, 0, 400e6, time.UTC)
	own := docker.Truncate(time.Second)
	cases := []struct {
		name string
		own  time.Time
		want bool
	}{
		{"same second", own, true},
		{"docker 1.4 s late", own.Add(-time.Second), true},
		{"1.6 s ahead", own.Add(2 * time.Second), true},
		{"2.6 s ahead", own.Add(3 * time.Second), false},
		{"10 s behind", own.Add(-10 * time.Second), false},
		{"UTC+2", own.Add(2 * time.Hour), true},
		{"UTC-5:30 style offset", own.Add(-5*time.Hour - 30*time.Minute), true},
		{"UTC+5:45", own.Add(5*time.Hour + 45*time.Minute), true},
		{"UTC+14", own.Add(14 * time.Hour), true},
		{"UTC+2 and 5 s off", own.Add(2*time.Hour + 5*time.Second), false},
		{"7 minutes off", own.Add(7 * time.Minute), false},
		{"a day off", own.Add(24 * time.Hour), false},
	}
	for _, c := range cases {
		if got := timeAgrees(c.own, docker); got != c.want {
			t.Errorf("%s: timeAgrees = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestParseSyslogTime(t *testing.T) {
	cases := []struct {
		s    string
		ref  time.Time
		want time.Time
		ok   bool
	}{
		{"Sep 02 23:28:51", time.Date(2024, 9, 3, 0, 0, 0, 0, time.UTC), time.Date(2024, 9, 2, 23, 28, 51, 0, time.UTC), true},
		{"Sep  2 23:28:51", time.Date(2024, 9, 3, 0, 0, 0, 0, time.UTC), time.Date(2024, 9, 2, 23, 28, 51, 0, time.UTC), true},
		{"Dec 31 23:59:59", time.Date(2025, 1, 1, 0, 0, 1, 0, time.UTC), time.Date(2024, 12, 31, 23, 59, 59, 0, time.UTC), true},
		{"Jan 01 00:00:01", time.Date(2024, 12, 31, 23, 59, 58, 0, time.UTC), time.Date(2025, 1, 1, 0, 0, 1, 0, time.UTC), true},
		{"Feb 29 12:00:00", time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC), true},
		{"Foo 01 00:00:00", time.Now(), time.Time{}, false},
		{"Jan 32 00:00:00", time.Now(), time.Time{}, false},
		{"Jan 01 24:00:00", time.Now(), time.Time{}, false},
		{"Jan 01 00:00", time.Now(), time.Time{}, false},
		{"Jan 0x 00:00:00", time.Now(), time.Time{}, false},
	}
	for _, c := range cases {
		got, ok := parseSyslogTime(c.s, c.ref)
		if ok != c.ok || !got.Equal(c.want) {
			t.Errorf("parseSyslogTime(%q, %v) = %v, %v; want %v, %v", c.s, c.ref, got, ok, c.want, c.ok)
		}
	}
}

func TestParseDateTimes(t *testing.T) {
	if got, ok := parseDateTime("2024/09/02 20:46:22", '/'); !ok || !got.Equal(time.Date(2024, 9, 2, 20, 46, 22, 0, time.UTC)) {
		t.Errorf("nginx time: %v %v", got, ok)
	}
	if got, ok := parseAdminTime("2024-09-02 22:25:33,601"); !ok || !got.Equal(time.Date(2024, 9, 2, 22, 25, 33, 601e6, time.UTC)) {
		t.Errorf("admin time: %v %v", got, ok)
	}
	for _, bad := range []string{"2024/13/02 20:46:22", "2024/09/00 20:46:22", "2024-09-02 20:46:22", "2024/09/02T20:46:22", "20x4/09/02 20:46:22", "2024/09/02 20:60:22"} {
		if _, ok := parseDateTime(bad, '/'); ok {
			t.Errorf("parseDateTime(%q) accepted", bad)
		}
	}
	if _, ok := parseAdminTime("2024-09-02 22:25:33.601"); ok {
		t.Error("admin time with '.' accepted")
	}
}
