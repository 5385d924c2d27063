package crowdsec

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// Local is one of bansd's own bans to share.
type Local struct {
	Target netip.Prefix
	Jail   string
	Manual bool
	Until  time.Time
	Events int
	Reason string
}

// Scenario is the CrowdSec scenario a local ban is pushed under.
func (l Local) Scenario() string {
	if l.Manual || l.Jail == "" {
		return ScenarioPrefix + "manual"
	}
	return ScenarioPrefix + l.Jail
}

// Pulled is a decision from LAPI for the ban side to enforce.
type Pulled struct {
	Target   netip.Prefix
	Duration time.Duration
	// Label is the ban's origin as bansd shows it: crowdsec:<origin>/<scenario>.
	Label string
	// Pulled is always true: the ban side must not count the ban in its
	// escalation history nor push it back.
	Pulled bool
}

// Enforcer is the ban side.
type Enforcer interface {
	// Apply bans each target for its duration (a longer ban already in
	// force stays).
	Apply(ctx context.Context, bans []Pulled) error
	// Lift removes pulled bans on these targets; bansd's own bans stay.
	Lift(ctx context.Context, targets []netip.Prefix) error
	// Resynced follows a complete startup pull begun at since: every
	// pulled ban not applied since then is gone from LAPI and is lifted.
	Resynced(ctx context.Context, since time.Time) error
}

// Queue persists the pushes and unbans not yet acknowledged by LAPI, and
// the pushed ones until they expire. Values are opaque to it. It is
// bounded: Append drops the oldest entries and says which.
type Queue interface {
	Append(data []byte) (seq uint64, dropped []uint64, err error)
	Replace(seq uint64, data []byte) error
	Delete(seq uint64) error
	Scan(fn func(seq uint64, data []byte) error) error
}

// Refusal is a pulled decision a never-ban rule refused (an alarm).
type Refusal struct {
	Target netip.Prefix
	Label  string
	Reason string
}

// Config wires a Syncer.
type Config struct {
	Client   *Client
	Queue    Queue
	Enforcer Enforcer
	// NeverBan is consulted for every pulled decision; ok false refuses it.
	NeverBan func(netip.Prefix) (ok bool, reason string)
	// OnRefusal reports each refusal as an alarm.
	OnRefusal func(Refusal)
	Push      bool
	Pull      bool
	// PullInterval between delta pulls (10 s when zero).
	PullInterval time.Duration
	// RetryMin and RetryMax bound the back-off after failures (1 s, 1 min).
	RetryMin, RetryMax time.Duration
	// Origins and Scenarios, when set, are the only ones pulled.
	Origins, Scenarios []string
	// PushBatch is the most alerts per request (100 when zero).
	PushBatch int
	Logger    *slog.Logger
	Now       func() time.Time
}

// Counters only grow, for metrics.
type Counters struct {
	Pushed, PushRejected, PushRecovered, PushExpired, QueueDropped uint64
	Unbans, UnbanFailed                                            uint64
	Pulls, PullErrors                                              uint64
	PulledNew, PulledDeleted, Applied, Lifted                      uint64
	OwnSkipped, Refused, FilteredOut                               uint64
	OtherType, Invalid, Expired, Capped                            uint64
}

// Status is the LAPI link for bansctl status and metrics.
type Status struct {
	LastPush, LastPull time.Time
	LastError          string
	LastErrorAt        time.Time
	PendingPushes      int
	PendingUnbans      int
	Shared             int // pushed, live, kept to recognise them
	Counters
}

