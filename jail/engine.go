package jail

import (
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/bansd/bansd/jail/parse"
	"github.com/bansd/bansd/prefix"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/sources"
)

// Options are the Engine's clock and logger.
type Options struct {
	// Now is used when an event has no time at all. Default time.Now.
	Now func() time.Time
	// Logger receives the engine's rare notices. Default: discard.
	Logger *slog.Logger
}

// Engine turns log lines into ban decisions: it parses them, counts the
// events per jail and key in sliding windows of log time, and decides when
// a key reaches its jail's maxretry. It is safe for concurrent use.
type Engine struct {
	mu     sync.Mutex
	opt    Options
	now    func() time.Time
	seed   maphash.Seed
	parser *parse.Parser

	cfg    *configs.Config
	jails  []*jailRT
	byKind [parse.KindCount][]uint16
	tr     *tracker
	live   Protected
	allow  []Allowed
	prot   *protectSet
	exempt *exemptions
	alarms *alarmLimiter
	// allowAlarms: attempts from run-time allowed addresses.
	allowAlarms *alarmLimiter

	// adminLogins latches once admin has logged a "Login attempt" line
	// (Mailu 2024.06+): from then on front's auth failures are the same
	// attempts seen a second time.
	adminLogins bool
	// adminLimiter latches once admin has logged a limiter line: front's
	// rate-limit failures (Mailu 2.0 nginx) are then the same attempts.
	adminLimiter bool
	// latest is the newest log time seen, for Why's exemption state.
	latest int64

	st counters
	// warmSt counts the warm-up's events (Warm), apart from st.
	warmSt counters
}

// counters are the engine's own; lines and matched are the parser's (Process
// is its only caller).
type counters struct {
	events                                                  [parse.KindCount]uint64
	deduped, exempted, protected, frontSkipped, tooOld, ref uint64
	alarmEvents, alarms                                     uint64
}

// jailRT is one enabled jail, ready for counting.
type jailRT struct {
	cfg       configs.Jail
	find      int64
	events    uint64 // events counted in its windows
	decisions uint64
}

// Stats are the engine's counters since NewEngine.
type Stats struct {
	Lines, Matched uint64
	// Events counts matched events by kind name.
	Events map[string]uint64
	// Decisions counts decisions by jail name; JailEvents the events each
	// jail counted in its windows.
	Decisions, JailEvents map[string]uint64
	// Alarms is how many alarms were delivered; AlarmEvents how many events
	// came from a gateway or Docker-network "client", or were attempts
	// from a run-time allowed address.
	Alarms, AlarmEvents uint64
	// Tracked is how many windows (addresses and networks) are held now;
	// Evicted how many were dropped to stay within engine.max_tracked.
	Tracked int
	Evicted uint64
	// Exemptions is how many addresses are exempt after a successful login.
	Exemptions int
	// Why events were not counted.
	Deduplicated, Exempted, Protected, FrontSkipped, TooOld uint64
	// Refused counts network decisions dropped because the network holds
	// a protected address.
	Refused uint64
	// AdminLogins is true once admin's per-attempt lines were seen (Mailu
	// 2024.06+): front's auth failures are then not counted.
	AdminLogins bool
	Parser      parse.ParserStats
}

// WindowState is one jail's view of an address, for `bansctl why`.
type WindowState struct {
	Jail string
	// Key is the address or network the jail counts for the address.
	Key          netip.Prefix
	Count        int
	MaxRetry     int
	FindTime     time.Duration
	First, Last  time.Time
	Addresses    int // distinct addresses seen (network jails)
	MinAddresses int
	// ExemptUntil is set while the address is exempt after a successful login.
	ExemptUntil time.Time
}

// NewEngine builds an engine for cfg's enabled jails.
func NewEngine(cfg *configs.Config, opt Options) (*Engine, error) {
	if cfg == nil {
		return nil, errors.New("new engine: nil config")
	}
	jails, byKind, err := buildJails(cfg)
	if err != nil {
		return nil, fmt.Errorf("new engine: %w", err)
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		opt:         opt,
		now:         now,
		seed:        maphash.MakeSeed(),
		parser:      parse.NewParser(parse.ParserOptions{Now: now}),
		cfg:         cfg,
		jails:       jails,
		byKind:      byKind,
		tr:          newTracker(maxTracked(cfg)),
		exempt:      newExemptions(maxTracked(cfg)),
		alarms:      newAlarmLimiter(AlarmGatewayClient, gatewayHint),
		allowAlarms: newAlarmLimiter(AlarmAllowedClient, allowedHint),
	}
	e.prot = buildProtect(cfg, e.live, nil)
	return e, nil
}

