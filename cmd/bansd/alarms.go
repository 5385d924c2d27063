package main

import (
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/jail"
)

const (
	// maxAlarms is how many distinct (kind, address) alarms status keeps;
	// the least recent are dropped, so crafted lines cannot grow memory.
	maxAlarms = 32
	// alarmLogEvery limits the log to one line per alarm and period.
	alarmLogEvery = time.Minute
)

// alarmFix is what the operator should do about each alarm kind.
var alarmFix = map[string]string{
	alarmCrowdSecRefused:    `CrowdSec's LAPI holds a decision against an address bansd never bans (a Docker gateway, Mailu's SUBNET, this host, ignoreip): it is not enforced here. Find who made it with "cscli decisions list" and delete it.`,
	alarmFirewallLost:       `Something removed bansd's nftables table or its bans (a firewall script, "nft flush ruleset", a firewalld or ufw reload); bansd restores them at each reconcile. Find what flushes the ruleset and make it leave table inet bansd alone.`,
	alarmDockerDown:         `bansd reads Mailu's logs from dockerd: while it does not answer, nobody is banned (the kernel keeps the bans it holds). Check "systemctl status docker" and [docker] host.`,
	jail.AlarmGatewayClient: `Mailu sees a Docker gateway as the client: Docker's userland proxy hides real addresses and Mailu trusts the gateway (open relay risk). Fix: ` + configs.RelayFix + `; run "bansctl doctor".`,
	jail.AlarmAllowedClient: `An address on the run-time allow-list keeps failing logins: bansd does not count or ban it. If you do not trust it, "bansctl allow remove" it.`,
	alarmRelayShield:        `bansd refuses IPv6 connections to these ports until the risk is gone. Fix: ` + configs.RelayFix + `; run "bansctl doctor".`,
	alarmRelayOpen:          `the relay shield is off (firewall.relay_shield = false or "bansctl shield off"): IPv6 clients are relayed as the gateway. Fix: ` + configs.RelayFix + `, or turn the shield on ("bansctl shield on").`,
}

const defaultFix = `a never-ban address appears as a client: the real client address is being lost; run "bansctl doctor".`

type alarmKey struct {
	kind string
	addr netip.Addr
}

type alarmEntry struct {
	control.AlarmStatus
	logged     time.Time
	suppressed int
	// heard is when bansd last got this alarm (its clock; Last is the
	// log's time, which lags on a backlog).
	heard time.Time
}

// alarmBook keeps the recent alarms for status and rate-limits their log.
type alarmBook struct {
	mu  sync.Mutex
	log *slog.Logger
	m   map[alarmKey]*alarmEntry
}

func newAlarmBook(log *slog.Logger) *alarmBook {
	return &alarmBook{log: log, m: map[alarmKey]*alarmEntry{}}
}

// alarmOf is an alarm bansd raises itself (no log line, no address).
func alarmOf(kind, hint string) jail.Alarm {
	return jail.Alarm{Kind: kind, Time: time.Now(), Count: 1, Hint: hint}
}

func (b *alarmBook) add(a jail.Alarm, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := alarmKey{a.Kind, a.Addr}
	e, ok := b.m[k]
	if !ok {
		if len(b.m) >= maxAlarms {
			b.evictOldest()
		}
		fix := alarmFix[a.Kind]
		if fix == "" {
			fix = defaultFix
		}
		if a.Hint != "" {
			sep := " "
			if !strings.ContainsAny(a.Hint[len(a.Hint)-1:], ".?!:") {
				sep = ". "
			}
			fix = a.Hint + sep + fix
		}
		addr := ""
		if a.Addr.IsValid() {
			addr = a.Addr.String()
		}
		e = &alarmEntry{AlarmStatus: control.AlarmStatus{Kind: a.Kind, Addr: addr, First: a.Time, Fix: fix}}
		b.m[k] = e
	}
	n := max(a.Count, 1)
	e.Count += n
	e.Last, e.heard = a.Time, now
	e.Line = a.Line
	if !e.logged.IsZero() && now.Sub(e.logged) < alarmLogEvery {
		e.suppressed += n
		return
	}
	b.log.Warn("alarm: "+a.Kind, "addr", a.Addr, "count", e.Count, "suppressed", e.suppressed, "hint", a.Hint, "line", a.Line)
	e.logged, e.suppressed = now, 0
}

// quiet takes out of the book the alarms of kind bansd has not heard of
// since cutoff and returns them: their cause has stopped showing.
func (b *alarmBook) quiet(kind string, cutoff time.Time) []control.AlarmStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []control.AlarmStatus
	for k, e := range b.m {
		if k.kind == kind && e.heard.Before(cutoff) {
			out = append(out, e.AlarmStatus)
			delete(b.m, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out
}

func (b *alarmBook) evictOldest() {
	var oldest alarmKey
	var t time.Time
	first := true
	for k, e := range b.m {
		if first || e.Last.Before(t) {
			oldest, t, first = k, e.Last, false
		}
	}
	delete(b.m, oldest)
}

// list returns the alarms, most recent first.
func (b *alarmBook) list() []control.AlarmStatus {
	b.mu.Lock()
	out := make([]control.AlarmStatus, 0, len(b.m))
	for _, e := range b.m {
		out = append(out, e.AlarmStatus)
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Last.After(out[j].Last) })
	return out
}
