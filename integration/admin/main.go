// Command admin stands in for Mailu's admin container in the end-to-end test
// bed: it answers nginx's auth_http and the Dovecot proxy's login.lua on
// /internal/auth/email against a fixed user table, runs Mailu's auth rate
// limiter, and logs what Mailu's admin logs, in Mailu's formats, on stderr.
//
// Environment (as Mailu's mailu.env): AUTH_RATELIMIT_IP (5/hour),
// AUTH_RATELIMIT_USER (50/day), AUTH_RATELIMIT_EXEMPTION (CIDRs),
// AUTH_RATELIMIT_EXEMPTION_LENGTH (86400), SECRET_KEY, MAILU_VERSION
// ("2024.06" or "2.0": 2.0 has no per-attempt "Login attempt" lines),
// LOG_LEVEL (INFO; at WARNING the "Login attempt" lines vanish, as in Mailu),
// MAILU_USERS ("user@dom:password,..."), SMTP_ADDRESS, IMAP_ADDRESS.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "admin:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := configFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	a := newAdmin(cfg, &flaskLog{w: os.Stderr, min: cfg.logLevel}, time.Now)
	srv := &http.Server{Addr: cfg.listen, Handler: a, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

type config struct {
	listen       string
	version      string // "2024.06" or "2.0"
	logLevel     int    // Python logging's number of LOG_LEVEL
	secret       string
	users        map[string]string // email -> password
	ipLimit      rate
	userLimit    rate
	exemptions   []netip.Prefix
	exemptLength time.Duration
	smtpAddress  string
	imapAddress  string
}

// rate is a Mailu/limits rate string such as "5/hour".
type rate struct {
	n      int
	window time.Duration
}

func parseRate(s string) (rate, error) {
	n, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return rate{}, fmt.Errorf("rate %q: want N/unit", s)
	}
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || count < 0 {
		return rate{}, fmt.Errorf("rate %q: bad count", s)
	}
	units := map[string]time.Duration{"second": time.Second, "minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}
	w, ok := units[strings.TrimSuffix(strings.TrimSpace(unit), "s")]
	if !ok {
		return rate{}, fmt.Errorf("rate %q: unknown unit", s)
	}
	return rate{n: count, window: w}, nil
}

func configFromEnv(getenv func(string) string) (config, error) {
	get := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	c := config{
		listen:      get("ADMIN_LISTEN", ":8080"),
		version:     get("MAILU_VERSION", "2024.06"),
		secret:      get("SECRET_KEY", "changeMe"),
		users:       map[string]string{},
		smtpAddress: get("SMTP_ADDRESS", "smtp"),
		imapAddress: get("IMAP_ADDRESS", "imap"),
	}
	var err error
	if c.ipLimit, err = parseRate(get("AUTH_RATELIMIT_IP", "5/hour")); err != nil {
		return c, fmt.Errorf("AUTH_RATELIMIT_IP: %w", err)
	}
	if c.userLimit, err = parseRate(get("AUTH_RATELIMIT_USER", "50/day")); err != nil {
		return c, fmt.Errorf("AUTH_RATELIMIT_USER: %w", err)
	}
	secs, err := strconv.Atoi(get("AUTH_RATELIMIT_EXEMPTION_LENGTH", "86400"))
	if err != nil {
		return c, fmt.Errorf("AUTH_RATELIMIT_EXEMPTION_LENGTH: %w", err)
	}
	c.exemptLength = time.Duration(secs) * time.Second
	for _, s := range strings.Split(getenv("AUTH_RATELIMIT_EXEMPTION"), ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return c, fmt.Errorf("AUTH_RATELIMIT_EXEMPTION: %w", err)
		}
		c.exemptions = append(c.exemptions, p.Masked())
	}
	for _, up := range strings.Split(get("MAILU_USERS", "alice@example.com:alice-password,bob@example.com:bob-password"), ",") {
		u, p, ok := strings.Cut(up, ":")
		if !ok {
			return c, fmt.Errorf("MAILU_USERS: %q has no password", up)
		}
		c.users[strings.ToLower(u)] = p
	}
	lvl, ok := logLevels[strings.ToUpper(get("LOG_LEVEL", "INFO"))]
	if !ok {
		return c, fmt.Errorf("LOG_LEVEL %q: want DEBUG, INFO, WARNING, ERROR or CRITICAL", getenv("LOG_LEVEL"))
	}
	c.logLevel = lvl
	if c.version != "2024.06" && c.version != "2.0" {
		return c, fmt.Errorf("MAILU_VERSION %q: want 2024.06 or 2.0", c.version)
	}
	return c, nil
}

