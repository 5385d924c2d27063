package parse

import (
	"testing"
	"time"

	"github.com/bansd/bansd/sources"
)

func TestLineTime(t *testing.T) {
	ref := time.Date(2024, 9, 3, 0, 0, 0, 0, time.UTC)
	docker := time.Date(2026, 11, 20, 1, 2, 3, 4, time.UTC)
	tests := []struct {
		text string
		dt   time.Time
		want time.Time
		ok   bool
	}{
		{"anything", docker, docker, true},
		{"2024/09/02 20:46:22 [info] 23#23: *341375 client login failed", time.Time{}, time.Date(2024, 9, 2, 20, 46, 22, 0, time.UTC), true},
		{"[2024-09-02 22:25:33,601] INFO in nginx: Login attempt", time.Time{}, time.Date(2024, 9, 2, 22, 25, 33, 601e6, time.UTC), true},
		{"Sep 02 23:28:51 submission-login: Info: Disconnected", time.Time{}, time.Date(2024, 9, 2, 23, 28, 51, 0, time.UTC), true},
		{"2023-08-14 20:07:05 #156(rspamd_proxy) <37497c>; proxy;", time.Time{}, time.Date(2023, 8, 14, 20, 7, 5, 0, time.UTC), true},
		{`194.58.173.67 - - [18/Jan/2022:11:45:44 +0300] "POST /sso/login HTTP/1.1" 302 218`, time.Time{}, time.Date(2022, 1, 18, 8, 45, 44, 0, time.UTC), true},
		{"no time on this line at all", time.Time{}, time.Time{}, false},
		{"short", time.Time{}, time.Time{}, false},
	}
	for _, tc := range tests {
		got, ok := LineTime(sources.Line{Text: tc.text, Time: tc.dt}, ref)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("LineTime(%q) = %v, %v; want %v, %v", tc.text, got, ok, tc.want, tc.ok)
		}
	}
}
