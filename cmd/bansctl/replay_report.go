package main

import (
	"fmt"
	"io"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bansd/bansd/ban/escalate"
	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/jail/parse"
)

// The report side of replay: what the engine and the parser made of the
// lines (their own counters and verdicts, never a second parse), the bans
// as the daemon would make them, the lines --print asks for, and warnings
// about input that is probably wrong.

// replayReport is replay's result; its JSON is the --json output.
type replayReport struct {
	Lines   uint64  `json:"lines"`
	Matched uint64  `json:"matched"`
	Seconds float64 `json:"seconds"`
	// Attribution is "text": offline there is no kernel record of who
	// connected, so the text rules judge and no ban is corroborated.
	Attribution string `json:"attribution"`
	// Forged counts lines the text rules set aside, by reason.
	Forged map[string]uint64 `json:"forged"`
	// Guards says which of front's text rules judged the lines: "docker
	// time" (pieces of an nginx write told by Docker's timestamps) and/or
	// "line count" (front lines without them: nginx lines about others
	// set aside for a span of lines, Dovecot lines not at all).
	Guards []string `json:"guards"`
	// UntimedFront and UnguardedDovecot are the parser's counts behind
	// "line count".
	UntimedFront     uint64 `json:"untimed_front_lines"`
	UnguardedDovecot uint64 `json:"unguarded_dovecot_lines"`
	// Inputs are the files in argument order.
	Inputs []replayFile `json:"inputs"`
	// Services is the parser's verdicts per service, by class and reason.
	Services map[string]parse.ServiceStats `json:"services"`
	// Events are the matched events by kind; NotCounted the matched events
	// no jail counted, by the engine's reason (jail.Skip*).
	Events     map[string]uint64     `json:"events"`
	NotCounted map[string]uint64     `json:"not_counted"`
	Jails      map[string]replayJail `json:"jails"`
	Bans       []replayBan           `json:"bans"`
	// WhileBanned counts decisions for a target its earlier ban in this
	// replay still covered: live, the firewall would have stopped it.
	WhileBanned uint64        `json:"while_banned"`
	Alarms      []replayAlarm `json:"alarms"`
	Warnings    []string      `json:"warnings"`
	// Printed are the lines --print asked for, at most --print-limit per
	// class, in replay order.
	Printed []printedLine `json:"printed,omitempty"`

	cut int64
}

type replayFile struct {
	Service string `json:"service"`
	Path    string `json:"path"`
	// Guessed: the service was guessed from the file's content.
	Guessed bool   `json:"guessed"`
	Lines   uint64 `json:"lines"`
	// Recognised is how many lines the parser read as a line of a program
	// bansd knows (every class but unparsable).
	Recognised uint64 `json:"recognised"`

	dovecot uint64 // front lines Dovecot wrote (Mailu 2024.06+)
	mixed   bool   // a journal: its entries name their services
}

type replayJail struct {
	Events    uint64 `json:"events"`
	Decisions uint64 `json:"decisions"`
}

type replayBan struct {
	Target       string `json:"target"`
	Jail         string `json:"jail"`
	Events       int    `json:"events"`
	First        string `json:"first"`
	Reason       string `json:"reason"`
	Corroborated bool   `json:"corroborated"`
	// Duration is the daemon's: the jail's bantime escalated by Level, the
	// target's earlier bans in this replay (ban.bantime_factor,
	// bantime_max, history_max_age).
	Duration string   `json:"duration"`
	Until    string   `json:"until"`
	Level    int      `json:"level"`
	Evidence []string `json:"evidence"`

	dur time.Duration
}

type replayAlarm struct {
	Kind    string `json:"kind"`
	Address string `json:"address"`
	Count   int    `json:"count"`
	Hint    string `json:"hint"`
}

