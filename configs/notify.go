package configs

import (
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
	"time"
)

// Secret is a password or token. Every way of printing it (fmt, JSON,
// text marshalling, slog) shows "[redacted]"; only Reveal gives the value.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret itself, for the one place that sends it.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

func (s Secret) GoString() string { return fmt.Sprintf("configs.Secret(%q)", s.String()) }

func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Notify is the [notify] section: where alarms and ban digests are sent.
type Notify struct {
	// Digest is how often bans are summed up in one message.
	Digest time.Duration
	// MaxPerHour is the most messages one channel gets in an hour; the
	// rest are folded into a summary.
	MaxPerHour int
	// MaxSpoolAge is how long an undelivered message is retried.
	MaxSpoolAge time.Duration
	Email       map[string]Email
	Webhook     map[string]Webhook
}

// NotifyKinds are the event kinds a channel may choose with events = [...].
var NotifyKinds = []string{"ban", "unban", "alarm", "alarm-cleared", "digest", "daemon"}

// DefaultNotifyEvents is what a channel gets when it names no events.
var DefaultNotifyEvents = []string{"alarm", "alarm-cleared", "digest"}

// TLS modes of an email channel.
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "tls"
	TLSNone     = "none"
)

type Email struct {
	Name     string
	Host     string
	Port     int
	TLS      string // starttls, tls or none
	Username string
	Password Secret
	From     string
	To       []string
	Events   []string
	Timeout  time.Duration
}

// Webhook presets.
var WebhookPresets = []string{"json", "ntfy", "gotify", "slack", "matrix", "template"}

type Webhook struct {
	Name string
	// URL may hold a secret itself (Slack and bridge URLs do), so it is a
	// Secret; URLHost is what may be shown.
	URL      Secret
	Preset   string
	Template string
	Token    Secret
	Headers  map[string]Secret
	Events   []string
	Timeout  time.Duration
}

// URLHost is the scheme and host of the webhook's URL, safe to print.
func (w Webhook) URLHost() string {
	u, err := url.Parse(w.URL.Reveal())
	if err != nil {
		return "(bad url)"
	}
	return u.Scheme + "://" + u.Host
}

// ChannelNames returns every email and webhook channel name, sorted.
func (n *Notify) ChannelNames() []string {
	var names []string
	for k := range n.Email {
		names = append(names, k)
	}
	for k := range n.Webhook {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

type rawNotify struct {
	Digest      *string               `toml:"digest"`
	MaxPerHour  *int                  `toml:"max_per_hour"`
	MaxSpoolAge *string               `toml:"max_spool_age"`
	Email       map[string]rawEmail   `toml:"email"`
	Webhook     map[string]rawWebhook `toml:"webhook"`
}

type rawEmail struct {
	Host         *string   `toml:"host"`
	Port         *int      `toml:"port"`
	TLS          *string   `toml:"tls"`
	Username     *string   `toml:"username"`
	Password     *string   `toml:"password"`
	PasswordFile *string   `toml:"password_file"`
	From         *string   `toml:"from"`
	To           *[]string `toml:"to"`
	Events       *[]string `toml:"events"`
	Timeout      *string   `toml:"timeout"`
}

type rawWebhook struct {
	URL       *string            `toml:"url"`
	Preset    *string            `toml:"preset"`
	Template  *string            `toml:"template"`
	Token     *string            `toml:"token"`
	TokenFile *string            `toml:"token_file"`
	Headers   *map[string]string `toml:"headers"`
	Events    *[]string          `toml:"events"`
	Timeout   *string            `toml:"timeout"`
}

// maxSecretFile bounds a password_file or token_file.
const maxSecretFile = 4096

// readSecret reads a secret file, relative paths from the config file's
// directory; one trailing newline is dropped (echo adds it).
func readSecret(configFile, path string) (Secret, error) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(configFile), path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, maxSecretFile+1)
	n, _ := f.Read(buf)
	if n > maxSecretFile {
		return "", fmt.Errorf("%s is larger than %d bytes", path, maxSecretFile)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(buf[:n]), "\n"), "\r")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return Secret(s), nil
}

