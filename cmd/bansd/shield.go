package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/shield"
	"github.com/bansd/bansd/sources/docker"
	"github.com/bansd/bansd/store"
)

// Alarm kinds of the relay shield.
const (
	// alarmRelayShield: the open-relay facts hold and the shield is up.
	alarmRelayShield = "relay-shield"
	// alarmRelayOpen: the facts hold and the shield is off.
	alarmRelayOpen = "relay-open"
)

// shieldFacts turns what discovery learnt and the host's facts into the
// shield's facts; ok is false until a Mailu project is known, when nothing
// can be decided. listen6 are the ports something listens on over IPv6 in
// bansd's namespace, nil when unknown: when discovery cannot see the
// processes (bansd in a container without the host's process namespace),
// docker-proxy shows as an IPv6 listener on a published port, which the
// kernel's DNAT alone never is. Unknown both ways counts as on: with the
// proxy off, IPv6 clients do not reach an IPv4-only Mailu anyway, so the
// shield refuses nobody who would have been served.
func shieldFacts(info docker.MailuInfo, host []netip.Addr, listen6 map[uint16]bool) (f shield.Facts, ok bool) {
	if info.Project == "" {
		return shield.Facts{}, false
	}
	proxy := info.UserlandProxy != "no"
	if info.UserlandProxy != "yes" && listen6 != nil {
		proxy = slices.ContainsFunc(info.PublishedAll, func(p uint16) bool { return listen6[p] })
	}
	return shield.Facts{
		UserlandProxy: proxy,
		PublishedAll:  info.PublishedAll,
		HostIPv6:      len(shield.GlobalIPv6(host)) > 0,
		MailuIPv6:     info.IPv6,
	}, true
}

// ipv6Listeners reads the TCP ports listened on over IPv6 in bansd's
// network namespace; nil when /proc cannot tell.
func ipv6Listeners() map[uint16]bool {
	f, err := os.Open("/proc/net/tcp6")
	if err != nil {
		return nil
	}
	defer f.Close()
	m, err := parseListeners(f)
	if err != nil {
		return nil
	}
	return m
}

// parseListeners reads /proc/net/tcp6: the local port of each socket in
// state 0A (LISTEN).
func parseListeners(r io.Reader) (map[uint16]bool, error) {
	m := map[uint16]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[3] != "0A" {
			continue
		}
		_, port, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(port, 16, 16)
		if err != nil {
			return nil, fmt.Errorf("tcp6 line %q: %w", sc.Text(), err)
		}
		m[uint16(p)] = true
	}
	return m, sc.Err()
}

// shieldPlan is what the kernel should hold.
type shieldPlan struct {
	// ports to refuse; none lowers the shield.
	ports []uint16
	// risk: the open-relay facts hold; why says which, or what removes it.
	risk bool
	why  string
	// off names who turned the shield off ("config", "bansctl"), "" when on.
	off string
}

// planShield decides from the facts and the two switches.
func planShield(f shield.Facts, cfgOn, ctlOff bool) shieldPlan {
	ports, why := shield.Risk(f)
	p := shieldPlan{risk: len(ports) > 0, why: why, off: offBy(cfgOn, ctlOff)}
	if p.off == "" {
		p.ports = ports
	}
	return p
}

// offBy names who turned the shield off: "config", "bansctl", or "" for on.
func offBy(cfgOn, ctlOff bool) string {
	switch {
	case !cfgOn:
		return "config"
	case ctlOff:
		return "bansctl"
	}
	return ""
}

// relayShield runs the shield for the daemon: it decides at start, on
// every Docker change and at every reconcile, and tells the operator
// through the alarm path and the history.
type relayShield struct {
	sh    *shield.Shield
	log   *slog.Logger
	alarm func(jail.Alarm)
	event func(store.Event)
	host  func() []netip.Addr
	// listen6 reads the IPv6 listeners (ipv6Listeners).
	listen6 func() map[uint16]bool

	mu     sync.Mutex // serialises update and guards the fields below
	cfgOn  bool
	ctlOff bool
	info   docker.MailuInfo
	// applied is false until the first plan reached the kernel: Ensure
	// before it would empty a set an earlier run left raised.
	applied bool
	last    shieldPlan
	lastErr error
}

func newRelayShield(sh *shield.Shield, cfgOn bool, log *slog.Logger, alarm func(jail.Alarm), event func(store.Event), host func() []netip.Addr, listen6 func() map[uint16]bool) *relayShield {
	r := &relayShield{sh: sh, log: log, alarm: alarm, event: event, host: host, listen6: listen6, cfgOn: cfgOn}
	if !cfgOn {
		log.Warn("relay shield disabled (firewall.relay_shield = false): if Docker's userland proxy hands IPv6 clients to Mailu as the gateway, the relay is open", "fix", configs.RelayFix)
	}
	return r
}

// mailu takes new discovery facts and acts on them.
func (r *relayShield) mailu(ctx context.Context, info docker.MailuInfo) {
	r.mu.Lock()
	r.info = info
	r.mu.Unlock()
	r.update(ctx)
}

