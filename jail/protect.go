package jail

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/bansd/bansd/jail/parse"
	"github.com/bansd/bansd/prefix"

	"github.com/bansd/bansd/configs"
)

// Protected are the never-ban inputs learnt live (from the Docker source).
// Zero Subnet/Subnet6 fall back to the configuration's engine.subnet/subnet6.
type Protected struct {
	Gateways           []netip.Addr
	Networks           []netip.Prefix
	HostAddrs          []netip.Addr
	Subnet, Subnet6    netip.Prefix
	RealIPFrom         []netip.Prefix
	RatelimitExemption []netip.Prefix
}

// The never-ban ranges that hold whatever the configuration says.
var specialRanges = []struct {
	p    netip.Prefix
	name string
}{
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("0.0.0.0/32"), "unspecified"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
}

// alarmClass says whether a protected "client" means the real client
// address is being lost.
type alarmClass uint8

const (
	alarmNone alarmClass = iota
	// alarmNetwork: inside SUBNET/SUBNET6 or a Docker network.
	alarmNetwork
	// alarmGateway: a Docker bridge gateway, what docker-proxy connects from.
	alarmGateway
	// alarmAllowed: on the run-time allow-list; its attempts are not
	// counted, and an operator hears of them instead of a ban.
	alarmAllowed
)

// Protection is how firmly a never-ban rule holds against an operator.
type Protection uint8

const (
	// Hard: loopback and the other special ranges, the host's own
	// addresses, Docker networks and gateways, Mailu's SUBNET/SUBNET6 and
	// REAL_IP_FROM. Banning one cuts the mail server off from itself, or
	// every client at once behind a gateway or a proxy.
	Hard Protection = iota
	// AllowListed: the operator's own exemptions, ignoreip and Mailu's
	// AUTH_RATELIMIT_EXEMPTION (and run-time allow entries): the operator
	// may take them back for one ban.
	AllowListed
)

func (p Protection) String() string {
	if p == AllowListed {
		return "allowed"
	}
	return "hard"
}

// ForceOverrides is bansd's one --force rule: an operator's forced ban
// overrides an allow-list entry, never a hard protection.
func ForceOverrides(p Protection) bool { return p == AllowListed }

type protectRule struct {
	p     netip.Prefix
	name  string
	alarm alarmClass
	class Protection
	// runtime: a run-time allow entry (bansctl allow), looked up through
	// protectSet.allowed rather than the scan.
	runtime bool
}

// protectSet answers "is this address never to be banned" with a linear
// scan over masked integers: the list is short (tens of entries) and the
// check runs once per event.
type protectSet struct {
	rules []protectRule
	v4    []rule4
	v6    []rule6
	// allowed are the run-time allow entries (up to a thousand): by
	// prefix, looked up once per length in use, longest first.
	allowed    map[netip.Prefix]int
	allowLens4 []int
	allowLens6 []int
}

type rule4 struct {
	addr, mask uint32
	idx        int
}

type rule6 struct {
	hi, lo, mhi, mlo uint64
	idx              int
}

func buildProtect(cfg *configs.Config, live Protected, allowed []Allowed) *protectSet {
	ps := &protectSet{}
	add := func(p netip.Prefix, name string, alarm alarmClass) { ps.add(p, name, alarm, Hard) }
	// Order matters: the first match names the rule, and the alarm rules
	// come before any allow-list that might also cover them.
	for _, s := range specialRanges {
		add(s.p, s.name, alarmNone)
	}
	for _, g := range live.Gateways {
		g = g.Unmap()
		add(netip.PrefixFrom(g, g.BitLen()), "docker gateway "+g.String(), alarmGateway)
	}
	subnet, subnet6 := live.Subnet, live.Subnet6
	if !subnet.IsValid() {
		subnet = cfg.Engine.Subnet
	}
	if !subnet6.IsValid() {
		subnet6 = cfg.Engine.Subnet6
	}
	if len(live.Gateways) == 0 {
		// Not told the gateways: Docker gives a bridge network's first
		// address to the gateway.
		for _, s := range []netip.Prefix{subnet, subnet6} {
			if s.IsValid() && s.Bits() < s.Addr().BitLen()-1 {
				g := s.Masked().Addr().Next()
				add(netip.PrefixFrom(g, g.BitLen()), "docker gateway "+g.String()+" (assumed)", alarmGateway)
			}
		}
	}
	add(subnet, "Mailu SUBNET "+subnet.String(), alarmNetwork)
	add(subnet6, "Mailu SUBNET6 "+subnet6.String(), alarmNetwork)
	// A configured fallback that differs from what Docker reports stays
	// protected too: never-ban lists only ever grow.
	if c := cfg.Engine.Subnet; c.IsValid() && c != subnet {
		add(c, "engine.subnet "+c.String(), alarmNetwork)
	}
	if c := cfg.Engine.Subnet6; c.IsValid() && c != subnet6 {
		add(c, "engine.subnet6 "+c.String(), alarmNetwork)
	}
	for _, n := range live.Networks {
		add(n, "docker network "+n.Masked().String(), alarmNetwork)
	}
	for _, h := range live.HostAddrs {
		h = h.Unmap()
		add(netip.PrefixFrom(h, h.BitLen()), "host address "+h.String(), alarmNone)
	}
	realIP, exempt := live.RealIPFrom, live.RatelimitExemption
	if realIP == nil {
		realIP = cfg.Engine.RealIPFrom
	}
	if exempt == nil {
		exempt = cfg.Engine.RatelimitExemption
	}
	for _, p := range realIP {
		add(p, "REAL_IP_FROM "+p.String(), alarmNone)
	}
	for _, p := range exempt {
		ps.add(p, "AUTH_RATELIMIT_EXEMPTION "+p.String(), alarmNone, AllowListed)
	}
	for _, p := range cfg.Engine.IgnoreIP {
		ps.add(p, "ignoreip "+p.String(), alarmNone, AllowListed)
	}
	// Last: every configured and learnt rule names an address first.
	for _, a := range allowed {
		ps.add(a.Target, a.ruleName(), alarmAllowed, AllowListed)
		ps.rules[len(ps.rules)-1].runtime = true
	}
	for i, r := range ps.rules {
		if r.runtime {
			ps.indexAllowed(r.p, i)
			continue
		}
		a := r.p.Addr()
		if a.Is4() {
			b := a.As4()
			m := uint32(0)
			if r.p.Bits() > 0 {
				m = ^uint32(0) << (32 - r.p.Bits())
			}
			ps.v4 = append(ps.v4, rule4{addr: binary.BigEndian.Uint32(b[:]), mask: m, idx: i})
			continue
		}
		hi, lo := split6(a)
		mhi, mlo := mask6(r.p.Bits())
		ps.v6 = append(ps.v6, rule6{hi: hi, lo: lo, mhi: mhi, mlo: mlo, idx: i})
	}
	return ps
}

