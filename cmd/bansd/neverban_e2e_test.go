package main

import (
	"strings"
	"syscall"
	"testing"

	"github.com/bansd/bansd/control"
)

// TestReloadIgnoreIPManualBan: an ignoreip added by SIGHUP is honoured by
// manual bans too (the ban manager asks the engine, which reloaded,
// instead of keeping the start-up list), and --force lifts it as it lifts
// any allow-list entry; an IPv4-mapped spelling of Mailu's SUBNET is
// refused like the plain one, with or without --force.
func TestReloadIgnoreIPManualBan(t *testing.T) {
	in := start(t)
	in.mustCtl(t, 0, "ban", "--for", "1h", "203.0.113.65")

	in.writeConfig(t, "[engine]\nignoreip = [\"203.0.113.64/26\"]\n")
	in.cmd.Process.Signal(syscall.SIGHUP)
	waitReload(t, in, func(r *control.ReloadResult) bool { return r != nil && r.OK })
	if h := in.mustCtl(t, 0, "history", "--kind", "allow-list"); !strings.Contains(h, "ignoreip") || !strings.Contains(h, "added 203.0.113.64/26") {
		t.Errorf("history has no allow-list change:\n%s", h)
	}

	for _, args := range [][]string{
		{"ban", "--for", "1h", "203.0.113.70"},
		{"ban", "--for", "1h", "::ffff:192.168.203.0/120"},
		{"ban", "--for", "1h", "--force", "::ffff:192.168.203.0/120"},
	} {
		out := in.mustCtl(t, 1, args...)
		if !strings.Contains(out, "never") {
			t.Errorf("bansctl %s: refusal does not name the rule:\n%s", strings.Join(args, " "), out)
		}
	}
	if k := in.kernel(t, "v4_32"); strings.Contains(k, "203.0.113.70") {
		t.Errorf("an ignoreip address reached the kernel without --force:\n%s", k)
	}
	in.mustCtl(t, 0, "ban", "--for", "1h", "--force", "203.0.113.70")
	if k := in.kernel(t, "v4_32"); !strings.Contains(k, "203.0.113.70") {
		t.Errorf("--force did not ban an ignoreip address:\n%s", k)
	}
	if k := in.kernel(t, "v4_24"); strings.Contains(k, "192.168.203.0") {
		t.Errorf("Mailu's SUBNET reached the kernel:\n%s", k)
	}
}