func maxTracked(cfg *configs.Config) int {
	if cfg.Engine.MaxTracked > 0 {
		return cfg.Engine.MaxTracked
	}
	return 200000
}

func buildJails(cfg *configs.Config) ([]*jailRT, [parse.KindCount][]uint16, error) {
	var byKind [parse.KindCount][]uint16
	var jails []*jailRT
	for _, name := range cfg.JailNames() {
		j := cfg.Jails[name]
		if !j.Enabled {
			continue
		}
		if j.Name == "" {
			j.Name = name
		}
		if len(jails) >= 1<<16 {
			return nil, byKind, errors.New("too many jails")
		}
		if j.FindTime <= 0 || j.MaxRetry <= 0 {
			return nil, byKind, fmt.Errorf("jail %s: findtime and maxretry must be positive", name)
		}
		idx := uint16(len(jails))
		for _, ev := range j.Events {
			k, ok := parse.ParseKind(ev)
			if !ok {
				return nil, byKind, fmt.Errorf("jail %s: unknown event %q", name, ev)
			}
			if !slices.Contains(byKind[k], idx) {
				byKind[k] = append(byKind[k], idx)
			}
		}
		if j.MinAddresses < 1 {
			j.MinAddresses = 1
		}
		jails = append(jails, &jailRT{cfg: j, find: int64(j.FindTime)})
	}
	return jails, byKind, nil
}

// pending is what processEvent adds to. warm: the line is replayed from
// before the resume point (Warm): it updates the windows as it did the
// first time, and its decisions and alarms, which were acted on then, are
// dropped, as are its counters.
type pending struct {
	warm   bool
	decs   []Decision
	alarms []Alarm
	skip   string
}

// Why a matched event was not counted (Output.NotCounted).
const (
	SkipProtected = "protected address: never banned"
	SkipSuccess   = "successful login: exempts the address"
	SkipAlarmOnly = "feeds the gateway alarm only, never an attempt"
	SkipFront     = "front's copy of an attempt admin logs itself (Mailu 2024.06+): counted from admin"
	SkipExempt    = "address exempt after a successful login"
	SkipNoJail    = "no enabled jail counts this kind"
	SkipDeduped   = "same credentials retried: counted once"
	SkipTooOld    = "older than the jail's findtime"
)

// Process parses one line, counts its event and returns what it produced;
// the caller decides where decisions and alarms go (and when the line
// counts as done).
func (e *Engine) Process(l sources.Line) Output {
	var out pending
	_, ok, v := e.process(l, &out)
	return Output{Matched: ok, Decisions: out.decs, Alarms: out.alarms, Verdict: v, NotCounted: out.skip}
}

// Inspect is Process for one line an operator asks about (bansctl test):
// it also returns the line's event.
func (e *Engine) Inspect(l sources.Line) (parse.Event, Output) {
	var out pending
	ev, ok, v := e.process(l, &out)
	return ev, Output{Matched: ok, Decisions: out.decs, Alarms: out.alarms, Verdict: v, NotCounted: out.skip}
}

// Warm replays a line that was processed before a restart, so that the
// windows hold what an uninterrupted engine would: the same parsing,
// attribution and counting as Process, but no decision, alarm or counter
// of Stats (WarmStats has its own). It reports whether the line produced
// an event.
func (e *Engine) Warm(l sources.Line) bool {
	out := pending{warm: true}
	_, ok, _ := e.process(l, &out)
	return ok
}

func (e *Engine) process(l sources.Line, out *pending) (parse.Event, bool, parse.Verdict) {
	e.mu.Lock()
	e.parser.SetWarm(out.warm)
	ev, ok := e.parser.Parse(l)
	if ok {
		e.processEvent(&ev, out)
	}
	v := e.parser.Last()
	e.mu.Unlock()
	return ev, ok, v
}

// ProcessEvent counts an event parsed outside the engine, as Process does
// after parsing. Replay parses each stream on a goroutine of its own with a
// parser of its own (the parsers' state is per service: nginx's connections
// on front, the limiter bursts on admin) and hands the events over in log
// time order; the engine's own parser then sees no line, and its counters
// in Stats stay zero.
func (e *Engine) ProcessEvent(ev parse.Event) Output {
	var out pending
	e.mu.Lock()
	e.processEvent(&ev, &out)
	e.mu.Unlock()
	return Output{Matched: true, Decisions: out.decs, Alarms: out.alarms, NotCounted: out.skip}
}

