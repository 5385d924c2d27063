package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestPyRepr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"admin", `'admin'`},
		{"it's", `"it's"`},
		{`a'b"c`, `'a\'b"c'`},
		{"a\nb\r\tc\x01", `'a\nb\r\tc\x01'`},
		{`back\slash`, `'back\\slash'`},
		{"é", `'é'`},
	} {
		if got := pyRepr(tc.in); got != tc.want {
			t.Errorf("pyRepr(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		w    time.Duration
		fail bool
	}{
		{"5/hour", 5, time.Hour, false},
		{"50/day", 50, 24 * time.Hour, false},
		{"10/minutes", 10, time.Minute, false},
		{"x/hour", 0, 0, true},
		{"5", 0, 0, true},
		{"5/fortnight", 0, 0, true},
	} {
		r, err := parseRate(tc.in)
		if (err != nil) != tc.fail || (!tc.fail && (r.n != tc.n || r.window != tc.w)) {
			t.Errorf("parseRate(%q) = %+v, %v", tc.in, r, err)
		}
	}
}

func TestNetwork(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":         "203.0.113.0",
		"2001:db8:1:2:3::5":   "2001:db8:1::",
		"::ffff:198.51.100.9": "198.51.100.0",
	} {
		if got := network(in); got != want {
			t.Errorf("network(%s) = %s, want %s", in, got, want)
		}
	}
}

// newTestAdmin answers with IP backends, so no DNS is needed.
func newTestAdmin(t *testing.T, env map[string]string) (*admin, *bytes.Buffer, *time.Time) {
	t.Helper()
	base := map[string]string{"SMTP_ADDRESS": "192.0.2.25", "IMAP_ADDRESS": "192.0.2.143"}
	for k, v := range env {
		base[k] = v
	}
	cfg, err := configFromEnv(func(k string) string { return base[k] })
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	now := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	return newAdmin(cfg, &flaskLog{w: &buf, min: cfg.logLevel}, func() time.Time { return now }), &buf, &now
}