func checkEvents(evs []string) error {
	for _, e := range evs {
		ok := false
		for _, k := range NotifyKinds {
			ok = ok || e == k
		}
		if !ok {
			return fmt.Errorf("unknown event %q (known: %s)", e, strings.Join(NotifyKinds, ", "))
		}
	}
	return nil
}

// applyNotify overlays a layer's [notify] keys.
func (c *Config) applyNotify(l *layer) error {
	r := l.raw.Notify
	n := &c.Notify
	fail := func(key string, err error) error {
		return &Error{File: l.name, Line: l.line(key), Key: key, Err: err}
	}
	if err := setDur(&n.Digest, r.Digest, time.Second); err != nil {
		return fail("notify.digest", err)
	}
	if err := setInt(&n.MaxPerHour, r.MaxPerHour, 1, 3600); err != nil {
		return fail("notify.max_per_hour", err)
	}
	if err := setDur(&n.MaxSpoolAge, r.MaxSpoolAge, time.Minute); err != nil {
		return fail("notify.max_spool_age", err)
	}
	if n.Email == nil {
		n.Email = map[string]Email{}
	}
	if n.Webhook == nil {
		n.Webhook = map[string]Webhook{}
	}
	for name, re := range r.Email {
		if err := n.applyEmail(l, name, re, r.Webhook, fail); err != nil {
			return err
		}
	}
	for name, rw := range r.Webhook {
		if err := n.applyWebhook(l, name, rw, fail); err != nil {
			return err
		}
	}
	return nil
}

// applyEmail overlays [notify.email.NAME]; webhooks are the layer's, whose
// names the email channels must not take.
func (n *Notify) applyEmail(l *layer, name string, re rawEmail, webhooks map[string]rawWebhook, fail failFunc) error {
	key := "notify.email." + name
	if !ValidName(name) {
		return fail(key, fmt.Errorf("channel name %q: use letters, digits, - and _", name))
	}
	if _, dup := n.Webhook[name]; dup || hasKey(webhooks, name) {
		return fail(key, fmt.Errorf("channel name %q is also a webhook; names are shared by both kinds", name))
	}
	e, ok := n.Email[name]
	if !ok {
		e = Email{Name: name, Port: 587, TLS: TLSStartTLS, Events: DefaultNotifyEvents, Timeout: 30 * time.Second}
	}
	setStr(&e.Host, re.Host)
	if err := setInt(&e.Port, re.Port, 1, 65535); err != nil {
		return fail(key+".port", err)
	}
	if re.TLS != nil {
		switch *re.TLS {
		case TLSStartTLS, TLSImplicit, TLSNone:
			e.TLS = *re.TLS
		default:
			return fail(key+".tls", fmt.Errorf("%q is not one of starttls, tls, none", *re.TLS))
		}
	}
	setStr(&e.Username, re.Username)
	if re.Password != nil && re.PasswordFile != nil {
		return fail(key+".password_file", errors.New("set password or password_file, not both"))
	}
	if re.Password != nil {
		e.Password = Secret(*re.Password)
	}
	if re.PasswordFile != nil {
		s, err := readSecret(l.name, *re.PasswordFile)
		if err != nil {
			return fail(key+".password_file", err)
		}
		e.Password = s
	}
	if re.From != nil {
		if _, err := mail.ParseAddress(*re.From); err != nil {
			return fail(key+".from", fmt.Errorf("%q is not a mail address: %v", *re.From, err))
		}
		e.From = *re.From
	}
	if re.To != nil {
		for _, a := range *re.To {
			if _, err := mail.ParseAddress(a); err != nil {
				return fail(key+".to", fmt.Errorf("%q is not a mail address: %v", a, err))
			}
		}
		e.To = append([]string(nil), (*re.To)...)
	}
	if re.Events != nil {
		if err := checkEvents(*re.Events); err != nil {
			return fail(key+".events", err)
		}
		e.Events = append([]string(nil), (*re.Events)...)
	}
	if err := setDur(&e.Timeout, re.Timeout, time.Second); err != nil {
		return fail(key+".timeout", err)
	}
	n.Email[name] = e
	return nil
}

