package parse

import "testing"

// TestKindNames: every kind has one name, and exactly the countable ones
// parse back, so the configuration's vocabulary (CountableNames) is the
// parser's kinds and nothing else.
func TestKindNames(t *testing.T) {
	seen := map[string]Kind{}
	for k := range KindCount {
		n := k.String()
		if n == "" || n == "unknown" {
			t.Errorf("kind %d has no name", k)
		}
		if o, dup := seen[n]; dup {
			t.Errorf("kinds %d and %d are both %q", o, k, n)
		}
		seen[n] = k
		got, ok := ParseKind(n)
		if ok != k.Countable() || (ok && got != k) {
			t.Errorf("ParseKind(%q) = %v, %v; countable %v", n, got, ok, k.Countable())
		}
	}
	names := CountableNames()
	for _, n := range names {
		if k, ok := ParseKind(n); !ok || !k.Countable() {
			t.Errorf("CountableNames has %q, which does not parse as countable", n)
		}
	}
	for _, n := range []string{"auth-success", "relay-client", "misconfigured", "none", "unknown", ""} {
		if _, ok := ParseKind(n); ok {
			t.Errorf("ParseKind(%q) accepted: a jail must not count it", n)
		}
	}
	if len(names) != 8 {
		t.Errorf("CountableNames = %v", names)
	}
}