// entry is one queue record.
type entry struct {
	Key      string    `json:"key"`
	Target   string    `json:"target"`
	Scenario string    `json:"scenario"`
	Until    time.Time `json:"until"`
	Events   int       `json:"events,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	// Attempts > 0: a push was sent and may have landed; look before resending.
	Attempts int  `json:"attempts,omitempty"`
	Sent     bool `json:"sent,omitempty"`
	Unban    bool `json:"unban,omitempty"`

	seq    uint64
	target netip.Prefix
}

// Syncer runs both directions of the LAPI link.
type Syncer struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	wake chan struct{}

	mu      sync.Mutex
	loaded  bool
	entries map[uint64]*entry
	// own counts live entries per target: decisions on them that a bansd
	// pushed are this host's and are not enforced twice.
	own map[netip.Prefix]int
	st  Status
}

// NewSyncer checks the wiring.
func NewSyncer(cfg Config) (*Syncer, error) {
	if cfg.Client == nil {
		return nil, errors.New("crowdsec: Syncer needs a Client")
	}
	if cfg.Push && cfg.Queue == nil {
		return nil, errors.New("crowdsec: push needs a Queue")
	}
	if cfg.Pull && (cfg.Enforcer == nil || cfg.NeverBan == nil) {
		return nil, errors.New("crowdsec: pull needs an Enforcer and a NeverBan verdict")
	}
	if cfg.PullInterval <= 0 {
		cfg.PullInterval = 10 * time.Second
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(time.Minute, cfg.RetryMin)
	}
	if cfg.PushBatch <= 0 {
		cfg.PushBatch = 100
	}
	s := &Syncer{cfg: cfg, log: cfg.Logger, now: cfg.Now, wake: make(chan struct{}, 1),
		entries: map[uint64]*entry{}, own: map[netip.Prefix]int{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Load reads the queue left by the previous run. Run calls it; call it
// earlier to accept Push before Run.
func (s *Syncer) Load() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded || s.cfg.Queue == nil {
		s.loaded = true
		return nil
	}
	var bad []uint64
	err := s.cfg.Queue.Scan(func(seq uint64, data []byte) error {
		var e entry
		if err := json.Unmarshal(data, &e); err != nil {
			bad = append(bad, seq)
			return nil
		}
		t, err := netip.ParsePrefix(e.Target)
		if err != nil {
			bad = append(bad, seq)
			return nil
		}
		e.seq, e.target = seq, t
		s.addLocked(&e)
		return nil
	})
	if err != nil {
		return fmt.Errorf("crowdsec: load queue: %w", err)
	}
	for _, seq := range bad {
		s.log.Warn("crowdsec: dropping unreadable queue entry", "seq", seq)
		if err := s.cfg.Queue.Delete(seq); err != nil {
			return fmt.Errorf("crowdsec: load queue: %w", err)
		}
	}
	s.loaded = true
	return nil
}

func (s *Syncer) addLocked(e *entry) {
	s.entries[e.seq] = e
	s.own[e.target]++
}

func (s *Syncer) removeLocked(seq uint64) {
	e, ok := s.entries[seq]
	if !ok {
		return
	}
	delete(s.entries, seq)
	if s.own[e.target]--; s.own[e.target] <= 0 {
		delete(s.own, e.target)
	}
}

// Push queues one of bansd's own bans. It returns once the ban is in the
// queue (persisted); it goes to LAPI as soon as LAPI answers.
func (s *Syncer) Push(l Local) error {
	if !s.cfg.Push {
		return nil
	}
	if err := s.Load(); err != nil {
		return err
	}
	if !l.Target.IsValid() {
		return fmt.Errorf("crowdsec: push: invalid target")
	}
	e := &entry{Key: newKey(), Target: l.Target.String(), Scenario: l.Scenario(), Until: l.Until.UTC(),
		Events: max(l.Events, 1), Reason: bound(l.Reason, 200), target: l.Target}
	data, _ := json.Marshal(e)
	s.mu.Lock()
	seq, dropped, err := s.cfg.Queue.Append(data)
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("crowdsec: queue push of %s: %w", l.Target, err)
	}
	for _, d := range dropped {
		s.removeLocked(d)
		s.st.QueueDropped++
	}
	e.seq = seq
	s.addLocked(e)
	s.mu.Unlock()
	s.nudge()
	return nil
}

// Unban withdraws bansd's own pushed decisions on target from LAPI.
func (s *Syncer) Unban(target netip.Prefix) error {
	if !s.cfg.Push {
		return nil
	}
	if err := s.Load(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.nudge()
	defer s.mu.Unlock()
	for seq, e := range s.entries {
		if e.target != target || e.Unban {
			continue
		}
		if !e.Sent && e.Attempts == 0 {
			// Never left this host: nothing to withdraw.
			if err := s.cfg.Queue.Delete(seq); err != nil {
				return fmt.Errorf("crowdsec: unban %s: %w", target, err)
			}
			s.removeLocked(seq)
			continue
		}
		up := *e
		up.Unban = true
		if err := s.replaceLocked(&up); err != nil {
			return fmt.Errorf("crowdsec: unban %s: %w", target, err)
		}
	}
	return nil
}

// replaceLocked writes e over its queue entry. An entry dropped or
// withdrawn meanwhile stays gone, and an unban asked meanwhile is kept.
func (s *Syncer) replaceLocked(e *entry) error {
	old, ok := s.entries[e.seq]
	if !ok {
		return nil
	}
	if old.Unban {
		e.Unban = true
	}
	data, _ := json.Marshal(e)
	if err := s.cfg.Queue.Replace(e.seq, data); err != nil {
		return err
	}
	*old = *e
	return nil
}

func (s *Syncer) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func newKey() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Status is a snapshot of the link.
func (s *Syncer) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	for _, e := range s.entries {
		switch {
		case e.Unban:
			st.PendingUnbans++
		case !e.Sent:
			st.PendingPushes++
		default:
			st.Shared++
		}
	}
	return st
}

func (s *Syncer) fail(err error) {
	s.log.Warn("crowdsec", "err", err)
	s.mu.Lock()
	s.st.LastError, s.st.LastErrorAt = err.Error(), s.now()
	s.mu.Unlock()
}

// Run pushes and pulls until ctx ends.
func (s *Syncer) Run(ctx context.Context) error {
	if err := s.Load(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	if s.cfg.Push {
		wg.Go(func() { s.pushLoop(ctx) })
	}
	if s.cfg.Pull {
		wg.Go(func() { s.pullLoop(ctx) })
	}
	wg.Wait()
	return nil
}

func (s *Syncer) backoff(d time.Duration) time.Duration {
	return min(max(d*2, s.cfg.RetryMin), s.cfg.RetryMax)
}

func (s *Syncer) pushLoop(ctx context.Context) {
	var retry time.Duration
	for {
		wait := time.Minute // expiry housekeeping
		if err := s.pushOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.fail(err)
			retry = s.backoff(retry)
			wait = retry
		} else {
			retry = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// pushOnce works through the queue in order: unbans, recoveries of pushes
// that may have landed, then new pushes in batches.
func (s *Syncer) pushOnce(ctx context.Context) error {
	now := s.now()
	s.mu.Lock()
	var todo []entry
	for _, e := range s.entries {
		todo = append(todo, *e)
	}
	s.mu.Unlock()
	sort.Slice(todo, func(i, j int) bool { return todo[i].seq < todo[j].seq })
	var fresh []entry
	for _, e := range todo {
		var err error
		switch {
		case e.Unban:
			err = s.withdraw(ctx, e)
		case !now.Before(e.Until):
			s.mu.Lock()
			if !e.Sent {
				s.st.PushExpired++
			}
			err = s.deleteLocked(e.seq)
			s.mu.Unlock()
		case e.Sent:
		case e.Attempts > 0:
			err = s.recover(ctx, e, &fresh)
		default:
			fresh = append(fresh, e)
		}
		if err != nil {
			return err
		}
	}
	for len(fresh) > 0 {
		n := min(len(fresh), s.cfg.PushBatch)
		if err := s.send(ctx, fresh[:n]); err != nil {
			return err
		}
		fresh = fresh[n:]
	}
	return nil
}

func (s *Syncer) deleteLocked(seq uint64) error {
	if err := s.cfg.Queue.Delete(seq); err != nil {
		return fmt.Errorf("crowdsec: queue: %w", err)
	}
	s.removeLocked(seq)
	return nil
}

// recover asks LAPI whether a push sent before (answer lost, LAPI killed,
// bansd restarted) landed; only if not is it sent again.
func (s *Syncer) recover(ctx context.Context, e entry, fresh *[]entry) error {
	found, err := s.cfg.Client.FindPushed(ctx, e.target, e.Scenario, e.Key)
	if err != nil {
		return err
	}
	if len(found) == 0 {
		*fresh = append(*fresh, e)
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e.Sent = true
	s.st.PushRecovered++
	return s.replaceLocked(&e)
}

func (s *Syncer) send(ctx context.Context, batch []entry) error {
	now := s.now()
	alerts := make([]Alert, 0, len(batch))
	s.mu.Lock()
	for i := range batch {
		// Marked before sending: if the answer is lost, the next try looks
		// in LAPI first instead of pushing twice.
		batch[i].Attempts++
		if err := s.replaceLocked(&batch[i]); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("crowdsec: queue: %w", err)
		}
		e := batch[i]
		left := e.Until.Sub(now).Round(time.Second)
		alerts = append(alerts, Alert{Target: e.target, Scenario: e.Scenario, Events: e.Events,
			Message:  bound(fmt.Sprintf("bansd %s: %s", e.Scenario[len(ScenarioPrefix):], e.Reason), 240),
			Duration: max(left, time.Second), At: now, Key: e.Key})
	}
	s.mu.Unlock()
	_, err := s.cfg.Client.PushAlerts(ctx, alerts)
	var ae *APIError
	if errors.As(err, &ae) && ae.Permanent() {
		s.mu.Lock()
		defer s.mu.Unlock()
		// LAPI will never take these: keep them from blocking the queue.
		for _, e := range batch {
			if err := s.deleteLocked(e.seq); err != nil {
				return err
			}
			s.st.PushRejected++
		}
		return err
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range batch {
		if _, ok := s.entries[batch[i].seq]; !ok {
			continue
		}
		batch[i].Sent = true
		if err := s.replaceLocked(&batch[i]); err != nil {
			return fmt.Errorf("crowdsec: queue: %w", err)
		}
		s.st.Pushed++
	}
	s.st.LastPush = s.now()
	return nil
}

// withdraw deletes the decisions of one pushed ban by id: deleting by value
// would also lift other hosts' and cscli's decisions on the same target.
func (s *Syncer) withdraw(ctx context.Context, e entry) error {
	found, err := s.cfg.Client.FindPushed(ctx, e.target, e.Scenario, e.Key)
	if err != nil {
		return err
	}
	for _, f := range found {
		for _, id := range f.DecisionIDs {
			if _, err := s.cfg.Client.DeleteDecision(ctx, id); err != nil {
				var ae *APIError
				if errors.As(err, &ae) && ae.Status == 404 {
					continue
				}
				s.mu.Lock()
				s.st.UnbanFailed++
				s.mu.Unlock()
				return err
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Unbans++
	return s.deleteLocked(e.seq)
}
