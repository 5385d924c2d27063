// Package configs holds bansd's configuration: the default TOML embedded in
// the binary, and the loader that overlays an operator's file on it.
package configs

import (
	_ "embed"
	"errors"
	"fmt"
	jailparse "github.com/bansd/bansd/jail/parse"
	"github.com/bansd/bansd/prefix"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

//go:embed bansd.toml
var defaultTOML []byte

// DefaultTOML returns the embedded default configuration file.
func DefaultTOML() []byte { return append([]byte(nil), defaultTOML...) }

// Config is bansd's whole configuration, validated.
type Config struct {
	// File is where the operator's part came from ("" for defaults only).
	File     string
	Daemon   Daemon
	Docker   Docker
	Firewall Firewall
	Ban      Ban
	Engine   Engine
	// Jails by name, sorted by JailNames.
	Jails map[string]Jail
	// Notify is in notify.go.
	Notify Notify
	// CrowdSec is in crowdsec.go.
	CrowdSec CrowdSec
	// History (the audit history of actions) is in history.go.
	History History
	// Blocklists by name (blocklist.go), sorted by BlocklistNames.
	Blocklists map[string]Blocklist
}

type Daemon struct {
	Socket        string
	SocketGroup   string
	State         string
	MetricsListen string
	LogLevel      string
}

type Docker struct {
	Host     string
	Project  string
	Services []string
	MaxLine  int
	// WarmupMaxSpan and WarmupMaxLines bound the warm-up at start: how far
	// before a service's cursor its log is read again to rebuild the
	// windows, and how many lines of it are counted.
	WarmupMaxSpan  time.Duration
	WarmupMaxLines int
}

type Firewall struct {
	Table     string
	Priority  int
	Reconcile time.Duration
	Batch     int
	// Attribution is "kernel" (a log line counts only for a connection the
	// kernel saw: the seen chains) or "text" (the log's own text rules,
	// for hosts where the kernel cannot see the clients).
	Attribution string
	// SeenTimeout is how long the kernel remembers a connection; at least
	// the longest findtime. SeenSize bounds each of its sets.
	SeenTimeout time.Duration
	SeenSize    int
	// Scope is what a ban drops: "all" (every packet from the address) or
	// "mail" (only TCP to Mailu's published ports and ScopePorts), so that
	// a banned admin behind a shared address keeps SSH to the host.
	Scope string
	// ScopePorts are ports a "mail" ban covers beside the ones Docker
	// reports, sorted and without duplicates.
	ScopePorts []uint16
	// RelayShield refuses IPv6 connections to Mailu's published ports
	// while Docker's userland proxy would hand them to Mailu as the
	// trusted gateway (package shield). A reload applies it at once, so
	// Equal leaves it out.
	RelayShield bool
}

// RelayFix is what the operator does about the userland-proxy open relay;
// doctor, the alarms and the never-ban hint all say it in these words.
const RelayFix = `set {"userland-proxy": false} in /etc/docker/daemon.json and restart Docker, or enable_ipv6 on the Mailu network (SUBNET6), or publish Mailu's ports on specific addresses (not 0.0.0.0 / ::)`

// Equal reports whether f and o are the same settings (Firewall holds a
// slice, so == does not compile).
func (f Firewall) Equal(o Firewall) bool {
	return f.Table == o.Table && f.Priority == o.Priority && f.Reconcile == o.Reconcile && f.Batch == o.Batch &&
		f.Attribution == o.Attribution && f.SeenTimeout == o.SeenTimeout && f.SeenSize == o.SeenSize &&
		f.Scope == o.Scope && slices.Equal(f.ScopePorts, o.ScopePorts)
}

// MaxBantime bounds a timed ban (a typo must not outlive the machine);
// the ban package clamps kernel timeouts to the same 10 years.
const MaxBantime = 10 * 365 * 24 * time.Hour

type Ban struct {
	Factor        float64
	BantimeMax    time.Duration
	HistoryMaxAge time.Duration
	// ManualBantime is a manual ban's duration when bansctl gives none.
	ManualBantime time.Duration
}

type Engine struct {
	IgnoreIP           []netip.Prefix
	Subnet             netip.Prefix
	Subnet6            netip.Prefix // zero when unset
	RealIPFrom         []netip.Prefix
	RatelimitExemption []netip.Prefix
	SuccessExempt      time.Duration
	MaxTracked         int
	EvidenceLines      int
}

type Jail struct {
	Name     string
	Enabled  bool
	Events   []string
	FindTime time.Duration
	MaxRetry int
	BanTime  time.Duration
	// Prefix4 and Prefix6 are the prefix lengths the jail counts and bans
	// (32/128: one address). 0 means the jail ignores that family.
	Prefix4 int
	Prefix6 int
	// MinAddresses > 1 makes a network jail: it bans only when that many
	// distinct addresses of the network contributed.
	MinAddresses int
}

// JailNames returns the jail names in a stable order.
func (c *Config) JailNames() []string {
	names := make([]string, 0, len(c.Jails))
	for n := range c.Jails {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Error is a configuration error that names the file, line and key.
type Error struct {
	File string
	Line int // 0 when unknown
	Key  string
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Default returns the embedded configuration.
func Default() (*Config, error) { return parse("(embedded default)", nil) }

// Load reads path and overlays it on the embedded default. An empty path
// gives the default.
func Load(path string) (*Config, error) {
	if path == "" {
		return Default()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse overlays data (named name in errors) on the embedded default.
func Parse(name string, data []byte) (*Config, error) { return parse(name, data) }

// The raw file shapes: strings for durations and prefixes so that every
// bad value can be reported with its key and line.
type rawFile struct {
	Daemon   rawDaemon          `toml:"daemon"`
	Docker   rawDocker          `toml:"docker"`
	Firewall rawFirewall        `toml:"firewall"`
	Ban      rawBan             `toml:"ban"`
	Engine   rawEngine          `toml:"engine"`
	Jails    map[string]rawJail `toml:"jails"`
	Notify   rawNotify          `toml:"notify"`
	CrowdSec rawCrowdSec        `toml:"crowdsec"`
	History  rawHistory         `toml:"history"`
	// Blocklists is in blocklist.go.
	Blocklists map[string]rawBlocklist `toml:"blocklists"`
}

type rawDaemon struct {
	Socket        *string `toml:"socket"`
	SocketGroup   *string `toml:"socket_group"`
	State         *string `toml:"state"`
	MetricsListen *string `toml:"metrics_listen"`
	LogLevel      *string `toml:"log_level"`
}

type rawDocker struct {
	Host     *string   `toml:"host"`
	Project  *string   `toml:"project"`
	Services *[]string `toml:"services"`
	MaxLine  *int      `toml:"max_line"`

	WarmupMaxSpan  *string `toml:"warmup_max_span"`
	WarmupMaxLines *int    `toml:"warmup_max_lines"`
}

type rawFirewall struct {
	Table     *string `toml:"table"`
	Priority  *int    `toml:"priority"`
	Reconcile *string `toml:"reconcile"`
	Batch     *int    `toml:"batch"`
	// See Firewall.
	Attribution *string `toml:"attribution"`
	SeenTimeout *string `toml:"seen_timeout"`
	SeenSize    *int    `toml:"seen_size"`
	Scope       *string `toml:"scope"`
	ScopePorts  *[]int  `toml:"scope_ports"`
	RelayShield *bool   `toml:"relay_shield"`
}

type rawBan struct {
	Factor        *float64 `toml:"bantime_factor"`
	BantimeMax    *string  `toml:"bantime_max"`
	HistoryMaxAge *string  `toml:"history_max_age"`
	ManualBantime *string  `toml:"manual_bantime"`
}

type rawEngine struct {
	IgnoreIP           *[]string `toml:"ignoreip"`
	Subnet             *string   `toml:"subnet"`
	Subnet6            *string   `toml:"subnet6"`
	RealIPFrom         *[]string `toml:"real_ip_from"`
	RatelimitExemption *[]string `toml:"ratelimit_exemption"`
	SuccessExempt      *string   `toml:"success_exempt"`
	MaxTracked         *int      `toml:"max_tracked"`
	EvidenceLines      *int      `toml:"evidence_lines"`
}

type rawJail struct {
	Enabled      *bool     `toml:"enabled"`
	Events       *[]string `toml:"events"`
	FindTime     *string   `toml:"findtime"`
	MaxRetry     *int      `toml:"maxretry"`
	BanTime      *string   `toml:"bantime"`
	Prefix4      *int      `toml:"prefix4"`
	Prefix6      *int      `toml:"prefix6"`
	MinAddresses *int      `toml:"min_addresses"`
}

// layer is one decoded file with what is needed to point at its lines.
type layer struct {
	name string
	data []byte
	raw  rawFile
}

func decodeLayer(name string, data []byte) (*layer, error) {
	l := &layer{name: name, data: data}
	md, err := toml.Decode(string(data), &l.raw)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, &Error{File: name, Line: perr.Position.Line, Key: perr.LastKey, Err: errors.New(perr.Message)}
		}
		return nil, typeError(name, err)
	}
	if undec := md.Undecoded(); len(undec) > 0 {
		k := undec[0]
		return nil, &Error{File: name, Line: l.line(k.String()), Key: k.String(), Err: errors.New("unknown key")}
	}
	return l, nil
}

// typeError turns the toml package's plain-text type errors
// ("toml: line 2 (last key "a.b"): incompatible types: ...") into an Error.
func typeError(file string, err error) error {
	msg := err.Error()
	rest, ok := strings.CutPrefix(msg, "toml: line ")
	if !ok {
		return &Error{File: file, Err: err}
	}
	num, rest, _ := strings.Cut(rest, " ")
	line, _ := strconv.Atoi(num)
	key := ""
	if r, ok := strings.CutPrefix(rest, "(last key \""); ok {
		if k, tail, ok := strings.Cut(r, "\"): "); ok {
			key, rest = k, tail
		}
	}
	return &Error{File: file, Line: line, Key: key, Err: errors.New(typeWords(strings.TrimPrefix(rest, ": ")))}
}

// line finds the line that sets the dotted key, by scanning table headers;
// 0 when it cannot tell.
func (l *layer) line(key string) int {
	parts := strings.Split(key, ".")
	leaf := parts[len(parts)-1]
	table := strings.Join(parts[:len(parts)-1], ".")
	current := ""
	for i, ln := range strings.Split(string(l.data), "\n") {
		t := strings.TrimSpace(ln)
		if strings.HasPrefix(t, "[") {
			h := strings.Trim(t, "[] \t")
			if j := strings.Index(h, "#"); j >= 0 {
				h = strings.TrimSpace(strings.Trim(h[:j], "[] \t"))
			}
			current = strings.ReplaceAll(h, "\"", "")
			if current == key {
				return i + 1
			}
			continue
		}
		if current != table {
			continue
		}
		if eq := strings.Index(t, "="); eq > 0 && strings.Trim(strings.TrimSpace(t[:eq]), "\"") == leaf {
			return i + 1
		}
	}
	return 0
}

func parse(name string, data []byte) (*Config, error) {
	def, err := decodeLayer("(embedded default)", defaultTOML)
	if err != nil {
		return nil, fmt.Errorf("embedded default config: %w", err)
	}
	layers := []*layer{def}
	if data != nil {
		user, err := decodeLayer(name, data)
		if err != nil {
			return nil, err
		}
		if err := checkJailCase(def, user); err != nil {
			return nil, err
		}
		layers = append(layers, user)
	}
	c := &Config{Jails: map[string]Jail{}, Blocklists: map[string]Blocklist{}}
	if data != nil {
		c.File = name
	}
	for _, l := range layers {
		if err := c.apply(l); err != nil {
			return nil, err
		}
	}
	if err := c.check(layers[len(layers)-1]); err != nil {
		return nil, err
	}
	return c, nil
}

// failFunc names a key of the layer being applied in its error.
type failFunc func(key string, err error) error

// apply overlays the keys a layer sets, section by section.
func (c *Config) apply(l *layer) error {
	r := l.raw
	fail := func(key string, err error) error {
		return &Error{File: l.name, Line: l.line(key), Key: key, Err: err}
	}
	if err := c.applyDaemon(r.Daemon, fail); err != nil {
		return err
	}
	if err := c.applyDocker(r.Docker, fail); err != nil {
		return err
	}
	if err := c.applyFirewall(r.Firewall, fail); err != nil {
		return err
	}
	if err := c.applyBan(r.Ban, fail); err != nil {
		return err
	}
	if err := c.applyEngine(r.Engine, fail); err != nil {
		return err
	}
	if err := c.applyJails(r.Jails, fail); err != nil {
		return err
	}
	if err := c.applyCrowdSec(l); err != nil {
		return err
	}
	if err := c.applyHistory(r.History, fail); err != nil {
		return err
	}
	if err := c.applyBlocklists(r.Blocklists, fail); err != nil {
		return err
	}
	return c.applyNotify(l)
}

// applyDaemon sets [daemon].
func (c *Config) applyDaemon(rd rawDaemon, fail failFunc) error {
	setStr(&c.Daemon.Socket, rd.Socket)
	setStr(&c.Daemon.SocketGroup, rd.SocketGroup)
	setStr(&c.Daemon.State, rd.State)
	setStr(&c.Daemon.MetricsListen, rd.MetricsListen)
	if rd.LogLevel != nil {
		switch *rd.LogLevel {
		case "debug", "info", "warn", "error":
			c.Daemon.LogLevel = *rd.LogLevel
		default:
			return fail("daemon.log_level", fmt.Errorf("%q is not one of debug, info, warn, error", *rd.LogLevel))
		}
	}
	if m := c.Daemon.MetricsListen; rd.MetricsListen != nil && m != "" {
		ap, err := netip.ParseAddrPort(m)
		if err != nil || !ap.Addr().IsLoopback() {
			return fail("daemon.metrics_listen", fmt.Errorf("%q is not a loopback address:port", m))
		}
	}
	return nil
}

// applyDocker sets [docker].
func (c *Config) applyDocker(rd rawDocker, fail failFunc) error {
	setStr(&c.Docker.Host, rd.Host)
	setStr(&c.Docker.Project, rd.Project)
	if rd.Services != nil {
		c.Docker.Services = append([]string(nil), (*rd.Services)...)
	}
	if err := setInt(&c.Docker.MaxLine, rd.MaxLine, 1024, 16<<20); err != nil {
		return fail("docker.max_line", err)
	}
	// "0s" turns the warm-up off. A week bounds the start-up work; the
	// longest findtime is what is read in practice.
	if err := setDur(&c.Docker.WarmupMaxSpan, rd.WarmupMaxSpan, 0); err != nil {
		return fail("docker.warmup_max_span", err)
	}
	if c.Docker.WarmupMaxSpan > 7*24*time.Hour {
		return fail("docker.warmup_max_span", fmt.Errorf("%s is longer than 1w", c.Docker.WarmupMaxSpan))
	}
	if err := setInt(&c.Docker.WarmupMaxLines, rd.WarmupMaxLines, 0, 100_000_000); err != nil {
		return fail("docker.warmup_max_lines", err)
	}
	return nil
}

// applyFirewall sets [firewall].
func (c *Config) applyFirewall(rf rawFirewall, fail failFunc) error {
	setStr(&c.Firewall.Table, rf.Table)
	if rf.Table != nil && !ValidName(c.Firewall.Table) {
		return fail("firewall.table", fmt.Errorf("%q is not a valid table name", c.Firewall.Table))
	}
	if rf.Priority != nil {
		if *rf.Priority < -400 || *rf.Priority > 0 {
			return fail("firewall.priority", fmt.Errorf("%d is outside -400..0 (the ban must come before DNAT at -100 to be useful, and after defrag at -400)", *rf.Priority))
		}
		c.Firewall.Priority = *rf.Priority
	}
	if err := setDur(&c.Firewall.Reconcile, rf.Reconcile, time.Second); err != nil {
		return fail("firewall.reconcile", err)
	}
	if err := setInt(&c.Firewall.Batch, rf.Batch, 1, 8192); err != nil {
		return fail("firewall.batch", err)
	}
	setStr(&c.Firewall.Attribution, rf.Attribution)
	if c.Firewall.Attribution != "kernel" && c.Firewall.Attribution != "text" {
		return fail("firewall.attribution", fmt.Errorf("%q: want \"kernel\" or \"text\"", c.Firewall.Attribution))
	}
	if err := setDur(&c.Firewall.SeenTimeout, rf.SeenTimeout, time.Second); err != nil {
		return fail("firewall.seen_timeout", err)
	}
	if err := setInt(&c.Firewall.SeenSize, rf.SeenSize, 64, 1<<24); err != nil {
		return fail("firewall.seen_size", err)
	}
	setStr(&c.Firewall.Scope, rf.Scope)
	if c.Firewall.Scope != "all" && c.Firewall.Scope != "mail" {
		return fail("firewall.scope", fmt.Errorf("%q: want \"all\" or \"mail\"", c.Firewall.Scope))
	}
	if rf.RelayShield != nil {
		c.Firewall.RelayShield = *rf.RelayShield
	}
	if rf.ScopePorts != nil {
		ports := make([]uint16, 0, len(*rf.ScopePorts))
		for _, p := range *rf.ScopePorts {
			if p < 1 || p > 65535 {
				return fail("firewall.scope_ports", fmt.Errorf("port %d is outside 1..65535", p))
			}
			ports = append(ports, uint16(p))
		}
		slices.Sort(ports)
		c.Firewall.ScopePorts = slices.Compact(ports)
	}
	return nil
}

// applyBan sets [ban].
func (c *Config) applyBan(rb rawBan, fail failFunc) error {
	if rb.Factor != nil {
		if *rb.Factor < 1 || *rb.Factor > 100 {
			return fail("ban.bantime_factor", fmt.Errorf("%g is outside 1..100", *rb.Factor))
		}
		c.Ban.Factor = *rb.Factor
	}
	if err := setDur(&c.Ban.BantimeMax, rb.BantimeMax, time.Second); err != nil {
		return fail("ban.bantime_max", err)
	}
	if err := setDur(&c.Ban.HistoryMaxAge, rb.HistoryMaxAge, time.Minute); err != nil {
		return fail("ban.history_max_age", err)
	}
	if err := setDur(&c.Ban.ManualBantime, rb.ManualBantime, time.Second); err != nil {
		return fail("ban.manual_bantime", err)
	}
	if c.Ban.ManualBantime > MaxBantime {
		return fail("ban.manual_bantime", fmt.Errorf("%s is longer than 10 years; for a ban without end use bansctl ban --for permanent", *rb.ManualBantime))
	}
	return nil
}

// applyEngine sets [engine].
func (c *Config) applyEngine(re rawEngine, fail failFunc) error {
	var err error
	if re.IgnoreIP != nil {
		if c.Engine.IgnoreIP, err = parsePrefixes(*re.IgnoreIP); err != nil {
			return fail("engine.ignoreip", err)
		}
	}
	if re.Subnet != nil {
		p, err := ParsePrefix(*re.Subnet)
		if err != nil || !p.Addr().Is4() {
			return fail("engine.subnet", fmt.Errorf("%q is not an IPv4 CIDR", *re.Subnet))
		}
		c.Engine.Subnet = p
	}
	if re.Subnet6 != nil {
		c.Engine.Subnet6 = netip.Prefix{}
		if *re.Subnet6 != "" {
			p, err := ParsePrefix(*re.Subnet6)
			if err != nil || !p.Addr().Is6() {
				return fail("engine.subnet6", fmt.Errorf("%q is not an IPv6 CIDR", *re.Subnet6))
			}
			c.Engine.Subnet6 = p
		}
	}
	if re.RealIPFrom != nil {
		if c.Engine.RealIPFrom, err = parsePrefixes(*re.RealIPFrom); err != nil {
			return fail("engine.real_ip_from", err)
		}
	}
	if re.RatelimitExemption != nil {
		if c.Engine.RatelimitExemption, err = parsePrefixes(*re.RatelimitExemption); err != nil {
			return fail("engine.ratelimit_exemption", err)
		}
	}
	if err := setDur(&c.Engine.SuccessExempt, re.SuccessExempt, 0); err != nil {
		return fail("engine.success_exempt", err)
	}
	if err := setInt(&c.Engine.MaxTracked, re.MaxTracked, 100, 50_000_000); err != nil {
		return fail("engine.max_tracked", err)
	}
	if err := setInt(&c.Engine.EvidenceLines, re.EvidenceLines, 0, 100); err != nil {
		return fail("engine.evidence_lines", err)
	}
	return nil
}

// applyJails overlays [jails.NAME] on the jails so far.
func (c *Config) applyJails(rjs map[string]rawJail, fail failFunc) error {
	for name, rj := range rjs {
		key := "jails." + name
		if !ValidName(name) {
			return fail(key, fmt.Errorf("jail name %q: use letters, digits, - and _", name))
		}
		j, ok := c.Jails[name]
		if !ok {
			j = Jail{Name: name, Enabled: true, Prefix4: 32, Prefix6: 128, MinAddresses: 1}
		}
		if rj.Enabled != nil {
			j.Enabled = *rj.Enabled
		}
		if rj.Events != nil {
			j.Events = append([]string(nil), (*rj.Events)...)
			for _, e := range j.Events {
				if _, ok := jailparse.ParseKind(e); !ok {
					return fail(key+".events", fmt.Errorf("unknown event %q (known: %s)", e, strings.Join(jailparse.CountableNames(), ", ")))
				}
			}
		}
		if err := setDur(&j.FindTime, rj.FindTime, time.Second); err != nil {
			return fail(key+".findtime", err)
		}
		if err := setDur(&j.BanTime, rj.BanTime, time.Second); err != nil {
			return fail(key+".bantime", err)
		}
		if err := setInt(&j.MaxRetry, rj.MaxRetry, 1, 1_000_000); err != nil {
			return fail(key+".maxretry", err)
		}
		if rj.Prefix4 != nil {
			if *rj.Prefix4 < 0 || *rj.Prefix4 > 32 || (*rj.Prefix4 > 0 && *rj.Prefix4 < 8) {
				return fail(key+".prefix4", fmt.Errorf("%d is not 0 (off) or 8..32", *rj.Prefix4))
			}
			j.Prefix4 = *rj.Prefix4
		}
		if rj.Prefix6 != nil {
			if *rj.Prefix6 < 0 || *rj.Prefix6 > 128 || (*rj.Prefix6 > 0 && *rj.Prefix6 < 16) {
				return fail(key+".prefix6", fmt.Errorf("%d is not 0 (off) or 16..128", *rj.Prefix6))
			}
			j.Prefix6 = *rj.Prefix6
		}
		if err := setInt(&j.MinAddresses, rj.MinAddresses, 1, 10000); err != nil {
			return fail(key+".min_addresses", err)
		}
		c.Jails[name] = j
	}
	return nil
}

// check validates what only the merged result can show.
func (c *Config) check(l *layer) error {
	for _, name := range c.JailNames() {
		j := c.Jails[name]
		key := "jails." + name
		fail := func(k string, err error) error {
			return &Error{File: l.name, Line: l.line(k), Key: k, Err: err}
		}
		if !j.Enabled {
			continue
		}
		if len(j.Events) == 0 {
			return fail(key+".events", errors.New("an enabled jail needs at least one event"))
		}
		if j.FindTime <= 0 || j.BanTime <= 0 || j.MaxRetry <= 0 {
			return fail(key, errors.New("an enabled jail needs findtime, bantime and maxretry"))
		}
		if j.Prefix4 == 0 && j.Prefix6 == 0 {
			return fail(key, errors.New("prefix4 and prefix6 are both 0: the jail would match nothing"))
		}
		if c.Ban.BantimeMax > 0 && j.BanTime > c.Ban.BantimeMax {
			return fail(key+".bantime", fmt.Errorf("%s is longer than ban.bantime_max %s", j.BanTime, c.Ban.BantimeMax))
		}
		if j.FindTime > c.Firewall.SeenTimeout && (c.File == "" || l.raw.Firewall.SeenTimeout == nil) {
			// Not chosen: the kernel remembers at least every window.
			c.Firewall.SeenTimeout = j.FindTime
		}
		if c.Firewall.Attribution == "kernel" && j.FindTime > c.Firewall.SeenTimeout {
			// A connection forgotten before its window closes would let
			// the window's later lines go uncounted.
			return fail(key+".findtime", fmt.Errorf("%s is longer than firewall.seen_timeout %s (the kernel's memory of who connected)", j.FindTime, c.Firewall.SeenTimeout))
		}
	}
	if err := c.checkCrowdSec(l); err != nil {
		return err
	}
	if err := c.checkBlocklists(l); err != nil {
		return err
	}
	return c.checkNotify(l)
}

// ValidName reports whether s may name a jail, a channel or a table:
// letters, digits, - and _, at most 64 bytes.
func ValidName(s string) bool { return validToken(s, 64) }

// validToken: 1 to max letters, digits, - and _.
func validToken(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func setStr(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

// setInt sets *dst to *v when the key is set and *v is within lo..hi.
func setInt(dst *int, v *int, lo, hi int) error {
	if v == nil {
		return nil
	}
	if *v < lo || *v > hi {
		return fmt.Errorf("%d is outside %d..%d", *v, lo, hi)
	}
	*dst = *v
	return nil
}

func setDur(dst *time.Duration, v *string, min time.Duration) error {
	if v == nil {
		return nil
	}
	d, err := ParseDuration(*v)
	if err != nil {
		return err
	}
	if d < min {
		return fmt.Errorf("%q is shorter than %s", *v, min)
	}
	*dst = d
	return nil
}

// ParseDuration accepts Go durations plus the units d (24h) and w (7d),
// alone or combined ("1w2d", "1d12h").
func ParseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var total time.Duration
	rest := in
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("bad duration %q (examples: \"90s\", \"10m\", \"1h30m\", \"1d\", \"1w\")", s)
		}
		j := i
		for j < len(rest) && !(rest[j] >= '0' && rest[j] <= '9' || rest[j] == '.') {
			j++
		}
		num, unit := rest[:i], rest[i:j]
		rest = rest[j:]
		var mult time.Duration
		switch unit {
		case "d":
			mult = 24 * time.Hour
		case "w":
			mult = 7 * 24 * time.Hour
		default:
			d, err := time.ParseDuration(num + unit)
			if err != nil {
				return 0, fmt.Errorf("bad duration %q (examples: \"90s\", \"10m\", \"1h30m\", \"1d\", \"1w\")", s)
			}
			total += d
			continue
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f*float64(mult) > float64(1<<62) {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		total += time.Duration(f * float64(mult))
	}
	if total < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return total, nil
}

// ParsePrefix accepts a CIDR or a bare address (taken as /32 or /128),
// normalized by prefix.Parse.
func ParsePrefix(s string) (netip.Prefix, error) { return prefix.Parse(s) }

func parsePrefixes(ss []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