// printedLine is one line --print asked for, with the parser's verdict.
type printedLine struct {
	Service string `json:"service"`
	Path    string `json:"path"`
	Class   string `json:"class"`
	// Reason is why the line was not matched or set aside; for a matched
	// line, why no jail counted it (empty when one did).
	Reason string        `json:"reason,omitempty"`
	Event  *printedEvent `json:"event,omitempty"`
	Line   string        `json:"line"`

	t int64 // merge key, for replay order
}

type printedEvent struct {
	Kind   string `json:"kind"`
	Origin string `json:"origin"`
	Client string `json:"client"`
	User   string `json:"user,omitempty"`
	Port   int    `json:"port,omitempty"`
	Count  int    `json:"count"`
}

func eventOf(ev parse.Event) *printedEvent {
	return &printedEvent{Kind: ev.Kind.String(), Origin: ev.Origin.String(), Client: ev.Addr.String(), User: ev.User, Port: ev.Port, Count: ev.Count}
}

// Print classes (--print).
const (
	printMatched  = "matched"
	printMissed   = "missed"    // ignored and unparsable
	printSetAside = "set-aside" // forged and uncorroborated
	printAll      = "all"
)

// printSet is which parser classes --print shows.
type printSet [parse.ClassUncorroborated + 1]bool

func parsePrint(s string) (printSet, error) {
	var ps printSet
	if s == "" {
		return ps, nil
	}
	for _, w := range strings.Split(s, ",") {
		switch strings.TrimSpace(w) {
		case printMatched:
			ps[parse.ClassMatched] = true
		case printMissed:
			ps[parse.ClassIgnored], ps[parse.ClassUnparsable] = true, true
		case printSetAside:
			ps[parse.ClassForged], ps[parse.ClassUncorroborated] = true, true
		case printAll:
			for i := range ps {
				ps[i] = true
			}
		default:
			return ps, usagef("--print: want matched, missed, set-aside or all (or a comma-separated list), got %q", w)
		}
	}
	return ps, nil
}

func (ps printSet) any() bool {
	for _, b := range ps {
		if b {
			return true
		}
	}
	return false
}

// reportBuilder collects the report while the engine runs: line is called
// for every line in replay order, after the engine processed it.
type reportBuilder struct {
	rep    *replayReport
	cfg    *configs.Config
	limit  int
	banned map[netip.Prefix]*banState
	alarms map[alarmKey]*replayAlarm
}

type banState struct {
	bans  int
	until time.Time
	last  time.Time
}

type alarmKey struct{ kind, addr string }

func newReportBuilder(cfg *configs.Config, inputs []replayInput, limit int) *reportBuilder {
	rep := &replayReport{Bans: []replayBan{}, Alarms: []replayAlarm{}, Attribution: "text", Warnings: []string{}, NotCounted: map[string]uint64{}}
	for _, in := range inputs {
		rep.Inputs = append(rep.Inputs, replayFile{Service: in.service, Path: in.path, Guessed: in.guessed, mixed: in.mixed})
	}
	return &reportBuilder{rep: rep, cfg: cfg, limit: limit, banned: map[netip.Prefix]*banState{}, alarms: map[alarmKey]*replayAlarm{}}
}

// cutPrinted puts the printed lines of every source in replay order and
// keeps the first limit of each class (each source kept as many).
func (b *reportBuilder) cutPrinted() {
	p := b.rep.Printed
	sort.SliceStable(p, func(i, j int) bool { return p[i].t < p[j].t })
	shown := map[string]int{}
	keep := p[:0]
	for _, l := range p {
		if shown[l.Class] < b.limit {
			shown[l.Class]++
			keep = append(keep, l)
		}
	}
	b.rep.Printed = keep
}

// event takes what the engine made of one event.
func (b *reportBuilder) event(out *jail.Output) {
	if out.NotCounted != "" {
		b.rep.NotCounted[out.NotCounted]++
	}
	for _, a := range out.Alarms {
		b.alarm(a)
	}
	for _, d := range out.Decisions {
		b.decision(d)
	}
}

