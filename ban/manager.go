// Package ban enforces decisions: it escalates repeat offenders, writes each
// ban to the store, and puts it in the kernel's nftables sets, where it
// expires on its own even if bansd is dead.
package ban

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
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
	// Permanent: a ban with no end (store.Forever; no kernel timeout),
	// until an unban. Duration is then ignored; only for Manual bans.
	Permanent bool
	// Time is when the offence happened (log time); zero means now.
	Time     time.Time
	Evidence []string
	Manual   bool
	// Force (an operator's --force) is passed to Options.NeverBan: it
	// lifts allow-list entries, never the hard protections.
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
	// it would cover, if any, and whether force (an operator's --force)
	// lifts that rule. The daemon wires it to the jail engine, so there is
	// one list and one --force rule, and a reloaded ignoreip holds here too.
	NeverBan func(p netip.Prefix, force bool) (rule string, forceable, ok bool)
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
// and, through its Run goroutine, the firewall. The bans it returns from the
// index (Lookup, Covering, Bans, BansWhere, EachBan, and Ban's for a target
// already banned) carry no Evidence, to keep it small: store.DB.WithEvidence
// reads a ban's evidence.
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

	// allowGen counts the liftings done (allow.go): bans checked
	// against an older never-ban list are checked again.
	allowGen atomic.Uint64

	// historyPurged is when the actor last purged old offences.
	historyPurged time.Time
	// eventsPruned is when the actor last pruned the audit history.
	eventsPruned time.Time
	// gen is the actor's knowledge of the kernel's generation (actor only).
	gen genState
	// suspect is what a periodic listing found out of place, waiting for
	// the next listing to confirm it (actor only; nil: none pending).
	suspect *drift

	mu      sync.Mutex
	running bool
	index   *index
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
	bans []store.Ban
	// base is each ban's unescalated duration (zero when not escalated),
	// for the actor's refresh of a ban in force (episodeLocked).
	base  []time.Duration
	unban []netip.Prefix
	// allow lifts the bans an allow entry covers (allow.go).
	allow *lifting
	// gen is the allow generation the bans were checked against, forced
	// the targets an operator forced (recheck in allow.go).
	gen    uint64
	forced map[netip.Prefix]bool
	// dropped is how many of the bans recheck refused.
	dropped int
	// replace names the jail whose bans on unban a ReplaceJail lifts;
	// takeOver says which other jails' bans it may take over.
	replace  string
	takeOver func(string) bool
	uid      int // the caller's, for the history
	done     chan result
}

type result struct {
	// effective is, per ban of the job, the ban now in force for its
	// target (the job's own, or a longer one already there).
	effective []store.Ban
	n         int
	lifts     []Lift
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
		index:   newIndex(),
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
	if err := m.restore(); err != nil {
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
			if listed != nil {
				continue
			}
			if m.kernelUnchanged() {
				if _, err := m.reconcile(listing{unchanged: true, start: m.now()}); err != nil {
					m.log.Error("reconcile failed", "err", err)
				}
				continue
			}
			listed = m.listBeside()
		case l := <-listed:
			listed = nil
			confirm, err := m.reconcile(l)
			if err != nil {
				m.log.Error("reconcile failed", "err", err)
			}
			if confirm {
				listed = m.listBeside()
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
			m.index.put(b)
		}
	}
	return nil
}

// Ban escalates r, writes it to the store and waits until it is in the
// kernel (or ctx is done). A target already banned at least as long is
// left alone and its current ban returned; so is, for a jail's request,
// the live ban of a wider network that holds the target (one episode, one
// offence: episodeLocked). ErrExpired: r is already over.
func (m *Manager) Ban(ctx context.Context, r Request) (store.Ban, error) {
	gen := m.allowGen.Load()
	bans, err := m.prepare([]Request{r})
	if err != nil {
		return store.Ban{}, err
	}
	if bans[0].err != nil {
		return store.Ban{}, bans[0].err
	}
	if bans[0].covered {
		return bans[0].cover, nil
	}
	if cur, ok := m.current(bans[0].ban.Target); ok && !cur.Until.Before(bans[0].ban.Until) {
		return cur, nil
	}
	res, err := m.submit(ctx, banJob(bans, callerFrom(ctx), gen))
	if err != nil {
		return store.Ban{}, err
	}
	if len(res.effective) == 0 {
		return store.Ban{}, res.err
	}
	return res.effective[0], res.err
}

