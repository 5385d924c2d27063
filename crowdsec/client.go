// Package crowdsec is a thin client of CrowdSec's Local API (LAPI): it
// pushes bansd's own bans as a machine (watcher) and pulls everyone else's
// decisions as a bouncer. Standard library only: the official bouncer
// module pulls CrowdSec's whole module tree and global loggers.
package crowdsec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for ClientConfig's zero fields.
const (
	DefaultMaxBody     = 1 << 20
	DefaultMaxDuration = 5 * 7 * 24 * time.Hour
	// maxSearchBody bounds an alert search answer (alerts of one target).
	maxSearchBody = 8 << 20
	// maxValue bounds one JSON value of the decision stream, so a huge
	// string cannot be buffered whole by the decoder.
	maxValue = 64 << 10
	// refreshBefore renews the JWT this long before it expires.
	refreshBefore = 5 * time.Minute
)

// MetaKey is the alert meta key that carries bansd's idempotency key: it
// lets a push whose answer was lost be found instead of sent twice.
const MetaKey = "bansd_key"

// Origin is the decision origin bansd pushes with.
const Origin = "bansd"

// ScenarioPrefix starts the scenario of every decision a bansd pushed.
const ScenarioPrefix = "bansd/"

// UserAgent is sent with every request.
const UserAgent = "bansd/1"

// ErrBodyTooLarge means an answer was longer than its bound.
var ErrBodyTooLarge = errors.New("answer too large")

// ErrUnauthorized means LAPI refused the credentials.
var ErrUnauthorized = errors.New("unauthorized")

// ClientConfig says where LAPI is and who bansd is there.
type ClientConfig struct {
	URL        string
	MachineID  string
	Password   string
	BouncerKey string
	// HTTP is the client used (the default transport when nil). Time
	// limits come from RequestTimeout and StreamTimeout, not from it.
	HTTP *http.Client
	// RequestTimeout bounds each call but the stream (30 s when zero).
	RequestTimeout time.Duration
	// StreamTimeout bounds one whole pull: a startup stream of a million
	// decisions takes a while (5 min when zero).
	StreamTimeout time.Duration
	// MaxBody bounds every answer except the decision stream, which is
	// read value by value.
	MaxBody int64
	// MaxDuration caps pulled decisions' remaining time.
	MaxDuration time.Duration
	Now         func() time.Time
}

// Client talks to one LAPI. It is safe for concurrent use.
type Client struct {
	base   *url.URL
	cfg    ClientConfig
	http   *http.Client
	now    func() time.Time
	mu     sync.Mutex
	token  string
	expire time.Time
}