func (e *Engine) processEvent(ev *parse.Event, out *pending) {
	if ev.Kind == parse.KindNone || ev.Kind >= parse.KindCount || !ev.Addr.IsValid() {
		return
	}
	st := &e.st
	if out.warm {
		st = &e.warmSt
	}
	st.events[ev.Kind]++
	t := ev.Time
	if t.IsZero() {
		t = e.now()
	}
	tn := t.UnixNano()
	if tn > e.latest {
		e.latest = tn
	}
	a := ev.Addr.Unmap()
	if r, ok := e.prot.match(a); ok {
		st.protected++
		out.skip = SkipProtected
		if lim := e.alarmFor(r, *ev); lim != nil && !out.warm {
			st.alarmEvents++
			if al, ok := lim.hit(a, tn, t, ev.Line); ok {
				st.alarms++
				out.alarms = append(out.alarms, al)
			}
		}
		return
	}
	ab := toBits(a)
	if ev.Origin == parse.OriginAdmin && ev.Port > 0 {
		// Only "Login attempt for: USER/PROTO/PORT" lines carry a mail
		// port; Mailu 2.0's SSO lines ("Login failed for") do not.
		switch ev.Kind {
		case parse.KindAuthFailure, parse.KindUnknownUser, parse.KindAuthSuccess:
			e.latchLogins()
		}
	}
	switch ev.Kind {
	case parse.KindAuthSuccess:
		if d := e.cfg.Engine.SuccessExempt; d > 0 {
			e.exempt.add(ab, ev.User, tn, tn+int64(d))
		}
		out.skip = SkipSuccess
		return
	case parse.KindRelayClient, parse.KindMisconfigured:
		// Alarm input only; never an attempt.
		out.skip = SkipAlarmOnly
		return
	}
	switch ev.Origin {
	case parse.OriginAdmin:
		if ev.Kind == parse.KindRateLimited {
			e.adminLimiter = true
		}
	case parse.OriginNginx, parse.OriginDovecot:
		switch ev.Kind {
		case parse.KindAuthFailure, parse.KindUnknownUser:
			if e.adminLogins {
				st.frontSkipped++
				out.skip = SkipFront
				return
			}
		case parse.KindRateLimited:
			if e.adminLogins || e.adminLimiter {
				st.frontSkipped++
				out.skip = SkipFront
				return
			}
		}
	}
	if e.exempt.has(ab, ev.User, tn) {
		st.exempted++
		out.skip = SkipExempt
		return
	}
	idxs := e.byKind[ev.Kind]
	out.skip = SkipNoJail
	if len(idxs) == 0 {
		return
	}
	n := int32(min(max(ev.Count, 1), 1<<20))
	ah := ab.hash()
	fp := e.fingerprint(ev, ah)
	keep := e.cfg.Engine.EvidenceLines
	line, copied := "", false
	for _, ji := range idxs {
		j := e.jails[ji]
		k, ok := ab.key(ji, j.cfg.Prefix4, j.cfg.Prefix6)
		if !ok {
			continue
		}
		w := e.tr.get(k)
		res, sum := w.add(tn, n, fp, ah, j.find, j.cfg.MaxRetry, j.cfg.MinAddresses)
		switch res {
		case tooOld:
			st.tooOld++
			if len(w.ent) == 0 {
				e.tr.removeKey(k)
			}
			if out.skip != "" {
				out.skip = SkipTooOld
			}
			continue
		case deduped:
			st.deduped++
			if out.skip != "" {
				out.skip = SkipDeduped
			}
			continue
		}
		if !out.warm {
			j.events++
		}
		out.skip = ""
		w.kinds |= 1 << ev.Kind
		if ev.Port > 0 && ev.Port < 1<<16 {
			w.port = uint16(ev.Port)
		}
		if keep > 0 {
			if !copied {
				line, copied = evidenceCopy(ev.Line), true
			}
			w.remember(line, keep)
		}
		if res == reached {
			e.decide(j, w, t, sum, out)
		}
	}
}

// alarmFor is where an event from a protected "client" is raised, nil
// for nowhere: an allowed address's attempts that a jail would have
// counted, and what alarmWorthy says.
func (e *Engine) alarmFor(r *protectRule, ev parse.Event) *alarmLimiter {
	switch {
	case r.alarm == alarmAllowed:
		if len(e.byKind[ev.Kind]) > 0 {
			return e.allowAlarms
		}
	case alarmWorthy(r, ev):
		return e.alarms
	}
	return nil
}

