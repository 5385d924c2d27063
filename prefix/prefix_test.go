package prefix

import (
	"net/netip"
	"testing"
)

func TestNormalize(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"::ffff:172.17.0.0/112", "172.17.0.0/16"},
		{"::ffff:172.17.3.4/112", "172.17.0.0/16"},
		{"::ffff:203.0.113.7/128", "203.0.113.7/32"},
		{"::ffff:0.0.0.0/96", "0.0.0.0/0"},
		{"203.0.113.77/24", "203.0.113.0/24"},
		{"2001:db8::1/64", "2001:db8::/64"},
		{"::ffff:0:0/95", ""},
	} {
		got, err := Normalize(netip.MustParsePrefix(c.in))
		if c.want == "" {
			if err == nil {
				t.Errorf("Normalize(%s) = %s, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got.String() != c.want {
			t.Errorf("Normalize(%s) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"::ffff:172.17.0.0/112", "172.17.0.0/16"},
		{" 192.0.2.9 ", "192.0.2.9/32"},
		{"::ffff:192.0.2.9", "192.0.2.9/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"198.51.100.300", ""},
		{"198.51.100.0/33", ""},
		{"fe80::1%eth0", ""},
	} {
		got, err := Parse(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("Parse(%q) = %s, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got.String() != c.want {
			t.Errorf("Parse(%q) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
}
