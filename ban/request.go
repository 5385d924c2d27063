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
	// base is the unescalated duration of a jail's ban (else zero).
	base time.Duration
	// covered: a live ban of a wider network already enforces ban (a
	// jail's); it is not applied and cover stands for it.
	covered bool
	cover   store.Ban
	// force: the operator forced it past an allow-list entry.
	force bool
	err   error
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
		case r.Permanent && !r.Manual:
			out[i].err = fmt.Errorf("%w: %s: only a manual ban may be permanent", ErrRefused, t)
			continue
		case r.Duration <= 0 && !r.Permanent:
			out[i].err = fmt.Errorf("%w: %s: ban duration %s", ErrRefused, t, r.Duration)
			continue
		}
		since := r.Time
		if since.IsZero() || since.After(now) {
			since = now
		}
		out[i].force = r.Force
		out[i].ban = store.Ban{Target: t, Jail: bound(r.Jail, 64), Reason: bound(r.Reason, 1024), Since: since, Manual: r.Manual, Pulled: r.Pulled,
			Until: since.Add(r.Duration), Evidence: m.boundEvidence(r.Evidence)}
		if r.Permanent {
			out[i].ban.Until = store.Forever
		}
		if !r.Manual && !r.Pulled {
			out[i].base = r.Duration
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
		m.mu.Lock()
		for _, i := range at {
			out[i].ban, out[i].cover, out[i].covered = m.episodeLocked(out[i].ban, out[i].base, now)
		}
		m.mu.Unlock()
	}
	for i := range out {
		if out[i].err == nil && !out[i].covered && !out[i].ban.Until.After(now) {
			out[i].err = ErrExpired
		}
	}
	return out, nil
}

// episodeLocked applies "one ban episode is one offence" to b, a jail's
// escalated ban, against the live bans (m.mu held). A live ban of a wider
// network that holds b's target enforces it already: b is covered by that
// ban and must not be applied. A live ban of the target that was itself an
// offence (store.SameEpisode) turns b into a refresh: base (b's own
// unescalated ban time) escalated at that ban's level, from b.Since; never
// a higher level. Both the request's preparation and the actor apply it,
// so that decisions raced past each other still count once.
func (m *Manager) episodeLocked(b store.Ban, base time.Duration, now time.Time) (out, cover store.Ban, covered bool) {
	if c, ok := m.coveringLocked(b.Target, now); ok {
		return b, c[0], true
	}
	if old, ok := m.index.get(b.Target); ok && old.Until.After(now) && store.SameEpisode(old, b) {
		term := m.escalate(base, old.Level)
		if until := b.Since.Add(term); until.Sub(old.Until) >= refreshStep(term) {
			b.Level, b.Until = old.Level, until
		} else {
			// Not worth a store write and a kernel flush: a flood of
			// decisions for one banned target costs one write per step.
			b = old
		}
	}
	return b, store.Ban{}, false
}

// refreshStep is the least a refresh must extend a ban of term by to be
// written: a hundredth of the term, at least a second.
func refreshStep(term time.Duration) time.Duration {
	return max(term/100, time.Second)
}

// coveringLocked returns the live bans of networks strictly wider than t
// that contain it, widest first (m.mu held).
func (m *Manager) coveringLocked(t netip.Prefix, now time.Time) ([]store.Ban, bool) {
	var out []store.Ban
	for bits := minBits(t.Addr()); bits < t.Bits(); bits++ {
		if !m.index.hasLength(t.Addr(), bits) {
			continue
		}
		w := netip.PrefixFrom(t.Addr(), bits).Masked()
		if b, ok := m.index.get(w); ok && b.Until.After(now) {
			out = append(out, b)
		}
	}
	return out, len(out) > 0
}

// minBits is the widest prefix checkTarget lets anyone ban.
func minBits(a netip.Addr) int {
	if a.Is4() {
		return 8
	}
	return 16
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

// Check is the verdict of a ban of p: its normalized form, or why it is
// refused (ErrRefused), for a caller that wants every refusal before
// asking for any ban (an import is all or nothing).
func (m *Manager) Check(p netip.Prefix, force bool) (netip.Prefix, error) {
	return m.checkTarget(p, force)
}

// checkTarget refuses what must never be banned: networks so wide they
// would cut off the world, special addresses, and whatever the never-ban
// verdict protects (the jails already skip those; this is the last line).
// A refusal by the verdict says which rule refused and whether --force
// would lift it.
func (m *Manager) checkTarget(p netip.Prefix, force bool) (netip.Prefix, error) {
	p, err := prefix.Normalize(p)
	if err != nil {
		return p, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	a := p.Addr()
	if p.Bits() < minBits(a) {
		return p, fmt.Errorf("%w: %s is wider than /8 (IPv4) or /16 (IPv6)", ErrRefused, p)
	}
	if a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() {
		return p, fmt.Errorf("%w: %s is a loopback, unspecified, multicast or link-local address (never banned, not even with --force)", ErrRefused, p)
	}
	if rule, forceable, ok := m.opt.NeverBan(p, force); ok {
		how := "never banned, not even with --force"
		if forceable {
			how = "an allow-list entry: --force bans it anyway"
		}
		return p, fmt.Errorf("%w: %s overlaps never-ban rule %s (%s)", ErrRefused, p, rule, how)
	}
	return p, nil
}
