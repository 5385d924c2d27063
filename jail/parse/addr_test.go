package parse

import (
	"net/netip"
	"strings"
	"testing"
)

// The fast paths must agree with the library rules they stand in for.

func TestParseIPv4AgreesWithNetip(t *testing.T) {
	for _, s := range []string{
		"192.0.2.1", "0.0.0.0", "255.255.255.255", "256.1.1.1", "1.2.3", "1.2.3.4.5",
		"01.2.3.4", "1.02.3.4", "1.2.3.00", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4 ", "",
		"2001:db8::1", "::ffff:192.0.2.1", "1.2.3.4%eth0", "1.2.3.-4", "999999999999.1.1.1",
	} {
		checkIPv4(t, s)
	}
}

func FuzzParseIPv4(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "01.2.3.4", "1.2.3", "255.255.255.256", "::1"} {
		f.Add(s)
	}
	f.Fuzz(checkIPv4)
}

func checkIPv4(t *testing.T, s string) {
	got, ok := parseIPv4(s)
	want, err := netip.ParseAddr(s)
	if ok {
		if err != nil || want != got {
			t.Fatalf("parseIPv4(%q) = %v, netip says %v, %v", s, got, want, err)
		}
		return
	}
	if err == nil && want.Is4() {
		t.Fatalf("parseIPv4(%q) refused an address netip reads as %v", s, want)
	}
}

func TestLastIndexAgreesWithStrings(t *testing.T) {
	for _, c := range [][2]string{
		{"a from: b from: c", " from: "}, {"from: ", " from: "}, {" from: ", " from: "},
		{"x, rip=1, rip=2", ", rip="}, {"", "a"}, {"abc", ""}, {"aaaa", "aa"}, {"ab", "abc"},
	} {
		if got, want := lastIndex(c[0], c[1]), strings.LastIndex(c[0], c[1]); got != want {
			t.Errorf("lastIndex(%q, %q) = %d, strings.LastIndex %d", c[0], c[1], got, want)
		}
	}
}

func FuzzLastIndex(f *testing.F) {
	f.Add("u from: x from: 1.2.3.4/5", " from: ")
	f.Add("aaaa", "aa")
	f.Fuzz(func(t *testing.T, s, sep string) {
		if got, want := lastIndex(s, sep), strings.LastIndex(s, sep); got != want {
			t.Fatalf("lastIndex(%q, %q) = %d, strings.LastIndex %d", s, sep, got, want)
		}
	})
}