// APIError is an answer LAPI gave with a status other than success.
type APIError struct {
	Method, Path string
	Status       int
	Message      string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("crowdsec LAPI %s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Message)
}

// Permanent reports whether retrying the same request cannot succeed:
// LAPI rejected its content. 1.4.6 answers a body that fails validation
// with 500 "validation failure", so that is permanent too.
func (e *APIError) Permanent() bool {
	switch {
	case e.Status == http.StatusUnauthorized, e.Status == http.StatusForbidden,
		e.Status == http.StatusTooManyRequests, e.Status == http.StatusRequestTimeout:
		return false
	case e.Status >= 400 && e.Status < 500:
		return true
	}
	return e.Status == 500 && strings.Contains(e.Message, "validation failure")
}

// NewClient checks the configuration; nothing is sent until the first call.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("crowdsec: url %q: %w", cfg.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("crowdsec: url %q: want http(s)://host[:port]/", cfg.URL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = DefaultMaxDuration
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.StreamTimeout <= 0 {
		cfg.StreamTimeout = 5 * time.Minute
	}
	c := &Client{base: u, cfg: cfg, http: cfg.HTTP, now: cfg.Now}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Login authenticates the machine and keeps its JWT.
func (c *Client) Login(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loginLocked(ctx)
}

func (c *Client) loginLocked(ctx context.Context) error {
	if c.cfg.MachineID == "" {
		return errors.New("crowdsec: no machine_id configured")
	}
	body, _ := json.Marshal(map[string]string{"machine_id": c.cfg.MachineID, "password": c.cfg.Password})
	var ans struct {
		Code   int    `json:"code"`
		Expire string `json:"expire"`
		Token  string `json:"token"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/watchers/login", nil, body, "", c.cfg.MaxBody, &ans); err != nil {
		return err
	}
	exp, err := time.Parse(time.RFC3339, ans.Expire)
	if ans.Token == "" || err != nil {
		return fmt.Errorf("crowdsec LAPI login: answer without token or with bad expire %q", ans.Expire)
	}
	c.token, c.expire = ans.Token, exp
	return nil
}

// authed runs a machine request with a fresh JWT, logging in again once
// when LAPI answers 401 (restarted LAPI, rotated secret).
func (c *Client) authed(ctx context.Context, method, path string, q url.Values, body []byte, limit int64, out any) error {
	c.mu.Lock()
	if c.token == "" || !c.now().Before(c.expire.Add(-refreshBefore)) {
		if err := c.loginLocked(ctx); err != nil {
			c.mu.Unlock()
			return err
		}
	}
	tok := c.token
	c.mu.Unlock()
	err := c.do(ctx, method, path, q, body, "Bearer "+tok, limit, out)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		return err
	}
	c.mu.Lock()
	if c.token == tok {
		if err := c.loginLocked(ctx); err != nil {
			c.mu.Unlock()
			return err
		}
	}
	tok = c.token
	c.mu.Unlock()
	return c.do(ctx, method, path, q, body, "Bearer "+tok, limit, out)
}

func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body []byte) (*http.Request, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return nil, fmt.Errorf("crowdsec LAPI %s %s: %w", method, path, err)
	}
	// 1.4.6 refuses a login whose User-Agent is not name/version.
	req.Header.Set("User-Agent", UserAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// do sends one request and decodes a bounded answer into out.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte, auth string, limit int64, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	req, err := c.newRequest(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("crowdsec LAPI %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := readBounded(resp.Body, limit)
	if err != nil {
		return fmt.Errorf("crowdsec LAPI %s %s: HTTP %d: %w", method, path, resp.StatusCode, err)
	}
	if resp.StatusCode/100 != 2 {
		return apiError(method, path, resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("crowdsec LAPI %s %s: bad JSON answer (%s): %w", method, path, excerpt(data), err)
	}
	return nil
}

func apiError(method, path string, status int, data []byte) error {
	var m struct {
		Message string `json:"message"`
	}
	msg := excerpt(data)
	if json.Unmarshal(data, &m) == nil && m.Message != "" {
		msg = excerpt([]byte(m.Message))
	}
	e := &APIError{Method: method, Path: path, Status: status, Message: msg}
	if status == http.StatusUnauthorized {
		return fmt.Errorf("%w: %w", ErrUnauthorized, e)
	}
	return e
}

// readBounded reads all of r, or fails once it passes limit bytes without
// having held more than limit+1 of them.
func readBounded(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, limit)
	}
	return data, nil
}

// excerpt is a short, printable piece of an answer for error messages.
func excerpt(b []byte) string {
	const n = 120
	s := string(b)
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strconv.QuoteToGraphic(strings.ToValidUTF8(s, "\uFFFD"))
}

// Alert is one ban as pushed: an alert carrying its one decision.
type Alert struct {
	Target   netip.Prefix
	Scenario string
	Message  string
	Events   int
	// Duration is the time left from At; LAPI computes the decision's end
	// as stop_at + duration, so At must be the time of sending.
	Duration time.Duration
	At       time.Time
	// Key is bansd's idempotency key, stored in the alert's meta.
	Key string
}

// wireSource: 1.4.6 filters alerts by ip/range (cscli alerts list --ip)
// on these fields, not on value.
type wireSource struct {
	Scope string `json:"scope"`
	Value string `json:"value"`
	IP    string `json:"ip,omitempty"`
	Range string `json:"range,omitempty"`
}

type wireMeta struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type wireDecision struct {
	Duration string `json:"duration"`
	ID       int64  `json:"id,omitempty"`
	Origin   string `json:"origin"`
	Scenario string `json:"scenario"`
	Scope    string `json:"scope"`
	Type     string `json:"type"`
	Value    string `json:"value"`
}

// wireAlert has every field 1.4.6 requires (it answers 500 "validation
// failure" when one is missing, even the empty ones).
type wireAlert struct {
	ID              int64          `json:"id,omitempty"`
	Scenario        string         `json:"scenario"`
	ScenarioHash    string         `json:"scenario_hash"`
	ScenarioVersion string         `json:"scenario_version"`
	Message         string         `json:"message"`
	EventsCount     int            `json:"events_count"`
	StartAt         string         `json:"start_at"`
	StopAt          string         `json:"stop_at"`
	Capacity        int            `json:"capacity"`
	Leakspeed       string         `json:"leakspeed"`
	Simulated       bool           `json:"simulated"`
	Events          []struct{}     `json:"events"`
	Meta            []wireMeta     `json:"meta,omitempty"`
	Source          wireSource     `json:"source"`
	Decisions       []wireDecision `json:"decisions"`
}

// Scope is CrowdSec's scope name for a target: Ip for one address, else Range.
func Scope(p netip.Prefix) string {
	if p.IsSingleIP() {
		return "Ip"
	}
	return "Range"
}

// Value is CrowdSec's value for a target: the bare address for Ip scope.
func Value(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// PushAlerts sends alerts in one request and returns the alert ids LAPI
// gave them, in order.
func (c *Client) PushAlerts(ctx context.Context, alerts []Alert) ([]string, error) {
	wire := make([]wireAlert, 0, len(alerts))
	for _, a := range alerts {
		if !a.Target.IsValid() || a.Duration < time.Second {
			return nil, fmt.Errorf("crowdsec: push %s: invalid target or duration %s under 1s", a.Target, a.Duration)
		}
		at := a.At.UTC().Format(time.RFC3339)
		src := wireSource{Scope: Scope(a.Target), Value: Value(a.Target)}
		if a.Target.IsSingleIP() {
			src.IP = src.Value
		} else {
			src.Range = src.Value
		}
		w := wireAlert{
			Scenario: a.Scenario, Message: a.Message, EventsCount: a.Events,
			StartAt: at, StopAt: at, Leakspeed: "0", Events: []struct{}{}, Source: src,
			Decisions: []wireDecision{{Duration: a.Duration.String(), Origin: Origin, Scenario: a.Scenario,
				Scope: src.Scope, Type: "ban", Value: src.Value}},
		}
		if a.Key != "" {
			w.Meta = []wireMeta{{Key: MetaKey, Value: a.Key}}
		}
		wire = append(wire, w)
	}
	body, err := json.Marshal(wire)
	if err != nil {
		return nil, fmt.Errorf("crowdsec: encode alerts: %w", err)
	}
	var ids []string
	if err := c.authed(ctx, http.MethodPost, "/v1/alerts", nil, body, c.cfg.MaxBody, &ids); err != nil {
		return nil, err
	}
	if len(ids) != len(alerts) {
		return ids, fmt.Errorf("crowdsec LAPI POST /v1/alerts: %d ids for %d alerts", len(ids), len(alerts))
	}
	return ids, nil
}

// Found is an alert bansd pushed, found again in LAPI by its key.
type Found struct {
	AlertID     int64
	DecisionIDs []int64
}

// FindPushed looks up the alerts on target under scenario that carry key.
func (c *Client) FindPushed(ctx context.Context, target netip.Prefix, scenario, key string) ([]Found, error) {
	q := url.Values{"scope": {Scope(target)}, "value": {Value(target)}, "scenario": {scenario}, "limit": {"0"}}
	var alerts []wireAlert
	if err := c.authed(ctx, http.MethodGet, "/v1/alerts", q, nil, maxSearchBody, &alerts); err != nil {
		return nil, err
	}
	var out []Found
	for _, a := range alerts {
		for _, m := range a.Meta {
			if m.Key == MetaKey && m.Value == key {
				f := Found{AlertID: a.ID}
				for _, d := range a.Decisions {
					f.DecisionIDs = append(f.DecisionIDs, d.ID)
				}
				out = append(out, f)
				break
			}
		}
	}
	return out, nil
}

// DeleteDecision deletes one decision by id (a machine may; 1.4.6 answers
// {"nbDeleted":"1"}, or "0" when it was already gone).
func (c *Client) DeleteDecision(ctx context.Context, id int64) (int, error) {
	var ans struct {
		N string `json:"nbDeleted"`
	}
	if err := c.authed(ctx, http.MethodDelete, "/v1/decisions/"+strconv.FormatInt(id, 10), nil, nil, c.cfg.MaxBody, &ans); err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(ans.N)
	if err != nil {
		return 0, fmt.Errorf("crowdsec LAPI DELETE /v1/decisions/%d: bad nbDeleted %q", id, ans.N)
	}
	return n, nil
}