// flaskLog writes Flask's default handler format:
// [YYYY-MM-DD HH:MM:SS,mmm] LEVEL in module: message
// Lines below min (a logLevels number; 0: all) are dropped.
type flaskLog struct {
	mu  sync.Mutex
	w   interface{ Write([]byte) (int, error) }
	min int
}

// logLevels are Python logging's level numbers.
var logLevels = map[string]int{"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}

func (l *flaskLog) log(t time.Time, level, module, msg string) {
	if logLevels[level] < l.min {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "[%s,%03d] %s in %s: %s\n", t.UTC().Format("2006-01-02 15:04:05"), t.Nanosecond()/1e6, level, module, msg)
}

type admin struct {
	cfg config
	log *flaskLog
	now func() time.Time
	lim *limiter
}

func newAdmin(cfg config, l *flaskLog, now func() time.Time) *admin {
	return &admin{cfg: cfg, log: l, now: now, lim: newLimiter()}
}

func (a *admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/internal/auth/email", "/auth/email":
		a.authEmail(w, r)
	case "/health", "/ping":
		w.WriteHeader(http.StatusOK)
	default:
		http.NotFound(w, r)
	}
}

func unquote(s string) string {
	u, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return u
}

// status texts of Mailu's internal/nginx.py STATUSES.
var statuses = map[string]struct {
	text  string
	codes map[string]string
}{
	"authentication": {"Authentication credentials invalid", map[string]string{"imap": "AUTHENTICATIONFAILED", "smtp": "535 5.7.8", "submission": "535 5.7.8", "sieve": "AuthFailed", "pop3": ""}},
	"ratelimit":      {"Temporary authentication failure (rate-limit)", map[string]string{"imap": "LIMIT", "smtp": "451 4.3.2", "submission": "451 4.3.2", "sieve": "AuthFailed", "pop3": "-ERR [LOGIN-DELAY] Retry later"}},
}

func status(protocol, kind string) (string, string) {
	s := statuses[kind]
	return s.text, s.codes[protocol]
}

