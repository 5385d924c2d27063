package configs

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestBlocklists(t *testing.T) {
	c, err := Parse("x.toml", []byte(`
[blocklists.spamhaus-drop]
url = "https://www.spamhaus.org/drop/drop.txt"
refresh = "12h"
bantime = "2d"

[blocklists.mine]
file = "/etc/bansd/blocklist.txt"
refresh = "30s"
max_size = "1MiB"
max_entries = 1000
timeout = "5s"
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.BlocklistNames(), ","); got != "mine,spamhaus-drop" {
		t.Fatalf("names = %s", got)
	}
	d := c.Blocklists["spamhaus-drop"]
	if d.Source() != "https://www.spamhaus.org/drop/drop.txt" || d.Refresh != 12*time.Hour || d.BanTime != 48*time.Hour ||
		d.Timeout != time.Minute || d.MaxSize != 64<<20 || d.MaxEntries != 500_000 || d.Jail() != "blocklist:spamhaus-drop" {
		t.Errorf("spamhaus-drop = %+v", d)
	}
	m := c.Blocklists["mine"]
	if m.Source() != "/etc/bansd/blocklist.txt" || m.Refresh != 30*time.Second || m.BanTime != 24*time.Hour ||
		m.MaxSize != 1<<20 || m.MaxEntries != 1000 || m.Timeout != 5*time.Second {
		t.Errorf("mine = %+v", m)
	}
	if def, _ := Default(); len(def.Blocklists) != 0 {
		t.Errorf("the default config has blocklists: %v", def.BlocklistNames())
	}
}

func TestBlocklistErrors(t *testing.T) {
	for _, c := range []struct {
		name, in string
		line     int
		key, msg string
	}{
		{"no source", "[blocklists.x]\nrefresh = \"1h\"\n", 1, "blocklists.x", "needs url"},
		{"both", "[blocklists.x]\nurl = \"https://lists.example/a\"\nfile = \"/a\"\n", 3, "blocklists.x.file", "not both"},
		{"plain http", "[blocklists.x]\nurl = \"http://lists.example/a\"\n", 2, "blocklists.x.url", "loopback"},
		{"not a url", "[blocklists.x]\nurl = \"ftp://lists.example/a\"\n", 2, "blocklists.x.url", "https://"},
		{"relative file", "[blocklists.x]\nfile = \"list.txt\"\n", 2, "blocklists.x.file", "absolute"},
		{"bad refresh", "[blocklists.x]\nfile = \"/a\"\nrefresh = \"often\"\n", 3, "blocklists.x.refresh", "bad duration"},
		{"url too often", "[blocklists.x]\nurl = \"https://lists.example/a\"\nrefresh = \"10s\"\n", 3, "blocklists.x.refresh", "at most once a minute"},
		{"loopback url may be fast", "[blocklists.x]\nurl = \"http://127.0.0.1:8080/a\"\nrefresh = \"1s\"\nbantime = \"1s\"\n", 4, "blocklists.x.bantime", "lapse"},
		{"bantime not over refresh", "[blocklists.x]\nfile = \"/a\"\nrefresh = \"1d\"\nbantime = \"1d\"\n", 4, "blocklists.x.bantime", "lapse"},
		{"timeout over refresh", "[blocklists.x]\nfile = \"/a\"\nrefresh = \"1m\"\ntimeout = \"2m\"\n", 4, "blocklists.x.timeout", "longer than refresh"},
		{"bad size", "[blocklists.x]\nfile = \"/a\"\nmax_size = \"64 megs\"\n", 3, "blocklists.x.max_size", "bad size"},
		{"size too small", "[blocklists.x]\nfile = \"/a\"\nmax_size = \"10\"\n", 3, "blocklists.x.max_size", "outside"},
		{"entries", "[blocklists.x]\nfile = \"/a\"\nmax_entries = 0\n", 3, "blocklists.x.max_entries", "outside"},
		{"bad name", "[blocklists.\"a b\"]\nfile = \"/a\"\n", 0, "blocklists.a b", "blocklist name"},
		{"unknown key", "[blocklists.x]\nfile = \"/a\"\nurll = \"https://x/\"\n", 3, "blocklists.x.urll", "unknown key"},
		{"over bantime_max", "[ban]\nbantime_max = \"1w\"\n[blocklists.x]\nfile = \"/a\"\nbantime = \"2w\"\n", 5, "blocklists.x.bantime", "bantime_max"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("/etc/bansd/bansd.toml", []byte(c.in))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *configs.Error", err)
			}
			if ce.File != "/etc/bansd/bansd.toml" || (c.line != 0 && ce.Line != c.line) || ce.Key != c.key || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("err = %v (line %d, key %q), want line %d, key %q, saying %q", err, ce.Line, ce.Key, c.line, c.key, c.msg)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{{"64MiB", 64 << 20}, {"512 KiB", 512 << 10}, {"1GiB", 1 << 30}, {"1048576", 1 << 20}, {"100B", 100}, {"", -1}, {"1.5MiB", -1}, {"-1", -1}, {"64MB", -1}} {
		got, err := ParseSize(c.in)
		if c.want < 0 {
			if err == nil {
				t.Errorf("ParseSize(%q) = %d, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}
