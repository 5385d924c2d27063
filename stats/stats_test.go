package stats

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

func ev(min int, kind Kind, target, jail string, level int) Event {
	e := Event{Time: t0.Add(time.Duration(min) * time.Minute), Kind: kind, Jail: jail, Level: level}
	if target != "" {
		e.Target = netip.MustParsePrefix(target)
	}
	return e
}

// hours renders the non-zero hours as "HH:attempts/bans/alarms".
func hours(s Summary) string {
	var out []string
	for _, h := range s.Hours {
		if h.Attempts+h.Bans+h.Alarms > 0 {
			out = append(out, fmt.Sprintf("%s:%d/%d/%d", h.Start.Format("15"), h.Attempts, h.Bans, h.Alarms))
		}
	}
	return strings.Join(out, " ")
}

func counts(cs []Count) string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s=%d", c.Name, c.Bans))
	}
	return strings.Join(out, " ")
}

func offenders(os []Offender) string {
	var out []string
	for _, o := range os {
		out = append(out, fmt.Sprintf("%s=%d@%d", o.Target, o.Bans, o.MaxLevel))
	}
	return strings.Join(out, " ")
}

func TestAggregate(t *testing.T) {
	tests := []struct {
		name         string
		since, until time.Time
		events       []Event
		attempts     map[time.Time]map[string]uint64
		top          int
		hours        string
		nhours       int
		jails, nets  string
		offenders    string
		totals       Totals
	}{
		{
			name: "empty", since: t0, until: t0.Add(3 * time.Hour), top: 10, nhours: 4,
			totals: Totals{AttemptsByKind: map[string]uint64{}},
		},
		{
			name: "bans, alarms and attempts by hour", since: t0, until: t0.Add(3*time.Hour + 30*time.Minute), top: 10, nhours: 4,
			events: []Event{
				ev(5, Ban, "192.0.2.7/32", "auth", 0),
				ev(10, Alarm, "172.17.0.1/32", "", 0),
				ev(70, Ban, "192.0.2.9/32", "auth", 0),
				ev(75, Refresh, "192.0.2.7/32", "auth", 1),
				ev(80, Ban, "2001:db8:1:2::5/128", "manual", 0),
				ev(90, Unban, "2001:db8:1:2::5/128", "", 0),
				ev(130, Expire, "192.0.2.9/32", "auth", 0),
				ev(131, Other, "", "", 0),
				ev(200, Ban, "198.51.100.0/24", "fail2ban", 0),
			},
			attempts: map[time.Time]map[string]uint64{
				t0:                    {"auth-failure": 12, "port25-auth": 3},
				t0.Add(2 * time.Hour): {"auth-failure": 1},
			},
			hours: "10:15/1/1 11:0/3/0 12:1/0/0 13:0/1/0",
			jails: "auth=3 fail2ban=1 manual=1", nets: "192.0.2.0/24=3 198.51.100.0/24=1 2001:db8:1:2::/64=1",
			offenders: "192.0.2.7/32=2@1",
			totals: Totals{Attempts: 16, AttemptsByKind: map[string]uint64{"auth-failure": 13, "port25-auth": 3},
				Bans: 5, Refreshes: 1, Unbans: 1, Expiries: 1, Alarms: 1},
		},
		{
			name: "outside the period, top cut, escalated offender", since: t0.Add(30 * time.Minute), until: t0.Add(90 * time.Minute), top: 1, nhours: 2,
			events: []Event{
				ev(10, Ban, "203.0.113.1/32", "auth", 0), // before since
				ev(40, Ban, "203.0.113.2/32", "relay", 3),
				ev(50, Ban, "2001:db8::1/128", "auth", 0),
				ev(55, Ban, "2001:db8::2/128", "auth", 0),
				ev(100, Ban, "203.0.113.3/32", "auth", 5), // after until
			},
			attempts: map[time.Time]map[string]uint64{
				t0.Add(-time.Hour):    {"auth-failure": 50}, // ends before since
				t0:                    {"auth-failure": 2},  // overlaps since
				t0.Add(2 * time.Hour): {"auth-failure": 9},  // after until
			},
			hours: "10:2/3/0", jails: "auth=2", nets: "2001:db8::/64=2", offenders: "203.0.113.2/32=1@3",
			totals: Totals{Attempts: 2, AttemptsByKind: map[string]uint64{"auth-failure": 2}, Bans: 3},
		},
		{
			name: "span cut to a year", since: t0.Add(-5 * MaxSpan), until: t0, top: 10, nhours: int(MaxSpan/time.Hour) + 1,
			totals: Totals{AttemptsByKind: map[string]uint64{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New(tt.since, tt.until)
			for i := len(tt.events) - 1; i >= 0; i-- { // newest first, as the store gives them
				a.Add(tt.events[i])
			}
			for h, c := range tt.attempts {
				a.Attempts(h, c)
			}
			s := a.Summary(tt.top)
			if len(s.Hours) != tt.nhours {
				t.Errorf("%d hours, want %d", len(s.Hours), tt.nhours)
			}
			for i := 1; i < len(s.Hours); i++ {
				if s.Hours[i].Start.Sub(s.Hours[i-1].Start) != time.Hour {
					t.Fatalf("hours not consecutive at %d: %v, %v", i, s.Hours[i-1].Start, s.Hours[i].Start)
				}
			}
			for _, c := range []struct{ what, got, want string }{
				{"hours", hours(s), tt.hours}, {"jails", counts(s.Jails), tt.jails},
				{"networks", counts(s.Networks), tt.nets}, {"offenders", offenders(s.Offenders), tt.offenders},
				{"totals", fmt.Sprintf("%+v", s.Totals), fmt.Sprintf("%+v", tt.totals)},
			} {
				if c.got != c.want {
					t.Errorf("%s: %q, want %q", c.what, c.got, c.want)
				}
			}
		})
	}
}

func TestNetwork(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"192.0.2.77/32", "192.0.2.0/24"},
		{"192.0.2.128/25", "192.0.2.0/24"},
		{"198.51.0.0/16", "198.51.0.0/16"},
		{"2001:db8:1:2:3::1/128", "2001:db8:1:2::/64"},
		{"2001:db8:1::/48", "2001:db8:1::/48"},
	} {
		if got := Network(netip.MustParsePrefix(c.in)).String(); got != c.want {
			t.Errorf("Network(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}

// TestSummaryJSON pins the shape scripts read: every key present, empty
// lists as [], not null.
func TestSummaryJSON(t *testing.T) {
	a := New(t0, t0.Add(time.Hour))
	e := ev(5, Ban, "192.0.2.7/32", "auth", 2)
	a.Add(e)
	b, err := json.Marshal(a.Summary(10))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"since":"2026-11-30T10:00:00Z","until":"2026-11-30T11:00:00Z",` +
		`"hours":[{"start":"2026-11-30T10:00:00Z","attempts":0,"bans":1,"alarms":0},{"start":"2026-11-30T11:00:00Z","attempts":0,"bans":0,"alarms":0}],` +
		`"totals":{"attempts":0,"attempts_by_kind":{},"bans":1,"refreshes":0,"unbans":0,"expiries":0,"alarms":0},` +
		`"top_jails":[{"name":"auth","bans":1}],"top_networks":[{"name":"192.0.2.0/24","bans":1}],` +
		`"repeat_offenders":[{"target":"192.0.2.7/32","bans":1,"max_level":2,"last":"2026-11-30T10:05:00Z"}]}`
	if string(b) != want {
		t.Errorf("JSON\n%s\nwant\n%s", b, want)
	}
	empty, _ := json.Marshal(New(t0, t0).Summary(10))
	for _, k := range []string{`"top_jails":[]`, `"top_networks":[]`, `"repeat_offenders":[]`} {
		if !strings.Contains(string(empty), k) {
			t.Errorf("empty summary has no %s: %s", k, empty)
		}
	}
}