// decision records a ban as the daemon would make it: escalated by the
// target's earlier bans in this replay, and not at all while an earlier one
// still holds (live, the firewall would have stopped those attempts).
func (b *reportBuilder) decision(d jail.Decision) {
	st := b.banned[d.Target]
	if st == nil {
		st = &banState{}
		b.banned[d.Target] = st
	}
	if d.Time.Before(st.until) {
		b.rep.WhileBanned++
		return
	}
	level := st.bans
	if age := b.cfg.Ban.HistoryMaxAge; age > 0 && level > 0 && st.last.Before(d.Time.Add(-age)) {
		level = 0
	}
	limit := b.cfg.Ban.BantimeMax
	if limit <= 0 {
		limit = time.Duration(math.MaxInt64)
	}
	dur := escalate.Duration(d.Duration, level, b.cfg.Ban.Factor, limit)
	st.bans = level + 1
	st.last = d.Time
	st.until = d.Time.Add(dur)
	ev := d.Evidence // the engine's own copies
	if ev == nil {
		ev = []string{}
	}
	b.rep.Bans = append(b.rep.Bans, replayBan{Target: d.Target.String(), Jail: d.Jail, Events: d.Events,
		First: d.Time.UTC().Format(time.RFC3339), Reason: d.Reason, Corroborated: d.Corroborated,
		Duration: dur.String(), Until: st.until.UTC().Format(time.RFC3339), Level: level, Evidence: ev, dur: dur})
}

func (b *reportBuilder) alarm(a jail.Alarm) {
	k := alarmKey{a.Kind, a.Addr.String()}
	if x, ok := b.alarms[k]; ok {
		x.Count += a.Count
		return
	}
	b.alarms[k] = &replayAlarm{Kind: a.Kind, Address: k.addr, Count: a.Count, Hint: a.Hint}
}

// finish adds the sources' tallies (reasons: the engine's word on each
// printed matched line, by source), the engine's counters and the
// warnings.
func (b *reportBuilder) finish(eng *jail.Engine, fed feedResult, reasons []map[int32]string, seconds float64) *replayReport {
	for _, a := range eng.FlushAlarms() {
		b.alarm(a)
	}
	rep := b.rep
	rep.Seconds, rep.cut = seconds, fed.cut
	for i, t := range fed.tallies {
		f := &rep.Inputs[i]
		f.Lines, f.Recognised, f.dovecot = t.lines, t.recognised, t.dovecot
		for k, why := range reasons[i] {
			t.printed[k].Reason = why
		}
		rep.Printed = append(rep.Printed, t.printed...)
	}
	b.cutPrinted()
	st := eng.Stats()
	ps := fed.parser // the sources' parsers read the lines, not the engine's
	rep.Lines, rep.Matched = ps.Lines, ps.Matched
	rep.Forged = ps.Forged
	rep.UntimedFront, rep.UnguardedDovecot = ps.UntimedFront, ps.UnguardedDovecot
	rep.Guards = []string{}
	if front := ps.Services["front"]; front.Lines > ps.UntimedFront {
		rep.Guards = append(rep.Guards, "docker time")
	}
	if ps.UntimedFront > 0 {
		rep.Guards = append(rep.Guards, "line count")
	}
	rep.Services = ps.Services
	rep.Events = map[string]uint64{}
	for k, n := range st.Events {
		if n > 0 {
			rep.Events[k] = n
		}
	}
	rep.Jails = map[string]replayJail{}
	for j, n := range st.Decisions {
		rep.Jails[j] = replayJail{Events: st.JailEvents[j], Decisions: n}
	}
	for _, a := range b.alarms {
		rep.Alarms = append(rep.Alarms, *a)
	}
	sort.Slice(rep.Alarms, func(i, j int) bool {
		if rep.Alarms[i].Count != rep.Alarms[j].Count {
			return rep.Alarms[i].Count > rep.Alarms[j].Count
		}
		return rep.Alarms[i].Address < rep.Alarms[j].Address
	})
	rep.Warnings = append(rep.Warnings, inputWarnings(rep.Inputs)...)
	return rep
}