func (e *Engine) latchLogins() {
	if !e.adminLogins {
		e.adminLogins = true
		e.opt.Logger.Info("admin logs every credential check (Mailu 2024.06 or later): front's auth failures are no longer counted, each attempt is counted once from admin")
	}
}

// fingerprint identifies retries of the same credentials from the same
// address (Mailu's dedup): a stale password on several devices counts once.
// ah is the address's addrBits.hash.
func (e *Engine) fingerprint(ev *parse.Event, ah uint64) uint64 {
	var h maphash.Hash
	switch {
	case ev.Kind == parse.KindAuthFailure && ev.PassHash != "":
		h.SetSeed(e.seed)
		h.WriteByte(1)
		h.WriteString(ev.User)
		h.WriteByte(0)
		h.WriteString(ev.PassHash)
	case ev.Kind == parse.KindUnknownUser:
		h.SetSeed(e.seed)
		h.WriteByte(2)
		h.WriteString(ev.User)
	default:
		return 0
	}
	fp := h.Sum64() ^ ah*0xff51afd7ed558ccd
	if fp == 0 {
		fp = 1
	}
	return fp
}

func (e *Engine) decide(j *jailRT, w *window, t time.Time, sum int, out *pending) {
	target := w.key.prefix()
	if target.Bits() < target.Addr().BitLen() {
		if r, ok := e.prot.refuses(target, false); ok {
			e.tr.removeKey(w.key)
			if out.warm {
				return
			}
			e.st.ref++
			e.opt.Logger.Warn("network not banned: it holds a protected address", "jail", j.cfg.Name, "network", target, "rule", r.name)
			return
		}
	}
	if out.warm {
		// The ban was decided the first time; the window ends as it did.
		e.tr.removeKey(w.key)
		return
	}
	kernel := e.parser.KernelMode()
	why := reason(j, w, sum, target)
	if kernel {
		why += ", each corroborated by the kernel"
	} else {
		why += ", uncorroborated (text rules)"
	}
	d := Decision{
		Target:       target,
		Jail:         j.cfg.Name,
		Duration:     j.cfg.BanTime,
		Corroborated: kernel,
		Reason:       why,
		Time:         t,
		Events:       sum,
		Evidence:     w.evidence(),
	}
	j.decisions++
	e.tr.removeKey(w.key)
	out.decs = append(out.decs, d)
}

// Lookback is how much log before a resume point holds counts that still
// matter: the longest findtime of the enabled jails.
func (e *Engine) Lookback() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	var d time.Duration
	for _, j := range e.jails {
		d = max(d, j.cfg.FindTime)
	}
	return d
}

// SetProtected replaces the never-ban inputs learnt live.
func (e *Engine) SetProtected(p Protected) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.live = p
	e.prot = buildProtect(e.cfg, p, e.allow)
}

// IsProtected says which never-ban rule covers a, if any.
func (e *Engine) IsProtected(a netip.Addr) (rule string, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.prot.match(a.Unmap())
	if !ok {
		return "", false
	}
	return r.name, true
}

// NeverBan is bansd's one never-ban verdict for a ban of p: the rule p
// would cover, if any, and whether --force lifts that rule
// (ForceOverrides). p is normalized first (prefix.Normalize), so every
// spelling of a range gets the same answer; one that does not normalize is
// refused, force or not. With force (an operator's --force), the allow-list
// entries are lifted (ignoreip, AUTH_RATELIMIT_EXEMPTION); the hard rules
// hold.
func (e *Engine) NeverBan(p netip.Prefix, force bool) (rule string, forceable, ok bool) {
	p, err := prefix.Normalize(p)
	if err != nil {
		return err.Error(), false, true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.prot.refuses(p, force)
	if !ok {
		return "", false, false
	}
	return r.name, ForceOverrides(r.class), true
}

// Forget drops the windows of every address and network inside target
// (after an unban, so that the next attempt does not ban again at once).
func (e *Engine) Forget(target netip.Prefix) {
	target, err := prefix.Normalize(target)
	if err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var drop []wkey
	e.tr.each(func(_ int32, w *window) {
		p := w.key.prefix()
		if p.Bits() >= target.Bits() && target.Contains(p.Addr()) {
			drop = append(drop, w.key)
		}
	})
	for _, k := range drop {
		e.tr.removeKey(k)
	}
}

// Why returns every jail's window for a, and its exemption.
func (e *Engine) Why(a netip.Addr) []WindowState {
	a = a.Unmap()
	e.mu.Lock()
	defer e.mu.Unlock()
	ab := toBits(a)
	var until time.Time
	if t := e.exempt.exemptUntil(ab); t > e.latest {
		until = time.Unix(0, t).UTC()
	}
	var out []WindowState
	for i, j := range e.jails {
		k, ok := ab.key(uint16(i), j.cfg.Prefix4, j.cfg.Prefix6)
		if !ok {
			continue
		}
		w := e.tr.lookup(k)
		if w == nil {
			continue
		}
		sum, first := w.count(j.find)
		ws := WindowState{
			Jail: j.cfg.Name, Key: k.prefix(), Count: sum, MaxRetry: j.cfg.MaxRetry,
			FindTime: j.cfg.FindTime, Last: time.Unix(0, w.newest).UTC(),
			MinAddresses: j.cfg.MinAddresses, ExemptUntil: until,
		}
		if first != 0 {
			ws.First = time.Unix(0, first).UTC()
		}
		if j.cfg.MinAddresses > 1 {
			ws.Addresses = w.distinct(w.newest - j.find)
		}
		out = append(out, ws)
	}
	if len(out) == 0 && !until.IsZero() {
		out = append(out, WindowState{Key: netip.PrefixFrom(a, a.BitLen()), ExemptUntil: until})
	}
	return out
}

// SetWitness puts the engine in kernel mode (w != nil: a line counts only
// for a connection the kernel saw) or in text mode (nil).
func (e *Engine) SetWitness(w parse.Witness) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.parser.SetWitness(w)
}