// authEmail follows Mailu's internal/views/auth.py nginx_authentication.
func (a *admin) authEmail(w http.ResponseWriter, r *http.Request) {
	h := r.Header
	now := a.now()
	ip := unquote(h.Get("Client-Ip"))
	method := strings.ToLower(h.Get("Auth-Method"))
	protocol := h.Get("Auth-Protocol")
	port := unquote(h.Get("Auth-Port"))
	isPort25 := port == "25"
	out := w.Header()

	if isPort25 && method != "none" && method != "" {
		out.Set("Auth-Status", "AUTH not supported")
		out.Set("Auth-Error-Code", "502 5.5.1")
		a.lim.rateLimitIP(a.cfg, now, ip, "")
		return
	}
	if (method == "none" || method == "") && (protocol == "smtp" || protocol == "lmtp") {
		// Incoming mail on port 25: no authentication.
		a.proxyTo(w, r, now, "smtp", false)
		return
	}
	isWebmail := port == "10143" || port == "10025"
	rawPass := unquote(h.Get("Auth-Pass"))
	attempt, _ := strconv.Atoi(h.Get("Auth-Login-Attempt"))
	rateLimited := func() {
		text, code := status(protocol, "ratelimit")
		out.Set("Auth-Status", text)
		out.Set("Auth-Error-Code", code)
		if attempt < 10 {
			out.Set("Auth-Wait", "3")
		}
	}
	if !isWebmail && a.lim.shouldRateLimitIP(a.cfg, now, ip, a.log) {
		rateLimited()
		return
	}
	rawUser := unquote(h.Get("Auth-User"))
	user := strings.ToLower(rawUser)
	password, exists := a.cfg.users[user]
	if !strings.Contains(user, "@") {
		exists = false
	}
	if exists && a.lim.shouldRateLimitUser(a.cfg, now, user, ip, a.log, a.cfg.version) {
		rateLimited()
		return
	}
	sourcePort := unquote(h.Get("Client-Port"))
	if sourcePort == "" {
		sourcePort = "None"
	}
	logAttempt := func(who, result string) {
		if a.cfg.version == "2.0" {
			return
		}
		a.log.log(now, "INFO", "nginx", fmt.Sprintf("Login attempt for: %s/%s/%s from: %s/%s: %s", who, protocol, port, ip, sourcePort, result))
	}
	ok := exists && hmac.Equal([]byte(password), []byte(rawPass))
	out.Set("Auth-User", rawUser)
	out.Set("Auth-User-Exists", strconv.FormatBool(exists))
	switch {
	case ok:
		logAttempt(user, "success: password")
		if a.proxyTo(w, r, now, protocol, true) {
			a.lim.exempt(a.cfg, now, ip)
		}
		return
	case exists:
		logAttempt(user, "failed: badauth: "+a.pwHash(rawPass))
		a.lim.rateLimitUser(a.cfg, now, user, ip, a.pwHash(user+"\x00"+rawPass))
	default:
		logAttempt(pyRepr(rawUser), "failed: account disabled")
		if !isWebmail {
			a.lim.rateLimitIP(a.cfg, now, ip, user)
		}
	}
	text, code := status(protocol, "authentication")
	out.Set("Auth-Status", text)
	out.Set("Auth-Error-Code", code)
	out.Set("Auth-Wait", "0")
}

// pwHash is Mailu's utils.truncated_pw_hash: the first 6 hex digits of
// HMAC-SHA256(secret, password), the same for the same password.
func (a *admin) pwHash(pw string) string {
	m := hmac.New(sha256.New, []byte(a.cfg.secret))
	m.Write([]byte(pw))
	return hex.EncodeToString(m.Sum(nil))[:6]
}

// server resolves the backend the way Mailu's get_server does: nginx
// needs an IP address in Auth-Server.
// proxyTo answers OK with the backend of protocol; on a lookup error it
// logs it, answers 500 and returns false.
func (a *admin) proxyTo(w http.ResponseWriter, r *http.Request, now time.Time, protocol string, authenticated bool) bool {
	server, sport, err := a.server(r.Context(), protocol, authenticated)
	if err != nil {
		a.log.log(now, "ERROR", "nginx", err.Error())
		w.WriteHeader(http.StatusInternalServerError)
		return false
	}
	out := w.Header()
	out.Set("Auth-Status", "OK")
	out.Set("Auth-Server", server)
	out.Set("Auth-Port", sport)
	return true
}

func (a *admin) server(ctx context.Context, protocol string, authenticated bool) (string, string, error) {
	host, port := a.cfg.imapAddress, "143"
	switch protocol {
	case "imap":
	case "pop3":
		port = "110"
	case "sieve":
		port = "4190"
	case "smtp", "submission":
		host, port = a.cfg.smtpAddress, "25"
		if authenticated {
			port = "10025"
		}
	default:
		return "", "", fmt.Errorf("unknown protocol %q", protocol)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return host, port, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
	if err != nil || len(addrs) == 0 {
		return "", "", fmt.Errorf("resolve %s: %w", host, errors.Join(err, errors.New("no address")))
	}
	return addrs[0].String(), port, nil
}

// pyRepr renders s as Python's repr() of a str, as Mailu logs an unknown
// user: quotes chosen like CPython, control characters escaped.
func pyRepr(s string) string {
	quote := byte('\'')
	if strings.Contains(s, "'") && !strings.Contains(s, "\"") {
		quote = '"'
	}
	var b strings.Builder
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == rune(quote) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && r < 0xa0:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(quote)
	return b.String()
}