// inputWarnings are the warnings about input that is probably wrong, from
// what the parser made of each file.
func inputWarnings(files []replayFile) []string {
	var w []string
	have := map[string]bool{}
	for _, f := range files {
		have[f.Service] = true
	}
	for _, f := range files {
		switch {
		case f.mixed:
		case !parse.KnownService(f.Service):
			w = append(w, fmt.Sprintf("%s=%s: unknown service %q: bansd reads front, admin, smtp and antispam; none of its %d lines was read", f.Service, f.Path, f.Service, f.Lines))
		case f.Lines > 0 && f.Recognised == 0:
			w = append(w, fmt.Sprintf("%s=%s: none of its %d lines is one bansd reads for %s (wrong file, or wrong service?)", f.Service, f.Path, f.Lines, f.Service))
		}
	}
	if have["front"] && !have["admin"] {
		for _, f := range files {
			if f.Service == "front" && f.dovecot > 0 {
				w = append(w, fmt.Sprintf("front=%s has Dovecot lines (Mailu 2024.06 or later) but no admin file was given: there, bansd counts each "+
					"attempt once from admin's \"Login attempt\" lines and not front's. Without them replay counts front's nginx and Dovecot failures: "+
					"a stale password retried counts every time (front's lines carry no password hash to count retries once), so bans may come sooner, "+
					"and web (SSO) login, API token and limiter lines, which only admin writes, are missing: no ban for those. "+
					"Add admin=admin.log (docker logs -t mailu-admin-1)", f.Path))
				break
			}
		}
	}
	return w
}

// guessWarning compares a file's given service with what its first lines
// look like. It says nothing when too few lines were recognised to tell.
func guessWarning(in replayInput, g parse.ServiceGuess) string {
	best, n := g.Best()
	if best == "" || best == in.service || n < 3 || n < 2*g.Votes[in.service] {
		return ""
	}
	return fmt.Sprintf("%s=%s: its lines look like %s's (%d of the first %d lines): wrong service? (bansd reads each service's lines its own way)", in.service, in.path, best, n, g.Lines)
}

