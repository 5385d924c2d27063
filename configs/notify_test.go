package configs

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNotifyDefaultsAndChannels(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("s3cret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "bansd.toml")
	c, err := Parse(cfgPath, []byte(`
[notify]
max_per_hour = 5

[notify.email.postmaster]
host = "mail.example.com"
username = "bansd@example.com"
password_file = "pw"
from = "bansd@example.com"
to = ["postmaster@example.com"]

[notify.webhook.phone]
url = "https://ntfy.example.net/topic-s3cret"
preset = "ntfy"
token = "tk-s3cret"
headers = { X-Extra = "hdr-s3cret" }
events = ["alarm", "ban"]
`))
	if err != nil {
		t.Fatal(err)
	}
	n := c.Notify
	if n.Digest != time.Hour || n.MaxPerHour != 5 || n.MaxSpoolAge != 48*time.Hour {
		t.Errorf("notify = %+v", n)
	}
	e := n.Email["postmaster"]
	if e.Port != 587 || e.TLS != TLSStartTLS || e.Password.Reveal() != "s3cret-pw" || strings.Join(e.Events, ",") != "alarm,alarm-cleared,digest" || e.Timeout != 30*time.Second {
		t.Errorf("email = %#v", e)
	}
	w := n.Webhook["phone"]
	if w.Preset != "ntfy" || w.Token.Reveal() != "tk-s3cret" || w.URLHost() != "https://ntfy.example.net" || strings.Join(w.Events, ",") != "alarm,ban" {
		t.Errorf("webhook = %#v", w)
	}
	if got := strings.Join(n.ChannelNames(), ","); got != "phone,postmaster" {
		t.Errorf("names = %s", got)
	}

	// No way of printing the config shows a secret.
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("cfg", "email", e, "pw", e.Password, "webhook", w)
	for _, out := range []string{fmt.Sprintf("%v %+v %#v %s %q", c, c, c, e.Password, w.Token), string(js), logged.String()} {
		for _, secret := range []string{"s3cret-pw", "tk-s3cret", "topic-s3cret", "hdr-s3cret"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s printed in %s", secret, out)
			}
		}
	}
	if !strings.Contains(string(js), redacted) {
		t.Errorf("JSON shows no redaction: %s", js)
	}
}

func TestNotifyErrorsNameFileLineKey(t *testing.T) {
	for _, tc := range []struct {
		name, toml, want string
	}{
		{"bad tls", "[notify.email.a]\nhost = \"h\"\nfrom = \"a@b.c\"\nto = [\"x@y.z\"]\ntls = \"ssl\"\n", "x.toml:5: notify.email.a.tls: \"ssl\" is not one of starttls, tls, none"},
		{"no host", "[notify.email.a]\nfrom = \"a@b.c\"\nto = [\"x@y.z\"]\n", "x.toml: notify.email.a.host: an email channel needs host"},
		{"bad to", "[notify.email.a]\nhost = \"h\"\nfrom = \"a@b.c\"\nto = [\"nobody\"]\n", "x.toml:4: notify.email.a.to: \"nobody\" is not a mail address"},
		{"user no password", "[notify.email.a]\nhost = \"h\"\nfrom = \"a@b.c\"\nto = [\"x@y.z\"]\nusername = \"u\"\n", "notify.email.a.password: username is set but neither password nor password_file"},
		{"both", "[notify.email.a]\npassword = \"p\"\npassword_file = \"f\"\n", "x.toml:3: notify.email.a.password_file: set password or password_file, not both"},
		{"missing file", "[notify.email.a]\npassword_file = \"/nonexistent/pw\"\n", "x.toml:2: notify.email.a.password_file: open /nonexistent/pw"},
		{"bad event", "[notify.webhook.w]\nurl = \"https://h/\"\nevents = [\"bans\"]\n", "x.toml:3: notify.webhook.w.events: unknown event \"bans\""},
		{"bad url hides it", "[notify.webhook.w]\nurl = \"ftp://h/s3cret\"\n", "x.toml:2: notify.webhook.w.url: not an http:// or https:// URL with a host"},
		{"bad preset", "[notify.webhook.w]\nurl = \"https://h/\"\npreset = \"teams\"\n", "x.toml:3: notify.webhook.w.preset: \"teams\" is not one of"},
		{"bad template", "[notify.webhook.w]\nurl = \"https://h/\"\npreset = \"template\"\ntemplate = \"{{.Title\"\n", "x.toml:4: notify.webhook.w.template: template: w:1: unclosed action"},
		{"template missing", "[notify.webhook.w]\nurl = \"https://h/\"\npreset = \"template\"\n", "notify.webhook.w.template: preset \"template\" needs template"},
		{"gotify token", "[notify.webhook.w]\nurl = \"https://h/\"\npreset = \"gotify\"\n", "notify.webhook.w.token: preset \"gotify\" needs token"},
		{"header newline", "[notify.webhook.w]\nurl = \"https://h/\"\nheaders = { X-A = \"a\\r\\nEvil: b\" }\n", "x.toml:3: notify.webhook.w.headers: header \"X-A\""},
		{"shared name", "[notify.email.x]\nhost = \"h\"\n[notify.webhook.x]\nurl = \"https://h/\"\n", "names are shared by both kinds"},
		{"unknown key", "[notify.email.a]\nhostname = \"h\"\n", "x.toml:2: notify.email.a.hostname: unknown key"},
		{"max per hour", "[notify]\nmax_per_hour = 0\n", "x.toml:2: notify.max_per_hour: 0 is outside 1..3600"},
		{"digest", "[notify]\ndigest = \"10ms\"\n", "x.toml:2: notify.digest: \"10ms\" is shorter than 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.toml", []byte(tc.toml))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *configs.Error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error shows the secret URL: %v", err)
			}
		})
	}
}