// match returns the first rule that covers a (unmapped); the run-time
// allow entries come after every other rule.
func (ps *protectSet) match(a netip.Addr) (*protectRule, bool) {
	if a.Is4() {
		b := a.As4()
		v := binary.BigEndian.Uint32(b[:])
		for _, r := range ps.v4 {
			if v&r.mask == r.addr {
				return &ps.rules[r.idx], true
			}
		}
		return ps.matchAllowed(a, ps.allowLens4)
	}
	hi, lo := split6(a)
	for _, r := range ps.v6 {
		if hi&r.mhi == r.hi && lo&r.mlo == r.lo {
			return &ps.rules[r.idx], true
		}
	}
	return ps.matchAllowed(a, ps.allowLens6)
}

func (ps *protectSet) matchAllowed(a netip.Addr, lens []int) (*protectRule, bool) {
	for _, bits := range lens {
		p, _ := a.Prefix(bits)
		if i, ok := ps.allowed[p]; ok {
			return &ps.rules[i], true
		}
	}
	return nil, false
}

// indexAllowed adds allow rule i (prefix p, normalized) to the lookup.
func (ps *protectSet) indexAllowed(p netip.Prefix, i int) {
	if ps.allowed == nil {
		ps.allowed = map[netip.Prefix]int{}
	}
	if _, dup := ps.allowed[p]; dup {
		return
	}
	ps.allowed[p] = i
	lens := &ps.allowLens6
	if p.Addr().Is4() {
		lens = &ps.allowLens4
	}
	if !slices.Contains(*lens, p.Bits()) {
		*lens = append(*lens, p.Bits())
		slices.SortFunc(*lens, func(x, y int) int { return y - x })
	}
}

func (ps *protectSet) add(p netip.Prefix, name string, alarm alarmClass, class Protection) {
	p, err := prefix.Normalize(p)
	if err != nil {
		return
	}
	ps.rules = append(ps.rules, protectRule{p: p, name: name, alarm: alarm, class: class})
}

// refuses returns the rule that forbids a ban of p (normalized): one whose
// range overlaps p, since a network ban must not cover anything protected.
// A hard rule is named before an allow-list entry, so that a refusal never
// suggests --force when --force would not do; with force, the rules that
// ForceOverrides are skipped.
func (ps *protectSet) refuses(p netip.Prefix, force bool) (*protectRule, bool) {
	var allowed *protectRule
	for i := range ps.rules {
		r := &ps.rules[i]
		if !r.p.Overlaps(p) {
			continue
		}
		if !ForceOverrides(r.class) {
			return r, true
		}
		if allowed == nil && !force {
			allowed = r
		}
	}
	return allowed, allowed != nil
}

func split6(a netip.Addr) (hi, lo uint64) {
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

func mask6(bits int) (hi, lo uint64) {
	switch {
	case bits <= 0:
		return 0, 0
	case bits < 64:
		return ^uint64(0) << (64 - bits), 0
	case bits == 64:
		return ^uint64(0), 0
	case bits < 128:
		return ^uint64(0), ^uint64(0) << (128 - bits)
	default:
		return ^uint64(0), ^uint64(0)
	}
}

// gatewayHint tells the operator what a gateway "client" means and how to fix it.
const gatewayHint = "this client address is a Docker gateway or inside Mailu's SUBNET/a Docker network: " +
	"the real client address is being lost. Usually Docker's userland proxy (docker-proxy) accepts IPv6 " +
	"(or host-local) connections on ports published on all addresses and reconnects to front from the bridge " +
	"gateway. Postfix trusts SUBNET (mynetworks), so mail arriving this way is relayed without authentication: " +
	"an open relay; and every such client shares one address, so it can never be banned. Fix: " +
	configs.RelayFix + ". bansd never bans this address."

// alarmWorthy: the "client" is where docker-proxy or a mis-set proxy
// connects from. Postfix's client= is only alarming for a gateway: internal
// senders (admin, webmail) legitimately sit inside Docker networks.
func alarmWorthy(r *protectRule, ev parse.Event) bool {
	if r.alarm == alarmNone {
		return false
	}
	if parse.WebmailPort(ev.Port) {
		return false
	}
	if ev.Kind == parse.KindRelayClient {
		return r.alarm == alarmGateway
	}
	return true
}