// setConfig applies firewall.relay_shield after a reload; a reload also
// ends a "bansctl shield off".
func (r *relayShield) setConfig(ctx context.Context, on bool) {
	r.mu.Lock()
	changed := r.cfgOn != on || r.ctlOff
	r.cfgOn, r.ctlOff = on, false
	r.mu.Unlock()
	if changed && !on {
		r.log.Warn("relay shield disabled by reload (firewall.relay_shield = false): the relay is open while the risk holds", "fix", configs.RelayFix)
	}
	r.update(ctx)
}

// set is "bansctl shield on|off".
func (r *relayShield) set(ctx context.Context, on bool, uid int) control.ShieldStatus {
	r.mu.Lock()
	r.ctlOff = !on
	cfgOn := r.cfgOn
	r.mu.Unlock()
	detail := "turned on by bansctl"
	if !on {
		detail = "turned off by bansctl until \"bansctl shield on\", a reload or a restart"
		r.log.Warn("relay shield turned off at run time: the relay is open while the risk holds", "uid", uid, "fix", configs.RelayFix)
	} else if !cfgOn {
		detail = "bansctl shield on: firewall.relay_shield = false still keeps it off"
	}
	r.event(store.Event{Kind: store.EventShield, Reason: "bansctl", Detail: detail, UID: uid})
	r.update(ctx)
	return r.status(ctx)
}

// update brings the kernel to the plan for the current facts. A plan
// that did not change is only repaired (Ensure), e.g. after `nft flush
// ruleset`.
func (r *relayShield) update(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := shieldFacts(r.info, r.host(), r.listen6())
	if !ok {
		return // nothing known yet: leave what an earlier run raised
	}
	p := planShield(f, r.cfgOn, r.ctlOff)
	same := r.applied && slices.Equal(p.ports, r.last.ports)
	var err error
	switch {
	case same:
		err = r.sh.Ensure(ctx)
	case len(p.ports) > 0:
		err = r.sh.Raise(ctx, p.ports)
	default:
		err = r.sh.Lower(ctx)
	}
	if err != nil {
		if r.lastErr == nil || r.lastErr.Error() != err.Error() {
			r.log.Error("relay shield", "err", err)
		}
		r.lastErr = err
		return
	}
	r.lastErr = nil
	prev, first := r.last, !r.applied
	r.applied, r.last = true, p
	if same && p.risk == prev.risk && p.off == prev.off {
		return
	}
	// The alarm path logs, counts, records and notifies.
	now := time.Now()
	switch {
	case len(p.ports) > 0:
		r.alarm(jail.Alarm{Kind: alarmRelayShield, Time: now, Count: 1, Hint: p.why})
	case p.risk && (first || prev.off == "" || !prev.risk):
		r.alarm(jail.Alarm{Kind: alarmRelayOpen, Time: now, Count: 1, Hint: "relay shield off (" + p.off + "): " + p.why})
	case !first && len(prev.ports) > 0:
		r.log.Info("relay shield lowered", "why", p.why, "off", p.off)
		r.event(store.Event{Kind: store.EventShield, Reason: "lowered", Detail: p.why, UID: store.NoUID})
	}
	// The risk gone (Docker fixed) clears whichever of the two alarms
	// announced it, in the history and to the channels.
	if !first && prev.risk && !p.risk {
		kind := alarmRelayOpen
		if len(prev.ports) > 0 {
			kind = alarmRelayShield
		}
		r.log.Info("alarm cleared: "+kind, "detail", p.why)
		r.event(store.Event{Kind: store.EventCleared, Reason: kind, Detail: "the open-relay risk is gone: " + p.why, UID: store.NoUID})
	}
}

// status reads the kernel and the last plan.
func (r *relayShield) status(ctx context.Context) control.ShieldStatus {
	r.mu.Lock()
	p, cfgOn, ctlOff, lastErr := r.last, r.cfgOn, r.ctlOff, r.lastErr
	r.mu.Unlock()
	st := control.ShieldStatus{Enabled: cfgOn && !ctlOff, Risk: p.risk, Why: p.why}
	// From the switches, not the last plan: before discovery there is none.
	st.Off = offBy(cfgOn, ctlOff)
	if p.risk {
		st.Fix = configs.RelayFix
	}
	if st.Why == "" {
		st.Why = "waiting for Docker discovery"
	}
	ks, err := r.sh.Status(ctx)
	switch {
	case err != nil:
		st.Problem = err.Error()
	case lastErr != nil:
		st.Problem = lastErr.Error()
	case !ks.Intact:
		st.Problem = ks.Problem
	}
	st.Up, st.Ports, st.Refused = ks.Up, ks.Ports, ks.Refused
	return st
}

// Shield answers POST /v1/shield.
func (d *daemon) Shield(ctx context.Context, req control.ShieldRequest) (control.ShieldStatus, error) {
	_, uid := withCaller(ctx)
	if d.shield == nil {
		return control.ShieldStatus{}, fmt.Errorf("relay shield: not started")
	}
	return d.shield.set(ctx, req.On, uid), nil
}

// shieldState is what the metrics read at scrape time.
func (d *daemon) shieldState(ctx context.Context) (up bool, refused uint64, ok bool) {
	if d.shield == nil {
		return false, 0, false
	}
	st, err := d.shield.sh.Status(ctx)
	if err != nil {
		return false, 0, false
	}
	return st.Up, st.Refused, true
}
