package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCLIRules(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"help", []string{"--help"}, 0, ""},
		{"version", []string{"--version"}, 0, ""},
		{"check default", []string{"--check"}, 0, ""},
		{"unknown flag", []string{"--nosuch"}, 2, "bansd: unknown flag -nosuch"},
		{"flag without value", []string{"--config"}, 2, "bansd: -config needs a value"},
		{"arguments", []string{"extra"}, 2, "takes no arguments"},
		{"unknown socket group", []string{"--check", "--config", write("g.toml", "[daemon]\nsocket_group = \"no-such-group-bansd\"\n")}, 2, `group "no-such-group-bansd" does not exist`},
		{"jail by case", []string{"--check", "--config", write("j.toml", "[jails.AUTH]\nenabled = false\n")}, 2, `differs from the default jail "auth" only by case`},
		{"blocklist over plain http", []string{"--check", "--config", write("b.toml", "[blocklists.drop]\nurl = \"http://www.spamhaus.org/drop/drop.txt\"\n")}, 2, "b.toml:2: blocklists.drop.url:"},
		{"type error", []string{"--check", "--config", write("t.toml", "[engine]\nignoreip = \"203.0.113.1\"\n")}, 2, "expected a list of strings, got a string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(tc.args, &stderr); code != tc.code {
				t.Errorf("bansd %v: exit %d, want %d (%s)", tc.args, code, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.want)
			}
			if strings.Contains(stderr.String(), "flag provided but not defined") {
				t.Errorf("flag package's words: %q", stderr.String())
			}
		})
	}
}
