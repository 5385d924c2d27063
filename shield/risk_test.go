package shield

import (
	"slices"
	"strings"
	"testing"
)

func TestRisk(t *testing.T) {
	risky := Facts{UserlandProxy: true, PublishedAll: []uint16{587, 25, 25, 465}, HostIPv6: true}
	tests := []struct {
		name  string
		f     Facts
		ports []uint16
		why   string
	}{
		{"all facts hold", risky, []uint16{25, 465, 587}, "OPEN RELAY RISK"},
		{"proxy off", func() Facts { f := risky; f.UserlandProxy = false; return f }(), nil, "userland proxy is off"},
		{"mailu ipv6", func() Facts { f := risky; f.MailuIPv6 = true; return f }(), nil, "Mailu network has IPv6"},
		{"no host ipv6", func() Facts { f := risky; f.HostIPv6 = false; return f }(), nil, "no global IPv6"},
		{"specific addresses", func() Facts { f := risky; f.PublishedAll = nil; return f }(), nil, "no Mailu port is published"},
		{"only port 0", func() Facts { f := risky; f.PublishedAll = []uint16{0}; return f }(), nil, "no Mailu port is published"},
		{"port 0 dropped", func() Facts { f := risky; f.PublishedAll = []uint16{0, 25}; return f }(), []uint16{25}, "ports 25 "},
		{"zero facts", Facts{}, nil, "no open-relay risk"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.f.PublishedAll)
			ports, why := Risk(tc.f)
			if !slices.Equal(ports, tc.ports) {
				t.Errorf("ports = %v, want %v", ports, tc.ports)
			}
			if !strings.Contains(why, tc.why) {
				t.Errorf("why = %q, want it to contain %q", why, tc.why)
			}
			if !slices.Equal(tc.f.PublishedAll, in) {
				t.Errorf("Risk changed its input: %v", tc.f.PublishedAll)
			}
		})
	}
}