func ask(a *admin, h map[string]string) http.Header {
	r := httptest.NewRequest("GET", "/internal/auth/email", nil)
	for k, v := range h {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	a.ServeHTTP(w, r)
	return w.Result().Header
}

func TestAuthEmail(t *testing.T) {
	a, logs, _ := newTestAdmin(t, nil)
	dovecot := func(user, pass, port string) map[string]string {
		return map[string]string{"Auth-Port": port, "Auth-User": user, "Auth-Pass": pass, "Auth-Protocol": "imap",
			"Client-Ip": "198.51.100.7", "Client-Port": "50122", "Auth-Method": "PLAIN"}
	}
	// Port 25 AUTH: refused, and no Login attempt line (Mailu returns early).
	h := ask(a, map[string]string{"Auth-Port": "25", "Auth-Method": "plain", "Auth-User": "bot", "Auth-Protocol": "smtp", "Client-Ip": "198.51.100.7"})
	if h.Get("Auth-Status") != "AUTH not supported" || h.Get("Auth-Error-Code") != "502 5.5.1" {
		t.Errorf("port 25 AUTH: %v", h)
	}
	// Incoming mail on 25.
	h = ask(a, map[string]string{"Auth-Port": "25", "Auth-Method": "none", "Auth-Protocol": "smtp", "Client-Ip": "198.51.100.7"})
	if h.Get("Auth-Status") != "OK" || h.Get("Auth-Server") != "192.0.2.25" || h.Get("Auth-Port") != "25" {
		t.Errorf("incoming mail: %v", h)
	}
	if h = ask(a, dovecot("alice@example.com", "wrong", "993")); h.Get("Auth-Status") != "Authentication credentials invalid" || h.Get("Auth-Error-Code") != "AUTHENTICATIONFAILED" {
		t.Errorf("bad password: %v", h)
	}
	if h = ask(a, dovecot("Nobody%0A", "x", "143")); h.Get("Auth-Status") != "Authentication credentials invalid" {
		t.Errorf("unknown user: %v", h)
	}
	if h = ask(a, dovecot("alice@example.com", "alice-password", "993")); h.Get("Auth-Status") != "OK" || h.Get("Auth-Server") != "192.0.2.143" || h.Get("Auth-Port") != "143" {
		t.Errorf("good password: %v", h)
	}
	want := []string{
		`[2026-01-02 03:04:05,006] INFO in nginx: Login attempt for: alice@example.com/imap/993 from: 198.51.100.7/50122: failed: badauth: ` + a.pwHash("wrong"),
		`[2026-01-02 03:04:05,006] INFO in nginx: Login attempt for: 'Nobody\n'/imap/143 from: 198.51.100.7/50122: failed: account disabled`,
		`[2026-01-02 03:04:05,006] INFO in nginx: Login attempt for: alice@example.com/imap/993 from: 198.51.100.7/50122: success: password`,
	}
	if got := strings.Split(strings.TrimSpace(logs.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestLimiter follows Mailu: distinct unknown users per /24 up to the IP
// limit, then the limiter line; a success exempts that address.
func TestLimiter(t *testing.T) {
	a, logs, _ := newTestAdmin(t, map[string]string{"AUTH_RATELIMIT_IP": "3/hour"})
	try := func(ip, user string) http.Header {
		return ask(a, map[string]string{"Auth-Port": "465", "Auth-User": user, "Auth-Pass": "x", "Auth-Protocol": "submission",
			"Client-Ip": ip, "Client-Port": "1", "Auth-Method": "PLAIN", "Auth-Login-Attempt": "1"})
	}
	try("203.0.113.1", "u1@example.com")
	try("203.0.113.1", "u1@example.com") // same user: counted once
	try("203.0.113.2", "u2@example.com") // same /24
	try("203.0.113.3", "u3@example.com")
	h := try("203.0.113.4", "u4@example.com")
	if h.Get("Auth-Status") != "Temporary authentication failure (rate-limit)" || h.Get("Auth-Wait") != "3" || h.Get("Auth-Error-Code") != "451 4.3.2" {
		t.Errorf("fourth distinct user of the /24: %v", h)
	}
	if !regexp.MustCompile(`(?m)^\[[^]]+\] WARNING in limiter: Authentication attempt from 203\.0\.113\.4 has been rate-limited\.$`).MatchString(logs.String()) {
		t.Errorf("no limiter line:\n%s", logs)
	}
	if h := try("198.51.100.1", "u5@example.com"); h.Get("Auth-Status") != "Authentication credentials invalid" {
		t.Errorf("another /24: %v", h)
	}
	// An exempt address is never limited.
	a.lim.exempt(a.cfg, a.now(), "203.0.113.9")
	if h := try("203.0.113.9", "u6@example.com"); h.Get("Auth-Status") != "Authentication credentials invalid" {
		t.Errorf("exempt address: %v", h)
	}
}

// At LOG_LEVEL=WARNING, as in Mailu, the "Login attempt" lines vanish and
// the limiter's warnings stay.
func TestLogLevelWarning(t *testing.T) {
	a, logs, _ := newTestAdmin(t, map[string]string{"LOG_LEVEL": "warning", "AUTH_RATELIMIT_IP": "1/hour"})
	for _, user := range []string{"nobody1@example.com", "nobody2@example.com"} {
		ask(a, map[string]string{"Auth-Port": "993", "Auth-User": user, "Auth-Pass": "x", "Auth-Protocol": "imap",
			"Client-Ip": "198.51.100.7", "Client-Port": "1", "Auth-Method": "PLAIN"})
	}
	want := "[2026-01-02 03:04:05,006] WARNING in limiter: Authentication attempt from 198.51.100.7 has been rate-limited."
	if got := strings.TrimSpace(logs.String()); got != want {
		t.Errorf("log at WARNING:\n%s\nwant:\n%s", got, want)
	}
	if _, err := configFromEnv(func(k string) string { return map[string]string{"LOG_LEVEL": "LOUD"}[k] }); err == nil {
		t.Error("LOG_LEVEL=LOUD accepted")
	}
}
