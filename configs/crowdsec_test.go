package configs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCrowdSecConfig(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("bouncer-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, toml string
		err        string // substring; "" means valid
		check      func(t *testing.T, c CrowdSec)
	}{
		{name: "off by default", check: func(t *testing.T, c CrowdSec) {
			if c.Enabled() || c.PullInterval != 10*time.Second || !c.Push || !c.Pull || !c.PushManual {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{name: "full", toml: fmt.Sprintf(`[crowdsec]
url = "http://192.0.2.1:8080/"
machine_id = "mx1"
password = "machine-secret"
bouncer_key_file = %q
pull_interval = "1s"
push_manual = false
origins = ["cscli", "bansd"]
scenarios = ["bansd/smtp"]
max_duration = "1w"
`, keyFile), check: func(t *testing.T, c CrowdSec) {
			if !c.Enabled() || c.MachineID != "mx1" || c.Password.Reveal() != "machine-secret" ||
				c.BouncerKey.Reveal() != "bouncer-secret" || c.PullInterval != time.Second || c.PushManual ||
				len(c.Origins) != 2 || c.Scenarios[0] != "bansd/smtp" || c.MaxDuration != 7*24*time.Hour {
				t.Errorf("parsed: %#v", c)
			}
			if s := fmt.Sprintf("%v %+v", c, c); strings.Contains(s, "machine-secret") || strings.Contains(s, "bouncer-secret") {
				t.Errorf("secret printed: %s", s)
			}
		}},
		{name: "pull only", toml: "[crowdsec]\nurl = \"https://lapi.example.org\"\npush = false\nbouncer_key = \"k\"\n"},
		{name: "bad url", toml: "[crowdsec]\nurl = \"ftp://x\"\n", err: "test.toml:2: crowdsec.url:"},
		{name: "short interval", toml: "[crowdsec]\n\npull_interval = \"10ms\"\n", err: "test.toml:3: crowdsec.pull_interval:"},
		{name: "both secrets", toml: fmt.Sprintf("[crowdsec]\npassword = \"a\"\npassword_file = %q\n", keyFile), err: "test.toml:3: crowdsec.password_file: set password or password_file"},
		{name: "missing file", toml: "[crowdsec]\nbouncer_key_file = \"/nonexistent/k\"\n", err: "crowdsec.bouncer_key_file:"},
		{name: "push without machine", toml: "[crowdsec]\nurl = \"http://192.0.2.1:8080\"\nbouncer_key = \"k\"\n", err: "push needs machine_id"},
		{name: "pull without key", toml: "[crowdsec]\nurl = \"http://192.0.2.1:8080\"\nmachine_id = \"m\"\npassword = \"p\"\n", err: "pull needs bouncer_key"},
		{name: "both off", toml: "[crowdsec]\nurl = \"http://192.0.2.1:8080\"\npush = false\npull = false\n", err: "both off"},
		{name: "unknown key", toml: "[crowdsec]\nurll = \"x\"\n", err: "test.toml:2: crowdsec.urll: unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(filepath.Join(dir, "test.toml"), []byte(tt.toml))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "bouncer-secret") {
					t.Errorf("secret in error: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, c.CrowdSec)
			}
		})
	}
}
