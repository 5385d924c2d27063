package ban

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/bansd/bansd/ban/escalate"
	"github.com/bansd/bansd/prefix"
	"github.com/bansd/bansd/store"
)

// Evidence is bounded: lines are attacker-influenced text.
const maxEvidenceLine = 2048

type prepared struct {
	ban store.Ban
	err error
}

// prepare validates and escalates requests. Validation happens here,
// before queuing, because one bad element fails a whole transaction.
func (m *Manager) prepare(rs []Request) ([]prepared, error) {
	now := m.now()
	out := make([]prepared, len(rs))
	var lookup []netip.Prefix
	var at []int
	for i, r := range rs {
		t, err := m.checkTarget(r.Target, r.Force)
		switch {
		case err != nil:
			out[i].err = err
			continue
		case r.Duration <= 0:
			out[i].err = fmt.Errorf("%w: %s: ban duration %s", ErrRefused, t, r.Duration)
			continue
		}
		since := r.Time
		if since.IsZero() || since.After(now) {
			since = now
		}
		out[i].ban = store.Ban{Target: t, Jail: bound(r.Jail, 64), Reason: bound(r.Reason, 1024), Since: since, Manual: r.Manual, Pulled: r.Pulled,
			Until: since.Add(r.Duration), Evidence: m.boundEvidence(r.Evidence)}
		if !r.Manual && !r.Pulled {
			lookup = append(lookup, t)
			at = append(at, i)
		}
	}
	if len(lookup) > 0 {
		hs, err := m.db.Histories(lookup)
		if err != nil {
			return nil, fmt.Errorf("ban: read history: %w", err)
		}
		for k, h := range hs {
			b := &out[at[k]].ban
			if m.opt.HistoryMaxAge > 0 && h.LastBan.Before(now.Add(-m.opt.HistoryMaxAge)) {
				h.Offences = 0
			}
			b.Level = h.Offences
			b.Until = b.Since.Add(m.escalate(rs[at[k]].Duration, h.Offences))
		}
	}
	for i := range out {
		if out[i].err == nil && !out[i].ban.Until.After(now) {
			out[i].err = ErrExpired
		}
	}
	return out, nil
}

// escalate is base × factor^offences, capped at bantime_max.
func (m *Manager) escalate(base time.Duration, offences int) time.Duration {
	limit := m.opt.BantimeMax
	if limit <= 0 {
		limit = maxTimeout
	}
	return escalate.Duration(base, offences, m.opt.Factor, limit)
}

func (m *Manager) boundEvidence(ev []string) []string {
	keep := m.opt.EvidenceLines
	if keep <= 0 || len(ev) == 0 {
		return nil
	}
	ev = ev[max(0, len(ev)-keep):]
	out := make([]string, len(ev))
	for i, l := range ev {
		out[i] = bound(l, maxEvidenceLine)
	}
	return out
}

// bound cuts text that may carry attacker input to n bytes of valid UTF-8.
func bound(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// checkTarget refuses what must never be banned: networks so wide they
// would cut off the world, special addresses, and whatever the never-ban
// verdict protects (the jails already skip those; this is the last line).
func (m *Manager) checkTarget(p netip.Prefix, force bool) (netip.Prefix, error) {
	p, err := prefix.Normalize(p)
	if err != nil {
		return p, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	a := p.Addr()
	if a.Is4() && p.Bits() < 8 || a.Is6() && p.Bits() < 16 {
		return p, fmt.Errorf("%w: %s is wider than /8 (IPv4) or /16 (IPv6)", ErrRefused, p)
	}
	if a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() {
		return p, fmt.Errorf("%w: %s is a loopback, unspecified, multicast or link-local address", ErrRefused, p)
	}
	if rule, ok := m.opt.NeverBan(p, force); ok {
		return p, fmt.Errorf("%w: %s overlaps never-ban network %s", ErrRefused, p, rule)
	}
	return p, nil
}