func printReplay(w io.Writer, rep *replayReport) error {
	rate := 0.0
	if rep.Seconds > 0 {
		rate = float64(rep.Lines) / rep.Seconds
	}
	fmt.Fprintf(w, "Replayed %d lines (%d matched) in %.2fs: %.0f lines/s\n", rep.Lines, rep.Matched, rep.Seconds, rate)
	fmt.Fprintln(w, "No kernel record offline: the text rules judged every line, and the bans below are uncorroborated.")
	if rep.UntimedFront > 0 {
		fmt.Fprintf(w, "%d front lines have no Docker timestamp (saved without docker logs -t): pieces of nginx writes told by line count only;"+
			" %d Dovecot failures among them counted with no piece test (a forged one in an nginx username would count too)\n",
			rep.UntimedFront, rep.UnguardedDovecot)
	}
	if rep.cut > 0 {
		fmt.Fprintf(w, "%d lines longer than docker.max_line were cut\n", rep.cut)
	}
	var t table
	fmt.Fprintln(w, "\nFILES")
	t.add("SERVICE", "FILE", "LINES", "RECOGNISED")
	for _, f := range rep.Inputs {
		svc := f.Service
		if f.Guessed {
			svc += " (guessed)"
		}
		t.add(svc, clean(f.Path), u(f.Lines), u(f.Recognised))
	}
	if err := t.write(w); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nSERVICES")
	t = table{}
	t.add("SERVICE", "LINES", "MATCHED", "IGNORED", "SET ASIDE", "UNCORROBORATED", "UNPARSABLE")
	svcs := sortedKeys(rep.Services)
	for _, s := range svcs {
		st := rep.Services[s]
		t.add(s, u(st.Lines), u(parse.Total(st.Matched)), u(parse.Total(st.Ignored)), u(parse.Total(st.Forged)), u(parse.Total(st.Uncorroborated)), u(parse.Total(st.Unparsable)))
	}
	if err := t.write(w); err != nil {
		return err
	}
	t = table{}
	t.add("SERVICE", "CLASS", "KIND OR REASON", "LINES")
	for _, s := range svcs {
		st := rep.Services[s]
		for _, c := range []struct {
			class string
			m     map[string]uint64
		}{{"matched", st.Matched}, {"set aside", st.Forged}, {"uncorroborated", st.Uncorroborated}, {"ignored", st.Ignored}, {"unparsable", st.Unparsable}} {
			for _, k := range sortedKeys(c.m) {
				t.add(s, c.class, k, u(c.m[k]))
			}
		}
	}
	fmt.Fprintln(w)
	if err := t.write(w); err != nil {
		return err
	}
	if len(rep.NotCounted) > 0 {
		fmt.Fprintln(w, "\nMATCHED BUT COUNTED BY NO JAIL")
		t = table{}
		t.add("EVENTS", "WHY")
		for _, k := range sortedKeys(rep.NotCounted) {
			t.add(u(rep.NotCounted[k]), k)
		}
		if err := t.write(w); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "\nJAILS")
	t = table{}
	t.add("JAIL", "EVENTS", "DECISIONS")
	for _, j := range sortedKeys(rep.Jails) {
		t.add(j, u(rep.Jails[j].Events), u(rep.Jails[j].Decisions))
	}
	if err := t.write(w); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nBANS (%d)\n", len(rep.Bans))
	if rep.WhileBanned > 0 {
		fmt.Fprintf(w, "(%d more decisions came while their target's ban held: live, the firewall would have stopped those attempts)\n", rep.WhileBanned)
	}
	for _, b := range rep.Bans {
		fmt.Fprintf(w, "%s  jail %s  at %s  for %s (level %d)  %d events: %s\n", b.Target, b.Jail, b.First, human(b.dur), b.Level, b.Events, b.Reason)
		for _, l := range b.Evidence {
			fmt.Fprintf(w, "    | %s\n", clean(l))
		}
	}
	fmt.Fprintf(w, "\nALARMS (%d addresses)\n", len(rep.Alarms))
	if len(rep.Alarms) > 0 {
		t = table{}
		t.add("KIND", "ADDRESS", "COUNT")
		for _, a := range rep.Alarms {
			t.add(a.Kind, a.Address, strconv.Itoa(a.Count))
		}
		if err := t.write(w); err != nil {
			return err
		}
		fmt.Fprintf(w, "\nWhy the alarms matter: %s\n", rep.Alarms[0].Hint)
	}
	if len(rep.Printed) > 0 {
		fmt.Fprintf(w, "\nLINES (%d)\n", len(rep.Printed))
		for _, p := range rep.Printed {
			fmt.Fprintf(w, "%s %s: %s\n    | %s\n", p.Service, classWords(p.Class), printedWhy(p), clean(p.Line))
		}
	}
	return nil
}

// printedWhy says in words what the parser and the engine made of a line.
func printedWhy(p printedLine) string {
	if p.Event == nil {
		return p.Reason
	}
	s := eventWords(p.Event)
	if p.Reason != "" {
		return s + "; not counted: " + p.Reason
	}
	return s + "; counted"
}

func eventWords(e *printedEvent) string {
	s := fmt.Sprintf("%s (%s) client %s", e.Kind, e.Origin, e.Client)
	if e.User != "" {
		s += " user " + strconv.Quote(e.User)
	}
	if e.Port != 0 {
		s += " port " + strconv.Itoa(e.Port)
	}
	return s + " count " + strconv.Itoa(e.Count)
}

func u(n uint64) string { return strconv.FormatUint(n, 10) }

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
