// Package ban enforces decisions: it escalates repeat offenders, writes each
// ban to the store, and puts it in the kernel's nftables sets, where it
// expires on its own even if bansd is dead.
package ban

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bansd/bansd/prefix"
	"github.com/bansd/bansd/store"
)

// ErrExpired is returned by Ban for a request whose ban would already be
// over (its Time plus the escalated duration is in the past): nothing is
// written or enforced.
var ErrExpired = errors.New("ban already over")

// ErrStopped is returned once Run has returned.
var ErrStopped = errors.New("ban manager stopped")

// ErrSomeRefused heads BanMany's error when requests were refused.
var ErrSomeRefused = errors.New("ban: some requests refused")

// ErrRefused wraps the reason a target can never be banned.
var ErrRefused = errors.New("target refused")

// Evidence is bounded: lines are attacker-influenced text.
const maxEvidenceLine = 2048

// queueJobs bounds the requests waiting for the actor; callers block
// beyond it (backpressure), so memory stays bounded at any decision rate.
const queueJobs = 1024

// Request asks for a ban.
type Request struct {
	Target netip.Prefix
	Jail   string
	Reason string
	// Duration is the base ban time; it is escalated unless Manual.
	Duration time.Duration
	// Time is when the offence happened (log time); zero means now.
	Time     time.Time
	Evidence []string
	Manual   bool
	// Force (an operator's --force) is passed to Options.NeverBan.
	Force bool
	// Pulled: another host's decision (CrowdSec), enforced for its own
	// duration; never escalated and never counted in the history.
	Pulled bool
}