// Stats returns a snapshot of the counters of live lines.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats(&e.st, e.parser.Stats())
	for _, j := range e.jails {
		s.Decisions[j.cfg.Name] = j.decisions
		s.JailEvents[j.cfg.Name] = j.events
	}
	return s
}

// WarmStats returns the counters of the lines given to Warm (it never
// decides: Decisions stay empty).
func (e *Engine) WarmStats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats(&e.warmSt, e.parser.WarmStats())
}

func (e *Engine) stats(st *counters, ps parse.ParserStats) Stats {
	s := Stats{
		Lines: ps.Lines, Matched: ps.Matched,
		Events:    map[string]uint64{},
		Decisions: map[string]uint64{}, JailEvents: map[string]uint64{},
		Alarms: st.alarms, AlarmEvents: st.alarmEvents,
		Tracked: e.tr.len(), Evicted: e.tr.evicted,
		Exemptions:   len(e.exempt.m),
		Deduplicated: st.deduped, Exempted: st.exempted, Protected: st.protected,
		FrontSkipped: st.frontSkipped, TooOld: st.tooOld, Refused: st.ref,
		AdminLogins: e.adminLogins,
		Parser:      ps,
	}
	for k := parse.Kind(1); k < parse.KindCount; k++ {
		s.Events[k.String()] = st.events[k]
	}
	return s
}

// FlushAlarms delivers an alarm for every address whose events were held
// back by the once-a-minute limit since its last alarm (at the end of a
// replay, or periodically).
func (e *Engine) FlushAlarms() []Alarm {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := append(e.alarms.flush(), e.allowAlarms.flush()...)
	e.st.alarms += uint64(len(out))
	return out
}

// Reload switches to cfg. Jails whose settings did not change keep their
// windows; the others start empty.
func (e *Engine) Reload(cfg *configs.Config) error {
	if cfg == nil {
		return errors.New("reload engine: nil config")
	}
	jails, byKind, err := buildJails(cfg)
	if err != nil {
		return fmt.Errorf("reload engine: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	remap := map[uint16]uint16{}
	for ni, nj := range jails {
		for oi, oj := range e.jails {
			if sameJail(oj.cfg, nj.cfg) {
				remap[uint16(oi)] = uint16(ni)
				nj.decisions = oj.decisions
			}
		}
	}
	e.tr.rekey(func(k wkey) (wkey, bool) {
		nj, ok := remap[k.jail]
		k.jail = nj
		return k, ok
	})
	e.tr.max = maxTracked(cfg)
	for e.tr.len() > e.tr.max {
		e.tr.remove(e.tr.tail)
		e.tr.evicted++
	}
	e.exempt.max = maxTracked(cfg)
	e.cfg, e.jails, e.byKind = cfg, jails, byKind
	e.prot = buildProtect(cfg, e.live, e.allow)
	return nil
}

func sameJail(a, b configs.Jail) bool {
	return a.Name == b.Name && slices.Equal(a.Events, b.Events) && a.FindTime == b.FindTime &&
		a.MaxRetry == b.MaxRetry && a.BanTime == b.BanTime && a.Prefix4 == b.Prefix4 &&
		a.Prefix6 == b.Prefix6 && a.MinAddresses == b.MinAddresses
}
