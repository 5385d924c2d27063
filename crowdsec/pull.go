package crowdsec

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// applyBatch is how many pulled bans go to the Enforcer at once.
const applyBatch = 1000

func (s *Syncer) pullLoop(ctx context.Context) {
	startup := true
	var retry time.Duration
	for {
		wait := s.cfg.PullInterval
		if err := s.PullOnce(ctx, startup); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.fail(err)
			s.mu.Lock()
			s.st.PullErrors++
			s.mu.Unlock()
			// LAPI moved its mark for this bouncer even if the answer
			// was cut: only a full startup pull is sure to miss nothing.
			startup = true
			retry = s.backoff(retry)
			wait = max(retry, wait)
		} else {
			startup, retry = false, 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// PullOnce pulls the stream once (startup: everything live, then the
// Enforcer lifts pulled bans LAPI no longer has) and enforces it.
func (s *Syncer) PullOnce(ctx context.Context, startup bool) error {
	began := s.now()
	var apply []Pulled
	var lift []netip.Prefix
	var c Counters
	flush := func() error {
		if len(apply) > 0 {
			if err := s.cfg.Enforcer.Apply(ctx, apply); err != nil {
				return fmt.Errorf("crowdsec: enforce pulled bans: %w", err)
			}
			c.Applied += uint64(len(apply))
			apply = apply[:0]
		}
		if len(lift) > 0 {
			if err := s.cfg.Enforcer.Lift(ctx, lift); err != nil {
				return fmt.Errorf("crowdsec: lift pulled bans: %w", err)
			}
			c.Lifted += uint64(len(lift))
			lift = lift[:0]
		}
		return nil
	}
	n, err := s.cfg.Client.Stream(ctx, startup, func(d Decision, deleted bool) error {
		if !s.wanted(d) {
			c.FilteredOut++
			return nil
		}
		if d.FromBansd() && s.ownTarget(d.Target) {
			// This host's own ban (or another bansd's on a target this
			// host already bans): enforced here once, as local.
			c.OwnSkipped++
			return nil
		}
		if deleted {
			lift = append(lift, d.Target)
		} else {
			if ok, why := s.cfg.NeverBan(d.Target); !ok {
				c.Refused++
				if s.cfg.OnRefusal != nil {
					s.cfg.OnRefusal(Refusal{Target: d.Target, Label: d.Label(), Reason: why})
				}
				return nil
			}
			apply = append(apply, Pulled{Target: d.Target, Duration: d.Duration, Label: d.Label(), Pulled: true})
		}
		if len(apply)+len(lift) >= applyBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil && startup {
		if err = s.cfg.Enforcer.Resynced(ctx, began); err != nil {
			err = fmt.Errorf("crowdsec: lift stale pulled bans: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.st.Counters
	st.Pulls++
	st.PulledNew += uint64(n.New)
	st.PulledDeleted += uint64(n.Deleted)
	st.OtherType += uint64(n.OtherType)
	st.Invalid += uint64(n.Invalid)
	st.Expired += uint64(n.Expired)
	st.Capped += uint64(n.Capped)
	st.Applied += c.Applied
	st.Lifted += c.Lifted
	st.OwnSkipped += c.OwnSkipped
	st.Refused += c.Refused
	st.FilteredOut += c.FilteredOut
	if err == nil {
		s.st.LastPull = s.now()
	}
	return err
}

func (s *Syncer) wanted(d Decision) bool {
	if len(s.cfg.Origins) > 0 && !slices.Contains(s.cfg.Origins, d.Origin) {
		return false
	}
	return len(s.cfg.Scenarios) == 0 || slices.Contains(s.cfg.Scenarios, d.Scenario)
}

func (s *Syncer) ownTarget(p netip.Prefix) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.own[p] > 0
}
