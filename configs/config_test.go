package configs

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jailparse "github.com/bansd/bansd/jail/parse"
)

func TestDefaultIsValidAndMatchesShippedFile(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile("bansd.toml")
	if err != nil {
		t.Fatal(err)
	}
	if string(shipped) != string(DefaultTOML()) {
		t.Fatal("embedded default differs from configs/bansd.toml")
	}
	if c.Firewall.Priority != -310 || c.Firewall.Table != "bansd" {
		t.Errorf("firewall = %+v", c.Firewall)
	}
	if c.Engine.Subnet != netip.MustParsePrefix("192.168.203.0/24") {
		t.Errorf("subnet = %v", c.Engine.Subnet)
	}
	want := []string{"api", "auth", "limiter", "network", "network48", "relay", "scan", "smtp-auth-bots"}
	if got := strings.Join(c.JailNames(), ","); got != strings.Join(want, ",") {
		t.Errorf("jails = %s", got)
	}
	if c.Jails["scan"].Enabled {
		t.Error("scan jail must be off by default")
	}
	if j := c.Jails["network"]; j.Prefix4 != 24 || j.Prefix6 != 64 || j.MinAddresses < 2 {
		t.Errorf("network jail = %+v", j)
	}
}

func TestOverlayKeepsDefaults(t *testing.T) {
	c, err := Parse("x.toml", []byte(`
[jails.auth]
maxretry = 3

[jails.custom]
events = ["relay-denied"]
findtime = "1d"
bantime = "1w"
maxretry = 2
`))
	if err != nil {
		t.Fatal(err)
	}
	if j := c.Jails["auth"]; j.MaxRetry != 3 || j.FindTime != time.Hour || !j.Enabled {
		t.Errorf("auth = %+v", j)
	}
	if j := c.Jails["custom"]; j.FindTime != 24*time.Hour || j.BanTime != 7*24*time.Hour || j.Prefix4 != 32 || j.Prefix6 != 128 || j.MinAddresses != 1 {
		t.Errorf("custom = %+v", j)
	}
	if c.Ban.ManualBantime != 24*time.Hour {
		t.Errorf("default ban.manual_bantime = %s, want 24h", c.Ban.ManualBantime)
	}
	if c, err := Parse("m.toml", []byte("[ban]\nmanual_bantime = \"2d\"\n")); err != nil || c.Ban.ManualBantime != 48*time.Hour {
		t.Errorf("ban.manual_bantime = \"2d\": %v", err)
	}
	if c.File != "x.toml" {
		t.Errorf("File = %q", c.File)
	}
}