// Options configures a Manager.
type Options struct {
	Firewall Firewall
	Store    *store.DB
	// NeverBan is the never-ban verdict for a normalized target: the rule
	// it would cover, if any. The daemon wires it to the jail engine, so
	// there is one list, and a reloaded ignoreip holds here too.
	NeverBan func(p netip.Prefix, force bool) (rule string, ok bool)
	// Batch bounds the elements of one kernel flush.
	Batch int
	// Reconcile is how often the kernel is checked against the store.
	Reconcile time.Duration
	// Factor, BantimeMax: a ban lasts base × Factor^offences, capped.
	Factor     float64
	BantimeMax time.Duration
	// HistoryMaxAge forgets offences older than this (0: never).
	HistoryMaxAge time.Duration
	// EvidenceLines is how many evidence lines a ban keeps.
	EvidenceLines int
	// OnReconcile, when set, hears of every periodic reconcile: what it
	// repaired (someone flushed the table or its sets) and its error. It
	// runs in the actor's goroutine and must not block.
	OnReconcile func(repaired []string, err error)
	Logger      *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Manager owns the ban state: the store, the in-memory index of live bans
// and, through its Run goroutine, the firewall.
type Manager struct {
	fw    Firewall
	db    *store.DB
	opt   Options
	log   *slog.Logger
	now   func() time.Time
	batch int

	jobs    chan *job
	ready   chan struct{}
	stopped chan struct{}

	// historyPurged is when the actor last purged old offences.
	historyPurged time.Time
	// eventsPruned is when the actor last pruned the audit history.
	eventsPruned time.Time

	mu      sync.Mutex
	running bool
	index   map[netip.Prefix]store.Ban
	stats   stats
}

type stats struct {
	lastReconcile     time.Time
	reconcileDuration time.Duration
	reconcileErr      string
	reconcileRepair   string
	flushes           uint64
	flushedElements   uint64
	lastFlush         time.Duration
	maxFlush          time.Duration
	totalFlush        time.Duration
}

// job is one unit of work for the actor: bans (already escalated) or
// unbans, and where to send the outcome.
type job struct {
	bans  []store.Ban
	unban []netip.Prefix
	uid   int // the caller's, for the history
	done  chan result
}

type result struct {
	// effective is, per ban of the job, the ban now in force for its
	// target (the job's own, or a longer one already there).
	effective []store.Ban
	n         int
	err       error
}

// NewManager checks the options. Nothing happens until Run.
func NewManager(opt Options) (*Manager, error) {
	if opt.Firewall == nil || opt.Store == nil || opt.NeverBan == nil {
		return nil, errors.New("ban: Firewall, Store and NeverBan are required")
	}
	m := &Manager{
		fw:      opt.Firewall,
		db:      opt.Store,
		opt:     opt,
		log:     opt.Logger,
		now:     opt.Now,
		batch:   min(max(opt.Batch, 1), maxBatch),
		jobs:    make(chan *job, queueJobs),
		ready:   make(chan struct{}),
		stopped: make(chan struct{}),
		index:   map[netip.Prefix]store.Ban{},
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m, nil
}

// Run is the actor that owns the firewall: it loads the store, ensures the
// table and reconciles it, then applies queued work in coalesced batches
// and reconciles every cfg.Firewall.Reconcile. When ctx is done it applies
// what is still queued and returns; the kernel bans stay in place.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return errors.New("ban: Run called twice")
	}
	m.running = true
	m.mu.Unlock()
	defer close(m.stopped)

	if err := m.load(); err != nil {
		m.failQueued(err)
		return err
	}
	if err := m.reconcile(nil); err != nil {
		m.failQueued(err)
		return fmt.Errorf("ban: initial reconcile: %w", err)
	}
	close(m.ready)
	every := m.opt.Reconcile
	if every <= 0 {
		every = 30 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	// The periodic listing takes seconds for big sets; it runs beside the
	// actor (reads only) so that bans are not held up, and the actor
	// applies the diff against its index as it is then.
	var listed chan listing
	for {
		select {
		case j := <-m.jobs:
			m.process(m.gather(j))
		case <-tick.C:
			if listed == nil {
				listed = make(chan listing, 1)
				go func(ch chan<- listing) { ch <- m.list() }(listed)
			}
		case l := <-listed:
			listed = nil
			if err := m.reconcile(&l); err != nil {
				m.log.Error("reconcile failed", "err", err)
			}
		case <-ctx.Done():
			for {
				select {
				case j := <-m.jobs:
					m.process(m.gather(j))
				default:
					if listed != nil {
						<-listed
					}
					return nil
				}
			}
		}
	}
}

// Ready is closed once Run has restored the bans of the store in the
// kernel (its first reconcile succeeded).
func (m *Manager) Ready() <-chan struct{} { return m.ready }

// failQueued answers the requests that arrived before Run gave up.
func (m *Manager) failQueued(err error) {
	for {
		select {
		case j := <-m.jobs:
			j.done <- result{err: err}
		default:
			return
		}
	}
}

// load fills the index with the live bans of the store.
func (m *Manager) load() error {
	bans, err := m.db.Bans()
	if err != nil {
		return fmt.Errorf("ban: load store: %w", err)
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range bans {
		if b.Until.After(now) {
			m.index[b.Target] = b
		}
	}
	return nil
}

// Ban escalates r, writes it to the store and waits until it is in the
// kernel (or ctx is done). A target already banned at least as long is
// left alone and its current ban returned. ErrExpired: r is already over.
func (m *Manager) Ban(ctx context.Context, r Request) (store.Ban, error) {
	bans, err := m.prepare([]Request{r})
	if err != nil {
		return store.Ban{}, err
	}
	if bans[0].err != nil {
		return store.Ban{}, bans[0].err
	}
	if cur, ok := m.current(bans[0].ban.Target); ok && !cur.Until.Before(bans[0].ban.Until) {
		return cur, nil
	}
	res, err := m.submit(ctx, &job{bans: []store.Ban{bans[0].ban}, uid: callerFrom(ctx)})
	if err != nil {
		return store.Ban{}, err
	}
	if len(res.effective) == 0 {
		return store.Ban{}, res.err
	}
	return res.effective[0], res.err
}

// BanEach is BanMany with one outcome per request: errs[i] is nil when
// rs[i]'s ban (or a longer one) is in the store, else why not (ErrRefused,
// ErrExpired). err is set when the batch itself failed; then nothing is
// known to be committed.
func (m *Manager) BanEach(ctx context.Context, rs []Request) (errs []error, err error) {
	prepared, err := m.prepare(rs)
	if err != nil {
		return nil, err
	}
	errs = make([]error, len(rs))
	bans := make([]store.Ban, 0, len(prepared))
	for i, p := range prepared {
		if p.err != nil {
			errs[i] = p.err
			continue
		}
		bans = append(bans, p.ban)
	}
	if len(bans) > 0 {
		res, err := m.submit(ctx, &job{bans: bans, uid: callerFrom(ctx)})
		if err != nil {
			return nil, err
		}
		if res.err != nil {
			return nil, res.err
		}
	}
	return errs, nil
}

// BanMany is Ban for many requests, applied in as few transactions as the
// batch size allows. It returns how many bans were written (new or
// longer); invalid or already-over requests are skipped and reported in
// the error without stopping the others.
func (m *Manager) BanMany(ctx context.Context, rs []Request) (int, error) {
	prepared, err := m.prepare(rs)
	if err != nil {
		return 0, err
	}
	bans := make([]store.Ban, 0, len(prepared))
	var bad []error
	for i, p := range prepared {
		if p.err != nil {
			if !errors.Is(p.err, ErrExpired) && len(bad) < 5 {
				bad = append(bad, fmt.Errorf("request %d (%s): %w", i, rs[i].Target, p.err))
			}
			continue
		}
		bans = append(bans, p.ban)
	}
	var res result
	if len(bans) > 0 {
		if res, err = m.submit(ctx, &job{bans: bans, uid: callerFrom(ctx)}); err != nil {
			return 0, err
		}
	}
	if len(bad) > 0 {
		bad = append([]error{ErrSomeRefused}, bad...)
	}
	return res.n, errors.Join(append(bad, res.err)...)
}

// Unban lifts the bans of targets, in the store and the kernel. Targets
// that are not banned are fine. It returns how many bans were lifted.
func (m *Manager) Unban(ctx context.Context, targets []netip.Prefix) (int, error) {
	ts := make([]netip.Prefix, 0, len(targets))
	seen := make(map[netip.Prefix]bool, len(targets))
	for _, t := range targets {
		p, err := prefix.Normalize(t)
		if err != nil {
			return 0, fmt.Errorf("%w: %w", ErrRefused, err)
		}
		if !seen[p] {
			seen[p] = true
			ts = append(ts, p)
		}
	}
	if len(ts) == 0 {
		return 0, nil
	}
	res, err := m.submit(ctx, &job{unban: ts, uid: callerFrom(ctx)})
	if err != nil {
		return 0, err
	}
	return res.n, res.err
}

func (m *Manager) submit(ctx context.Context, j *job) (result, error) {
	j.done = make(chan result, 1)
	select {
	case m.jobs <- j:
	case <-ctx.Done():
		return result{}, ctx.Err()
	case <-m.stopped:
		return result{}, ErrStopped
	}
	select {
	case r := <-j.done:
		return r, nil
	case <-ctx.Done():
		return result{}, ctx.Err()
	case <-m.stopped:
		// Run drains the queue before it stops: the answer may be there.
		select {
		case r := <-j.done:
			return r, nil
		default:
			return result{}, ErrStopped
		}
	}
}

func (m *Manager) current(t netip.Prefix) (store.Ban, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.index[t]
	return b, ok && b.Until.After(m.now())
}

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
	f := m.opt.Factor
	if f < 1 {
		f = 1
	}
	d := float64(base) * math.Pow(f, float64(offences))
	if d >= float64(limit) || math.IsInf(d, 0) || math.IsNaN(d) {
		return max(limit, base)
	}
	return time.Duration(d)
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

// gather coalesces: everything already queued, up to one batch, goes into
// the same store transaction and kernel flush.
func (m *Manager) gather(first *job) []*job {
	jobs := []*job{first}
	n := len(first.bans) + len(first.unban)
	for n < m.batch {
		select {
		case j := <-m.jobs:
			jobs = append(jobs, j)
			n += len(j.bans) + len(j.unban)
		default:
			return jobs
		}
	}
	return jobs
}

// process applies jobs in order, runs of ban jobs together.
func (m *Manager) process(jobs []*job) {
	for i := 0; i < len(jobs); {
		if jobs[i].unban != nil {
			m.doUnban(jobs[i])
			i++
			continue
		}
		k := i
		for k < len(jobs) && jobs[k].unban == nil {
			k++
		}
		m.doBans(jobs[i:k])
		i = k
	}
}

func (m *Manager) doBans(jobs []*job) {
	now := m.now()
	// Keep the longest ban per target, against the index and within the batch.
	best := map[netip.Prefix]store.Ban{}
	uid := map[netip.Prefix]int{}
	m.mu.Lock()
	for _, j := range jobs {
		for _, b := range j.bans {
			cur, ok := best[b.Target]
			if !ok {
				cur, ok = m.index[b.Target]
				ok = ok && cur.Until.After(now)
			}
			if !ok || cur.Until.Before(b.Until) {
				cur = b
				uid[b.Target] = j.uid
			}
			best[b.Target] = cur
		}
	}
	var write []store.Ban
	refresh := map[netip.Prefix]bool{}
	for _, b := range best {
		old, ok := m.index[b.Target]
		if !ok || old.Until.Before(b.Until) || !old.Until.After(now) {
			write = append(write, b)
			if ok && old.Until.After(now) {
				refresh[b.Target] = true
			}
		}
	}
	m.mu.Unlock()

	answer := func(err error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, j := range jobs {
			res := result{err: err, effective: make([]store.Ban, len(j.bans))}
			for k, b := range j.bans {
				eff := best[b.Target]
				if cur, ok := m.index[b.Target]; ok && err == nil {
					eff = cur
				}
				res.effective[k] = eff
				if eff.Since.Equal(b.Since) && eff.Until.Equal(b.Until) && eff.Jail == b.Jail && err == nil {
					res.n++
				}
			}
			j.done <- res
		}
	}
	if len(write) == 0 {
		answer(nil)
		return
	}
	// The store first: a crash between the two is repaired by the next
	// reconcile, which restores from the store.
	evs := banEvents(write, refresh, uid, now)
	if err := m.db.PutBans(write, evs...); err != nil {
		answer(fmt.Errorf("ban: write store: %w", err))
		return
	}
	m.logEvents(evs)
	m.mu.Lock()
	for _, b := range write {
		m.index[b.Target] = b
	}
	m.mu.Unlock()
	answer(m.apply(write))
}

// apply puts bans in the kernel, one transaction per batch. A failure
// gets one repair (the table may have been flushed under us) and a retry.
func (m *Manager) apply(bans []store.Ban) error {
	for part := range slices.Chunk(bans, m.batch) {
		// Remaining time as of this flush, so that the kernel expires the
		// ban at its Until however long the store write took.
		now := m.now()
		chunk := make([]Element, len(part))
		for i, b := range part {
			chunk[i] = Element{Target: b.Target, Timeout: b.Until.Sub(now)}
		}
		err := m.flush(chunk)
		if err != nil {
			m.log.Warn("adding bans failed; repairing the table", "err", err)
			if rerr := m.repair(); rerr != nil {
				return errors.Join(err, rerr)
			}
			if err = m.flush(chunk); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *Manager) flush(els []Element) error {
	start := time.Now()
	err := m.fw.Add(els)
	d := time.Since(start)
	m.mu.Lock()
	s := &m.stats
	s.flushes++
	s.lastFlush = d
	s.maxFlush = max(s.maxFlush, d)
	s.totalFlush += d
	if err == nil {
		s.flushedElements += uint64(len(els))
	}
	m.mu.Unlock()
	return err
}

// repair re-creates the table if a structural check finds it damaged.
func (m *Manager) repair() error {
	h, err := m.fw.Check()
	if err != nil {
		return err
	}
	if h.OK {
		return nil
	}
	m.log.Warn("nftables table damaged; re-creating it", "problem", h.Problem)
	return m.fw.Ensure(m.classes())
}

func (m *Manager) classes() []SetClass {
	seen := map[SetClass]bool{}
	cs := DefaultClasses()
	for _, c := range cs {
		seen[c] = true
	}
	m.mu.Lock()
	for t := range m.index {
		if c := ClassOf(t); !seen[c] {
			seen[c] = true
			cs = append(cs, c)
		}
	}
	m.mu.Unlock()
	return cs
}

func (m *Manager) doUnban(j *job) {
	now := m.now()
	m.mu.Lock()
	n := 0
	var evs []store.Event
	for _, t := range j.unban {
		if b, ok := m.index[t]; ok {
			n++
			evs = append(evs, store.Event{Time: now, Kind: store.EventUnban, Target: t, Jail: b.Jail, Level: b.Level, UID: j.uid})
		}
	}
	m.mu.Unlock()
	if err := m.db.DeleteBans(j.unban, evs...); err != nil {
		j.done <- result{err: fmt.Errorf("ban: unban in store: %w", err)}
		return
	}
	m.logEvents(evs)
	m.mu.Lock()
	for _, t := range j.unban {
		delete(m.index, t)
	}
	m.mu.Unlock()
	// Unbanned in the store: if the kernel part fails, the next reconcile
	// removes what the store no longer holds.
	for chunk := range slices.Chunk(j.unban, m.batch) {
		if err := m.fw.Remove(chunk); err != nil {
			j.done <- result{n: n, err: fmt.Errorf("ban: unban in kernel: %w", err)}
			return
		}
	}
	j.done <- result{n: n}
}

// historyPurgeEvery spaces the full scans of the offence history.
const historyPurgeEvery = time.Hour

// timeoutSlack is how far the kernel's expiry may drift from the store's
// before reconcile re-asserts it (millisecond and jiffy rounding).
const timeoutSlack = 2 * time.Second

// listing is a read of the kernel's state for reconcile.
type listing struct {
	health Health
	elems  []Element
	// The remaining times were read between start and start+took.
	start time.Time
	took  time.Duration
	err   error
}

func (m *Manager) list() listing {
	l := listing{start: m.now()}
	t0 := time.Now()
	l.health, l.err = m.fw.Check()
	if l.err == nil && l.health.OK {
		l.elems, l.err = m.fw.List()
	}
	l.took = time.Since(t0)
	return l
}

// reconcile makes the kernel match the store: the table's shape, every
// live ban with its remaining time, and nothing else in our sets. l is a
// listing taken beside the actor; nil (the initial run) lists here. The
// periodic run also purges the store of what is over.
func (m *Manager) reconcile(l *listing) (err error) {
	initial := l == nil
	start := time.Now()
	var repaired []string
	defer func() {
		took := time.Since(start)
		if l != nil {
			took += l.took
		}
		m.mu.Lock()
		m.stats.lastReconcile = m.now()
		m.stats.reconcileDuration = took
		m.stats.reconcileErr = ""
		if err != nil {
			m.stats.reconcileErr = err.Error()
		}
		m.stats.reconcileRepair = strings.Join(repaired, "; ")
		m.mu.Unlock()
		if len(repaired) > 0 {
			m.log.Warn("reconciled the firewall", "repaired", repaired, "took", took)
		}
		// The start's restore of every ban is routine, not a repair.
		if !initial && m.opt.OnReconcile != nil {
			m.opt.OnReconcile(repaired, err)
		}
	}()

	now := m.now()
	// The index mirrors the store's live bans, so the periodic purge only
	// deletes what the index saw expire; the full scans run at start and
	// (history) hourly, as they read every record.
	var expired []netip.Prefix
	var expiredEvs []store.Event
	m.mu.Lock()
	for t, b := range m.index {
		if !b.Until.After(now) {
			delete(m.index, t)
			expired = append(expired, t)
			expiredEvs = append(expiredEvs, expireEvent(b, now))
		}
	}
	m.mu.Unlock()
	if initial {
		if err := m.purgeExpiredLogged(now); err != nil {
			return err
		}
	} else if len(expired) > 0 {
		if err := m.db.DeleteBans(expired, expiredEvs...); err != nil {
			return err
		}
		m.logEvents(expiredEvs)
	}
	m.pruneEvents(now)
	if age := m.opt.HistoryMaxAge; age > 0 && now.Sub(m.historyPurged) >= historyPurgeEvery {
		if _, err := m.db.PurgeHistory(now.Add(-age)); err != nil {
			return err
		}
		m.historyPurged = now
	}

	if l != nil && l.err != nil {
		return l.err
	}
	if l == nil || !l.health.OK {
		if l != nil {
			repaired = append(repaired, l.health.Problem)
		}
		// Ensure is cheap and idempotent; then list what survived.
		if err := m.fw.Ensure(m.classes()); err != nil {
			return err
		}
		fresh := m.list()
		if fresh.err != nil {
			return fresh.err
		}
		if !fresh.health.OK {
			return fmt.Errorf("nftables table still damaged after ensure: %s", fresh.health.Problem)
		}
		l = &fresh
	}

	// Each element's remaining time was read at some instant of the
	// listing: its kernel expiry lies in [start+t, start+took+t].
	have := make(map[netip.Prefix]time.Duration, len(l.elems))
	var extra []netip.Prefix
	m.mu.Lock()
	for _, e := range l.elems {
		have[e.Target] = e.Timeout
		if b, ok := m.index[e.Target]; !ok || !b.Until.After(now) {
			extra = append(extra, e.Target)
		}
	}
	var missing []store.Ban
	var wrong int
	for t, b := range m.index {
		kt, ok := have[t]
		switch {
		case !ok:
			missing = append(missing, b)
		case b.Until.Before(l.start.Add(kt-timeoutSlack)) || b.Until.After(l.start.Add(l.took+kt+timeoutSlack)):
			missing = append(missing, b)
			wrong++
		}
	}
	m.mu.Unlock()
	if len(extra) > 0 {
		repaired = append(repaired, fmt.Sprintf("removed %d elements the store does not hold", len(extra)))
		for chunk := range slices.Chunk(extra, m.batch) {
			if err := m.fw.Remove(chunk); err != nil {
				return err
			}
		}
	}
	if len(missing) > 0 {
		if initial && len(l.elems) == 0 {
			m.log.Info("restoring bans from the store", "count", len(missing))
		} else {
			repaired = append(repaired, fmt.Sprintf("restored %d bans (%d with a wrong timeout)", len(missing)-wrong, wrong))
		}
		if err := m.apply(missing); err != nil {
			return err
		}
	}
	return nil
}

// Lookup returns the live ban of a normalized target.
func (m *Manager) Lookup(t netip.Prefix) (store.Ban, bool) { return m.current(t) }

// Bans returns the live bans, sorted by target.
func (m *Manager) Bans() []store.Ban {
	now := m.now()
	m.mu.Lock()
	out := make([]store.Ban, 0, len(m.index))
	for _, b := range m.index {
		if b.Until.After(now) {
			out = append(out, b)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b store.Ban) int {
		if c := a.Target.Addr().Compare(b.Target.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Target.Bits(), b.Target.Bits())
	})
	return out
}

// FirewallStatus is what `bansctl status` shows about enforcement.
type FirewallStatus struct {
	TableShape
	Sets []SetStatus

	LastReconcile         time.Time
	LastReconcileDuration time.Duration
	// LastReconcileError is empty when the last reconcile succeeded.
	LastReconcileError string
	// LastReconcileRepair says what the last reconcile had to fix.
	LastReconcileRepair string

	Flushes         uint64
	FlushedElements uint64
	LastFlush       time.Duration
	MaxFlush        time.Duration
	MeanFlush       time.Duration
	// Queued is how many requests wait for the actor.
	Queued int
}

// SetStatus is one set: its live bans (from the index) and what its rule
// dropped (from its named counter).
type SetStatus struct {
	Name     string
	Family   string // "ipv4" or "ipv6"
	Bits     int
	Elements int
	Packets  uint64
	Bytes    uint64
}

// Status reads the kernel side (reads never disturb the actor's batches)
// and the manager's own counters.
func (m *Manager) Status(ctx context.Context) (FirewallStatus, error) {
	if err := ctx.Err(); err != nil {
		return FirewallStatus{}, err
	}
	ts, err := m.fw.Status()
	if err != nil {
		return FirewallStatus{}, err
	}
	st := FirewallStatus{TableShape: ts.TableShape, Queued: len(m.jobs)}
	count := map[SetClass]int{}
	now := m.now()
	m.mu.Lock()
	for t, b := range m.index {
		if b.Until.After(now) {
			count[ClassOf(t)]++
		}
	}
	s := m.stats
	m.mu.Unlock()
	classes := map[SetClass]bool{}
	for c := range count {
		classes[c] = true
	}
	for name := range ts.Counters {
		if c, ok := parseClass(name); ok {
			classes[c] = true
		}
	}
	cs := make([]SetClass, 0, len(classes))
	for c := range classes {
		cs = append(cs, c)
	}
	sortClasses(cs)
	for _, c := range cs {
		fam := "ipv4"
		if c.V6 {
			fam = "ipv6"
		}
		ctr := ts.Counters[c.Name()]
		st.Sets = append(st.Sets, SetStatus{Name: c.Name(), Family: fam, Bits: c.Bits, Elements: count[c], Packets: ctr.Packets, Bytes: ctr.Bytes})
	}
	st.LastReconcile, st.LastReconcileDuration = s.lastReconcile, s.reconcileDuration
	st.LastReconcileError, st.LastReconcileRepair = s.reconcileErr, s.reconcileRepair
	st.Flushes, st.FlushedElements, st.LastFlush, st.MaxFlush = s.flushes, s.flushedElements, s.lastFlush, s.maxFlush
	if s.flushes > 0 {
		st.MeanFlush = s.totalFlush / time.Duration(s.flushes)
	}
	return st, nil
}