// applyWebhook overlays [notify.webhook.NAME].
func (n *Notify) applyWebhook(l *layer, name string, rw rawWebhook, fail failFunc) error {
	key := "notify.webhook." + name
	if !ValidName(name) {
		return fail(key, fmt.Errorf("channel name %q: use letters, digits, - and _", name))
	}
	if _, dup := n.Email[name]; dup {
		return fail(key, fmt.Errorf("channel name %q is also an email channel; names are shared by both kinds", name))
	}
	w, ok := n.Webhook[name]
	if !ok {
		w = Webhook{Name: name, Preset: "json", Events: DefaultNotifyEvents, Timeout: 15 * time.Second}
	}
	if rw.URL != nil {
		u, err := url.Parse(*rw.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// The URL may carry a secret: name the problem, not the URL.
			return fail(key+".url", errors.New("not an http:// or https:// URL with a host"))
		}
		w.URL = Secret(*rw.URL)
	}
	if rw.Preset != nil {
		ok := false
		for _, p := range WebhookPresets {
			ok = ok || *rw.Preset == p
		}
		if !ok {
			return fail(key+".preset", fmt.Errorf("%q is not one of %s", *rw.Preset, strings.Join(WebhookPresets, ", ")))
		}
		w.Preset = *rw.Preset
	}
	if rw.Template != nil {
		if _, err := template.New(name).Parse(*rw.Template); err != nil {
			return fail(key+".template", err)
		}
		w.Template = *rw.Template
	}
	if rw.Token != nil && rw.TokenFile != nil {
		return fail(key+".token_file", errors.New("set token or token_file, not both"))
	}
	if rw.Token != nil {
		w.Token = Secret(*rw.Token)
	}
	if rw.TokenFile != nil {
		s, err := readSecret(l.name, *rw.TokenFile)
		if err != nil {
			return fail(key+".token_file", err)
		}
		w.Token = s
	}
	if rw.Headers != nil {
		w.Headers = map[string]Secret{}
		for h, v := range *rw.Headers {
			if !validHeader(h) || strings.ContainsAny(v, "\r\n") {
				return fail(key+".headers", fmt.Errorf("header %q: bad name or a line break in the value", h))
			}
			w.Headers[h] = Secret(v)
		}
	}
	if rw.Events != nil {
		if err := checkEvents(*rw.Events); err != nil {
			return fail(key+".events", err)
		}
		w.Events = append([]string(nil), (*rw.Events)...)
	}
	if err := setDur(&w.Timeout, rw.Timeout, time.Second); err != nil {
		return fail(key+".timeout", err)
	}
	n.Webhook[name] = w
	return nil
}

func hasKey[V any](m map[string]V, k string) bool { _, ok := m[k]; return ok }

// validHeader: an HTTP header name as bansd accepts it.
func validHeader(h string) bool { return validToken(h, 128) }

// checkNotify validates each channel as merged.
func (c *Config) checkNotify(l *layer) error {
	fail := func(key string, err error) error {
		return &Error{File: l.name, Line: l.line(key), Key: key, Err: err}
	}
	for _, name := range c.Notify.ChannelNames() {
		if e, ok := c.Notify.Email[name]; ok {
			key := "notify.email." + name
			switch {
			case e.Host == "":
				return fail(key+".host", errors.New("an email channel needs host"))
			case e.From == "":
				return fail(key+".from", errors.New("an email channel needs from"))
			case len(e.To) == 0:
				return fail(key+".to", errors.New("an email channel needs at least one address in to"))
			case e.Username != "" && e.Password == "":
				return fail(key+".password", errors.New("username is set but neither password nor password_file"))
			}
			continue
		}
		w := c.Notify.Webhook[name]
		key := "notify.webhook." + name
		switch {
		case w.URL == "":
			return fail(key+".url", errors.New("a webhook channel needs url"))
		case w.Preset == "template" && w.Template == "":
			return fail(key+".template", errors.New(`preset "template" needs template`))
		case w.Preset == "gotify" && w.Token == "":
			return fail(key+".token", errors.New(`preset "gotify" needs token or token_file (the application token)`))
		}
	}
	return nil
}
