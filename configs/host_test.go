package configs

import (
	"strings"
	"testing"
	"time"
)

func TestOperatorErrors(t *testing.T) {
	cases := []struct {
		name, file, want string
	}{
		{"list given a string", "[engine]\nignoreip = \"203.0.113.1\"\n", "t.toml:2: engine.ignoreip: expected a list of strings, got a string"},
		{"list of numbers", "[docker]\nservices = [1]\n", "docker.services: expected a string (in quotes), got an integer"},
		{"integer given a string", "[docker]\nmax_line = \"big\"\n", "t.toml:2: docker.max_line: expected an integer, got a string"},
		{"warm-up span negative", "[docker]\nwarmup_max_span = \"-1h\"\n", "t.toml:2: docker.warmup_max_span: bad duration \"-1h\""},
		{"warm-up span too long", "[docker]\nwarmup_max_span = \"2w\"\n", "t.toml:2: docker.warmup_max_span: 336h0m0s is longer than 1w"},
		{"warm-up lines negative", "[docker]\nwarmup_max_lines = -1\n", "t.toml:2: docker.warmup_max_lines: -1 is outside 0..100000000"},
		{"bool given a string", "[jails.auth]\nenabled = \"yes\"\n", "jails.auth.enabled: expected true or false, got a string"},
		{"jail differing by case", "[jails.Auth]\nenabled = false\n", "t.toml:1: jails.Auth: differs from the default jail \"auth\" only by case"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.toml", []byte(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "destination has type") {
				t.Errorf("decoder internals in %q", err)
			}
		})
	}
}

func TestCheckHost(t *testing.T) {
	cases := []struct {
		name, file, want string
	}{
		{"no group", "", ""},
		{"existing group", "[daemon]\nsocket_group = \"root\"\n", ""},
		{"unknown group", "[daemon]\nsocket_group = \"no-such-group-bansd\"\n", `daemon.socket_group: group "no-such-group-bansd" does not exist on this host`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("t.toml", []byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			err = CheckHost(c)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestWarmupKeys(t *testing.T) {
	def, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if def.Docker.WarmupMaxSpan != 24*time.Hour || def.Docker.WarmupMaxLines != 2000000 {
		t.Fatalf("defaults %s, %d; want 24h, 2000000", def.Docker.WarmupMaxSpan, def.Docker.WarmupMaxLines)
	}
	c, err := Parse("t.toml", []byte("[docker]\nwarmup_max_span = \"0s\"\nwarmup_max_lines = 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Docker.WarmupMaxSpan != 0 || c.Docker.WarmupMaxLines != 0 {
		t.Fatalf("got %s, %d; want both off", c.Docker.WarmupMaxSpan, c.Docker.WarmupMaxLines)
	}
}