func TestErrorsNameFileLineKey(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		key      string
		msg      string
	}{
		{"unknown key", "[daemon]\nsockett = 'x'\n", 2, "daemon.sockett", "unknown key"},
		{"unknown table", "\n\n[nope]\nx = 1\n", 3, "nope", "unknown key"},
		{"bad duration", "[jails.auth]\nenabled = true\nfindtime = \"10 minutes\"\n", 3, "jails.auth.findtime", "bad duration"},
		{"bad cidr", "[engine]\nignoreip = [\"192.0.2.0/33\"]\n", 2, "engine.ignoreip", "bad CIDR"},
		{"bad address", "[engine]\nignoreip = [\"192.0.2.300\"]\n", 2, "engine.ignoreip", "bad address"},
		{"v6 subnet as v4", "[engine]\nsubnet = \"2001:db8::/64\"\n", 2, "engine.subnet", "not an IPv4 CIDR"},
		{"unknown event", "[jails.auth]\nevents = [\"auth-fail\"]\n", 2, "jails.auth.events", "unknown event"},
		{"bad type", "[jails.auth]\nmaxretry = \"ten\"\n", 2, "jails.auth.maxretry", ""},
		{"priority after dnat", "[firewall]\npriority = 10\n", 2, "firewall.priority", "outside"},
		{"metrics not loopback", "[daemon]\nmetrics_listen = \"0.0.0.0:9100\"\n", 2, "daemon.metrics_listen", "loopback"},
		{"bantime over max", "[ban]\nbantime_max = \"1h\"\n", 0, "jails.", "longer than"},
		{"manual bantime not a duration", "[ban]\nmanual_bantime = \"forever\"\n", 2, "ban.manual_bantime", "bad duration"},
		{"manual bantime too short", "\n[ban]\nmanual_bantime = \"0s\"\n", 3, "ban.manual_bantime", "shorter than"},
		{"manual bantime over 10 years", "[ban]\nmanual_bantime = \"600w\"\n", 2, "ban.manual_bantime", "--for permanent"},
		{"zero prefixes", "[jails.x]\nevents = [\"scan\"]\nfindtime = \"1m\"\nbantime = \"1m\"\nmaxretry = 1\nprefix4 = 0\nprefix6 = 0\n", 1, "jails.x", "match nothing"},
		{"syntax", "[engine\n", 0, "", "expected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("/etc/bansd/bansd.toml", []byte(tt.in))
			if err == nil {
				t.Fatal("no error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("not a *configs.Error: %T %v", err, err)
			}
			if ce.File != "/etc/bansd/bansd.toml" {
				t.Errorf("file = %q", ce.File)
			}
			if tt.line != 0 && ce.Line != tt.line {
				t.Errorf("line = %d, want %d (%v)", ce.Line, tt.line, err)
			}
			if !strings.HasPrefix(ce.Key, tt.key) {
				t.Errorf("key = %q, want prefix %q", ce.Key, tt.key)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q lacks %q", err, tt.msg)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Fatalf("missing file: %v", err)
	}
	p := filepath.Join(t.TempDir(), "b.toml")
	if err := os.WriteFile(p, []byte("[firewall]\nreconcile = \"5s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil || c.Firewall.Reconcile != 5*time.Second {
		t.Fatalf("%v %+v", err, c)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"10m", 10 * time.Minute, true},
		{"1w", 7 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"1.5d", 36 * time.Hour, true},
		{"90s", 90 * time.Second, true},
		{"", 0, false},
		{"10", 0, false},
		{"-1h", 0, false},
		{"1y", 0, false},
		{"9999999999999w", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"192.0.2.7", "192.0.2.7/32"},
		{"192.0.2.7/24", "192.0.2.0/24"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"},
		{"::ffff:192.0.2.0/120", "192.0.2.0/24"},
		{"2001:db8::1/64", "2001:db8::/64"},
		{"fe80::1%eth0", ""},
		{"192.0.2.0/33", ""},
		{"not-an-ip", ""},
	}
	for _, tt := range tests {
		p, err := ParsePrefix(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParsePrefix(%q) = %v, want error", tt.in, p)
			}
			continue
		}
		if err != nil || p.String() != tt.want {
			t.Errorf("ParsePrefix(%q) = %v, %v, want %s", tt.in, p, err, tt.want)
		}
	}
}

func TestSeenTimeoutFollowsFindtime(t *testing.T) {
	c, err := Parse("x.toml", []byte("[jails.slow]\nevents = [\"auth-failure\"]\nfindtime = \"1d\"\nmaxretry = 3\nbantime = \"1h\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Firewall.SeenTimeout != 24*time.Hour || c.Firewall.Attribution != "kernel" {
		t.Fatalf("seen_timeout %s, attribution %q", c.Firewall.SeenTimeout, c.Firewall.Attribution)
	}
	_, err = Parse("y.toml", []byte("[firewall]\nseen_timeout = \"1h\"\n[jails.slow]\nevents = [\"auth-failure\"]\nfindtime = \"1d\"\nmaxretry = 3\nbantime = \"1h\"\n"))
	if err == nil || !strings.Contains(err.Error(), "jails.slow.findtime") || !strings.Contains(err.Error(), "seen_timeout") {
		t.Fatalf("explicit seen_timeout shorter than a findtime: %v", err)
	}
	_, err = Parse("z.toml", []byte("[firewall]\nattribution = \"log\"\n"))
	if err == nil || !strings.Contains(err.Error(), "z.toml:2: firewall.attribution") {
		t.Fatalf("bad attribution: %v", err)
	}
}

func TestScope(t *testing.T) {
	def, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if def.Firewall.Scope != "all" || len(def.Firewall.ScopePorts) != 0 {
		t.Fatalf("default scope %q, ports %v", def.Firewall.Scope, def.Firewall.ScopePorts)
	}
	c, err := Parse("s.toml", []byte("[firewall]\nscope = \"mail\"\nscope_ports = [8443, 22000, 8443]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Firewall.Scope != "mail" || !slices.Equal(c.Firewall.ScopePorts, []uint16{8443, 22000}) {
		t.Fatalf("scope %q, ports %v", c.Firewall.Scope, c.Firewall.ScopePorts)
	}
	if c.Firewall.Equal(def.Firewall) || !c.Firewall.Equal(c.Firewall) {
		t.Fatal("Firewall.Equal does not tell the scopes apart")
	}
	for _, tt := range []struct{ in, want string }{
		{"[firewall]\nscope = \"ssh\"\n", "s.toml:2: firewall.scope"},
		{"[firewall]\n\nscope_ports = [0]\n", "s.toml:3: firewall.scope_ports"},
		{"[firewall]\nscope_ports = [65536]\n", "s.toml:2: firewall.scope_ports"},
		{"[firewall]\nscope_ports = \"25\"\n", "firewall.scope_ports"},
	} {
		if _, err := Parse("s.toml", []byte(tt.in)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

// TestJailEventVocabulary: a jail may count every kind the parser calls
// countable, and is refused one it only exempts or alarms on, naming the
// file, line and key.
func TestJailEventVocabulary(t *testing.T) {
	for _, ev := range jailparse.CountableNames() {
		if _, err := Parse("x.toml", []byte("[jails.j]\nevents = [\""+ev+"\"]\nfindtime = \"10m\"\nmaxretry = 5\nbantime = \"1h\"\n")); err != nil {
			t.Errorf("events = [%q]: %v", ev, err)
		}
	}
	for _, ev := range []string{"auth-success", "relay-client", "misconfigured", "nosuch"} {
		_, err := Parse("x.toml", []byte("[jails.j]\nevents = [\""+ev+"\"]\nfindtime = \"10m\"\nmaxretry = 5\nbantime = \"1h\"\n"))
		if err == nil || !strings.Contains(err.Error(), "x.toml:2") || !strings.Contains(err.Error(), "jails.j.events") || !strings.Contains(err.Error(), "port25-auth") {
			t.Errorf("events = [%q]: %v, want a refusal naming x.toml:2, jails.j.events and the known events", ev, err)
		}
	}
}

func TestRelayShieldKey(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
		err  string
	}{
		{"", true, ""},
		{"[firewall]\nrelay_shield = false\n", false, ""},
		{"[firewall]\nrelay_shield = true\n", true, ""},
		{"[firewall]\n\nrelay_shield = \"no\"\n", false, "firewall.relay_shield"},
	} {
		c, err := Parse("r.toml", []byte(tt.in))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Parse(%q) = %v, want an error naming %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.in, err)
		}
		if c.Firewall.RelayShield != tt.want {
			t.Errorf("Parse(%q): relay_shield = %v, want %v", tt.in, c.Firewall.RelayShield, tt.want)
		}
	}
}