// BanEach is BanMany with one outcome per request: errs[i] is nil when
// rs[i]'s ban (or a longer one, or for a jail's ban one of a network that
// covers it) is in the store, else why not (ErrRefused,
// ErrExpired). err is set when the batch itself failed; then nothing is
// known to be committed.
func (m *Manager) BanEach(ctx context.Context, rs []Request) (errs []error, err error) {
	gen := m.allowGen.Load()
	prepared, err := m.prepare(rs)
	if err != nil {
		return nil, err
	}
	errs = make([]error, len(rs))
	for i, p := range prepared {
		errs[i] = p.err
	}
	if j := banJob(prepared, callerFrom(ctx), gen); len(j.bans) > 0 {
		res, err := m.submit(ctx, j)
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
	gen := m.allowGen.Load()
	prepared, err := m.prepare(rs)
	if err != nil {
		return 0, err
	}
	var bad []error
	for i, p := range prepared {
		if p.err != nil && !errors.Is(p.err, ErrExpired) && len(bad) < 5 {
			bad = append(bad, fmt.Errorf("request %d (%s): %w", i, rs[i].Target, p.err))
		}
	}
	var res result
	if j := banJob(prepared, callerFrom(ctx), gen); len(j.bans) > 0 {
		if res, err = m.submit(ctx, j); err != nil {
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

// banJob is the job of the prepared bans that are to be applied: neither
// refused nor covered by a wider ban.
func banJob(ps []prepared, uid int, gen uint64) *job {
	j := &job{uid: uid, gen: gen}
	for _, p := range ps {
		if p.err == nil && !p.covered {
			j.bans = append(j.bans, p.ban)
			j.base = append(j.base, p.base)
			if p.force {
				if j.forced == nil {
					j.forced = map[netip.Prefix]bool{}
				}
				j.forced[p.ban.Target] = true
			}
		}
	}
	return j
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

// replaceIndex takes remove out of the index and puts put in, once the
// store holds the change.
func (m *Manager) replaceIndex(remove []netip.Prefix, put []store.Ban) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range remove {
		m.index.delete(t)
	}
	for _, b := range put {
		m.index.put(b)
	}
}

func (m *Manager) current(t netip.Prefix) (store.Ban, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.index.get(t)
	return b, ok && b.Until.After(m.now())
}

// Covering returns the live bans of networks strictly wider than the
// normalized target t that hold it, widest first.
func (m *Manager) Covering(t netip.Prefix) []store.Ban {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, _ := m.coveringLocked(t, m.now())
	return c
}

// Lookup returns the live ban of a normalized target.
func (m *Manager) Lookup(t netip.Prefix) (store.Ban, bool) { return m.current(t) }

// Bans returns the live bans, sorted by target.
func (m *Manager) Bans() []store.Ban { return m.BansWhere(nil) }

// EachBan calls fn with every live ban, in no order, with the index
// locked (fn must be quick and must not call the Manager): counting them
// copies none.
func (m *Manager) EachBan(fn func(store.Ban)) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for b := range m.index.all() {
		if b.Until.After(now) {
			fn(b)
		}
	}
}

// BansWhere returns the live bans keep says yes to (every one when keep is
// nil), sorted by target. A caller after a few of many bans (the bans of
// one list, the pulled ones) then copies those only: a copy of 100,000 is
// 15 MB of garbage, resident until the runtime hands it back. keep runs
// with the index locked: it must be quick and must not call the Manager.
func (m *Manager) BansWhere(keep func(store.Ban) bool) []store.Ban {
	now := m.now()
	m.mu.Lock()
	var out []store.Ban
	if keep == nil {
		out = make([]store.Ban, 0, m.index.len())
	}
	for b := range m.index.all() {
		if b.Until.After(now) && (keep == nil || keep(b)) {
			out = append(out, b)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b store.Ban) int { return a.Target.Compare(b.Target) })
	return out
}
